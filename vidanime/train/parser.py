"""Train and evaluate face parsers (BiSeNet / DANet) on paired image/mask folders.

A run writes a numbered folder (:class:`vidanime.train.run_dir.RunDir`): ``config.yaml``, ``metrics.jsonl`` (loss
rows and held-out Table-1 scores), ``checkpoints/train-*.pt`` (weights + optimizer, resumable) and
``checkpoints/parser-*.pt`` (weights only).  Both are ``vidanime.parser`` checkpoints, so ``load_model`` reads either.
The held-out ids are stored in every checkpoint (``val_ids``) so ``vidanime parser eval`` scores the same split.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from ..config import config_from_dict, config_to_dict
from ..data.parsing import IGNORE_INDEX, ParsingDataConfig, ParsingDataset, list_pairs, split_ids
from ..errors import ConfigError
from ..metrics.segmentation import ConfusionMeter, SegmentationScores
from ..models.parser import PARSER_FORMAT, ParserConfig, build_parser, parser_from_checkpoint
from .harness import (
    Budget,
    Every,
    TrainLoop,
    configure_device,
    resolve_device,
    shorter_budget,
    threads,
    to_channels_last,
    warmup_cosine,
)
from .run_dir import RunDir, start_run

logger = logging.getLogger(__name__)

__all__ = ["ParserTrainOptions", "ParserTrainConfig", "train_parser", "evaluate_parser", "heldout_ids",
           "resolve_device", "StepBatches", "loader_workers"]


@dataclass
class ParserTrainOptions:
    """Optimisation and bookkeeping (the ``train:`` section)."""

    steps: int = 20000
    batch_size: int = 8
    lr: float = 1e-3  # AdamW peak learning rate; linear warm-up, then cosine decay to 1 % of it
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    aux_weight: float = 0.4  # weight of each auxiliary head's cross-entropy
    log_every: int = 50
    eval_every: int = 1000  # held-out scores (0 = only at the end)
    eval_limit: int = 0  # score at most this many held-out pairs during training (0 = all)
    ckpt_every: int = 1000
    keep_checkpoints: int = 2
    time_limit_min: float = 0.0  # stop (and save) after this many minutes of wall time (0 = no limit)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    # processes that decode and augment batches (the CPU-side cost that bounds a GPU: 45-218 img/s on one H200 with
    # none); -1 = auto: none on the CPU (they would take the training threads' cores), on CUDA one per free core up
    # to 8.  Batches are identical with any number of workers.
    loader_workers: int = -1
    channels_last: bool | None = None  # convolutions in NHWC order (None: yes; harness.to_channels_last)

    def __post_init__(self) -> None:
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) \
                or self.loader_workers < -1:
            raise ConfigError(f"train.loader_workers={self.loader_workers!r}: expected -1 (auto), 0 (none) or a "
                              "number of worker processes")


@dataclass
class ParserTrainConfig:
    """A parser training job: model, data and optimisation; ``init`` optionally starts from a parser checkpoint."""

    name: str = "parser"
    runs_root: str = "runs"
    init: str = ""  # a vidanime.parser checkpoint to fine-tune from (e.g. portrait → anime); "" = random init
    model: ParserConfig = field(default_factory=ParserConfig)
    data: ParsingDataConfig = field(default_factory=ParsingDataConfig)
    train: ParserTrainOptions = field(default_factory=ParserTrainOptions)

    def __post_init__(self) -> None:
        if self.train.steps < 1 or self.train.batch_size < 1:
            raise ConfigError(f"train.steps and train.batch_size must be >= 1, "
                              f"got {self.train.steps}, {self.train.batch_size}")
        if self.data.image_size != self.model.image_size:
            raise ConfigError(
                f"data.image_size ({self.data.image_size}) must equal model.image_size ({self.model.image_size})"
            )


def heldout_ids(data: ParsingDataConfig) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids) for a data config: ``val_ids_file`` if given, else the seeded split."""
    ids = [p[0] for p in list_pairs(data.root)]
    if data.limit > 0:
        ids = ids[: data.limit]
    if data.val_ids_file:
        path = Path(data.val_ids_file)
        if not path.is_file():
            raise ConfigError(f"val_ids_file not found: {path}")
        val = sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
        unknown = set(val) - set(ids)
        if unknown:
            raise ConfigError(f"{path}: {len(unknown)} ids are not in {data.root}, e.g. {sorted(unknown)[0]}")
        vs = set(val)
        return [i for i in ids if i not in vs], val
    return split_ids(ids, data.val_fraction, data.split_seed)


