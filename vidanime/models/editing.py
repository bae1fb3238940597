"""Editing with StyleAnime (paper §6.1 and the supplement's appearance editing): parsing-based re-rendering, style-code
mixing between two inputs, PTI generator tuning for inputs from the generator's own domain, and edit-locality numbers.

* :func:`edit_latents` — W+ with structure codes from an (edited) parsing map and appearance codes from the image
  (optionally mixed with a second image's, :func:`mix_styles`).
* :func:`pti_tune` — Pivotal Tuning (Roich et al. 2022): tune a *copy* of the synthesis network so that the pivot
  code reconstructs the image (LPIPS + L2, Adam, lr 3e-4, a few hundred steps); the loaded model is never changed.
* :func:`changed_region`, :func:`feather`, :func:`edit_locality` — where two parsing maps differ, a soft blending mask
  around it, and how much an edit changed the output inside vs outside that region (L2 and spatial LPIPS).

Images are (B, 3, S, S) RGB in [-1, 1]; parsing maps (B, S, S) integer labels in the model's label set; W+ codes
(B, n_latent, D).
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import VidanimeError
from .styleanime import StyleAnime
from .stylegan2 import Generator

logger = logging.getLogger(__name__)

__all__ = ["mix_styles", "edit_latents", "render", "PTIResult", "pti_tune", "changed_region", "feather",
           "lpips_map", "edit_locality"]


def _check_mix(mix: float) -> float:
    if not isinstance(mix, (int, float)) or isinstance(mix, bool) or not 0.0 <= float(mix) <= 1.0:
        raise VidanimeError(f"mix={mix!r}: expected a number in [0, 1] (0 = own appearance, 1 = the other image's)")
    return float(mix)


def mix_styles(w_a: torch.Tensor, w_b: torch.Tensor, mix: float, n_structure: int) -> torch.Tensor:
    """W+ (B, L, D) with codes ``[:n_structure]`` from ``w_a`` and appearance codes ``[n_structure:]`` interpolated,
    (1 − mix)·w_a + mix·w_b; ``mix`` 0 and 1 copy exactly (1 = appearance swap, the paper's style mixing)."""
    mix = _check_mix(mix)
    if w_a.shape[1:] != w_b.shape[1:] or w_a.ndim != 3:
        raise VidanimeError(f"W+ codes of shapes {tuple(w_a.shape)} and {tuple(w_b.shape)}: expected (B, L, D) each")
    if not 0 <= n_structure <= w_a.shape[1]:
        raise VidanimeError(f"n_structure={n_structure}: expected 0..{w_a.shape[1]}")
    w_b = w_b.to(w_a).expand(w_a.shape[0], -1, -1) if w_b.shape[0] == 1 else w_b.to(w_a)
    if mix == 0.0:
        appearance = w_a[:, n_structure:]
    elif mix == 1.0:
        appearance = w_b[:, n_structure:]
    else:
        appearance = (1.0 - mix) * w_a[:, n_structure:] + mix * w_b[:, n_structure:]
    return torch.cat([w_a[:, :n_structure], appearance], dim=1)


@torch.no_grad()
def edit_latents(model: StyleAnime, image: torch.Tensor, parsing: torch.Tensor, style_image: torch.Tensor | None = None,
                 mix: float = 1.0) -> torch.Tensor:
    """W+ (B, L, D): structure from ``parsing`` (the edited map), appearance from ``image``; with ``style_image``
    (1 or B images) its appearance codes are mixed in at ``mix`` (:func:`mix_styles`)."""
    w = model.encode(image, parsing)
    if style_image is not None:
        n_s = model.n_structure_codes
        appearance = model.encode_appearance(style_image)
        if appearance.shape[0] not in (1, w.shape[0]):
            raise VidanimeError(f"{appearance.shape[0]} style images for {w.shape[0]} inputs: expected 1 or the same")
        w_b = torch.cat([w[:, :n_s], appearance.expand(w.shape[0], -1, -1)], dim=1)
        w = mix_styles(w, w_b, mix, n_s)
    return w


def render(generator: Generator, w: torch.Tensor) -> torch.Tensor:
    """Synthesis with the generator's fixed noise buffers: W+ (B, L, D) → (B, 3, S, S) in about [-1, 1]."""
    return generator.synthesis(w, noise=None, randomize_noise=False)


@dataclass
class PTIResult:
    """A tuned copy of the generator and the loss of each step (LPIPS·λ + L2·λ, on the pivot's reconstruction)."""

    generator: Generator
    losses: list[float] = field(default_factory=list)


def pti_tune(
    model: StyleAnime,
    image: torch.Tensor,
    w_pivot: torch.Tensor,
    steps: int = 350,
    lr: float = 3e-4,
    lpips: torch.nn.Module | None = None,
    lpips_weight: float = 1.0,
    l2_weight: float = 1.0,
    stop_lpips: float | None = 0.06,
    progress: bool = False,
) -> PTIResult:
    """Pivotal tuning: Adam on a copy of ``model.decoder``'s synthesis weights so that G(w_pivot) ≈ ``image``.

    ``image`` (1, 3, S, S) in [-1, 1] from the generator's own domain (a real anime for an anime generator);
    ``w_pivot`` (1, L, D) its code (``model.encode(image, parsing)``, kept fixed).  Loss = ``lpips_weight``·LPIPS
    (an :class:`~vidanime.losses.reconstruction.LPIPSLoss`, needed when ``lpips_weight`` > 0) + ``l2_weight``·MSE, as
    in PTI (lr 3e-4; PTI stops once LPIPS < 0.06, ``stop_lpips``).  The mapping network is not used or tuned.
    """
    from tqdm import tqdm

    if not isinstance(steps, int) or steps < 1:
        raise VidanimeError(f"PTI steps={steps!r}: expected an integer >= 1")
    if lpips_weight > 0 and lpips is None:
        raise VidanimeError("PTI with lpips_weight > 0 needs an LPIPS loss module (or set lpips_weight=0)")
    image = model._check_image(image, "PTI image").to(model.latent_avg)
    w_pivot = w_pivot.detach().to(model.latent_avg)
    if image.shape[0] != 1 or w_pivot.shape[0] != 1:
        raise VidanimeError(f"PTI tunes on one image: got {image.shape[0]} images and {w_pivot.shape[0]} codes")
    gen = copy.deepcopy(model.decoder).train()
    gen.requires_grad_(False)
    params = [p for name, p in gen.named_parameters() if not name.startswith("style.")]
    for p in params:
        p.requires_grad_(True)
    if image.shape[-1] != gen.size:
        mode = "area" if image.shape[-1] > gen.size else "bilinear"
        image = F.interpolate(image, size=(gen.size, gen.size), mode=mode)
    opt = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    for step in tqdm(range(steps), desc="PTI", unit="step", disable=not progress):
        out = render(gen, w_pivot)
        loss = l2_weight * F.mse_loss(out, image)
        lp = None
        if lpips_weight > 0:
            lp = lpips(out, image)
            loss = loss + lpips_weight * lp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if stop_lpips is not None and lp is not None and float(lp.detach()) < stop_lpips:
            logger.info("PTI: LPIPS %.4f < %.4f after %d steps, stopping", float(lp), stop_lpips, step + 1)
            break
    gen.requires_grad_(False)
    logger.debug("PTI: %d steps, loss %.4f -> %.4f", len(losses), losses[0], losses[-1])
    return PTIResult(gen.eval(), losses)


# ---- locality ------------------------------------------------------------------------------------------------------
def changed_region(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Boolean mask (…, H, W) of the pixels whose label differs between two parsing maps of the same shape."""
    if before.shape != after.shape:
        raise VidanimeError(f"parsing maps of shapes {tuple(before.shape)} and {tuple(after.shape)}: expected the same")
    return before != after


def feather(region: torch.Tensor, margin: int = 2, sigma: float | None = None) -> torch.Tensor:
    """Soft mask (…, H, W) float in [0, 1]: ``region`` (bool) dilated by ``margin`` px, then Gaussian-blurred
    (``sigma`` defaults to margin / 2), so pasting an edit over the unedited render leaves no seam."""
    m = region.float()
    shape = m.shape
    m = m.reshape(-1, 1, *shape[-2:])
    if margin > 0:
        m = F.max_pool2d(m, 2 * margin + 1, stride=1, padding=margin)
    sigma = margin / 2 if sigma is None else sigma
    if sigma > 0:
        r = max(1, int(math.ceil(3 * sigma)))
        x = torch.arange(-r, r + 1, dtype=m.dtype, device=m.device)
        k = torch.exp(-(x**2) / (2 * sigma**2))
        k = k / k.sum()
        m = F.pad(m, (r, r, r, r), mode="replicate")
        m = F.conv2d(m, k.view(1, 1, 1, -1))
        m = F.conv2d(m, k.view(1, 1, -1, 1))
        m = torch.maximum(m, region.float().reshape(m.shape))  # the changed pixels themselves stay fully edited
    return m.reshape(shape).clamp(0, 1)


@torch.no_grad()
def lpips_map(lpips: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, min_size: int = 64) -> torch.Tensor:
    """Spatial LPIPS (B, H, W) of (B, 3, H, W) images in [-1, 1]: each layer's weighted feature distance upsampled to
    the image size and summed (as ``lpips.LPIPS(spatial=True)``); images under ``min_size`` px are upsampled first.
    ``lpips``: an ``lpips.LPIPS`` module (:func:`vidanime.metrics.lpips_metrics.load_lpips`) or an LPIPSLoss."""
    import lpips as lpips_lib

    inner = getattr(lpips, "lpips", None)  # an LPIPSLoss wraps the lpips.LPIPS module (whose own .lpips is a flag)
    lpips = inner if isinstance(inner, torch.nn.Module) else lpips
    h, w = a.shape[-2:]
    if min(h, w) < min_size:
        a = F.interpolate(a, size=(min_size, min_size), mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=(min_size, min_size), mode="bilinear", align_corners=False)
    fa = lpips.net.forward(lpips.scaling_layer(a.float()))
    fb = lpips.net.forward(lpips.scaling_layer(b.float()))
    total = 0.0
    for k in range(lpips.L):
        d = (lpips_lib.normalize_tensor(fa[k]) - lpips_lib.normalize_tensor(fb[k])) ** 2
        total = total + F.interpolate(lpips.lins[k](d), size=a.shape[-2:], mode="bilinear", align_corners=False)
    if total.shape[-2:] != (h, w):
        total = F.interpolate(total, size=(h, w), mode="area")
    return total[:, 0]


@torch.no_grad()
def edit_locality(before: torch.Tensor, after: torch.Tensor, region: torch.Tensor,
                  lpips: torch.nn.Module | None = None) -> dict[str, Any]:
    """How local an edit is: mean squared difference (per pixel, channels averaged) of two renders (B, 3, H, W) in
    [-1, 1] inside ``region`` (B or 1, H, W) bool and outside it, their ratio inside/outside (high = local), and the
    same for spatial LPIPS (:func:`lpips_map`) when ``lpips`` is given.  Values are None for an empty side."""
    if before.shape != after.shape or before.ndim != 4:
        raise VidanimeError(
            f"renders of shapes {tuple(before.shape)} and {tuple(after.shape)}: expected (B, 3, H, W) each"
        )
    region = region.to(before.device).bool()
    if region.ndim == 2:
        region = region[None]
    if tuple(region.shape[-2:]) != tuple(before.shape[-2:]):
        raise VidanimeError(f"region of size {tuple(region.shape[-2:])} for renders of size {tuple(before.shape[-2:])}")
    region = region.expand(before.shape[0], -1, -1)
    maps = {"l2": (after.float() - before.float()).pow(2).mean(1)}
    if lpips is not None:
        maps["lpips"] = lpips_map(lpips, before, after)
    out: dict[str, Any] = {"region_fraction": float(region.float().mean())}
    for name, m in maps.items():
        inside = float(m[region].mean()) if region.any() else None
        outside = float(m[~region].mean()) if (~region).any() else None
        out[f"{name}_inside"], out[f"{name}_outside"] = inside, outside
        ratio = None
        if inside is not None and outside is not None:
            ratio = inside / outside if outside > 0 else (math.inf if inside > 0 else None)
        out[f"{name}_ratio"] = ratio
    return out
