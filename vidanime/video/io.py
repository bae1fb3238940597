"""Streaming video decode and encode with PyAV: :class:`VideoReader` and :class:`VideoWriter`.

Typical use (the translate pipeline; :func:`vidanime.video.stages.run_stages` runs the same loop on three threads)::

    with VideoReader("in.mp4", start="2s", end="300f") as r:
        with VideoWriter("out.mp4", like=r, audio_from="in.mp4", crf=18, preset="medium") as w:
            for frame in r:                       # frame.image (H, W, 3) uint8 RGB, upright
                w.write(process(frame.image), pts=frame.pts)

Memory is one frame at a time (plus the codecs' own look-ahead), whatever the clip length.  Timing: frames carry the
source pts (``frame.pts`` in ``frame.time_base`` ticks, ``frame.time`` in seconds), and the writer keeps the source
time base, so variable-frame-rate clips keep their timestamps.  The output is written to a temporary name and renamed
only when :meth:`VideoWriter.close` succeeds; on an exception inside ``with`` the temporary file is deleted.
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import MediaError
from .probe import VideoInfo, normalize_rotation, open_video, probe

__all__ = ["Frame", "VideoReader", "VideoWriter", "parse_position", "probe", "VideoInfo", "X264_PRESETS",
           "check_video_output", "default_codec"]

# x264's speed presets (checked before any work: a bad one used to fail only when the encoder opened)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")

log = logging.getLogger(__name__)

_POS = re.compile(r"^\s*(?:(?P<frames>\d+)\s*f|(?:(?P<h>\d+):)??(?:(?P<m>\d+):)?(?P<s>\d+(?:\.\d*)?|\.\d+)\s*s?)\s*$")


@dataclass
class Frame:
    """One decoded frame: ``image`` (H, W, 3) uint8 RGB, upright; ``pts`` in ``time_base`` ticks (source clock);
    ``time`` = pts * time_base in seconds; ``index`` = 0-based frame number in the source (estimated from time after a
    seek into a variable-frame-rate clip)."""

    image: np.ndarray
    pts: int
    time: float
    index: int
    time_base: Fraction


def parse_position(value: str | float | int | None, what: str = "position") -> tuple[float, str] | None:
    """Parse a range end: a number of seconds (``12.5``, ``"12.5"``, ``"12.5s"``, ``"1:02.5"``) or a frame number
    (``"300f"``).  Returns ``(value, "s" | "f")`` or None; a bad value raises a one-line MediaError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MediaError(f"{what}={value!r} is not a time; expected seconds like 12.5 or a frame number like '300f'")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise MediaError(f"{what}={value!r} must be a non-negative number of seconds")
        return float(value), "s"
    m = _POS.match(str(value))
    if not m:
        raise MediaError(f"{what}={value!r} is not a time; expected seconds like 12.5, '1:02.5' or frames like '300f'")
    if m.group("frames") is not None:
        return float(int(m.group("frames"))), "f"
    secs = float(m.group("s")) + 60 * float(m.group("m") or 0) + 3600 * float(m.group("h") or 0)
    return secs, "s"


