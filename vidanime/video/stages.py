"""Decode → process → encode on three threads joined by bounded queues, so the slowest stage sets the pace.

A background thread decodes (:class:`~vidanime.video.io.VideoReader`), the calling thread runs the model
(``process_fn``; the caller's thread keeps torch/CUDA state where the caller set it up), and a background thread
encodes (:class:`~vidanime.video.io.VideoWriter`).  Queues hold at most ``queue_size`` frames each, so memory stays
flat with clip length.  PyAV releases the GIL while decoding/encoding/converting, so the stages really overlap.
An exception in any stage (or Ctrl-C) stops the other two and is re-raised in the caller; the writer is then left
for its ``with`` block to discard (no partial output).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .io import Frame

__all__ = ["run_stages", "run_serial", "StageStats"]

log = logging.getLogger(__name__)

_END = object()  # end-of-stream marker


@dataclass
class StageStats:
    """What a run did: frames through, wall seconds, frames per second, and seconds each stage spent blocked."""

    frames: int
    seconds: float
    decode_wait: float = 0.0  # decoder blocked on a full queue (downstream slower)
    encode_wait: float = 0.0  # encoder blocked on an empty queue (upstream slower)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stop(Exception):
    """Raised inside a stage when another stage failed."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> float:
    t0 = time.perf_counter()
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=0.05)
            return time.perf_counter() - t0
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> tuple[Any, float]:
    t0 = time.perf_counter()
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=0.05), time.perf_counter() - t0
        except queue.Empty:
            continue


def _progress(total: int | None, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="frame", dynamic_ncols=True, leave=False)


def _apply(process_fn: Callable, batch: list[Frame], batched: bool) -> list[np.ndarray]:
    if not batched:
        return [process_fn(batch[0])]
    out = process_fn(batch)
    if len(out) != len(batch):
        raise ValueError(f"process_fn returned {len(out)} images for a batch of {len(batch)}; expected one per frame")
    return list(out)


def run_stages(
    frames: Iterable[Frame],
    process_fn: Callable[[Frame], np.ndarray] | Callable[[Sequence[Frame]], Sequence[np.ndarray]],
    writer,
    *,
    queue_size: int = 8,
    batch_size: int | None = None,
    progress: bool = True,
    total: int | None = None,
    desc: str = "frames",
) -> StageStats:
    """Run ``frames`` (e.g. a VideoReader) through ``process_fn`` into ``writer`` (``write(image, pts=...)``).

    ``process_fn(frame) -> (H, W, 3) uint8`` runs in the calling thread; with ``batch_size=n`` it receives lists of up
    to n frames and returns one image per frame.  Each output keeps its input frame's pts.  The caller owns (and
    closes) ``frames`` and ``writer``.  Returns :class:`StageStats`; a progress bar shows the frame rate.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size={queue_size}; expected >= 1")
    batched = batch_size is not None
    bs = max(1, int(batch_size or 1))
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    errors: list[BaseException] = []
    waits = {"decode": 0.0, "encode": 0.0}
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]

    def decode() -> None:
        try:
            for frame in frames:
                waits["decode"] += _put(q_in, frame, stop)
            _put(q_in, _END, stop)
        except _Stop:
            pass  # another stage failed; its error is the one reported
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def encode() -> None:
        try:
            while True:
                item, waited = _get(q_out, stop)
                waits["encode"] += waited
                if item is _END:
                    return
                image, pts = item
                writer.write(image, pts=pts)
        except _Stop:
            pass
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=decode, name="vidanime-decode", daemon=True),
               threading.Thread(target=encode, name="vidanime-encode", daemon=True)]
    for t in threads:
        t.start()
    n = 0
    t0 = time.perf_counter()
    bar = _progress(total, progress, desc)
    try:
        done = False
        while not done:
            batch: list[Frame] = []
            while len(batch) < bs:
                item, _ = _get(q_in, stop)
                if item is _END:
                    done = True
                    break
                batch.append(item)
            if batch:
                for frame, image in zip(batch, _apply(process_fn, batch, batched)):
                    _put(q_out, (image, frame.pts), stop)
                n += len(batch)
                bar.update(len(batch))
        _put(q_out, _END, stop)
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.1)
                if stop.is_set():
                    break
    except _Stop:
        pass
    except BaseException as exc:
        errors.append(exc)
        stop.set()
    finally:
        stop_now = bool(errors)
        if stop_now:
            stop.set()
        for t in threads:
            t.join(timeout=30)
        bar.close()
    if errors:
        raise errors[0]
    seconds = time.perf_counter() - t0
    log.debug("stages: %d frames in %.2f s (decode blocked %.2f s, encode starved %.2f s)",
              n, seconds, waits["decode"], waits["encode"])
    return StageStats(frames=n, seconds=seconds, decode_wait=waits["decode"], encode_wait=waits["encode"])


def run_serial(frames: Iterable[Frame], process_fn: Callable[[Frame], np.ndarray], writer,
               progress: bool = False) -> StageStats:
    """The same job in one loop on one thread (reference for tests and the benchmark's speed-up ratio)."""
    n = 0
    t0 = time.perf_counter()
    bar = _progress(len(frames) if hasattr(frames, "__len__") else None, progress, "frames")  # type: ignore[arg-type]
    try:
        for frame in frames:
            writer.write(process_fn(frame), pts=frame.pts)
            n += 1
            bar.update(1)
    finally:
        bar.close()
    return StageStats(frames=n, seconds=time.perf_counter() - t0)
