"""Test-time refinement of W+ codes (an addition to the paper): a few Adam steps that pull the translation towards the
input's layout and colours while staying near the encoders' code.

Starting from the encoders' code w₀ (B, n_latent, D), minimise over w

    λ_s · CE(groups(P_out(G(w))), groups(input parsing))        structure: the output-domain parser (the anime parser
                                                                for p2a) runs on G(w) at its own size; its class
                                                                probabilities are summed into coarse groups
                                                                (background, skin, brows, eyes, mouth, hair) and
                                                                compared with the input's parsing, pixel by pixel;
  + λ_c · L_cp(G(w), input, input parsing)                      colour: the paper's histogram-matching guide on hair,
                                                                skin and eyes, per pixel, so a mixture of wrong
                                                                colours with the right mean cannot satisfy it;
  + λ_p · mean(((w − w₀) / σ_W)²)                               pull to the encoders' code (σ_W: spread of W);
  + λ_a · softplus(−D2(G(w)))                                   anime look: the model's own image discriminator
                                                                (shipped in the checkpoint), so the colour and
                                                                structure terms cannot pull the drawing into a photo;
  + λ_l · softplus(−D1(w))                                      codes that look like anime codes to the latent
                                                                discriminator D1 (also shipped).

The parser runs at its own input size (the bundled anime parser labels 64-px faces as mostly hair).  Every sample in
the batch is refined independently (the per-sample losses are summed).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from .. import labels as L
from ..errors import VidanimeError
from ..losses.color import color_preservation_loss
from ..models.face_translator import parser_probs

logger = logging.getLogger(__name__)

__all__ = ["RefineConfig", "STRUCTURE_GROUPS", "group_matrix", "w_spread", "StructureLoss", "LatentRefiner"]

# Coarse groups of the structure term (class names, looked up in each label set; names a set lacks are skipped).
STRUCTURE_GROUPS: dict[str, tuple[str, ...]] = {
    "background": ("background", "cloth", "hat", "ear_r"),
    "skin": ("skin", "nose", "l_ear", "r_ear", "neck", "neck_l", "eye_g"),
    "brows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "mouth": ("mouth", "u_lip", "l_lip"),
    "hair": ("hair",),
}


@dataclass
class RefineConfig:
    """Steps, learning rate and weights of the refinement (defaults: the values measured for the bundled model)."""

    steps: int = 0  # 0 = no refinement
    lr: float = 0.02
    lambda_structure: float = 1.0
    lambda_colour: float = 1.0
    lambda_pull: float = 0.05
    lambda_adv: float = 1.0  # image discriminator D2 (needs the checkpoint's discriminators)
    lambda_latent: float = 0.2  # latent discriminator D1 (idem)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise VidanimeError(f"refine steps / lr = {self.steps} / {self.lr}: expected >= 0 / > 0")
        for key in ("lambda_structure", "lambda_colour", "lambda_pull", "lambda_adv", "lambda_latent"):
            if getattr(self, key) < 0:
                raise VidanimeError(f"refine {key} = {getattr(self, key)}: expected a number >= 0")


def group_matrix(label_set: str) -> torch.Tensor:
    """(G, C) 0/1 matrix summing ``label_set``'s C classes into the :data:`STRUCTURE_GROUPS` (each class in one)."""
    names = L.class_names(label_set)
    m = torch.zeros(len(STRUCTURE_GROUPS), len(names))
    for g, members in enumerate(STRUCTURE_GROUPS.values()):
        for name in members:
            if name in names:
                m[g, names.index(name)] = 1.0
    missing = [n for i, n in enumerate(names) if m[:, i].sum() != 1]
    if missing:
        raise VidanimeError(f"label set '{label_set}': classes {missing} are in no structure group")
    return m


@torch.no_grad()
def w_spread(generator: torch.nn.Module, n: int = 4096, seed: int = 4321) -> torch.Tensor:
    """Per-dimension standard deviation (D,) of W = mapping(z) from ``n`` seeded samples (scale of code distances)."""
    ref = next(generator.parameters())
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed)).to(ref)
    return generator.style(z).std(0).clamp_min(1e-4)


