"""Refinement distillation (an addition to the paper): teach the encoders the codes that test-time refinement finds.

Test-time refinement (:mod:`vidanime.train.refine`) moves each portrait's W+ code toward the input's layout and
colours at about a second per face; video translates without it.  Here it runs once, offline, on the training
portraits, and E_p/E_s are fine-tuned to predict the refined codes directly, so every frame gets part of the gain at
no cost at translate time:

    L = mean(((E(x, p) − w*) / σ_W)²) + λ_img · mean((G(E(x, p)) − G(w*))²)

with w* the refined code of portrait x (parsing p, as the translate path computes it) and σ_W the spread of W.  The
generator stays frozen.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import VidanimeError
from .harness import TrainLoop
from .refine import w_spread

logger = logging.getLogger(__name__)

__all__ = ["DistillConfig", "refined_targets", "distill_encoders"]


@dataclass
class DistillConfig:
    """Fine-tuning of the encoders on (image, parsing, refined code) triples."""

    steps: int = 600
    batch: int = 16
    lr: float = 5e-5
    lambda_image: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or self.lr <= 0 or self.lambda_image < 0:
            raise VidanimeError(f"distill steps/batch/lr/lambda_image = {self.steps}/{self.batch}/{self.lr}/"
                                f"{self.lambda_image}: expected >= 0 / >= 1 / > 0 / >= 0")


@torch.no_grad()
def refined_targets(model: Any, refiner: Any, images: torch.Tensor, labels: torch.Tensor, steps: int, chunk: int = 16,
                    progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder codes w0 and refined codes w* (N, n_latent, D) for model-size ``images`` (N, 3, M, M) in [-1, 1] with
    their ``labels`` (N, M, M) in the model's label set; ``steps`` refinement steps, ``chunk`` faces at a time."""
    w0s, ws = [], []
    for i in range(0, len(images), chunk):
        x, lab = images[i : i + chunk], labels[i : i + chunk]
        w0 = model.encode(x, lab).float()
        ws.append(refiner(w0, x, lab, steps=steps).cpu())
        w0s.append(w0.cpu())
        if progress is not None:
            progress(len(x))
    return torch.cat(w0s), torch.cat(ws)


def distill_encoders(model: Any, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                     config: DistillConfig | None = None, log_every: int = 50) -> list[dict[str, Any]]:
    """Fine-tune ``model.encoder`` in place so that E(images, labels) ≈ ``targets`` (see the module doc), in the
    training harness's loop; returns its logged rows (step, code, image, loss averaged over ``log_every`` steps)."""
    c = config or DistillConfig()
    if not (len(images) == len(labels) == len(targets)) or len(images) == 0:
        raise VidanimeError(f"distill needs as many images, labels and targets (> 0): {len(images)}, {len(labels)}, "
                            f"{len(targets)}")
    ref = model.latent_avg
    std = w_spread(model.decoder).to(ref)
    gen = torch.Generator().manual_seed(c.seed)
    # eval mode throughout: normalisation statistics stay those of the full training (small batches would move them)
    model.encoder.eval().requires_grad_(True)
    opt = torch.optim.Adam(model.encoder.parameters(), lr=c.lr, betas=(0.9, 0.99))
    with torch.no_grad():
        target_img = torch.cat([model.decode(targets[i : i + 64].to(ref)) for i in range(0, len(targets), 64)]) \
            if c.lambda_image > 0 else None
    batch = min(c.batch, len(images))

    def step() -> dict[str, float]:
        idx = torch.randint(len(images), (batch,), generator=gen)
        x, lab, wt = images[idx].to(ref), labels[idx].to(ref.device), targets[idx].to(ref)
        with torch.enable_grad():
            w = model.encode(x, lab)
            code = ((w - wt) / std).pow(2).mean()
            img = (model.decode(w) - target_img[idx].to(ref)).pow(2).mean() if target_img is not None \
                else code.new_zeros(())
            loss = code + c.lambda_image * img
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        return {"code": code.item(), "image": img.item(), "loss": loss.item()}

    try:
        result = TrainLoop(step, start=0, total=c.steps, log_every=log_every, images_per_step=batch,
                           desc="distill", device=ref.device).run()
    finally:
        model.encoder.eval().requires_grad_(False)
    return result.rows
