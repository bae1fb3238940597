"""Batch translation of a folder of videos: ``BatchPipeline()(in_dir, out_dir, options)`` → :class:`BatchResult`.

Every video under ``in_dir`` (recursive, by extension, case-insensitive, sorted; hidden names skipped) is translated
by a :class:`~pipelines.translate.TranslatePipeline` into the same relative path under ``out_dir`` (``.mp4`` unless
told).  ``out_dir/manifest.jsonl`` gets one JSON row per finished or failed file (append-only, fsync'd, so a killed
run leaves a valid manifest); a re-run skips the files already done and, unless ``retry_failed``, the ones that failed
(a failed file whose input was replaced since is tried again).  One failing file never stops the rest.  Files run in
this process (``jobs=1``), in ``jobs`` worker processes (each loads the models once), or as Ray tasks
(``ray=ADDRESS|auto|local``), with results written by the driver.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pipelines.base import Pipeline
from vidanime.errors import CheckpointError, ConfigError, MediaError, VidanimeError
from vidanime.fileio import check_output_path, remove_stale_partials
from vidanime.models.face_translator import resolve_background_fill
from vidanime.registry import resolve_path
from vidanime.video.recolor import RecolorConfig

from .finetune import finetune_for_translate, finetune_requested, finetune_settings
from .translate import DEFAULT_MODELS, TEMPORAL_MODES, TranslateOptions, TranslatePipeline

logger = logging.getLogger(__name__)

__all__ = ["VIDEO_EXTENSIONS", "MANIFEST_NAME", "BatchOptions", "BatchTask", "BatchResult", "BatchPipeline",
           "PipelineSpec", "Manifest", "discover_videos", "plan_outputs"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm")
MANIFEST_NAME = "manifest.jsonl"
_CRASH_REASON = "the worker process died while translating this file (crash or out of memory), twice"


# ------------------------------------------------------------------------------------------------------- options
@dataclass
class BatchOptions:
    """Per-batch options.  ``jobs``: local worker processes (1 = in this process); ``threads``: torch threads per
    worker (default: cores // jobs); ``ray``: Ray address, ``auto`` (running cluster) or ``local`` (start one), with
    ``ray_cpus`` CPUs per file task; ``retry_failed``: re-try files the manifest records as failed; ``ext``: output
    container; ``finetune``: per-clip fine-tune iterations before translating, or ``"auto"`` (0 = off; as translate);
    ``keep_finetune``: keep each file's fine-tune run folder (``<output>.finetune``; deleted once the file is done);
    ``translate``: the options of every file (its ``progress`` bar is turned off; ``preview`` is not allowed)."""

    jobs: int = 1
    threads: int | None = None
    ray: str | None = None
    ray_cpus: float = 1.0
    retry_failed: bool = False
    ext: str = ".mp4"
    finetune: int | str = 0
    keep_finetune: bool = False
    progress: bool = True
    translate: TranslateOptions = field(default_factory=lambda: TranslateOptions(progress=False))


@dataclass(frozen=True)
class BatchTask:
    """One file to translate: absolute ``input``/``output`` paths and their manifest keys (relative posix paths)."""

    input: str
    output: str
    key: str
    output_key: str


@dataclass
class BatchResult:
    """What a batch did: rows written this run (done/failed), files skipped as already done, inputs whose earlier
    failure was kept (not retried), wall seconds and the manifest path."""

    manifest: str
    done: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    failed_before: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no input of the folder is left in the failed state."""
        return not self.failed and not self.failed_before

    def summary(self) -> str:
        """One line: counts, time and the manifest path."""
        parts = [f"{len(self.done)} done", f"{len(self.failed)} failed", f"{self.skipped} already done"]
        if self.failed_before:
            parts.append(f"{len(self.failed_before)} failed earlier (not retried; --retry-failed)")
        frames = sum(r.get("frames") or 0 for r in self.done)
        return f"batch: {', '.join(parts)}; {frames} frames in {self.seconds:.1f} s; manifest {self.manifest}"


@dataclass
class PipelineSpec:
    """Picklable recipe for a :class:`TranslatePipeline` (built once per worker process or Ray worker):
    the arguments of :meth:`TranslatePipeline.from_pretrained`; ``identity`` builds the identity face model."""

    checkpoint: str | None = None
    parser: str | None = None
    direction: str = "p2a"
    alpha: float | None = None
    device: str = "cpu"
    fp16: bool = False
    face_config: Any = None
    allow_identity: bool = False
    identity: bool = False
    temporal: str = "flow"
    recolor: float = RecolorConfig.strength
    upscaler: str | None = "none"
    background_fill: float | None = None

    def check(self) -> "PipelineSpec":
        """Fail early (in the driver, before any worker starts) when the checkpoint or parser cannot be found."""
        if self.identity:
            return self
        if self.direction not in DEFAULT_MODELS:
            raise ConfigError(f"direction='{self.direction}' is not one of: {', '.join(DEFAULT_MODELS)}")
        if self.temporal not in TEMPORAL_MODES:
            raise ConfigError(f"temporal='{self.temporal}' is not one of: {', '.join(TEMPORAL_MODES)}")
        if self.background_fill is not None:
            resolve_background_fill(None, self.background_fill)
        ckpt, parser = DEFAULT_MODELS[self.direction]
        try:
            resolve_path(self.checkpoint or ckpt)
            resolve_path(self.parser or parser)
            if self.upscaler not in (None, "auto", "none"):
                resolve_path(self.upscaler)
        except CheckpointError:
            if not (self.allow_identity and self.checkpoint is None and self.parser is None):
                raise
        return self

    def __call__(self) -> TranslatePipeline:
        if self.identity:
            return TranslatePipeline(face_config=self.face_config)
        return TranslatePipeline.from_pretrained(
            self.checkpoint, self.parser, direction=self.direction, alpha=self.alpha, device=self.device,
            fp16=self.fp16, face_config=self.face_config, allow_identity=self.allow_identity, temporal=self.temporal,
            recolor=self.recolor, upscaler=self.upscaler, background_fill=self.background_fill)


# ----------------------------------------------------------------------------------------------------- discovery
def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def discover_videos(in_dir: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Video files under ``in_dir`` (recursive; extensions :data:`VIDEO_EXTENSIONS`, any case), sorted by relative
    path.  Hidden files and folders (``.name``) are skipped, and so is the ``exclude`` folder (the output folder when
    it lies inside ``in_dir``, so outputs are never picked up as inputs)."""
    root = Path(in_dir).resolve()
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip is None or (here / d).resolve() != skip))
        found.extend(here / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_EXTENSIONS)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def plan_outputs(in_dir: str | os.PathLike, out_dir: str | os.PathLike, inputs: Iterable[Path],
                 ext: str = ".mp4") -> list[BatchTask]:
    """Mirror each input's relative path under ``out_dir`` with extension ``ext``.  Inputs that would share an output
    (``a.mov`` and ``a.mp4``) keep their own extension in the name instead (``a.mov.mp4``, ``a.mp4.mp4``)."""
    root, out = Path(in_dir).resolve(), Path(out_dir).resolve()
    rels = [p.relative_to(root) for p in inputs]
    wanted = [r.with_suffix(ext) for r in rels]
    counts: dict[str, int] = {}
    for w in wanted:
        counts[w.as_posix().lower()] = counts.get(w.as_posix().lower(), 0) + 1
    tasks = []
    for r, w in zip(rels, wanted):
        if counts[w.as_posix().lower()] > 1:
            w = r.with_name(r.name + ext)
            logger.warning("%s shares its output name with another input: writing %s", r.as_posix(), w.as_posix())
        tasks.append(BatchTask(input=str(root / r), output=str(out / w), key=r.as_posix(), output_key=w.as_posix()))
    return tasks


def _remove_stale_partials(tasks: Iterable[BatchTask]) -> int:
    """Delete temporary outputs (``.<stem>.*.partial.<ext>``, see :func:`vidanime.fileio.atomic_path`) left by a
    killed run; safe because the manifest lock says no other batch writes to this folder."""
    return sum(len(remove_stale_partials(t.output)) for t in tasks)


# ------------------------------------------------------------------------------------------------------ manifest
class Manifest:
    """``OUT_DIR/manifest.jsonl``: one JSON object a line, appended and fsync'd per file, read back as the latest
    row per input.  While open for writing it holds an exclusive lock, so two batches cannot share an output folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fh = None

    def read(self) -> dict[str, dict[str, Any]]:
        """Latest row per input key; a torn last line (a run killed mid-write) or a malformed line is skipped."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return rows
        with open(self.path, encoding="utf-8", errors="replace") as f:  # a torn UTF-8 character fails as JSON
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    rows[str(row["input"])] = row
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    logger.warning("%s line %d is not a manifest row (%s): ignored", self.path, n, exc)
        return rows

    def open(self) -> "Manifest":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+b")
        try:
            import fcntl  # here, not at the top: POSIX only
        except ImportError:  # pragma: no cover - not on POSIX: no lock, documented
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._fh.close()
                self._fh = None
                raise MediaError(f"another batch is writing to {self.path.parent}; wait for it to finish or choose "
                                 "another OUT_DIR") from None
        end = self._fh.seek(0, os.SEEK_END)
        if end > 0:  # a killed run may have torn the last line: start ours on a fresh one
            self._fh.seek(end - 1)
            if self._fh.read(1) != b"\n":
                self._fh.write(b"\n")
        return self

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and force it to disk."""
        self._fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Manifest":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ per-file work
def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """A head address ``host:port`` must answer a TCP connection within ``timeout`` s: ``ray.init`` itself retries
    an unreachable address for minutes.  ``auto``, ``local`` and ``ray://`` client addresses are left to Ray.  One-line
    ConfigError otherwise."""
    import socket

    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    expected = "expected auto (a running cluster), local, or a head address such as 10.0.0.1:6379"
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"ray='{address}': {expected}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):  # [::1]:6379 too
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach Ray at '{address}' ({exc.strerror or exc}); {expected}") from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """A one-line reason: the message of a user error, else ``Type: message``."""
    msg = " ".join(str(exc).split())
    text = msg if isinstance(exc, VidanimeError) and msg else f"{type(exc).__name__}: {msg}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _input_stamp(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"input_bytes": st.st_size, "input_mtime_ns": st.st_mtime_ns}


def _row(task: BatchTask, status: str, reason: str | None = None, seconds: float | None = None,
         frames: int | None = None, faces: int | None = None) -> dict[str, Any]:
    row = {"input": task.key, "output": task.output_key, "status": status, "reason": reason,
           "seconds": None if seconds is None else round(seconds, 2), "frames": frames, "faces": faces}
    with contextlib.suppress(OSError):  # input vanished: the row stays valid without its stamp
        row.update(_input_stamp(task.input))
    row["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row


def translate_file(pipe: TranslatePipeline, task: BatchTask, options: TranslateOptions) -> dict[str, Any]:
    """Translate one file; any exception becomes a ``failed`` row with a one-line reason (logged with its
    traceback at debug level), so one bad file never stops the batch."""
    t0 = time.perf_counter()
    try:
        res = pipe(task.input, task.output, options)
    except Exception as exc:  # recorded in the manifest, not swallowed
        logger.debug("%s failed", task.key, exc_info=True)
        return _row(task, "failed", _one_line(exc), time.perf_counter() - t0)
    return _row(task, "done", None, time.perf_counter() - t0, res.frames, res.faces)


@dataclass(frozen=True)
class _Job:
    """What every file of a batch shares: translate options and the per-clip fine-tune (iterations, keep folder)."""

    options: TranslateOptions
    finetune: int | str = 0
    keep_finetune: bool = False


def finetune_dir(task: BatchTask) -> Path:
    """Run folder of a file's fine-tune: ``<output>.finetune`` beside the output (as ``translate --finetune``)."""
    return Path(task.output).with_suffix(".finetune")


def run_file(factory: Callable[[], TranslatePipeline], pipe: TranslatePipeline | None, task: BatchTask,
             job: _Job) -> dict[str, Any]:
    """One file: with ``job.finetune``, first fine-tune ``factory``'s checkpoint on the clip (run folder
    :func:`finetune_dir`, resumed after a kill, deleted once the file is done unless ``keep_finetune``) and translate
    with the result; else translate with the shared ``pipe``."""
    if not finetune_requested(job.finetune):
        return translate_file(pipe, task, job.options)
    t0 = time.perf_counter()
    try:
        spec: PipelineSpec = factory  # checked in BatchPipeline.__call__
        ckpt, parser = DEFAULT_MODELS[spec.direction]
        tuned = finetune_for_translate(task.input, task.output, spec.checkpoint or ckpt, spec.parser or parser,
                                       job.finetune, face_config=spec.face_config, start=job.options.start,
                                       end=job.options.end, device=spec.device, run_dir=finetune_dir(task),
                                       progress=False, overrides=None if spec.background_fill is None
                                       else {"background_fill": float(spec.background_fill)})
        pipe = replace(spec, checkpoint=str(tuned))()
    except Exception as exc:  # recorded in the manifest, not swallowed
        logger.debug("%s: fine-tune failed", task.key, exc_info=True)
        return _row(task, "failed", f"fine-tune: {_one_line(exc)}", time.perf_counter() - t0)
    row = translate_file(pipe, task, job.options)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    if row["status"] == "done" and not job.keep_finetune:
        try:
            shutil.rmtree(finetune_dir(task))
        except OSError as exc:  # the output is done; a leftover folder is only disk space
            logger.warning("could not remove the fine-tune folder %s: %s", finetune_dir(task), exc)
    return row


_WORKER: dict[str, Any] = {}


def _set_threads(threads: int) -> None:
    torch.set_num_threads(max(1, int(threads)))
    with contextlib.suppress(ImportError):
        cv2.setNumThreads(max(1, int(threads)))


def _worker_init(threads: int) -> None:
    _set_threads(threads)


def _worker_run(factory: Callable[[], TranslatePipeline], task: BatchTask, job: _Job,
                threads: int | None = None) -> dict[str, Any]:
    """Run one task in a worker process (pool or Ray); the pipeline is built once per worker and reused.  A
    pipeline that cannot be built is returned as ``{"fatal": error}`` so the driver stops the batch."""
    if threads is not None and _WORKER.get("threads") != threads:
        _set_threads(threads)
        _WORKER["threads"] = threads
    if not finetune_requested(job.finetune) and ("pipe" not in _WORKER or _WORKER.get("factory") != factory):
        try:
            _WORKER["pipe"], _WORKER["factory"] = factory(), factory
        except VidanimeError as exc:
            return {"fatal": exc}
    return run_file(factory, _WORKER.get("pipe"), task, job)


# ------------------------------------------------------------------------------------------------------ pipeline
def _pool_context() -> Any:
    """Start method for worker processes: a fork server that has imported this module and the default face
    detector's torchvision/facenet-pytorch (about 8 s of imports on a busy 2-core machine), so workers start in
    milliseconds, also when a dead one is replaced; else spawn.  Never a plain fork of a process running threads.
    (A preload module that is not installed is skipped by multiprocessing.)"""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "torchvision", "facenet_pytorch"])
    return ctx


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class BatchPipeline(Pipeline):
    """Translate every video of a folder into a mirrored output folder, with a resumable manifest.

    ``factory`` builds the :class:`TranslatePipeline` (default: the identity face model); it must be picklable
    (e.g. :class:`PipelineSpec`, or a class) for ``jobs > 1`` and Ray, where each worker builds it once.
    """

    def __init__(self, factory: Callable[[], TranslatePipeline] | None = None) -> None:
        self.factory = factory or TranslatePipeline

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike | None = None, parser: str | os.PathLike | None = None,
                        direction: str = "p2a", alpha: float | None = None, device: str = "cpu", fp16: bool = False,
                        face_config: Any = None, allow_identity: bool = False,
                        temporal: str = "flow", recolor: float = RecolorConfig.strength,
                        upscaler: str | os.PathLike | None = "none",
                        background_fill: float | None = None) -> "BatchPipeline":
        """Same arguments as :meth:`TranslatePipeline.from_pretrained` (``temporal``: ``flow``, ``filter`` or
        ``off``, as in ``vidanime translate --temporal``; ``recolor`` strength; ``upscaler``: none, auto, a name or
        a path; ``background_fill``: None = the checkpoint's); the files are checked here, the models are loaded by
        each worker."""
        spec = PipelineSpec(None if checkpoint is None else str(checkpoint), None if parser is None else str(parser),
                            direction, alpha, device, fp16, face_config, allow_identity, temporal=temporal,
                            recolor=recolor, upscaler=None if upscaler is None else str(upscaler),
                            background_fill=background_fill)
        return cls(spec.check())

    # ------------------------------------------------------------------------------------------------- checks
    @staticmethod
    def check_inputs(in_dir: str | os.PathLike, out_dir: str | os.PathLike, options: BatchOptions) -> None:
        """Validate folders and options before any work; raises a one-line error naming the bad value."""
        src, dst = Path(in_dir).resolve(), Path(out_dir).resolve()
        if not src.is_dir():
            what = "a file (use `vidanime translate` for one video)" if src.is_file() else "not found"
            raise MediaError(f"input folder {in_dir} is {what}; expected a folder of videos")
        if dst.exists() and not dst.is_dir():
            raise MediaError(f"output folder {out_dir} is a file; expected a folder")
        if src == dst:
            raise MediaError(f"output folder {out_dir} is the input folder; choose another OUT_DIR")
        if _is_within(src, dst):
            raise MediaError(f"input folder {in_dir} lies inside the output folder {out_dir}; outputs could replace "
                             "inputs: choose an OUT_DIR outside it")
        if options.jobs < 1:
            raise ConfigError(f"jobs={options.jobs}; expected an integer >= 1")
        if options.threads is not None and options.threads < 1:
            raise ConfigError(f"threads={options.threads}; expected an integer >= 1")
        if options.ray_cpus <= 0:
            raise ConfigError(f"ray_cpus={options.ray_cpus}; expected a positive number of CPUs per file")
        if options.ext.lower() not in OUTPUT_EXTENSIONS:
            raise ConfigError(f"ext='{options.ext}' is not one of: {', '.join(OUTPUT_EXTENSIONS)}")
        if options.finetune != 0:
            finetune_settings(options.finetune)  # N >= 1 or 'auto', else a one-line ConfigError
        if options.ray and importlib.util.find_spec("ray") is None:
            raise ConfigError(f"ray='{options.ray}' needs Ray, which is not installed: pip install 'vidanime[ray]' "
                              "(from a checkout: pip install .[ray])")
        if options.ray:
            check_ray_address(options.ray)
        if options.translate.preview:
            raise ConfigError("translate preview is per file; it is not supported in a batch (leave preview unset)")
        TranslatePipeline.check_options(options.translate)
        check_output_path(dst, "output folder", folder=True)  # a folder that takes files (not /proc, read-only...)

    def plan(self, in_dir: str | os.PathLike, out_dir: str | os.PathLike, options: BatchOptions) -> list[BatchTask]:
        """All tasks of the folder (done or not), in order."""
        src, dst = Path(in_dir).resolve(), Path(out_dir).resolve()
        inputs = discover_videos(src, exclude=dst if _is_within(dst, src) else None)
        if not inputs:
            raise MediaError(f"no videos found in {in_dir} (looked for {', '.join(VIDEO_EXTENSIONS)}, any case)")
        return plan_outputs(src, dst, inputs, options.ext.lower())

    @staticmethod
    def _is_done(task: BatchTask, row: dict[str, Any] | None) -> bool:
        if row is None or row.get("status") != "done" or row.get("output") != task.output_key:
            return False
        if not Path(task.output).is_file():
            return False
        return BatchPipeline._same_input(task, row)  # a replaced input is translated again

    @staticmethod
    def _same_input(task: BatchTask, row: dict[str, Any]) -> bool:
        """Whether ``task``'s input still has the size and mtime its manifest ``row`` recorded."""
        try:
            stamp = _input_stamp(task.input)
        except OSError:
            return False
        return all(row.get(k) == v for k, v in stamp.items())

    # ---------------------------------------------------------------------------------------------------- run
    def __call__(self, in_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 options: BatchOptions | None = None) -> BatchResult:
        """Translate the pending files of ``in_dir`` into ``out_dir``; see the module docstring."""
        options = options or BatchOptions()
        self.check_inputs(in_dir, out_dir, options)
        t0 = time.perf_counter()
        tasks = self.plan(in_dir, out_dir, options)
        manifest = Manifest(Path(out_dir) / MANIFEST_NAME)
        result = BatchResult(manifest=str(manifest.path))
        tunable = isinstance(self.factory, PipelineSpec) and not self.factory.identity
        if finetune_requested(options.finetune) and not tunable:
            raise ConfigError(f"finetune={options.finetune} needs a StyleAnime checkpoint to fine-tune "
                              "(BatchPipeline.from_pretrained); the identity face model has none")
        job = _Job(replace(options.translate, progress=False), options.finetune, options.keep_finetune)
        with manifest:
            previous = manifest.read()
            _remove_stale_partials(tasks)
            todo = []
            for t in tasks:
                row = previous.get(t.key)
                if self._is_done(t, row):
                    result.skipped += 1
                elif row is not None and row.get("status") == "failed" and not options.retry_failed \
                        and row.get("output") == t.output_key and self._same_input(t, row):
                    result.failed_before.append(t.key)  # a replaced (fixed) input is tried again
                else:
                    todo.append(t)
            logger.info("batch: %d videos, %d to translate, %d already done%s", len(tasks), len(todo), result.skipped,
                        f", {len(result.failed_before)} failed earlier" if result.failed_before else "")
            bar = tqdm(total=len(todo), desc="batch", unit="file", disable=not options.progress or not todo)

            def record(row: dict[str, Any]) -> None:
                manifest.append(row)
                (result.done if row["status"] == "done" else result.failed).append(row)
                if row["status"] == "done":
                    logger.info("done %s: %s frames, %s faces, %.1f s", row["input"], row["frames"], row["faces"],
                                row["seconds"])
                else:
                    logger.warning("failed %s: %s", row["input"], row["reason"])
                bar.update(1)
                bar.set_postfix(failed=len(result.failed), refresh=False)

            try:
                with logging_redirect_tqdm():
                    if todo and options.ray:
                        self._run_ray(todo, job, options, record)
                    elif options.jobs > 1 and len(todo) > 1:
                        self._run_pool(todo, job, options, record)
                    elif todo:
                        self._run_here(todo, job, options, record)
            finally:
                bar.close()
        result.seconds = round(time.perf_counter() - t0, 2)
        logger.debug("%s", result.summary())  # the CLI prints it
        return result

    def _run_here(self, todo: list[BatchTask], job: _Job, options: BatchOptions,
                  record: Callable[[dict[str, Any]], None]) -> None:
        """jobs=1: in this process, one pipeline for all files (torch threads changed only when asked)."""
        old = torch.get_num_threads()
        if options.threads:
            _set_threads(options.threads)
        try:
            # a fine-tune builds a pipeline per file
            pipe = None if finetune_requested(job.finetune) else self.factory()
            for task in todo:
                record(run_file(self.factory, pipe, task, job))
        finally:
            if options.threads:
                _set_threads(old)

    def _run_pool(self, todo: list[BatchTask], job: _Job, options: BatchOptions,
                  record: Callable[[dict[str, Any]], None]) -> None:
        """jobs>1: worker processes (see :func:`_pool_context`), at most ``jobs`` files in flight.  When a worker
        dies, the files in flight are retried alone; a file whose worker dies twice is recorded as failed."""
        jobs = min(options.jobs, len(todo))
        threads = options.threads or max(1, _cores() // jobs)
        pending: deque[BatchTask] = deque(todo)
        suspects: set[str] = set()
        ctx = _pool_context()
        inflight: dict[Any, BatchTask] = {}

        def collect(fut: Any) -> None:
            task = inflight.pop(fut)
            try:
                out = fut.result()
            except Exception as exc:  # e.g. a result that cannot be pickled: recorded, the batch goes on
                out = _row(task, "failed", _one_line(exc))
            if "fatal" in out:
                raise out["fatal"]
            record(out)

        while pending:
            inflight.clear()
            broken = False
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
                try:
                    while pending or inflight:
                        while (pending and len(inflight) < jobs
                               and not any(t.key in suspects for t in inflight.values())
                               and not (pending[0].key in suspects and inflight)):
                            task = pending.popleft()
                            inflight[pool.submit(_worker_run, self.factory, task, job)] = task
                        finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                        for fut in finished:
                            if isinstance(fut.exception(), BrokenProcessPool):
                                broken = True
                                continue
                            collect(fut)
                        if broken:
                            break
                except BaseException:
                    for fut in inflight:
                        fut.cancel()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
            if broken:
                for fut in [f for f in inflight if f.done() and not isinstance(f.exception(), BrokenProcessPool)]:
                    collect(fut)  # finished just before the pool broke
                lost = list(inflight.values())
                _remove_stale_partials(lost)  # the pool killed their workers mid-write
                if len(lost) == 1 and lost[0].key in suspects:
                    record(_row(lost[0], "failed", _CRASH_REASON))
                else:
                    logger.warning("a worker process died; retrying alone: %s", ", ".join(t.key for t in lost))
                    suspects.update(t.key for t in lost)
                    pending.extendleft(reversed(lost))

    def _run_ray(self, todo: list[BatchTask], job: _Job, options: BatchOptions,
                 record: Callable[[dict[str, Any]], None]) -> None:
        """One Ray task per file (``ray_cpus`` CPUs, a GPU when the device is CUDA); the driver writes the manifest.
        IN_DIR and OUT_DIR must be at the same paths on every node (a shared filesystem)."""
        import ray  # here, not at the top: optional extra [ray]

        started = False
        if not ray.is_initialized():
            try:
                ray.init(address=options.ray, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot start or reach Ray at '{options.ray}': {_one_line(exc)}; expected "
                                  "auto (a running cluster), local, or a head address such as 10.0.0.1:6379") from None
            started = True
        device = str(getattr(self.factory, "device", "cpu"))
        remote = ray.remote(_worker_run).options(
            num_cpus=options.ray_cpus, num_gpus=1 if device.startswith("cuda") else 0, max_retries=1)
        threads = max(1, int(options.ray_cpus))
        try:
            factory_ref = ray.put(self.factory)
            refs = {remote.remote(factory_ref, task, job, threads): task for task in todo}
            while refs:
                finished, _ = ray.wait(list(refs), num_returns=1)
                for ref in finished:
                    task = refs.pop(ref)
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker died, task error: recorded, batch goes on
                        out = _row(task, "failed", f"ray task failed: {_one_line(exc)}")
                    if "fatal" in out:
                        for r in refs:
                            ray.cancel(r)
                        raise out["fatal"]
                    record(out)
        finally:
            if started:
                ray.shutdown()