class StepBatches(torch.utils.data.Dataset):
    """Batch number ``step`` of an endless shuffled stream: epoch order from ``seed + epoch``, and each item's
    augmentation drawn from its own generator seeded by (seed, step, slot), so a batch is the same whichever process
    makes it, and a resumed run continues the stream exactly."""

    def __init__(self, ds: ParsingDataset, batch_size: int, seed: int):
        self.ds, self.batch_size, self.seed = ds, batch_size, seed
        self._order: tuple[int, list[int]] | None = None

    def __len__(self) -> int:  # endless: the sampler, not the length, ends the stream
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        import numpy as np

        n, b = len(self.ds), self.batch_size
        epoch, k = divmod(int(step), max(1, n // b))
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._order = (epoch, torch.randperm(n, generator=g).tolist())
        order = self._order[1]
        items = [self.ds.item(order[(k * b + j) % n], np.random.default_rng([self.seed, int(step), j]))
                 for j in range(b)]
        return {"image": torch.stack([it["image"] for it in items]),
                "labels": torch.stack([it["labels"] for it in items])}


def loader_workers(requested: int, device: torch.device) -> int:
    """Worker processes for the batch stream: ``requested`` when >= 0; auto (-1): 0 on the CPU, else one per core
    this process may use beyond the main one, at most 8."""
    if requested >= 0:
        return requested
    if device.type == "cpu":
        return 0
    from ..threads import available_cores

    return max(0, min(8, available_cores() - 1))


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # each worker is one core's worth of work; OpenCV's own pool would oversubscribe


def _batches(ds: ParsingDataset, batch_size: int, seed: int, start_step: int,
             workers: int = 0) -> Iterator[dict[str, Any]]:
    """Endless batches of :class:`StepBatches` from ``start_step`` on, made in ``workers`` processes (0: here)."""
    import itertools

    src = StepBatches(ds, batch_size, seed)
    if workers <= 0:
        for step in itertools.count(start_step):
            yield src[step]
        return
    ds.preload()  # decoded once here and handed to each worker, which then only augments
    # forkserver, not fork: a process forked after OpenCV's or OpenMP's thread pools ran here can deadlock in them
    loader = torch.utils.data.DataLoader(src, batch_size=None, sampler=itertools.count(start_step),
                                         num_workers=workers, prefetch_factor=4, worker_init_fn=_worker_init,
                                         pin_memory=torch.cuda.is_available(), multiprocessing_context="forkserver")
    yield from loader


def _lr_at(step: int, opts: ParserTrainOptions) -> float:
    """Linear warm-up, then cosine decay to 1 % of the peak (:func:`vidanime.train.harness.warmup_cosine`)."""
    return warmup_cosine(step, opts.steps, opts.lr, opts.warmup_steps, 0.01 * opts.lr)


def parsing_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 aux_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy (ignore 255) on the main logits plus ``aux_weight`` × each auxiliary head's."""
    main, aux = model.forward_with_aux(images)
    loss_main = F.cross_entropy(main, labels, ignore_index=IGNORE_INDEX)
    loss = loss_main
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a, labels, ignore_index=IGNORE_INDEX)
    return loss, {"loss": float(loss.detach()), "loss_main": float(loss_main.detach())}


@torch.no_grad()
def evaluate_parser(model: torch.nn.Module, ds: ParsingDataset, batch_size: int = 8, device: Any = "cpu",
                    limit: int = 0) -> SegmentationScores:
    """Table-1 scores of ``model`` on ``ds`` (no augmentation), accumulated over all pixels of all pairs."""
    was_training = model.training
    model.eval()
    meter = ConfusionMeter(model.config.num_classes, IGNORE_INDEX)
    n = len(ds) if limit <= 0 else min(limit, len(ds))
    for start in range(0, n, batch_size):
        items = [ds[i] for i in range(start, min(n, start + batch_size))]
        x = torch.stack([it["image"] for it in items]).to(device)
        y = torch.stack([it["labels"] for it in items])
        pred = model(x).argmax(1).cpu()
        meter.update(y, pred)
    model.train(was_training)
    return meter.scores()


def train_parser(cfg: ParserTrainConfig, resume: str | os.PathLike | None = None,
                 run_dir: str | os.PathLike | None = None, budget: Budget | None = None) -> RunDir:
    """Train a parser per ``cfg``; ``resume`` = a train checkpoint or run folder to continue; returns the run folder.

    ``run_dir`` forces an exact folder (tests); otherwise a new numbered folder is made under ``cfg.runs_root``.
    ``budget`` (or ``train.time_limit_min``, whichever is shorter) stops the run early, saved and resumable.
    """
    opts = cfg.train
    with threads(opts.threads):
        return _train_parser(cfg, resume, run_dir, budget)


def _train_parser(cfg: ParserTrainConfig, resume: str | os.PathLike | None, run_dir: str | os.PathLike | None,
                  budget: Budget | None) -> RunDir:
    opts = cfg.train
    device = resolve_device(opts.device)
    configure_device(device)
    torch.manual_seed(opts.seed)

    model = build_parser(cfg.model).to(device)
    to_channels_last(cfg.train.channels_last, model)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    if cfg.init and not resume:
        from ..checkpoint import check_state_dict, load_checkpoint

        init = parser_from_checkpoint(load_checkpoint(cfg.init, format=PARSER_FORMAT))
        if init.config.label_set != cfg.model.label_set or init.config.arch != cfg.model.arch:
            raise ConfigError(f"init checkpoint {cfg.init} is a {init.config.arch}/{init.config.label_set} parser, "
                              f"config asks for {cfg.model.arch}/{cfg.model.label_set}")
        check_state_dict(model, init.state_dict(), source=cfg.init)
    run, step = start_run(cfg, model, optim, PARSER_FORMAT, resume, run_dir)

    train_ids, val_ids = heldout_ids(cfg.data)
    train_ds = ParsingDataset(cfg.data, cfg.model.label_set, ids=train_ids, augment=True, seed=opts.seed)
    val_ds = ParsingDataset(cfg.data, cfg.model.label_set, ids=val_ids) if val_ids else None
    logger.info("parser %s/%s width %.2f: %.2fM params; %d train / %d held-out pairs; device %s",
                cfg.model.arch, cfg.model.label_set, cfg.model.width,
                sum(p.numel() for p in model.parameters()) / 1e6, len(train_ds), len(val_ids), device)

    def save(step: int) -> None:
        extras = {"train_step": step, "val_ids": list(val_ids), "train_config": config_to_dict(cfg)}
        run.save_checkpoint(step, kind="train", format=PARSER_FORMAT, config=cfg.model, state_dict=model.state_dict(),
                            keep=opts.keep_checkpoints, optimizer=optim.state_dict(), **extras)
        run.save_checkpoint(step, kind="parser", format=PARSER_FORMAT, config=cfg.model, state_dict=model.state_dict(),
                            keep=opts.keep_checkpoints, **extras)

    def evaluate(step: int, limit: int) -> None:
        if val_ds is None:
            return
        s = evaluate_parser(model, val_ds, opts.batch_size, device, limit=limit)
        run.log_metrics({"step": step, "val_overall_acc": s.overall_accuracy, "val_miou": s.miou,
                         "val_pixels": s.pixels})
        logger.info("step %d: held-out overall acc %.4f, mIoU %.4f", step, s.overall_accuracy, s.miou)

    model.train()
    workers = loader_workers(opts.loader_workers, device)
    if workers:
        logger.info("parser batches made by %d worker processes", workers)
    batches = _batches(train_ds, opts.batch_size, opts.seed, step, workers)

    def train_step() -> dict[str, float]:
        nonlocal step
        batch = next(batches)
        for g in optim.param_groups:
            g["lr"] = _lr_at(step, opts)
        loss, parts = parsing_loss(model, batch["image"].to(device, non_blocking=True),
                                   batch["labels"].to(device, non_blocking=True), opts.aux_weight)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        step += 1
        return parts

    budget = shorter_budget(budget, opts.time_limit_min)
    hooks = [Every(lambda s: evaluate(s, opts.eval_limit) if s < opts.steps else None, steps=opts.eval_every,
                   at_end=False),  # the full held-out score follows the loop
             Every(save, steps=opts.ckpt_every)]
    result = TrainLoop(train_step, start=step, total=opts.steps, log_every=opts.log_every,
                       row_fn=lambda s: {"lr": optim.param_groups[0]["lr"]}, log_fn=run.log_metrics, hooks=hooks,
                       budget=budget, images_per_step=opts.batch_size, desc="parser", device=device).run()
    if result.stopped == "nothing":
        save(step)
    evaluate(step, 0)
    if result.stopped == "budget":
        logger.info("stopped at step %d of %d; continue with --resume %s", step, opts.steps, run.path)
    return run


def load_train_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> ParserTrainConfig:
    """Read a parser training YAML (see configs/parser_*.yaml) with optional dotted-key overrides."""
    from ..config import load_config

    return load_config(path, ParserTrainConfig, overrides=overrides)


def eval_dataset_for(ckpt: dict[str, Any], data: ParsingDataConfig | None, split: str) -> ParsingDataset:
    """The dataset ``vidanime parser eval`` scores: the checkpoint's own data/held-out split, or ``data`` (all pairs).

    ``split`` = ``heldout`` (ids stored in the checkpoint; needs the same data root) or ``all``.
    """
    model_cfg = config_from_dict(ckpt["config"], ParserConfig, source="parser checkpoint")
    if data is None:
        tc = ckpt.get("train_config")
        if not tc:
            raise ConfigError("this checkpoint carries no training data config; pass --data ROOT --mask-labels ORDER")
        data = config_from_dict(tc["data"], ParsingDataConfig, source="checkpoint train_config.data")
    data = ParsingDataConfig(**{**config_to_dict(data), "image_size": model_cfg.image_size, "cache": False})
    if split == "heldout":
        ids: Sequence[str] | None = ckpt.get("val_ids")
        if not ids:
            raise ConfigError("the checkpoint stores no held-out ids; use --split all")
    elif split == "all":
        ids = None
    else:
        raise ConfigError(f"unknown split '{split}' (expected heldout or all)")
    return ParsingDataset(data, model_cfg.label_set, ids=ids)