class VideoReader:
    """Stream the frames of ``path`` (any container/codec FFmpeg reads) as :class:`Frame` objects, RGB uint8, upright.

    ``start``/``end`` select ``[start, end)`` in seconds from the first frame (``12.5``, ``"1:02.5"``) or in frames
    (``"300f"``); the reader seeks to the keyframe before ``start`` and decodes forward, so the first frame is exact.
    ``info`` (:class:`VideoInfo`) has fps, time base, size, frame count (estimated when the container does not say),
    duration and audio; ``start_time``/``end_time`` are the selected range in source seconds (absolute pts clock).
    10-bit and odd-sized sources are converted to 8-bit RGB by swscale; rotation metadata is applied (multiples of 90).
    ``threads``: decoder threads (0 = FFmpeg's choice).  Each ``iter()`` decodes the range again from ``start``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        start: str | float | None = None,
        end: str | float | None = None,
        *,
        threads: int = 0,
        apply_rotation: bool = True,
    ) -> None:
        self.path = Path(path)
        self.info: VideoInfo = probe(path)
        self.apply_rotation = apply_rotation
        self.threads = int(threads)
        fps = float(self.info.fps)
        s, e = parse_position(start, "start"), parse_position(end, "end")
        # Selection in seconds relative to the first frame; a frame number n means time (n - 0.5)/fps so the frame
        # whose nominal time is n/fps falls on the right side of the cut even with rounding in the pts.
        self._t0 = 0.0 if s is None else (max(0.0, (s[0] - 0.5) / fps) if s[1] == "f" else s[0] - 1e-6)
        self._t1 = None if e is None else ((e[0] - 0.5) / fps if e[1] == "f" else e[0] - 1e-6)
        if self._t1 is not None and self._t1 <= self._t0:
            where = f"start={start!r}" if start is not None else "the start of the clip"
            raise MediaError(f"end={end!r} is not after {where}: the range would hold no frame; expected start < end")
        if s is not None and self._t0 >= self.info.duration > 0:
            raise MediaError(f"start={start!r} is past the end of {path} ({self.info.duration:.3f} s)")
        self._container = None

    # -- range -----------------------------------------------------------------------------------------------------
    @property
    def start_time(self) -> float:
        """Selected range start, in source seconds (same clock as ``Frame.time``)."""
        return self.info.start_time + max(0.0, self._t0)

    @property
    def end_time(self) -> float | None:
        """Selected range end (exclusive) in source seconds, or None for the end of the file."""
        return None if self._t1 is None else self.info.start_time + self._t1

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    @property
    def time_base(self) -> Fraction:
        return self.info.time_base

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the delivered frames."""
        return self.info.width, self.info.height

    def __len__(self) -> int:
        """Frames in the selected range (exact only for constant-frame-rate clips with a known frame count)."""
        fps = float(self.info.fps)
        end = self.info.frame_count if self._t1 is None else min(self.info.frame_count, math.ceil(self._t1 * fps))
        return max(0, end - math.ceil(max(0.0, self._t0) * fps - 1e-6))

    # -- decoding --------------------------------------------------------------------------------------------------
    def _open(self):
        self.close()
        container, vs = open_video(self.path)
        vs.thread_type = "AUTO"
        vs.thread_count = self.threads
        self._container = container
        return container, vs

    def _decoded(self, container, vs, damage: dict[str, int]) -> Iterator:
        """The frames of ``vs``, packet by packet: a packet the decoder refuses (corrupt data in the middle of a clip)
        is skipped and counted in ``damage["undecodable"]``, packets and frames FFmpeg flags as corrupt (decoded with
        concealment) in ``damage["corrupt"]``; a file that yields no frame at all is a MediaError."""
        import av

        frames = 0
        try:
            for packet in container.demux(vs):
                try:
                    decoded = packet.decode()
                except av.error.EOFError:
                    return
                except av.error.InvalidDataError as exc:
                    damage["undecodable"] += 1
                    if damage["undecodable"] == 1:
                        log.debug("%s: packet at pts %s not decodable: %s", self.path, packet.pts, exc)
                    continue
                if packet.is_corrupt:
                    damage["corrupt"] += 1
                for frame in decoded:
                    if frame.is_corrupt and not packet.is_corrupt:
                        damage["corrupt"] += 1
                    frames += 1
                    yield frame
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            raise MediaError(f"decoding {self.path} failed: {exc.strerror or exc} "
                             "(truncated or corrupt file?)") from None
        if not frames and damage["undecodable"]:
            raise MediaError(f"decoding {self.path} failed: none of its {damage['undecodable']} damaged packets "
                             "could be decoded (truncated or corrupt file?)")

    def _warn_damage(self, damage: dict[str, int], complete: bool = False) -> None:
        """One warning line per pass over the clip when the decoder met damaged data; after a ``complete`` pass it
        also says how many of the frames the header announces came out (a truncated file loses its tail)."""
        parts = ([f"{damage['undecodable']} undecodable packet(s) skipped"] if damage["undecodable"] else []) + \
                ([f"{damage['corrupt']} corrupt packet(s)/frame(s) concealed"] if damage["corrupt"] else [])
        if not parts:
            return
        expected = len(self) if complete else 0
        short = (f"; only {damage['delivered']} of the {expected} frames its header lists could be read"
                 if damage["delivered"] < expected else "")
        log.warning("%s is damaged: %s by the decoder%s; the output may miss frames or show the damage there",
                    self.path, " and ".join(parts), short)

    def __iter__(self) -> Iterator[Frame]:
        container, vs = self._open()
        tb = Fraction(vs.time_base)
        fps = float(self.info.fps)
        t_first = self.info.start_time
        seeked = False
        if self._t0 > 0.5:  # seek to the keyframe before start, then decode forward (exact first frame)
            target = int(math.floor((t_first + self._t0 - 0.25) / tb))
            container.seek(target, stream=vs, backward=True, any_frame=False)
            seeked = True
        rot = normalize_rotation(self.info.rotation) if self.apply_rotation else 0
        damage = {"undecodable": 0, "corrupt": 0, "delivered": 0}
        try:
            yield from self._frames(container, vs, tb, fps, t_first, seeked, rot, damage)
        except GeneratorExit:  # the caller stopped early: say what it met so far
            self._warn_damage(damage)
            raise
        self._warn_damage(damage, complete=True)
        self.close()

    def _frames(self, container, vs, tb: Fraction, fps: float, t_first: float, seeked: bool, rot: int,
                damage: dict[str, int]) -> Iterator[Frame]:
        """The frames of the selected range, upright RGB (the body of :meth:`__iter__`)."""
        index = 0
        first_done = False
        frames = self._decoded(container, vs, damage)
        while True:
            frame = next(frames, None)
            if frame is None:
                break
            if frame.pts is None:
                frame.pts = int(round(index / fps / tb))
            t = float(frame.pts * tb)
            rel = t - t_first
            if seeked and not first_done and rel > self._t0 + 1.0 / fps:
                # Seek landed after the target (broken index): start over from the beginning.
                log.debug("seek overshoot in %s (%.3f s > %.3f s); decoding from the start", self.path, rel, self._t0)
                container.seek(0, stream=vs, backward=True)
                frames, seeked = self._decoded(container, vs, damage), False
                damage.update(undecodable=0, corrupt=0)  # counted again from the start
                continue
            if rel < self._t0:
                index += 1
                continue
            if self._t1 is not None and rel >= self._t1:
                break
            if not first_done and seeked:
                index = int(round(rel * fps))
            first_done = True
            img = frame.to_ndarray(format="rgb24")
            if rot:
                img = np.ascontiguousarray(np.rot90(img, k=rot // 90))
            damage["delivered"] += 1
            yield Frame(image=img, pts=int(frame.pts), time=t, index=index, time_base=tb)
            index += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()



_CONTAINER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}
_TIMING_LOSSY = ("avi",)  # containers with a fixed frame rate per stream: our time base and pts do not survive


def default_codec(path: str | os.PathLike) -> str:
    """The video codec :class:`VideoWriter` uses for ``path``: VP9 for .webm, else H.264."""
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


def check_video_output(path: str | os.PathLike, what: str = "output video", codec: str | None = None) -> Path:
    """Check, before any work (models, decoding), that :class:`VideoWriter` can write ``path``: a writable place (see
    :func:`~vidanime.fileio.check_output_path`) and a container, guessed from the suffix, that holds the codec (probed
    by opening a few-byte file of that container in a temporary folder, a few ms).  One-line MediaError otherwise."""
    import tempfile

    import av

    from ..fileio import check_output_path

    p = check_output_path(path, what)
    codec = codec or default_codec(p)
    ext = p.suffix.lower().lstrip(".")
    expected = "expected .mp4, .mkv, .mov or .webm"
    if not ext:
        raise MediaError(f"{what} {p} has no suffix to choose a container from; {expected}")
    if ext in _TIMING_LOSSY:  # opens and encodes, but cannot keep the frame times (an AVI came out as 600 fps, VFR)
        raise MediaError(f"cannot write {what} {p}: the '.{ext}' container cannot keep the frame timing vidanime "
                         f"writes; {expected}")
    with tempfile.TemporaryDirectory(prefix="vidanime-") as tmp:
        try:
            container = av.open(os.path.join(tmp, f"probe.{ext}"), mode="w", options=_CONTAINER_OPTIONS.get(ext, {}))
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(f"cannot write {what} {p}: {exc} (unknown suffix '.{ext}'?); {expected}") from None
        try:
            stream = container.add_stream(codec, rate=25)
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"preset": "ultrafast"}
            container.start_encoding()
        except (av.error.FFmpegError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, av.error.FFmpegError) else exc
            from ..data.images import IMAGE_EXTENSIONS

            still = " (for a photo: vidanime image translate IN OUT)" if f".{ext}" in IMAGE_EXTENSIONS else ""
            raise MediaError(f"cannot write {what} {p}: the '.{ext}' container cannot hold {codec} video ({why}); "
                             f"{expected}{still}") from None
        finally:
            container.close()
    return p


