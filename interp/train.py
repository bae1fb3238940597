"""Training IFNet on frame triplets from clips (no pre-trained weights can be downloaded here) and evaluating any M.

Loss (RIFE): L1 of the refined frame + L1 of the teacher frame + ``distill_weight`` · flow distillation.  A run folder
(:class:`vidanime.train.run_dir.RunDir`) holds the resolved config, ``metrics.jsonl``, training checkpoints
(``train-*.pt``, resumable) and exported models (``ifnet-*.pt``, loadable with :func:`interp.load`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidanime.config import config_from_dict, config_to_dict
from vidanime.train.harness import Budget, Every, TrainLoop, configure_device, resolve_device, warmup_cosine
from vidanime.train.run_dir import RunDir

from .data import TripletSet, decode_clip
from .ifnet import IFNet, IFNetConfig
from .loaders import IFNET_FORMATS
from .metrics import psnr, ssim
from .warp import pad_to_multiple

logger = logging.getLogger(__name__)

__all__ = ["InterpDataConfig", "InterpOptimConfig", "InterpTrainConfig", "train_ifnet", "evaluate_interpolators",
           "load_datasets"]


@dataclass
class InterpDataConfig:
    """Where triplets come from: clip paths (``assets/…`` = the shared assets), decode size, split, crops."""

    clips: list[str] = field(default_factory=lambda: ["assets/video/realesrgan_onepiece_demo.mp4"])
    max_side: int = 256
    max_frames: int = 0
    held_out_frac: float = 0.2
    gaps: list[int] = field(default_factory=lambda: [1])
    crop: int = 128


@dataclass
class InterpOptimConfig:
    steps: int = 2000
    batch: int = 8
    lr: float = 3e-4
    lr_min: float = 3e-6
    weight_decay: float = 1e-4
    teacher_weight: float = 1.0
    distill_weight: float = 0.01
    log_every: int = 50
    ckpt_every: int = 500
    eval_triplets: int = 16
    seed: int = 0
    threads: int = 0
    # A fresh run starts with zeroed flow/mask/residual heads (IFNet.zero_heads_), i.e. at the "average the two
    # frames" baseline; off = the random init of the RIFE code.
    start_from_average: bool = False


@dataclass
class InterpTrainConfig:
    name: str = "ifnet"
    out_dir: str = "runs/interp"
    model: IFNetConfig = field(default_factory=IFNetConfig)
    data: InterpDataConfig = field(default_factory=InterpDataConfig)
    train: InterpOptimConfig = field(default_factory=InterpOptimConfig)


def load_datasets(data: InterpDataConfig) -> tuple[TripletSet, TripletSet]:
    """(train, held-out) triplet sets sharing one decode of the clips."""
    decoded = [decode_clip(p, data.max_side, data.max_frames) for p in data.clips]
    kw = dict(held_out_frac=data.held_out_frac, gaps=data.gaps, decoded=decoded)
    return TripletSet.from_clips(data.clips, "train", **kw), TripletSet.from_clips(data.clips, "heldout", **kw)


@torch.no_grad()
def evaluate_interpolators(models: dict[str, Any], heldout: TripletSet, limit: int = 0) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM of the middle frame for each model, plus the baselines "average" and "copy_prev", and the
    mean wall-clock ``seconds`` per middle frame (device transfers included, the first triplet too)."""
    import time

    sums: dict[str, list[float]] = {}
    n = 0
    for img0, img1, gt in heldout.iter_full(limit):
        preds, secs = {}, {}
        for name, m in models.items():
            t0 = time.perf_counter()
            preds[name] = m(img0.to(_device_of(m)), img1.to(_device_of(m))).cpu()
            secs[name] = time.perf_counter() - t0
        preds["average"] = 0.5 * (img0 + img1)
        preds["copy_prev"] = img0
        for name, p in preds.items():
            s = sums.setdefault(name, [0.0, 0.0, 0.0])
            s[0] += float(psnr(p.clamp(0, 1), gt)[0])
            s[1] += float(ssim(p.clamp(0, 1), gt)[0])
            s[2] += secs.get(name, 0.0)
        n += 1
    return {name: {"psnr": s[0] / n, "ssim": s[1] / n, "seconds": s[2] / n, "triplets": n}
            for name, s in sums.items()}


def _device_of(model: Any) -> torch.device:
    """Where a model's parameters live (CPU for parameter-free interpolators)."""
    params = getattr(model, "parameters", None)
    p = next(iter(params()), None) if callable(params) else None
    return p.device if p is not None else torch.device("cpu")


