"""Numbered run folders (NVlabs stylegan3 style) shared by every trainer.

A run folder ``<root>/00003-<name>/`` holds::

    config.yaml            the resolved config of the run (plain YAML)
    metrics.jsonl          one JSON object per log interval (always has "step")
    samples/step-0000100.png   sample grids
    checkpoints/train-0000100.pt   full training state (resume)
    checkpoints/<kind>-0000100.pt  any other checkpoint kind a trainer exports (e.g. "generator")

The number is one more than the highest number already used in ``root``, so runs never overwrite each other.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["RunDir", "checkpoint_step", "default_runs_root", "find_latest_run", "make_image_grid", "resolve_resume",
           "start_run"]

_RUN_RE = re.compile(r"^(\d{5,})-")
_CKPT_RE = re.compile(r"^(?P<kind>[A-Za-z0-9_]+)-(?P<step>\d+)\.pt$")
CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"


def default_runs_root() -> Path:
    """Where long training runs keep their resumable states, outside any source tree: ``$VIDANIME_RUNS`` if set,
    else ``$XDG_CACHE_HOME/vidanime/runs`` (``~/.cache/vidanime/runs``)."""
    env = os.environ.get("VIDANIME_RUNS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vidanime" / "runs"


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step of a run checkpoint named ``<kind>-<step>.pt`` (e.g. ``styleanime-0000800.pt`` -> 800); any other
    name raises :class:`ValueError` naming it."""
    m = _CKPT_RE.match(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: not a run checkpoint name (<kind>-<step>.pt)")
    return int(m.group("step"))


def _safe_name(name: str) -> str:
    """A run name usable in a folder name: letters, digits, ``._-``; anything else becomes ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return cleaned or "run"


def _run_number(path: Path) -> int | None:
    m = _RUN_RE.match(path.name)
    return int(m.group(1)) if m else None


def find_latest_run(root: str | os.PathLike, name: str | None = None,
                    require_checkpoint: str | None = "train") -> Path | None:
    """The highest-numbered run folder in ``root`` (optionally with this run ``name`` and a checkpoint of that kind)."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = []
    for p in root.iterdir():
        num = _run_number(p)
        if num is None or not p.is_dir():
            continue
        if name is not None and p.name[_RUN_RE.match(p.name).end():] != _safe_name(name):
            continue
        if require_checkpoint and RunDir(p).latest_checkpoint(require_checkpoint) is None:
            continue
        runs.append((num, p))
    return max(runs)[1] if runs else None


def make_image_grid(images: Any, nrow: int | None = None, padding: int = 2) -> Any:
    """Tile images (B, 3, H, W) in [-1, 1] into one uint8 array (rows*H', cols*W', 3) with ``padding`` px gaps."""
    import math

    import torch

    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    b, _, h, w = x.shape
    cols = nrow or max(1, int(math.ceil(math.sqrt(b))))
    rows = int(math.ceil(b / cols))
    grid = torch.zeros(3, rows * (h + padding) + padding, cols * (w + padding) + padding, dtype=torch.uint8)
    for i in range(b):
        r, c = divmod(i, cols)
        y0, x0 = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, y0 : y0 + h, x0 : x0 + w] = x[i]
    return grid.permute(1, 2, 0).numpy()