def _source_has_audio(path: str | os.PathLike) -> bool:
    import av

    try:
        with av.open(str(path), mode="r") as c:
            return bool(c.streams.audio)
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read audio source {path}: {exc.strerror or exc}") from None


class VideoWriter:
    """Encode RGB uint8 frames to ``path`` (H.264/yuv420p via libx264; VP9 for .webm), keeping timing and audio.

    Timing: ``like`` (a :class:`VideoReader` or :class:`VideoInfo`) or ``fps``/``time_base`` give the output's frame
    rate and time base (the source's, so pts carry over; VFR clips keep their timestamps).  ``write(image, pts=...)``
    takes pts in that time base, on the source clock (``Frame.pts``); the output is rebased so the first frame is at 0.
    Without ``pts`` frames are spaced 1/fps.
    Audio: the first audio stream of ``audio_from`` is muxed in (packet copy, or re-encoded when the container cannot
    hold the codec; see :mod:`vidanime.video.audio`), limited to ``audio_range`` (source seconds; taken from ``like``
    when it is a reader with ``start``/``end``) and shifted with the video.  A source without audio gives a silent
    output.
    Size: yuv420p needs even width and height; odd sizes are padded by repeating the last row/column (``even="pad"``,
    default, no pixel lost) or cropped by one (``even="crop"``).  All frames must have the first frame's shape.
    Quality: ``crf`` (0-51, lower is better; 18 is visually lossless) and ``preset`` (ultrafast ... veryslow).
    Atomic: data goes to a hidden ``.<name>.*.partial.<ext>`` beside ``path`` and is renamed on a successful
    :meth:`close`; an exception inside ``with`` (or :meth:`abort`) deletes it, so no half-written file looks finished.
    Refuses to write over any input (``like``'s file, ``audio_from``, ``inputs``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        like: "VideoReader | VideoInfo | None" = None,
        *,
        fps: Fraction | float | None = None,
        time_base: Fraction | None = None,
        audio_from: str | os.PathLike | None = None,
        audio_range: tuple[float | None, float | None] | None = None,
        crf: int = 18,
        preset: str = "medium",
        codec: str | None = None,
        even: str = "pad",
        threads: int = 0,
        inputs: tuple[str | os.PathLike, ...] = (),
    ) -> None:
        import av

        from ..fileio import atomic_path, check_not_same_file

        self.path = Path(path)
        info = like.info if isinstance(like, VideoReader) else like
        if isinstance(like, VideoReader) and audio_range is None:
            audio_range = (like.start_time, like.end_time)
        fps = fps if fps is not None else (info.fps if info is not None else None)
        if fps is None or float(fps) <= 0:
            raise MediaError(f"fps={fps!r} for {path}; expected a positive frame rate (pass like= or fps=)")
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.time_base = Fraction(time_base) if time_base else (info.time_base if info is not None else 1 / self.fps)
        if not 0 <= int(crf) <= 51:
            raise MediaError(f"crf={crf!r}; expected an integer in 0..51 (18 is visually lossless)")
        if even not in ("pad", "crop"):
            raise MediaError(f"even={even!r}; expected 'pad' or 'crop'")
        self.crf, self.preset, self.even, self.threads = int(crf), str(preset), even, int(threads)
        self.codec = codec or default_codec(self.path)
        if self.codec == "libx264" and self.preset not in X264_PRESETS:
            raise MediaError(f"preset={preset!r} is not an x264 preset; expected one of {', '.join(X264_PRESETS)}")
        if self.codec not in av.codecs_available:
            raise MediaError(f"video codec {self.codec} is not in this PyAV build; expected libx264")
        sources = [p for p in (*inputs, audio_from, info.path if info is not None else None) if p is not None]
        for src in sources:
            check_not_same_file(src, self.path)
        self.audio_from = audio_from if audio_from is not None and _source_has_audio(audio_from) else None
        self.audio_range = audio_range or (None, None)
        self._atomic = atomic_path(self.path)
        try:
            self._tmp = self._atomic.__enter__()
        except OSError as exc:
            raise MediaError(f"cannot write {self.path}: {exc.strerror or exc}; expected a writable folder") from None
        self._container = None
        self._stream = None
        self._audio = None
        self._size: tuple[int, int] | None = None
        self._first_pts: int | None = None
        self._last_pts: int | None = None
        self._closed = False
        self.frames_written = 0
        try:
            self._open_container()  # fails early on an unknown extension
        except BaseException as exc:
            self._discard(exc)
            raise

    # -- set-up ------------------------------------------------------------------------------------------------------
    def _open_container(self) -> None:
        import av

        ext = self.path.suffix.lower().lstrip(".")
        try:
            self._container = av.open(str(self._tmp), mode="w", options=_CONTAINER_OPTIONS.get(ext, {}))
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(
                f"cannot write {self.path}: {exc} (unknown extension?); expected .mp4, .mkv, .mov or .webm"
            ) from None

    def _add_streams(self, width: int, height: int, reencode_audio: bool) -> None:
        from .audio import AudioTrack

        s = self._container.add_stream(self.codec, rate=self.fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.time_base = self.time_base
        s.codec_context.time_base = self.time_base
        s.thread_count = self.threads
        if self.codec == "libx264":
            s.options = {"crf": str(self.crf), "preset": self.preset}
        elif "vpx" in self.codec:
            s.options = {"crf": str(self.crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
        self._stream = s
        if self.audio_from is not None:
            a0, a1 = self.audio_range
            self._audio = AudioTrack(self.audio_from, self._container, start=a0, end=a1, reencode=reencode_audio)

    def _start(self, height: int, width: int) -> None:
        import av

        if self.even == "pad":
            w2, h2 = width + width % 2, height + height % 2
        else:
            w2, h2 = width - width % 2, height - height % 2
        if w2 < 2 or h2 < 2:
            raise MediaError(f"frame size {width}x{height} is too small to encode; expected at least 2x2")
        if (w2, h2) != (width, height):
            log.info("%s: %dx%d is odd; %s to %dx%d for yuv420p", self.path.name, width, height,
                     "padding" if self.even == "pad" else "cropping", w2, h2)
        self._size = (height, width)
        self._add_streams(w2, h2, reencode_audio=False)
        try:
            self._container.start_encoding()
        except av.error.FFmpegError as exc:
            if self._audio is None or not self._audio.copy:
                raise MediaError(f"cannot start writing {self.path}: {exc.strerror or exc}") from None
            log.info("%s cannot hold %s audio (%s); re-encoding it", self.path.name, self._audio.codec, exc)
            self._audio.close()
            self._container.close()
            self._open_container()
            self._add_streams(w2, h2, reencode_audio=True)
            self._container.start_encoding()
        if self._audio is not None:
            log.info("%s: audio %s (%s)", self.path.name, self._audio.codec,
                     "copied" if self._audio.copy else "re-encoded")

    # -- writing -----------------------------------------------------------------------------------------------------
    def _fit(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.even == "pad" and (h % 2 or w % 2):
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        elif self.even == "crop" and (h % 2 or w % 2):
            image = np.ascontiguousarray(image[: h - h % 2, : w - w % 2])
        return image

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; ``pts`` in :attr:`time_base` ticks on the source clock (or None)."""
        import av

        if self._closed:
            raise MediaError(f"{self.path} is already closed; cannot write more frames")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
            raise MediaError(f"frame for {self.path.name} is {got}; expected an (H, W, 3) uint8 RGB array")
        if self._size is None:
            self._start(*image.shape[:2])
        elif image.shape[:2] != self._size:
            raise MediaError(f"frame {self.frames_written} is {image.shape[1]}x{image.shape[0]}; expected "
                             f"{self._size[1]}x{self._size[0]} like the first frame")
        if pts is None:
            step = max(1, int(round(1 / (self.fps * self.time_base))))
            pts = 0 if self._last_pts is None else self._last_pts + step
            if self._first_pts is None:
                self._first_pts = 0
        pts = int(pts)
        if self._first_pts is None:
            self._first_pts = pts
            if self._audio is not None:
                self._audio.set_offset(float(pts * self.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            log.warning("%s: pts %d not after %d; bumped", self.path.name, pts, self._last_pts)
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(self._fit(image)), format="rgb24")
        frame.pts = pts - self._first_pts
        frame.time_base = self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1
        if self._audio is not None:
            self._audio.mux_until(float(frame.pts * self.time_base) + 0.5)

    # -- finishing ---------------------------------------------------------------------------------------------------
    def close(self) -> Path:
        """Flush the encoders, finish the audio, close the file and rename it into place; returns the final path."""
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise MediaError(f"no frames were written to {self.path}; the selected range may be empty")
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.finish()
            self._container.close()
            self._container = None
        except BaseException as exc:
            self._discard(exc)
            raise
        self._closed = True
        self._atomic.__exit__(None, None, None)
        log.debug("wrote %s (%d frames)", self.path, self.frames_written)
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left as it was."""
        if not self._closed:
            self._discard(_Aborted(str(self.path)))

    def _discard(self, exc: BaseException) -> None:
        self._closed = True
        for closer in (self._audio, self._container):
            if closer is not None:
                try:
                    closer.close()
                except Exception as err:  # already failing: the temp file is deleted next, log and go on
                    log.debug("while discarding %s: %s", self.path, err)
        self._container = None
        try:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException as raised:
            if raised is not exc:
                raise

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self._discard(exc)


class _Aborted(Exception):
    """Internal marker passed to the atomic-path context when a write is abandoned."""
