"""What a video file holds, as the reader will see it: :class:`VideoInfo` and :func:`probe` (PyAV, no ffprobe needed).

Also the shared input checks (missing, empty, not a video, image renamed .mp4, audio-only) that turn every unreadable
file into a one-line :class:`~vidanime.errors.MediaError`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import MediaError
from ..fileio import check_input_file

__all__ = ["AudioInfo", "VideoInfo", "probe", "open_video", "normalize_rotation"]

log = logging.getLogger(__name__)

# Demuxers that read single images: a .png/.jpg renamed .mp4 opens with these and yields one "frame".
_IMAGE_DEMUXERS = {"image2", "image2pipe", "gif", "webp_pipe", "apng"}


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream: codec, sample rate (Hz), channels, duration (s, 0 if unknown)."""

    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float
    bit_rate: int | None = None


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream as :class:`~vidanime.video.io.VideoReader` delivers it.

    ``width``/``height`` are the *displayed* size (rotation applied); ``coded_width``/``coded_height`` as stored.
    ``fps`` is the average frame rate (for VFR clips the per-frame pts are what counts), ``time_base`` the stream's
    tick (pts unit), ``start_time`` the first frame's time in seconds.  ``frame_count`` comes from the container when it
    says so (``frame_count_exact``), else it is ``round(duration * fps)``.  ``rotation`` is the counter-clockwise angle
    (degrees, multiple of 90) applied to decoded frames to show them upright.
    """

    path: str
    container: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    fps: Fraction
    time_base: Fraction
    start_time: float
    duration: float
    frame_count: int
    frame_count_exact: bool
    variable_frame_rate: bool
    bit_rate: int | None = None
    audio: AudioInfo | None = None
    other_streams: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (fractions as "num/den" strings) for JSON output."""
        d = asdict(self)
        d["fps"], d["time_base"] = str(self.fps), str(self.time_base)
        d["other_streams"] = list(self.other_streams)
        return d

    def describe(self) -> list[str]:
        """Human-readable lines (what `vidanime info` prints)."""
        rot = f", rotation {self.rotation} deg (stored {self.coded_width}x{self.coded_height})" if self.rotation else ""
        count = f"{self.frame_count} frames" + ("" if self.frame_count_exact else " (estimated)")
        vfr = ", variable frame rate" if self.variable_frame_rate else ""
        lines = [
            f"file:     {self.path} ({self.container})",
            f"video:    {self.codec} {self.pix_fmt}, {self.width}x{self.height}{rot}",
            f"timing:   {float(self.fps):.3f} fps ({self.fps}){vfr},"
            f" time base {self.time_base}, start {self.start_time:.3f} s, duration {self.duration:.3f} s, {count}",
        ]
        if self.audio:
            a = self.audio
            lines.append(f"audio:    {a.codec} {a.sample_rate} Hz, {a.channels} ch ({a.layout}), {a.duration:.3f} s")
        else:
            lines.append("audio:    none")
        if self.other_streams:
            lines.append(f"other:    {', '.join(self.other_streams)}")
        return lines


def normalize_rotation(degrees: float | int | None) -> int:
    """Round a display-matrix angle to a multiple of 90 in [0, 360); non-right angles are rounded with a warning."""
    if degrees is None:
        return 0
    r = int(round(float(degrees) / 90.0)) * 90 % 360
    if abs(((float(degrees) - r) + 180) % 360 - 180) > 1:
        log.warning("rotation %.1f deg is not a multiple of 90; using %d", degrees, r)
    return r


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"input video {p} does not exist; expected a path to a video file")
    check_input_file(p, "input video")  # a folder, FIFO or device is named as such
    if p.stat().st_size == 0:
        raise MediaError(f"input video {p} is empty (0 bytes); expected a video file")
    return p


def open_video(path: str | os.PathLike):
    """Open ``path`` with PyAV and return ``(container, video_stream)``; every failure is a one-line MediaError."""
    import av

    p = _check_path(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"cannot read {p}: {exc.strerror or exc} (truncated, corrupt or not a video?); expected a video file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"cannot read {p}: {exc}; expected a readable video file") from None
    try:
        fmt = container.format.name
        if set(fmt.split(",")) & _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
            raise MediaError(f"{p} is an image ({fmt}), not a video; expected a video file (for a photo: "
                             "vidanime image translate IN OUT)")
        if not container.streams.video:
            kinds = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "none"
            raise MediaError(f"{p} has no video stream (streams: {kinds}); expected a video file")
    except BaseException:
        container.close()
        raise
    return container, container.streams.video[0]


def _rate(stream) -> Fraction:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return Fraction(r)
    return Fraction(25)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the headers and decode the first frame of ``path`` (to learn rotation and prove it decodes)."""
    import av

    container, vs = open_video(path)
    with container:
        cc = vs.codec_context
        tb = Fraction(vs.time_base) if vs.time_base else Fraction(1, 90000)
        fps = _rate(vs)
        try:
            first = next(container.decode(vs), None)
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode {path}: {exc.strerror or exc}; the file looks corrupt") from None
        if first is None:
            raise MediaError(f"{path} has a video stream with no decodable frame (truncated?); expected a video file")
        rotation = normalize_rotation(first.rotation)
        start = float(first.time) if first.time is not None else 0.0
        if vs.duration:
            duration = float(vs.duration * tb)
        elif container.duration:
            duration = container.duration / 1e6
        else:
            duration = 0.0
        exact = bool(vs.frames)
        count = int(vs.frames) if exact else int(round(duration * fps))
        base = Fraction(vs.base_rate) if vs.base_rate else fps
        vfr = abs(float(base) - float(fps)) > 0.01 * float(fps)
        w, h = first.width, first.height
        disp = (h, w) if rotation in (90, 270) else (w, h)
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            ac = a.codec_context
            adur = float(a.duration * a.time_base) if a.duration and a.time_base else duration
            audio = AudioInfo(
                codec=ac.name,
                sample_rate=int(ac.sample_rate or 0),
                channels=int(ac.channels or 0),
                layout=ac.layout.name if ac.layout else "unknown",
                duration=adur,
                bit_rate=ac.bit_rate or None,
            )
        others = tuple(
            f"{s.type}#{s.index} {s.codec_context.name if s.codec_context else '?'}"
            for s in container.streams
            if s is not vs and not (audio and s is container.streams.audio[0])
        )
        return VideoInfo(
            path=str(path),
            container=container.format.name,
            codec=cc.name,
            pix_fmt=str(cc.pix_fmt or first.format.name),
            width=disp[0],
            height=disp[1],
            coded_width=w,
            coded_height=h,
            rotation=rotation,
            fps=fps,
            time_base=tb,
            start_time=start,
            duration=duration,
            frame_count=count,
            frame_count_exact=exact,
            variable_frame_rate=vfr,
            bit_rate=container.bit_rate or None,
            audio=audio,
            other_streams=others,
        )
