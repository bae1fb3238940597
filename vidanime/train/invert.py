"""W+ inversion of target-domain images through the frozen generator (an addition to the paper, for distillation).

The encoders reconstruct held-out anime faces far worse than the generator can draw them (the "keep the person"
report: ~12 dB from the encoders against ~18 dB by optimising W+ directly).  Inverting training anime faces gives
codes w* that the generator renders close to each face; :func:`vidanime.train.distill.distill_encoders` then teaches
E_p/E_s to predict them from the face's parsing and image, as it does for the refined portrait codes.

Starting from the encoders' code w₀ (B, n_latent, D), minimise over w with Adam

    mean((G(w) − y)²) + λ_p · mean(((w − w₀) / σ_W)²)

per image (the losses are summed over the batch, so every image's code moves as if alone).  No LPIPS term: the
project has no ImageNet trunk, and pixel L2 is what the reconstruction PSNR measures.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import VidanimeError
from .refine import w_spread

logger = logging.getLogger(__name__)

__all__ = ["InvertConfig", "invert_codes", "inverted_targets"]


@dataclass
class InvertConfig:
    """Adam steps, learning rate and the pull toward the encoders' code."""

    steps: int = 100
    lr: float = 0.02
    lambda_pull: float = 0.01

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0 or self.lambda_pull < 0:
            raise VidanimeError(f"invert steps/lr/lambda_pull = {self.steps}/{self.lr}/{self.lambda_pull}: expected "
                                ">= 0 / > 0 / >= 0")


def invert_codes(model: Any, images: torch.Tensor, w0: torch.Tensor, config: InvertConfig | None = None,
                 std: torch.Tensor | None = None) -> torch.Tensor:
    """Codes w (B, n_latent, D) with ``model.decode(w)`` ≈ ``images`` (B, 3, M, M) in [-1, 1], from ``w0`` (a
    StyleAnime); the generator's weights are not changed (their ``requires_grad`` flags are restored)."""
    c = config or InvertConfig()
    if images.shape[0] != w0.shape[0]:
        raise VidanimeError(f"invert: {images.shape[0]} images but {w0.shape[0]} start codes")
    std = w_spread(model.decoder).to(w0) if std is None else std.to(w0)
    w0 = w0.detach().float()
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=c.lr, betas=(0.9, 0.99))
    params = list(model.decoder.parameters())
    flags = [p.requires_grad for p in params]
    model.decoder.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(c.steps):
                rec = (model.decode(w) - images).pow(2).flatten(1).mean(1)
                pull = ((w - w0) / std).pow(2).flatten(1).mean(1)
                loss = (rec + c.lambda_pull * pull).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    return w.detach()


def inverted_targets(model: Any, images: torch.Tensor, labels: torch.Tensor, config: InvertConfig | None = None,
                     chunk: int = 32, progress: Callable[[int], None] | None = None,
                     until: Callable[[], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder codes w0 and inverted codes w* (n, n_latent, D) for model-size ``images`` (N, 3, M, M) in [-1, 1]
    with their ``labels`` (N, M, M) in the model's label set, ``chunk`` images at a time; ``until`` (checked after
    each chunk) returning True stops early with the codes so far (n ≤ N, at least one chunk)."""
    std = w_spread(model.decoder)
    w0s, ws = [], []
    for i in range(0, len(images), chunk):
        if i and until is not None and until():
            logger.info("inversion stopped by its budget after %d of %d images", i, len(images))
            break
        x, lab = images[i : i + chunk], labels[i : i + chunk]
        with torch.no_grad():
            w0 = model.encode(x, lab).float()
        ws.append(invert_codes(model, x, w0, config, std).cpu())
        w0s.append(w0.cpu())
        if progress is not None:
            progress(len(x))
    return torch.cat(w0s), torch.cat(ws)
