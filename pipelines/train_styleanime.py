"""StyleAnime base training job: config → datasets → :class:`StyleAnimeTrainer` → numbered run folder.

Works the same as one process or under ``torchrun`` (one process per GPU, any number of nodes)::

    vidanime train --config configs/styleanime_p2a.yaml
    torchrun --nproc_per_node 8 -m pipelines.cli train --config configs/styleanime_p2a.yaml

With ``resume`` the run continues in its own folder from its training checkpoint, using the config stored there
(``overrides`` still apply, e.g. ``train.iterations=200000`` to train longer).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import torch
import torch.distributed as dist

from vidanime.checkpoint import load_checkpoint
from vidanime.config import apply_overrides, config_from_dict, load_config
from vidanime.data.domains import DomainDataset
from vidanime.errors import ConfigError
from vidanime.train.harness import Budget, configure_device
from vidanime.train.run_dir import RunDir, resolve_resume
from vidanime.train.styleanime import (
    TRAIN_FORMAT,
    StyleAnimeTrainer,
    TrainStyleAnimeConfig,
    resolve_device,
    setup_distributed,
)

logger = logging.getLogger(__name__)

__all__ = ["load_train_config", "train_styleanime"]


def load_train_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> TrainStyleAnimeConfig:
    """Read a StyleAnime training YAML (``overrides``: dotted keys → values)."""
    return load_config(path, TrainStyleAnimeConfig, overrides=overrides)


def train_styleanime(config: TrainStyleAnimeConfig | None, resume: str | os.PathLike | None = None,
                     overrides: Mapping[str, Any] | None = None, run_root: str | os.PathLike | None = None,
                     budget: Budget | None = None) -> RunDir | None:
    """Train (or resume) StyleAnime encoders; returns the run folder on rank 0 (None on other ranks).

    ``budget`` stops the run when the wall clock runs out (saved and exported first; resumable).
    ``config`` may be None when ``resume`` names a checkpoint or run folder (its stored config is used).
    """
    started_pg = not dist.is_available() or not dist.is_initialized()
    ckpt = ckpt_path = None
    if resume:
        root = run_root or (config.run_dir if config is not None else "runs")
        if str(resume) == "auto" and config is None:
            raise ConfigError("--resume auto needs --config (to know the run folder root and run name)")
        ckpt_path = resolve_resume(resume, root, name=config.name if config is not None else None, kind="train")
        ckpt = load_checkpoint(ckpt_path, format=TRAIN_FORMAT)
        stored = apply_overrides(ckpt["config"], overrides or {}, str(ckpt_path))
        config = config_from_dict(stored, TrainStyleAnimeConfig, source=f"{ckpt_path} config")
    if config is None:
        raise ConfigError("train needs --config, or --resume with a run folder / checkpoint")
    t = config.train
    info = setup_distributed(t.device)
    previous_threads = torch.get_num_threads()
    if t.threads > 0:
        torch.set_num_threads(t.threads)  # restored when training ends (train-all runs stages in one process)
    device = resolve_device(t.device, info)
    configure_device(device)
    size, labels = int(config.model.image_size), config.model.label_set
    target = DomainDataset(config.target, labels, size, device=device, name="target")
    source = DomainDataset(config.source, labels, size, device=device, name="source")
    trainer = StyleAnimeTrainer(config, target, source, dist_info=info, device=device)
    run: RunDir | None = None
    if ckpt is not None:
        trainer.load_state_dict(ckpt, source=str(ckpt_path))
        if info.is_main:
            run = RunDir.of_checkpoint(ckpt_path) or RunDir.create(run_root or config.run_dir, config.name, config)
            run.truncate_metrics(trainer.step)
        logger.info("resuming %s at step %d", ckpt_path, trainer.step)
    elif info.is_main:
        run = RunDir.create(run_root or config.run_dir, config.name, config)
    if info.is_main:
        logger.info("training %s: %d target / %d source images, %d process(es), batch %d each, device %s",
                    config.name, len(target), len(source), info.world, t.batch, device)
    try:
        trainer.train(run, budget=budget)
    finally:
        torch.set_num_threads(previous_threads)
        if info.world > 1 and started_pg and dist.is_initialized():
            dist.destroy_process_group()
    return run
