"""Colour-preservation loss L_cp of StyleAnime §4.2.2 (Eq. 4–5), per face component (hair, skin, eyes).

How Eq. 4 is realised (``mode="hm"``, the paper's and the official code's scheme):

* For each image b and component c, let M = y_p^c be the component's pixels in the *target* parsing y_p (eyes = left
  + right eye).  The same mask selects the pixels of the reconstruction ŷ and of the input y (ŷ reconstructs y).
* The guidance HM(ŷ ⊙ M, y ⊙ M) is exact per-channel histogram matching (CDF matching, Gonzalez & Woods) of ŷ's
  masked pixels to y's: the pixel of rank r among ŷ's n region values (per channel) gets the value at quantile
  r / (n − 1) of y's sorted region values (linear interpolation between order statistics when the counts differ).
  Histogram counting is not differentiable, so the guidance is a constant (no gradient), as in the paper.
* L_c(b) = mean over the region's pixels and the 3 channels of (ŷ − HM)² (the squared L2 of Eq. 4, normalised by
  the region size so components of different sizes weigh alike); 0 when the component is absent from y_p.
* L_c = mean over the batch of L_c(b); L_cp = α_h·L_hair + α_s·L_skin + α_e·L_eyes (Eq. 5).

L_cp is exactly 0 when ŷ's region already has y's colour histogram (the same multiset of values), however the
pixels are arranged, and grows when the region's colours drift (e.g. a hue shift of the hair only).

``mode="soft_hist"`` is a fully differentiable alternative: Gaussian-kernel soft histograms (``bins`` per channel
over [-1, 1], σ = one bin width) of ŷ's and y's region pixels, L_c(b) = ½ Σ_bins |h_ŷ − h_y| averaged over channels
(total-variation distance in [0, 1]); the target histogram is constant.
"""
from __future__ import annotations

from typing import Literal, Mapping

import torch
from torch import nn

from .. import labels as L
from ..errors import ConfigError

__all__ = ["COMPONENTS", "component_masks", "histogram_match", "soft_histogram", "color_preservation_loss",
           "ColorPreservationLoss"]

# Eq. 5 components → class names (looked up in whichever label set the parsing uses).
COMPONENTS: dict[str, tuple[str, ...]] = {"hair": ("hair",), "skin": ("skin",), "eyes": ("l_eye", "r_eye")}


def component_masks(labels: torch.Tensor, label_set: str) -> dict[str, torch.Tensor]:
    """(B, H, W) integer labels → {component: (B, H, W) bool mask} for hair, skin, eyes."""
    out = {}
    for comp, names in COMPONENTS.items():
        ids = L.class_ids(label_set, *names)
        mask = torch.zeros_like(labels, dtype=torch.bool)
        for i in ids:
            mask |= labels == i
        out[comp] = mask
    return out


@torch.no_grad()
def histogram_match(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel CDF matching: source (C, N) values take the distribution of reference (C, M) values → (C, N).

    The source value of rank r (0-based, ties broken by position) becomes the reference value at quantile
    r / (N − 1), linearly interpolated between reference order statistics.  With N == M this is
    ``sorted(reference)[rank]`` exactly.  No gradient (the result is a guidance target).
    """
    c, n = source.shape
    m = reference.shape[1]
    if n == 0 or m == 0:
        return source.clone()
    ref_sorted = reference.sort(dim=1).values
    ranks = torch.empty_like(source, dtype=torch.long)
    order = source.argsort(dim=1, stable=True)
    ranks.scatter_(1, order, torch.arange(n, device=source.device).expand(c, n))
    pos = ranks.to(reference.dtype) * ((m - 1) / max(n - 1, 1))
    lo = pos.floor().long().clamp_(0, m - 1)
    hi = (lo + 1).clamp_(max=m - 1)
    frac = pos - lo.to(pos.dtype)
    a, b = ref_sorted.gather(1, lo), ref_sorted.gather(1, hi)
    return a + (b - a) * frac


def soft_histogram(values: torch.Tensor, bins: int = 64, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """Differentiable histogram: values (C, N) → (C, bins), each row summing to 1 (Gaussian kernel, σ = bin width)."""
    width = (hi - lo) / bins
    centers = torch.linspace(lo + width / 2, hi - width / 2, bins, device=values.device, dtype=values.dtype)
    k = torch.exp(-0.5 * ((values[:, :, None] - centers) / width) ** 2)  # (C, N, bins)
    k = k / k.sum(dim=2, keepdim=True).clamp_min(1e-12)  # each pixel contributes a unit of mass
    return k.mean(dim=1)


def color_preservation_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    labels: torch.Tensor,
    label_set: str,
    weights: Mapping[str, float] | None = None,
    mode: Literal["hm", "soft_hist"] = "hm",
    bins: int = 64,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_cp (Eq. 5) of ŷ = ``pred`` against y = ``target`` (B, 3, H, W) in [-1, 1] within y's parsing ``labels``.

    Returns (weighted total, {component: unweighted L_c}); see the module doc for the exact definition.
    """
    if mode not in ("hm", "soft_hist"):
        raise ConfigError(f"colour-preservation mode '{mode}': expected 'hm' or 'soft_hist'")
    weights = {"hair": 1.0, "skin": 1.0, "eyes": 1.0} if weights is None else dict(weights)
    pred = pred.float()
    target = target.float()
    bsz = pred.shape[0]
    masks = component_masks(labels.to(pred.device), label_set)
    parts: dict[str, torch.Tensor] = {}
    total = pred.new_zeros(())
    for comp, mask in masks.items():
        per_sample = []
        for b in range(bsz):
            m = mask[b]
            if not bool(m.any()):
                per_sample.append(pred.new_zeros(()))
                continue
            p = pred[b][:, m]  # (3, N)
            t = target[b][:, m].detach()
            if mode == "hm":
                guide = histogram_match(p.detach(), t)
                per_sample.append((p - guide).pow(2).mean())
            else:
                hp, ht = soft_histogram(p, bins), soft_histogram(t, bins).detach()
                per_sample.append(0.5 * (hp - ht).abs().sum(dim=1).mean())
        parts[comp] = torch.stack(per_sample).mean()
        total = total + float(weights.get(comp, 0.0)) * parts[comp]
    return total, parts


class ColorPreservationLoss(nn.Module):
    """Module form of :func:`color_preservation_loss` with the label set, α weights (Eq. 5) and mode fixed."""

    def __init__(self, label_set: str, alpha_hair: float = 1.0, alpha_skin: float = 1.0, alpha_eyes: float = 1.0,
                 mode: Literal["hm", "soft_hist"] = "hm", bins: int = 64):
        super().__init__()
        L.num_classes(label_set)
        if mode not in ("hm", "soft_hist"):
            raise ConfigError(f"colour-preservation mode '{mode}': expected 'hm' or 'soft_hist'")
        self.label_set = label_set
        self.weights = {"hair": alpha_hair, "skin": alpha_skin, "eyes": alpha_eyes}
        self.mode = mode
        self.bins = bins

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return color_preservation_loss(pred, target, labels, self.label_set, self.weights, self.mode, self.bins)