class RunDir:
    """One run folder: config, metrics JSONL, sample grids and checkpoints.  Generic: any trainer can use it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # ----------------------------------------------------------------------------------------------------- creation
    @classmethod
    def create(cls, root: str | os.PathLike, name: str, config: Any = None) -> "RunDir":
        """Make ``root/<next number:05d>-<name>/`` and write ``config`` (dataclass or plain data) as config.yaml."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        taken = [n for p in root.iterdir() if (n := _run_number(p)) is not None]
        number = max(taken, default=-1) + 1
        while True:  # another process may take the same number: mkdir without exist_ok is the lock
            path = root / f"{number:05d}-{_safe_name(name)}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                number += 1
        run = cls(path)
        if config is not None:
            run.write_config(config)
        logger.info("run folder: %s", path)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """An existing run folder; a missing folder is a :class:`ConfigError`."""
        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"run folder not found: {path}")
        return cls(path)

    @classmethod
    def of_checkpoint(cls, checkpoint: str | os.PathLike) -> "RunDir | None":
        """The run folder holding ``checkpoint`` (…/<run>/checkpoints/x.pt), or None for a loose file."""
        ckpt = Path(checkpoint).resolve()
        run = ckpt.parent.parent
        if ckpt.parent.name == "checkpoints" and (run / CONFIG_NAME).is_file():
            return cls(run)
        return None

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------------------------------------------ config
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    def write_config(self, config: Any) -> Path:
        """Write the resolved config (dataclass or plain data) to config.yaml, atomically."""
        from ..config import save_config

        save_config(config, self.config_path)
        return self.config_path

    def read_config(self) -> dict:
        """The run's config.yaml as plain data."""
        import yaml

        if not self.config_path.is_file():
            raise ConfigError(f"run folder {self.path} has no {CONFIG_NAME}")
        return yaml.safe_load(self.config_path.read_text()) or {}

    # ----------------------------------------------------------------------------------------------------- metrics
    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_NAME

    def log_metrics(self, row: Mapping[str, Any]) -> None:
        """Append one JSON row (must hold ``step``) to metrics.jsonl; tensors/numpy scalars become floats."""
        if "step" not in row:
            raise ValueError("a metrics row needs a 'step' key")
        clean = {k: _to_plain(v) for k, v in row.items()}
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean, sort_keys=False) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        """All rows of metrics.jsonl (empty list when none were written); a torn last line is ignored."""
        if not self.metrics_path.is_file():
            return []
        rows = []
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # interrupted mid-write: drop the partial row
                    logger.warning("%s: ignoring a torn last line", self.metrics_path)
                    continue
                raise ConfigError(f"{self.metrics_path}: line {i + 1} is not valid JSON") from None
        return rows

    @classmethod
    def resume_state(cls, ckpt: Mapping[str, Any], ckpt_path: str | os.PathLike, model: Any, optim: Any,
                     root: str | os.PathLike, name: str, config: Any = None) -> tuple["RunDir", int]:
        """Put a training checkpoint's ``state_dict`` and ``optimizer`` into ``model`` and ``optim`` and reopen its run
        folder (or create one under ``root`` when the checkpoint sits outside a run), its metrics cut back to the
        checkpoint's ``train_step``; → (run, step)."""
        model.load_state_dict(ckpt["state_dict"])
        optim.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["train_step"])
        run = cls.of_checkpoint(ckpt_path) or cls.create(root, name, config)
        run.truncate_metrics(step)
        logger.info("resuming %s at step %d", ckpt_path, step)
        return run, step

    def truncate_metrics(self, after_step: int) -> int:
        """Drop rows with ``step > after_step`` (used on resume, so the log has no rows from the lost future).

        Returns the number of rows dropped.
        """
        from ..fileio import atomic_write_text

        rows = self.read_metrics()
        keep = [r for r in rows if int(r.get("step", 0)) <= after_step]
        if len(keep) != len(rows):
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in keep))
        return len(rows) - len(keep)

    # ----------------------------------------------------------------------------------------------------- samples
    def sample_path(self, step: int, prefix: str = "step") -> Path:
        return self.path / "samples" / f"{prefix}-{step:07d}.png"

    def save_image_grid(self, images: Any, step: int, nrow: int | None = None, prefix: str = "step") -> Path:
        """Save images (B, 3, H, W) in [-1, 1] as one PNG grid under samples/; returns its path."""
        from PIL import Image

        from ..fileio import atomic_path

        path = self.sample_path(step, prefix)
        grid = make_image_grid(images, nrow=nrow)
        with atomic_path(path) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
        return path

    # ------------------------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, step: int, kind: str = "train") -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_]+", kind):
            raise ValueError(f"checkpoint kind must be letters, digits or '_', got {kind!r}")
        return self.checkpoint_dir / f"{kind}-{step:07d}.pt"

    def checkpoints(self, kind: str = "train") -> list[tuple[int, Path]]:
        """(step, path) of this run's checkpoints of ``kind``, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for p in self.checkpoint_dir.iterdir():
            m = _CKPT_RE.match(p.name)
            if m and m.group("kind") == kind:
                found.append((checkpoint_step(p), p))
        return sorted(found)

    def latest_checkpoint(self, kind: str = "train") -> Path | None:
        """The checkpoint of ``kind`` with the highest step, or None."""
        found = self.checkpoints(kind)
        return found[-1][1] if found else None

    def save_checkpoint(self, step: int, /, *, kind: str = "train", format: str, config: Any,
                        state_dict: Mapping[str, Any], keep: int = 0, **extras: Any) -> Path:
        """Save a self-describing checkpoint (see :func:`vidanime.checkpoint.save_checkpoint`) under checkpoints/.

        ``keep`` > 0 deletes the oldest checkpoints of this kind beyond the newest ``keep``.
        """
        from ..checkpoint import save_checkpoint

        path = save_checkpoint(self.checkpoint_path(step, kind), format=format, config=config,
                               state_dict=state_dict, **extras)
        if keep > 0:
            self.prune_checkpoints(kind, keep)
        return path

    def prune_checkpoints(self, kind: str, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` checkpoints of ``kind``; returns the deleted paths."""
        old = self.checkpoints(kind)[:-keep] if keep > 0 else []
        for _, p in old:
            p.unlink()
        return [p for _, p in old]

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _to_plain(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_to_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _to_plain(x) for k, x in v.items()}
    if isinstance(v, Path):
        return str(v)
    return v


