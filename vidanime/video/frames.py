"""Random access to the frames of a clip (the fine-tune samples triplets i-1, i, i+1): decord, with a PyAV fallback.

:class:`FrameSource` opens the clip with decord when it is installed and can read the file, else indexes it with PyAV
(one demux pass over packet timestamps, no decoding) and decodes from the nearest keyframe on demand.  Both return
upright RGB uint8 frames; clips with rotation metadata go to PyAV, since decord 0.6 crashes on them.
"""
from __future__ import annotations

import bisect
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MediaError
from .probe import VideoInfo, normalize_rotation, open_video, probe

__all__ = ["FrameSource", "open_frames"]

log = logging.getLogger(__name__)


class _PyAVFrames:
    """PyAV random access: frame i is the i-th presentation timestamp; decode forward from the keyframe before it."""

    def __init__(self, path: Path) -> None:
        import av

        container, vs = open_video(path)
        try:
            pts, keys = [], []
            for packet in container.demux(vs):
                if packet.pts is None:
                    continue
                pts.append(int(packet.pts))
                if packet.is_keyframe:
                    keys.append(int(packet.pts))
        except av.error.FFmpegError as exc:
            log.warning("indexing %s stopped early: %s", path, exc)
        finally:
            container.close()
        if not pts:
            raise MediaError(f"{path} has no video frames to index; expected a video file")
        self.pts = sorted(set(pts))
        self.keys = sorted(set(keys)) or [self.pts[0]]
        self.path = path
        self._container = None
        self._stream = None
        self._iter = None
        self._pos = None  # pts of the last decoded frame

    def __len__(self) -> int:
        return len(self.pts)

    def _seek(self, target_pts: int) -> None:
        if self._container is None:
            self._container, self._stream = open_video(self.path)
            self._stream.thread_type = "AUTO"
        self._container.seek(target_pts, stream=self._stream, backward=True, any_frame=False)
        self._iter = self._container.decode(self._stream)
        self._pos = None

    def get(self, indices: Sequence[int]) -> list[np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for i in sorted(set(indices)):
            target = self.pts[i]
            # Decode forward when the target lies ahead of us and no keyframe sits in between; else seek.
            ki = bisect.bisect_right(self.keys, target) - 1
            key = self.keys[max(ki, 0)]
            if self._iter is None or self._pos is None or self._pos >= target or self._pos < key:
                self._seek(key)
            while True:
                frame = next(self._iter, None)
                if frame is None:
                    raise MediaError(f"{self.path}: frame {i} could not be decoded (truncated file?)")
                self._pos = frame.pts
                if frame.pts is not None and frame.pts >= target:
                    out[i] = frame.to_ndarray(format="rgb24")
                    break
        return [out[i] for i in indices]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._iter = None


class FrameSource:
    """Frames of ``path`` by index: ``len(src)``, ``src.fps``, ``src.get_frames([i, j, k]) -> (N, H, W, 3) uint8``.

    ``backend``: "auto" (decord, else PyAV), "decord" or "pyav".  Indices are 0-based in presentation order; negative
    or out-of-range indices raise a MediaError naming the valid range.
    """

    def __init__(self, path: str | os.PathLike, backend: str = "auto") -> None:
        if backend not in ("auto", "decord", "pyav"):
            raise MediaError(f"backend={backend!r}; expected 'auto', 'decord' or 'pyav'")
        self.path = Path(path)
        self.info: VideoInfo = probe(path)  # also validates the file (missing, empty, not a video)
        self.rotation = normalize_rotation(self.info.rotation)
        self._decord = None
        self._pyav: _PyAVFrames | None = None
        if backend in ("auto", "decord"):
            self._decord = self._open_decord(strict=backend == "decord")
        if self._decord is None:
            self._pyav = _PyAVFrames(self.path)
        self.backend = "decord" if self._decord is not None else "pyav"

    def _open_decord(self, strict: bool):
        try:
            import decord
        except ImportError as exc:
            if strict:
                raise MediaError("backend='decord' but decord is not installed; "
                                 "pip install decord or use 'pyav'") from exc
            log.debug("decord not installed; using PyAV for random access")
            return None
        if self.rotation:
            # decord 0.6 sizes its output buffer for the rotated frame but copies the stored one (crash, checked).
            if strict:
                raise MediaError(f"decord cannot read {self.path} (rotation {self.rotation} deg); use backend 'pyav'")
            log.info("%s has rotation metadata, which decord mishandles; using PyAV", self.path.name)
            return None
        try:
            vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1)
            if len(vr) == 0:
                raise RuntimeError("no frames")
            return vr
        except (RuntimeError, decord.DECORDError) as exc:
            if strict:
                raise MediaError(f"decord cannot open {self.path}: {str(exc).splitlines()[0]}") from None
            log.info("decord cannot open %s (%s); using PyAV", self.path.name, str(exc).splitlines()[0][:120])
            return None

    def __len__(self) -> int:
        return len(self._decord) if self._decord is not None else len(self._pyav)

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as (N, H, W, 3) uint8 RGB, upright."""
        idx = [int(i) for i in indices]
        n = len(self)
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise MediaError(f"frame index {bad[0]} is out of range for {self.path.name}; expected 0..{n - 1}")
        if not idx:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        if self._decord is not None:
            arr = self._decord.get_batch(idx).asnumpy()
        else:
            arr = np.stack(self._pyav.get(idx))
        if self.rotation:  # PyAV path only (see _open_decord)
            arr = np.rot90(arr, k=self.rotation // 90, axes=(1, 2))
        return np.ascontiguousarray(arr)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.get_frames([i])[0]

    def close(self) -> None:
        self._decord = None
        if self._pyav is not None:
            self._pyav.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_frames(path: str | os.PathLike, backend: str = "auto") -> FrameSource:
    """Shorthand for :class:`FrameSource` (random access by index)."""
    return FrameSource(path, backend=backend)
