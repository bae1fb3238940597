"""Latent-supervised warm-up of the StyleAnime encoders on the generator's own samples (an addition to the paper).

Where the true code is known, the encoders learn fastest: sample W codes from the frozen generator's mapping network
(with truncation and, for some samples, a structure/appearance style mix), render G(w), label the render with a face
parser (the anime parser, at its own input size: at 64 px it calls most pixels hair), and regress

* E_p(parsing of G(w)) onto the structure codes w[:n_s] and E_s(G(w)) onto the appearance codes w[n_s:]
  (L2, per-dimension normalised by the spread of W), plus
* the image term ‖G(ŵ) − G(w)‖² (pixels in [-1, 1]).

Mixing the structure codes of one sample with the appearance codes of another teaches the split the paper asks of
E_p and E_s (structure from the parsing, colour from the image).  :class:`LatentWarmup` builds the batches and the
loss; :class:`~vidanime.train.styleanime.StyleAnimeTrainer` runs it alone for ``warmup.iterations`` steps and then
alongside the paper's five losses with weight ``warmup.weight``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from .. import labels as L
from ..errors import ConfigError
from ..models.face_translator import labels_at, parser_probs
from .refine import w_spread

logger = logging.getLogger(__name__)

__all__ = ["LatentWarmupConfig", "SyntheticBatch", "LatentWarmup"]


@dataclass
class LatentWarmupConfig:
    """The ``warmup:`` section of a StyleAnime training config (all off by default: the paper's training)."""

    iterations: int = 0  # steps of warm-up alone, before the paper's losses (0 = none)
    weight: float = 0.0  # after those steps, the warm-up loss is added to Eq. 10 with this weight (0 = not at all)
    batch: int = 8  # synthetic samples per step
    parser: str = ""  # face parser labelling the renders (bundled name or path); "" = target.parser
    mix_prob: float = 0.5  # probability that a sample takes its appearance codes from a second w
    truncation: tuple[float, float] = (0.5, 1.0)  # ψ drawn uniformly in this range per sample
    lambda_latent: float = 1.0  # normalised code L2
    lambda_image: float = 1.0  # image L2 of G(ŵ) against G(w)

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.batch < 1:
            raise ConfigError(f"warmup.iterations / batch = {self.iterations} / {self.batch}: expected >= 0 / >= 1")
        if self.weight < 0 or self.lambda_latent < 0 or self.lambda_image < 0:
            raise ConfigError(f"warmup.weight / lambda_latent / lambda_image = {self.weight} / {self.lambda_latent} / "
                              f"{self.lambda_image}: expected numbers >= 0")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ConfigError(f"warmup.mix_prob = {self.mix_prob}: expected a number in [0, 1]")
        lo, hi = (float(v) for v in self.truncation)
        if not 0.0 <= lo <= hi <= 1.5:
            raise ConfigError(f"warmup.truncation = {list(self.truncation)}: expected [low, high] with "
                              "0 <= low <= high <= 1.5")
        self.truncation = (lo, hi)

    @property
    def enabled(self) -> bool:
        return self.iterations > 0 or self.weight > 0


@dataclass
class SyntheticBatch:
    """Generator samples with known codes: ``image`` (B, 3, S, S) in [-1, 1], ``labels`` (B, S, S) in the model's
    label set, ``w`` (B, n_latent, D) the true W+ codes."""

    image: torch.Tensor
    labels: torch.Tensor
    w: torch.Tensor


class LatentWarmup:
    """Synthetic batches and the code-regression loss for a :class:`~vidanime.models.styleanime.StyleAnime` model.

    ``parser`` maps (B, 3, P, P) RGB in [0, 1] to logits in its own label set (a :mod:`vidanime.models.parser`
    module with ``config.label_set`` and ``config.image_size``).
    """

    def __init__(self, config: LatentWarmupConfig, model: Any, parser: torch.nn.Module):
        self.config = config
        self.model = model
        self.parser = parser.eval().requires_grad_(False)
        L.remap_table(parser.config.label_set, model.config.label_set)  # fails early on incompatible orders
        self.w_std = w_spread(model.decoder)  # per-dimension spread of W: the scale of the code loss

    def to(self, device: Any) -> "LatentWarmup":
        self.w_std = self.w_std.to(device)
        self.parser.to(device)
        return self

    @torch.no_grad()
    def sample(self, n: int | None = None) -> SyntheticBatch:
        """Draw ``n`` (default ``config.batch``) codes with the global torch RNG, render and label them."""
        c, m = self.config, self.model
        n = n or c.batch
        g = m.decoder
        dev = m.latent_avg.device
        z = torch.randn(2 * n, g.style_dim, device=dev)
        w = g.style(z)
        lo, hi = c.truncation
        psi = lo + (hi - lo) * torch.rand(2 * n, 1, device=dev)
        centre = m.latent_avg.mean(0, keepdim=True)
        w = centre + psi * (w - centre)
        n_s = m.n_structure_codes
        w_plus = w[:n, None].repeat(1, m.n_latent, 1)
        mix = torch.rand(n, device=dev) < c.mix_prob
        w_plus[mix, n_s:] = w[n:][mix, None]
        image = m.decode(w_plus).clamp(-1, 1)
        return SyntheticBatch(image=image, labels=self.label(image), w=w_plus)

    @torch.no_grad()
    def label(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] → (B, S, S) labels in the model's set: the parser runs at its own size and its
        class probabilities are resized to S (labels are never interpolated)."""
        probs = parser_probs(self.parser, (image + 1) / 2)
        return labels_at(probs, image.shape[-1], self.parser.config.label_set, self.model.config.label_set)

    def loss(self, w_hat: torch.Tensor, batch: SyntheticBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """λ_latent · mean(((ŵ − w) / σ_W)²) + λ_image · mean((G(ŵ) − G(w))²) → (total, {wu_latent, wu_image})."""
        c = self.config
        lat = ((w_hat - batch.w) / self.w_std).pow(2).mean()
        img = (self.model.decode(w_hat) - batch.image).pow(2).mean() if c.lambda_image > 0 else lat.new_zeros(())
        total = c.lambda_latent * lat + c.lambda_image * img
        return total, {"wu_latent": lat.item(), "wu_image": img.item()}