def resolve_resume(resume: str | os.PathLike, root: str | os.PathLike, name: str | None = None,
                   kind: str = "train") -> Path:
    """Turn ``--resume`` into a checkpoint file: ``auto`` (latest run in ``root``), a run folder, or a file."""
    if str(resume) == "auto":
        run = find_latest_run(root, name=name, require_checkpoint=kind)
        if run is None:
            where = f"run folders named '{_safe_name(name)}' in {root}" if name else f"run folders in {root}"
            raise CheckpointError(f"--resume auto: no {kind} checkpoint found in {where}")
        return RunDir(run).latest_checkpoint(kind)  # type: ignore[return-value]
    p = Path(resume)
    if p.is_dir():
        ckpt = RunDir(p).latest_checkpoint(kind)
        if ckpt is None:
            raise CheckpointError(f"--resume {p}: the folder holds no {kind} checkpoint "
                                  f"(expected checkpoints/{kind}-*.pt)")
        return ckpt
    if not p.is_file():
        raise CheckpointError(f"--resume {p}: no such checkpoint file or run folder (or use 'auto')")
    return p




def start_run(config: Any, model: Any, optim: Any, format: str, resume: str | os.PathLike | None = None,
              run_dir: str | os.PathLike | None = None) -> tuple[RunDir, int]:
    """A trainer's run folder and first step: ``resume`` (``auto``, a run folder or a ``train-*.pt`` of ``format``)
    puts its weights and optimizer state into ``model`` and ``optim`` and reopens its folder; else ``run_dir`` (an
    exact folder, for tests) or a new numbered folder under ``config.runs_root`` named ``config.name``, step 0."""
    if resume:
        from ..checkpoint import load_checkpoint

        ckpt_path = resolve_resume(resume, config.runs_root, name=config.name, kind="train")
        ckpt = load_checkpoint(ckpt_path, format=format)
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{ckpt_path} has no optimizer state; resume from a train-*.pt checkpoint")
        return RunDir.resume_state(ckpt, ckpt_path, model, optim, config.runs_root, config.name, config)
    if run_dir is not None:
        run = RunDir(Path(run_dir))
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        return run, 0
    return RunDir.create(config.runs_root, config.name, config), 0
