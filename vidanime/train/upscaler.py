"""Train the drawing upscaler (:mod:`vidanime.models.upscaler`) on a folder of anime faces.

Pairs are made on the fly: each face is resized (area) to ``model.train_size`` px, the high-resolution target, and
area-downscaled by ``model.scale`` — the same filter that made the generator's 64-px training data — for the input;
training samples random ``patch`` × ``patch`` input patches (and their targets), mirrored at random.  The faces from
``data.val_start`` on are held out: the run logs their PSNR against the bicubic upscale, the baseline the net starts
from (its last layer is zero-initialised).  A run writes a numbered folder (:class:`~vidanime.train.run_dir.RunDir`):
``config.yaml``, ``metrics.jsonl``, ``checkpoints/train-*.pt`` (resumable) and ``checkpoints/upscaler-*.pt``
(weights only, ``vidanime.upscaler``).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config_to_dict
from ..errors import ConfigError
from ..models.upscaler import UPSCALER_FORMAT, Upscaler, UpscalerConfig
from .harness import Budget, Every, TrainLoop, configure_device, resolve_device, shorter_budget, threads, warmup_cosine
from .run_dir import RunDir, start_run

logger = logging.getLogger(__name__)

__all__ = ["UpscalerDataConfig", "UpscalerTrainOptions", "UpscalerTrainConfig", "train_upscaler", "load_pairs",
           "psnr", "evaluate_upscaler", "load_train_config"]


@dataclass
class UpscalerDataConfig:
    """Anime faces under ``root`` (sorted); ``val_start`` on are held out (``val_count`` of them scored), ``limit``
    > 0 keeps only the first ``limit`` training faces."""

    root: str = "../shared/assets/anime"
    val_start: int = 9000
    val_count: int = 200
    limit: int = 0


@dataclass
class UpscalerTrainOptions:
    """Optimisation and bookkeeping (the ``train:`` section)."""

    steps: int = 20000
    batch_size: int = 16
    patch: int = 32  # input patch side (px); the target is patch × scale
    lr: float = 1e-3  # Adam peak learning rate; linear warm-up, then cosine decay to 1 % of it
    warmup_steps: int = 100
    log_every: int = 100
    eval_every: int = 2000  # held-out PSNR (0 = only at the end)
    ckpt_every: int = 2000
    keep_checkpoints: int = 2
    time_limit_min: float = 0.0  # stop (and save) after this many minutes of wall time (0 = no limit)
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0 = leave torch's default)


@dataclass
class UpscalerTrainConfig:
    """An upscaler training job."""

    name: str = "upscaler"
    runs_root: str = "runs"
    model: UpscalerConfig = field(default_factory=UpscalerConfig)
    data: UpscalerDataConfig = field(default_factory=UpscalerDataConfig)
    train: UpscalerTrainOptions = field(default_factory=UpscalerTrainOptions)

    def __post_init__(self) -> None:
        self.model.check()
        t = self.train
        lo = self.model.train_size // self.model.scale
        if t.steps < 1 or t.batch_size < 1 or not 4 <= t.patch <= lo:
            raise ConfigError(f"train.steps={t.steps}, train.batch_size={t.batch_size}, train.patch={t.patch}: "
                              f"expected >= 1 steps and images and a patch of 4-{lo} px")
        if self.model.train_size % self.model.scale:
            raise ConfigError(f"model.train_size={self.model.train_size} is not a multiple of "
                              f"model.scale={self.model.scale}")


def load_pairs(files: list[Path], size: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low (N, 3, size/scale, size/scale), high (N, 3, size, size)) uint8 tensors of the faces in ``files``: each
    resized to ``size`` (area when shrinking, cubic when growing), then area-downscaled by ``scale``."""
    import cv2

    from ..data.image_io import read_image_rgb
    from ..data.parsing import resize_image

    high = np.stack([resize_image(read_image_rgb(f), size) for f in files])
    low = np.stack([cv2.resize(h, (size // scale, size // scale), interpolation=cv2.INTER_AREA) for h in high])
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to_t(low), to_t(high)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-image PSNR (dB) of images (N, 3, H, W) in [-1, 1] (peak 1 on [0, 1])."""
    mse = (((a.clamp(-1, 1) - b) / 2) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((-10 * torch.log10(mse)).mean())


@torch.no_grad()
def evaluate_upscaler(model: Upscaler, low: torch.Tensor, high: torch.Tensor, batch: int = 50) -> dict[str, float]:
    """Held-out PSNR (dB) of ``model`` and of the bicubic and bilinear upscales, on uint8 pairs (see
    :func:`load_pairs`)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    sums = {"psnr": 0.0, "psnr_bicubic": 0.0, "psnr_bilinear": 0.0}
    for i in range(0, len(low), batch):
        x = low[i : i + batch].to(dev).float() / 127.5 - 1
        y = high[i : i + batch].to(dev).float() / 127.5 - 1
        n = len(x)
        sums["psnr"] += n * psnr(model(x), y)
        for mode in ("bicubic", "bilinear"):
            up = F.interpolate(x, size=y.shape[-2:], mode=mode, align_corners=False)
            sums[f"psnr_{mode}"] += n * psnr(up, y)
    model.train(was)
    return {k: v / max(len(low), 1) for k, v in sums.items()}


def _batch(low: torch.Tensor, high: torch.Tensor, batch: int, patch: int, scale: int, gen: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random input patches (B, 3, p, p) and targets (B, 3, p·r, p·r) in [-1, 1], half of them mirrored."""
    n, side = len(low), low.shape[-1]
    idx = torch.randint(0, n, (batch,), generator=gen)
    ys = torch.randint(0, side - patch + 1, (batch,), generator=gen)
    xs = torch.randint(0, side - patch + 1, (batch,), generator=gen)
    flip = torch.rand(batch, generator=gen) < 0.5
    lo, hi = [], []
    for i, y, x, f in zip(idx.tolist(), ys.tolist(), xs.tolist(), flip.tolist()):
        a = low[i, :, y : y + patch, x : x + patch]
        b = high[i, :, y * scale : (y + patch) * scale, x * scale : (x + patch) * scale]
        lo.append(a.flip(-1) if f else a)
        hi.append(b.flip(-1) if f else b)
    return torch.stack(lo).float() / 127.5 - 1, torch.stack(hi).float() / 127.5 - 1


def train_upscaler(cfg: UpscalerTrainConfig, resume: str | os.PathLike | None = None,
                   run_dir: str | os.PathLike | None = None, budget: Budget | None = None) -> RunDir:
    """Train an upscaler per ``cfg``; ``resume`` = a train checkpoint or run folder to continue; returns the run
    folder (``run_dir`` forces an exact folder, for tests).  ``budget`` (or ``train.time_limit_min``, whichever is
    shorter) stops the run early, saved and resumable."""
    with threads(cfg.train.threads):
        return _train(cfg, resume, run_dir, budget)


def _train(cfg: UpscalerTrainConfig, resume: str | os.PathLike | None, run_dir: str | os.PathLike | None,
           budget: Budget | None) -> RunDir:
    from ..data.images import list_images

    opts, mc = cfg.train, cfg.model
    device = resolve_device(opts.device)
    configure_device(device)
    torch.manual_seed(opts.seed)
    model = Upscaler(mc).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=opts.lr)
    run, step = start_run(cfg, model, optim, UPSCALER_FORMAT, resume, run_dir)

    files = list_images(cfg.data.root)
    train_files = files[: cfg.data.val_start]
    if cfg.data.limit > 0:
        train_files = train_files[: cfg.data.limit]
    val_files = files[cfg.data.val_start : cfg.data.val_start + cfg.data.val_count]
    if not train_files:
        raise ConfigError(f"data.val_start={cfg.data.val_start} leaves no training images in {cfg.data.root}")
    low, high = load_pairs(train_files, mc.train_size, mc.scale)
    val = load_pairs(val_files, mc.train_size, mc.scale) if val_files else None
    logger.info("upscaler x%d (%d ch, %d blocks): %.3fM params; %d train / %d held-out faces; device %s", mc.scale,
                mc.channels, mc.blocks, sum(p.numel() for p in model.parameters()) / 1e6, len(low),
                len(val_files), device)
    # the batch generator is seeded per step, so a resumed run draws the same batches as an unbroken one
    gen = torch.Generator()

    def save(s: int) -> None:
        extras = {"train_step": s, "train_config": config_to_dict(cfg)}
        run.save_checkpoint(s, kind="train", format=UPSCALER_FORMAT, config=mc, state_dict=model.state_dict(),
                            keep=opts.keep_checkpoints, optimizer=optim.state_dict(), **extras)
        run.save_checkpoint(s, kind="upscaler", format=UPSCALER_FORMAT, config=mc, state_dict=model.state_dict(),
                            keep=opts.keep_checkpoints, **extras)

    def evaluate(s: int) -> None:
        if val is None:
            return
        scores = evaluate_upscaler(model, *val)
        run.log_metrics({"step": s, **{f"val_{k}": v for k, v in scores.items()}})
        logger.info("step %d: held-out PSNR %.2f dB (bicubic %.2f, bilinear %.2f)", s, scores["psnr"],
                    scores["psnr_bicubic"], scores["psnr_bilinear"])

    model.train()

    def train_step() -> dict[str, float]:
        nonlocal step
        gen.manual_seed(opts.seed * 1_000_003 + step)
        x, y = _batch(low, high, opts.batch_size, opts.patch, mc.scale, gen)
        for g in optim.param_groups:
            g["lr"] = warmup_cosine(step, opts.steps, opts.lr, opts.warmup_steps, 0.01 * opts.lr)
        loss = torch.sqrt((model(x.to(device)) - y.to(device)) ** 2 + 1e-6).mean()  # Charbonnier (smooth L1)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        step += 1
        return {"loss": float(loss.detach())}

    budget = shorter_budget(budget, opts.time_limit_min)
    hooks = [Every(lambda s: evaluate(s) if s < opts.steps else None, steps=opts.eval_every, at_end=False),
             Every(save, steps=opts.ckpt_every)]
    result = TrainLoop(train_step, start=step, total=opts.steps, log_every=opts.log_every,
                       row_fn=lambda s: {"lr": optim.param_groups[0]["lr"]}, log_fn=run.log_metrics, hooks=hooks,
                       budget=budget, images_per_step=opts.batch_size, desc="upscaler", device=device).run()
    if result.stopped == "nothing":
        save(step)
    evaluate(step)
    if result.stopped == "budget":
        logger.info("stopped at step %d of %d; continue with --resume %s", step, opts.steps, run.path)
    return run


def load_train_config(path: str | os.PathLike, overrides: dict | None = None) -> UpscalerTrainConfig:
    """Read an upscaler training YAML (see configs/demo_upscaler.yaml) with optional dotted-key overrides."""
    from ..config import load_config

    return load_config(path, UpscalerTrainConfig, overrides=overrides)