def _lr_at(step: int, cfg: InterpOptimConfig) -> float:
    """Linear warm-up over 100 steps, then cosine decay to ``lr_min`` (the harness's one schedule)."""
    return warmup_cosine(step, cfg.steps, cfg.lr, 100, cfg.lr_min)


def train_ifnet(cfg: InterpTrainConfig, resume: str | os.PathLike | None = None,
                datasets: tuple[TripletSet, TripletSet] | None = None, steps: int | None = None,
                budget: Budget | None = None, device: str = "cpu") -> RunDir:
    """Train IFNet per ``cfg`` in a new run folder under ``cfg.out_dir`` (or continue from a ``train-*.pt``, whose
    stored config then wins; ``steps`` overrides the total number of steps in both cases).  ``budget`` stops the run
    early (saved, resumable); ``device`` is where the model trains (batches are cropped on the CPU)."""
    from vidanime.checkpoint import load_checkpoint

    opt_cfg = cfg.train
    torch.manual_seed(opt_cfg.seed)
    model = IFNet(cfg.model)
    optim = torch.optim.AdamW(model.parameters(), lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
    start = 0
    if resume is not None:
        ckpt = load_checkpoint(resume, format=IFNET_FORMATS[1])
        cfg = config_from_dict(ckpt["config"], InterpTrainConfig, source=str(resume))
        opt_cfg = cfg.train
        if steps is not None:
            opt_cfg.steps = int(steps)
        model = IFNet(cfg.model)
        optim = torch.optim.AdamW(model.parameters(), lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay)
        run, start = RunDir.resume_state(ckpt, resume, model, optim, cfg.out_dir, cfg.name, cfg)
    else:
        if steps is not None:
            opt_cfg.steps = int(steps)
        if opt_cfg.start_from_average:
            model.zero_heads_()
        run = RunDir.create(cfg.out_dir, cfg.name, cfg)
    if opt_cfg.threads:  # after resolving a resume, whose stored config wins
        torch.set_num_threads(opt_cfg.threads)
    train_set, heldout = datasets or load_datasets(cfg.data)
    rng = np.random.default_rng(opt_cfg.seed + start)
    l1 = torch.nn.L1Loss()

    def save(step: int) -> None:
        extras = {"model_config": config_to_dict(cfg.model), "train_step": step}
        run.save_checkpoint(step, kind="train", format=IFNET_FORMATS[1], config=cfg, state_dict=model.state_dict(),
                            optimizer=optim.state_dict(), keep=2, **extras)
        run.save_checkpoint(step, kind="ifnet", format=IFNET_FORMATS[0], config=cfg.model,
                            state_dict=model.state_dict(), keep=2, **extras)

    dev = resolve_device(device)
    configure_device(dev)
    model.to(dev)
    state = {"step": start}

    def train_step() -> dict[str, float]:
        step = state["step"]
        for g in optim.param_groups:
            g["lr"] = _lr_at(step, opt_cfg)
        img0, img1, gt = (x.to(dev) for x in train_set.sample_batch(opt_cfg.batch, cfg.data.crop, rng))
        (img0, size), (img1, _), (gt, _) = (pad_to_multiple(x, model.stride) for x in (img0, img1, gt))
        out = model.run(img0, img1, gt)
        loss_main = l1(out["merged"][-1], gt)
        loss = (loss_main + opt_cfg.teacher_weight * l1(out["merged_teacher"], gt)
                + opt_cfg.distill_weight * out["loss_distill"])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        state["step"] = step + 1
        return {"loss": float(loss.detach()), "l1": float(loss_main.detach()),
                "train_psnr": float(psnr(out["merged"][-1].detach(), gt).mean())}

    def heldout_row(step: int) -> dict[str, float]:
        if not (step % opt_cfg.ckpt_every == 0 or step == opt_cfg.steps or loop.budget.expired()):
            return {"lr": optim.param_groups[0]["lr"]}
        model.eval()
        ev = evaluate_interpolators({"ifnet": model}, heldout, opt_cfg.eval_triplets)
        model.train()
        return {"lr": optim.param_groups[0]["lr"], **{f"heldout_{k}_psnr": v["psnr"] for k, v in ev.items()}}

    model.train()
    loop = TrainLoop(train_step, start=start, total=opt_cfg.steps, log_every=opt_cfg.log_every, row_fn=heldout_row,
                     log_fn=run.log_metrics, hooks=[Every(save, steps=opt_cfg.ckpt_every)], budget=budget,
                     images_per_step=opt_cfg.batch, desc="interp train", device=dev)
    loop.run()
    model.cpu()
    model.eval()
    return run


def export_path(run: RunDir) -> Path | None:
    """The newest exported IFNet of a run (``checkpoints/ifnet-*.pt``)."""
    return run.latest_checkpoint("ifnet")
