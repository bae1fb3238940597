"""Identity (or per-frame) transcode: decode → ``process_fn`` → encode with timing and audio kept.

The thinnest end-to-end use of :mod:`vidanime.video`: ``vidanime transcode in.mp4 out.mp4 --start 2 --end 300f``
re-encodes (and trims) a clip; tests and the benchmark use it to check the whole I/O path.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.base import Pipeline
from vidanime.errors import MediaError
from vidanime.fileio import check_not_same_file
from vidanime.video.io import Frame, VideoReader, VideoWriter
from vidanime.video.stages import StageStats, run_serial, run_stages

__all__ = ["TranscodePipeline", "transcode"]

log = logging.getLogger(__name__)


def _identity(frame: Frame) -> np.ndarray:
    return frame.image


@dataclass
class TranscodePipeline(Pipeline):
    """Re-encode ``input`` to ``output`` (H.264 CRF ``crf``), optionally trimmed to ``[start, end)`` and passed through
    ``process_fn(frame) -> (H, W, 3) uint8``; audio is kept (``audio=False`` drops it)."""

    crf: int = 18
    preset: str = "medium"
    queue_size: int = 8
    concurrent: bool = True
    audio: bool = True
    progress: bool = True

    def check_inputs(self, input: str | os.PathLike, output: str | os.PathLike) -> None:
        """One-line MediaError for an unusable pair of paths (before any decoding)."""
        check_not_same_file(input, output)
        out = Path(output)
        if out.exists() and out.is_dir():
            raise MediaError(f"output path {out} is a folder; expected a file name like out.mp4")

    def __call__(
        self,
        input: str | os.PathLike,
        output: str | os.PathLike,
        start: str | float | None = None,
        end: str | float | None = None,
        process_fn: Callable[[Frame], np.ndarray] | None = None,
    ) -> StageStats:
        self.check_inputs(input, output)
        fn = process_fn or _identity
        t0 = time.perf_counter()
        with VideoReader(input, start=start, end=end) as reader:
            with VideoWriter(output, like=reader, audio_from=input if self.audio else None,
                             crf=self.crf, preset=self.preset) as writer:
                if self.concurrent:
                    stats = run_stages(reader, fn, writer, queue_size=self.queue_size, progress=self.progress)
                else:
                    stats = run_serial(reader, fn, writer, progress=self.progress)
        stats.seconds = time.perf_counter() - t0  # the whole job, including the encoder's flush at close
        log.info("%s -> %s: %d frames, %.1f fps", input, output, stats.frames, stats.fps)
        return stats


def transcode(input: str | os.PathLike, output: str | os.PathLike, start: str | float | None = None,
              end: str | float | None = None, **kwargs) -> StageStats:
    """Functional shorthand for ``TranscodePipeline(**kwargs)(input, output, start, end)``."""
    return TranscodePipeline(**kwargs)(input, output, start=start, end=end)