class StructureLoss:
    """Per-sample cross-entropy between an output-domain parser's grouped class probabilities on generated images and
    the groups of the input's parsing (:data:`STRUCTURE_GROUPS`): how far a translation is from the input's layout.

    ``parser`` maps (B, 3, P, P) RGB in [0, 1] to logits in ``parser.config.label_set`` at ``parser.config.image_size``
    (it runs at that size: the bundled anime parser labels 64-px faces as mostly hair); ``label_set`` is the input
    parsing's.  Gradients flow to the images, not to the parser (frozen)."""

    def __init__(self, parser: torch.nn.Module, label_set: str, device: Any = "cpu"):
        self.parser = parser.eval().requires_grad_(False).to(device)
        self.out_groups = group_matrix(parser.config.label_set).to(device)
        self.in_table = group_matrix(label_set).argmax(0).to(device)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B,) loss for ``image`` (B, 3, S, S) in [-1, 1] against ``labels`` (B, S, S) (the input's parsing)."""
        p = self.parser.config.image_size
        s = labels.shape[-1]
        probs = parser_probs(self.parser, (image.clamp(-1, 1) + 1) / 2)
        grouped = torch.einsum("gc,bchw->bghw", self.out_groups, probs)
        if p != s:
            grouped = F.adaptive_avg_pool2d(grouped, (s, s)) if p % s == 0 else F.interpolate(
                grouped, size=(s, s), mode="bilinear", align_corners=False)
        nll = F.nll_loss(grouped.clamp_min(1e-6).log(), self.in_table[labels.long()], reduction="none")
        return nll.mean((1, 2))


class LatentRefiner:
    """Refines W+ codes of a StyleAnime ``model`` with an output-domain ``parser`` (see the module doc).

    ``parser`` maps (B, 3, P, P) RGB in [0, 1] to logits in ``parser.config.label_set`` at ``parser.config.image_size``.
    """

    def __init__(self, model: Any, parser: torch.nn.Module, config: RefineConfig | None = None,
                 discriminators: tuple[torch.nn.Module, torch.nn.Module] | None = None):
        self.model = model
        self.config = config or RefineConfig()
        ref = model.latent_avg
        if discriminators is None and (self.config.lambda_adv > 0 or self.config.lambda_latent > 0):
            # Checkpoints from before D1/D2 were saved (and official files) have none: refine without those terms.
            logger.info("no discriminators given: refinement without its anime terms (D1, D2)")
            self.config = replace(self.config, lambda_adv=0.0, lambda_latent=0.0)
        self.d1, self.d2 = ((d.eval().requires_grad_(False).to(ref.device) for d in discriminators)
                            if discriminators is not None else (None, None))
        self.structure_loss = StructureLoss(parser, model.config.label_set, ref.device)
        self.w_std = w_spread(model.decoder).to(ref)

    def losses(self, w: torch.Tensor, w0: torch.Tensor, image: torch.Tensor,
               labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Total (summed over the batch) and the batch-mean of each term, for codes ``w``."""
        c = self.config
        out = self.model.decode(w)
        zero = out.new_zeros(w.shape[0])
        st = self.structure_loss(out, labels) if c.lambda_structure > 0 else zero
        if c.lambda_colour > 0:
            col = torch.stack([color_preservation_loss(out[i : i + 1], image[i : i + 1], labels[i : i + 1],
                                                       self.model.config.label_set)[0] for i in range(len(w))])
        else:
            col = zero
        pull = ((w - w0) / self.w_std).pow(2).mean((1, 2))
        # D2 one image at a time: its minibatch-stddev feature would otherwise couple the faces of a batch.
        adv = (F.softplus(-torch.cat([self.d2(out[i : i + 1]) for i in range(len(out))])).flatten()
               if c.lambda_adv > 0 else zero)
        lat = F.softplus(-self.d1(w)).flatten() if c.lambda_latent > 0 else zero
        total = (c.lambda_structure * st + c.lambda_colour * col + c.lambda_pull * pull + c.lambda_adv * adv
                 + c.lambda_latent * lat).sum()
        return total, {"structure": st.mean().item(), "colour": col.mean().item(), "pull": pull.mean().item(),
                       "adv": adv.mean().item(), "latent": lat.mean().item()}

    def __call__(self, w0: torch.Tensor, image: torch.Tensor, labels: torch.Tensor,
                 steps: int | None = None) -> torch.Tensor:
        """Refined codes (B, n_latent, D) from the encoders' ``w0``, for ``image`` (B, 3, S, S) in [-1, 1] with its
        parsing ``labels`` (B, S, S) in the model's label set; ``steps`` overrides ``config.steps``."""
        n = self.config.steps if steps is None else int(steps)
        if n <= 0:
            return w0
        w0 = w0.detach().float()
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.config.lr)
        image, labels = image.detach().float(), labels.detach().long()
        with torch.enable_grad():
            for _ in range(n):
                total, _ = self.losses(w, w0, image, labels)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
        return w.detach()
