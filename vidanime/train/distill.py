"""Refinement distillation (an addition to the paper): teach the encoders the codes that test-time refinement finds.

Test-time refinement (:mod:`vidanime.train.refine`) moves each portrait's W+ code toward the input's layout and
colours at about a second per face; video translates without it.  Here it runs once, offline, on the training
portraits, and E_p/E_s are fine-tuned to predict the refined codes directly, so every frame gets part of the gain at
no cost at translate time:

    L = mean(((E(x, p) − w*) / σ_W)²) + λ_img · mean((G(E(x, p)) − G(w*))²) [+ λ_adv · mean(softplus(−D2(G(E(x, p)))))]

with w* the refined code of portrait x (parsing p, as the translate path computes it) and σ_W the spread of W.  The
generator stays frozen.  The optional last term is the paper's L_adv^E with the checkpoint's frozen image
discriminator D2: it keeps the distilled encoders' drawings anime where regressing codes alone lets them drift.
The same loss takes other (image, parsing, code) triples, e.g. W+ inversions of anime faces
(:mod:`vidanime.train.invert`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import VidanimeError
from .harness import Budget, TrainLoop
from .refine import w_spread

logger = logging.getLogger(__name__)

__all__ = ["DistillConfig", "refined_targets", "distill_encoders", "blend_encoders"]


@dataclass
class DistillConfig:
    """Fine-tuning of the encoders on (image, parsing, refined code) triples."""

    steps: int = 600
    batch: int = 16
    lr: float = 5e-5
    lambda_image: float = 1.0
    lambda_adv: float = 0.0  # image discriminator D2 on G(E(x)) (needs the checkpoint's discriminators)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or self.lr <= 0 or self.lambda_image < 0 or self.lambda_adv < 0:
            raise VidanimeError(f"distill steps/batch/lr/lambda_image/lambda_adv = {self.steps}/{self.batch}/{self.lr}/"
                                f"{self.lambda_image}/{self.lambda_adv}: expected >= 0 / >= 1 / > 0 / >= 0 / >= 0")


@torch.no_grad()
def refined_targets(model: Any, refiner: Any, images: torch.Tensor, labels: torch.Tensor, steps: int, chunk: int = 16,
                    progress: Callable[[int], None] | None = None,
                    until: Callable[[], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder codes w0 and refined codes w* (n, n_latent, D) for model-size ``images`` (N, 3, M, M) in [-1, 1] with
    their ``labels`` (N, M, M) in the model's label set; ``steps`` refinement steps, ``chunk`` faces at a time.
    ``until``: checked after each chunk; when it returns True the codes so far are returned (n ≤ N, at least one
    chunk), so a time budget bounds the work."""
    w0s, ws = [], []
    for i in range(0, len(images), chunk):
        if i and until is not None and until():
            logger.info("refinement stopped by its budget after %d of %d faces", i, len(images))
            break
        x, lab = images[i : i + chunk], labels[i : i + chunk]
        w0 = model.encode(x, lab).float()
        ws.append(refiner(w0, x, lab, steps=steps).cpu())
        w0s.append(w0.cpu())
        if progress is not None:
            progress(len(x))
    return torch.cat(w0s), torch.cat(ws)


def distill_encoders(model: Any, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                     config: DistillConfig | None = None, log_every: int = 50,
                     discriminators: tuple[Any, Any] | None = None,
                     budget: Budget | None = None) -> list[dict[str, Any]]:
    """Fine-tune ``model.encoder`` in place so that E(images, labels) ≈ ``targets`` (see the module doc), in the
    training harness's loop; returns its logged rows (step, code, image, [adv,] loss averaged over ``log_every``
    steps; the last row is the step it stopped at).  ``discriminators``: the model's frozen (D1, D2), needed when
    ``config.lambda_adv`` > 0; ``budget``: a wall-clock allowance that may stop it before ``config.steps``."""
    c = config or DistillConfig()
    if c.lambda_adv > 0 and discriminators is None:
        raise VidanimeError(f"distill lambda_adv = {c.lambda_adv} needs the checkpoint's discriminators; it has none")
    if not (len(images) == len(labels) == len(targets)) or len(images) == 0:
        raise VidanimeError(f"distill needs as many images, labels and targets (> 0): {len(images)}, {len(labels)}, "
                            f"{len(targets)}")
    ref = model.latent_avg
    std = w_spread(model.decoder).to(ref)
    d2 = discriminators[1].eval().requires_grad_(False).to(ref.device) if c.lambda_adv > 0 else None
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
            out = model.decode(w) if target_img is not None or d2 is not None else None
            img = (out - target_img[idx].to(ref)).pow(2).mean() if target_img is not None else code.new_zeros(())
            loss = code + c.lambda_image * img
            row = {"code": code.item(), "image": img.item()}
            if d2 is not None:
                adv = F.softplus(-d2(out)).mean()
                loss = loss + c.lambda_adv * adv
                row["adv"] = adv.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        return {**row, "loss": loss.item()}

    try:
        result = TrainLoop(step, start=0, total=c.steps, log_every=log_every, images_per_step=batch,
                           desc="distill", device=ref.device, budget=budget).run()
    finally:
        model.encoder.eval().requires_grad_(False)
    return result.rows


@torch.no_grad()
def blend_encoders(model: Any, start_state: dict[str, torch.Tensor], t: float) -> int:
    """Weight-space interpolation of ``model.encoder`` toward its state before distillation (``start_state``, an
    ``encoder.state_dict()``): θ = (1 − t)·θ_start + t·θ_distilled, in place; returns how many tensors changed.

    Distillation trades a little anime look (P(anime)) for keeping the person; interpolating the fine-tuned weights
    with the starting ones (as WiSE-FT does for robust fine-tuning) moves along that trade-off without retraining.
    ``t`` = 1 keeps the distilled encoders, 0 restores the start."""
    if not 0.0 <= t <= 1.0:
        raise VidanimeError(f"blend t = {t}: expected a number in [0, 1]")
    changed = 0
    for name, v in model.encoder.state_dict().items():
        if name not in start_state:
            raise VidanimeError(f"blend: the starting encoder state has no {name!r}")
        s = start_state[name].to(v)
        if v.is_floating_point() and not torch.equal(v, s):
            v.copy_(s.lerp(v, t))
            changed += 1
    return changed
