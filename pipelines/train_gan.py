"""Train or fine-tune a StyleGAN2 generator into a numbered run folder, or resume one (``vidanime train-gan``).

Composes the library parts: the typed config (:class:`~vidanime.train.gan.TrainGANConfig`), the image-folder dataset,
the :class:`~vidanime.train.gan.GANTrainer` and a :class:`~vidanime.train.run_dir.RunDir`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pipelines.base import Pipeline
from vidanime.checkpoint import load_checkpoint
from vidanime.config import apply_overrides, config_from_dict, config_to_dict, load_config
from vidanime.errors import CheckpointError, ConfigError
from vidanime.train.gan import TRAIN_FORMAT, GANTrainer, TrainGANConfig, build_dataset
from vidanime.train.harness import Budget
from vidanime.train.run_dir import RunDir, find_latest_run, resolve_resume

logger = logging.getLogger(__name__)

__all__ = ["TrainGANPipeline", "TrainGANResult"]


@dataclass
class TrainGANResult:
    """What a training call produced: the run folder, the step reached, the checkpoints and the logged rows."""

    run_dir: Path
    step: int
    train_checkpoint: Path | None
    generator_checkpoint: Path | None
    metrics: list[dict[str, Any]] = field(default_factory=list)


class TrainGANPipeline(Pipeline):
    """StyleGAN2 training job: ``TrainGANPipeline.from_config_file(path, overrides)(resume=...)``.

    Runs go to ``<run_dir>/<NNNNN>-<config.name>/``.  Resuming continues in the checkpoint's own run folder (its metrics
    rows after the checkpoint's step are dropped first), from the exact training state of that checkpoint.
    """

    def __init__(self, config: TrainGANConfig, source: str = "config"):
        self.config = config
        self.source = source

    @classmethod
    def from_config_file(cls, path: str | os.PathLike,
                         overrides: Mapping[str, Any] | None = None) -> "TrainGANPipeline":
        """Load a YAML config (unknown keys and wrong types are :class:`ConfigError`) with dotted-key overrides."""
        return cls(load_config(path, TrainGANConfig, overrides=overrides), source=str(path))

    @staticmethod
    def config_from_checkpoint(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> TrainGANConfig:
        """The resolved config stored in a training checkpoint, with overrides applied."""
        data = load_checkpoint(path, format=TRAIN_FORMAT)["config"]
        if overrides:
            data = apply_overrides(data, overrides, str(path))
        return config_from_dict(data, TrainGANConfig, source=f"{Path(path).name} config")

    def check_inputs(self, resume: str | os.PathLike | None) -> None:
        """Fail early, with one line, on a missing data folder or init_from file."""
        data = Path(self.config.data.path) if self.config.data.path else None
        if data is None:
            raise ConfigError(f"{self.source}: data.path is empty (set it to a folder of training images)")
        if not data.is_dir():
            raise ConfigError(f"{self.source}: data.path '{data}' is not a folder (paths are relative to {Path.cwd()})")
        if self.config.init_from and resume is None and not Path(self.config.init_from).is_file():
            raise ConfigError(f"{self.source}: init_from '{self.config.init_from}' does not exist")

    def __call__(self, run_dir: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
                 budget: Budget | None = None) -> TrainGANResult:
        """Train up to ``config.train.iterations`` or until the wall-clock ``budget`` is spent (then saved);
        ``resume`` is a checkpoint, a run folder or ``"auto"``."""
        cfg = self.config
        root = Path(run_dir if run_dir is not None else cfg.run_dir)
        ckpt_path = self._resume_path(resume, root)
        self.check_inputs(ckpt_path)
        dataset = build_dataset(cfg.data, cfg.model.size)
        logger.info("training on %d images from %s at %d px", len(dataset), cfg.data.path, cfg.model.size)
        trainer = GANTrainer(cfg, dataset)

        if ckpt_path is not None:
            ckpt = load_checkpoint(ckpt_path, format=TRAIN_FORMAT)
            self._check_resume_config(ckpt.get("config") or {}, ckpt_path)
            trainer.load_state_dict(ckpt, source=str(ckpt_path))
            run = RunDir.of_checkpoint(ckpt_path)
            if run is None:
                run = RunDir.create(root, cfg.name, cfg)
            else:
                dropped = run.truncate_metrics(trainer.step)
                if dropped:
                    logger.info("dropped %d metrics rows logged after step %d", dropped, trainer.step)
                run.write_config(cfg)
            logger.info("resuming %s from step %d (%s)", run.path, trainer.step, ckpt_path)
        else:
            run = RunDir.create(root, cfg.name, cfg)
            if cfg.init_from:
                trainer.init_from(cfg.init_from)

        rows = trainer.train(run, budget=budget)
        return TrainGANResult(
            run_dir=run.path,
            step=trainer.step,
            train_checkpoint=run.latest_checkpoint("train"),
            generator_checkpoint=run.latest_checkpoint("generator"),
            metrics=rows,
        )

    def _resume_path(self, resume: str | os.PathLike | None, root: Path) -> Path | None:
        if resume is None:
            return None
        if str(resume) == "auto":
            run = find_latest_run(root, name=self.config.name, require_checkpoint="train")
            if run is None:
                logger.info("--resume auto: no earlier run of '%s' in %s, starting a new run", self.config.name, root)
                return None
        return resolve_resume(resume, root, name=self.config.name)

    def _check_resume_config(self, stored: Mapping[str, Any], path: Path) -> None:
        """The model must be the checkpoint's; other differences are allowed but logged (no longer bit-exact)."""
        mine = config_to_dict(self.config)
        if stored.get("model") != mine["model"]:
            diff = [k for k in mine["model"] if (stored.get("model") or {}).get(k) != mine["model"][k]]
            raise CheckpointError(
                f"--resume {path}: its model differs from the config's (keys: {', '.join(diff) or 'model'}); "
                "resume with the run's own config.yaml"
            )
        changed = [f"{section}.{k}" for section in ("data", "train") for k in mine[section]
                   if (stored.get(section) or {}).get(k) != mine[section][k] and k not in ("iterations", "progress")]
        if changed:
            logger.warning("resuming with changed settings: %s", ", ".join(changed))
