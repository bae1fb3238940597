"""Carrying a source file's audio into an output container while the video is being encoded (PyAV, streaming).

Packets are **copied** when the output container can hold the codec (AAC into mp4/mov/mkv), else decoded and
re-encoded to the container's default audio codec (AAC for mp4/mov, Opus for webm).  A time range ``[start, end)``
(source seconds) trims the audio: copied packets are kept when they *start* inside the range, so the cut is accurate
to one audio frame (1024 samples = 21-23 ms for AAC) and there is no re-encode; the re-encode path trims to the sample.
Timestamps are shifted by ``offset`` seconds (the time of the first video frame written) so audio stays in sync.
Packets are muxed progressively (:meth:`AudioTrack.mux_until`), interleaved with the video, so memory stays flat.
"""
from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from typing import Iterator

from ..errors import MediaError

__all__ = ["AudioTrack"]

log = logging.getLogger(__name__)


# The mp4 muxer accepts some codecs at header time but fails at the trailer (PCM, checked with FFmpeg 8): allowlist.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def _can_copy(codec: str, out) -> bool:
    """Whether packets of ``codec`` can be copied into the output container ``out`` as they are."""
    if out.format.name in ("mp4", "ipod", "3gp"):
        return codec in _MP4_AUDIO
    return codec in out.supported_codecs


class AudioTrack:
    """The first audio stream of ``src`` on its way into ``out`` (an open PyAV output container).

    Create it after the video stream and before the container starts writing; call :meth:`mux_until` with the output
    time of each video frame, then :meth:`finish` before closing the container.
    """

    def __init__(
        self,
        src: str | os.PathLike,
        out,
        start: float | None = None,
        end: float | None = None,
        reencode: bool = False,
    ) -> None:
        import av

        self.src = str(src)
        self.start = float(start) if start else 0.0
        self.end = None if end is None else float(end)
        self.offset = self.start
        try:
            self._in = av.open(self.src, mode="r")
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot read audio from {src}: {exc.strerror or exc}") from None
        if not self._in.streams.audio:
            self._in.close()
            raise MediaError(f"{src} has no audio stream to copy; expected a file with audio (or pass audio_from=None)")
        self._ins = self._in.streams.audio[0]
        name = self._ins.codec_context.name
        self.copy = not reencode and _can_copy(name, out)
        if self.copy:
            self.stream = out.add_stream_from_template(self._ins)
            self.codec = name
        else:
            codec = out.default_audio_codec
            if not codec or codec == "none":
                raise MediaError(f"output container {out.format.name} cannot hold audio; choose .mp4, .mkv or .mov")
            rate = self._ins.codec_context.sample_rate or 48000
            if codec in ("libopus", "opus"):
                rate = 48000  # Opus only runs at 48 kHz
            self.stream = out.add_stream(codec, rate=rate)
            # Named layouts only (a source may say "2 channels"); more than two channels are downmixed to stereo.
            self.stream.layout = "mono" if self._ins.codec_context.channels == 1 else "stereo"
            self.stream.bit_rate = 192_000
            self.codec = codec
            self._resampler = None
        self._out = out
        self._packets: Iterator | None = None
        self._pending = None
        self._done = False
        self.muxed = 0

    def set_offset(self, seconds: float) -> None:
        """Output time 0 corresponds to source time ``seconds`` (the first video frame); call before muxing."""
        self.offset = float(seconds)

    # -- source side -------------------------------------------------------------------------------------------------
    def _source_packets(self) -> Iterator:
        import av

        tb = self._ins.time_base
        if self.start > 0:
            self._in.seek(max(0, int(math.floor((self.start - 0.5) / tb))), stream=self._ins, backward=True)
        try:
            for packet in self._in.demux(self._ins):
                if packet.pts is None and packet.dts is None:
                    continue  # flush packet
                yield packet
        except av.error.FFmpegError as exc:
            log.warning("audio of %s ends early: %s", self.src, exc)

    def _in_range(self, t: float) -> bool:
        return t >= self.start - 1e-6 and (self.end is None or t < self.end - 1e-6)

    # -- output side -------------------------------------------------------------------------------------------------
    def mux_until(self, out_time: float) -> None:
        """Mux source audio whose output time is below ``out_time`` seconds."""
        if self._done:
            return
        if self._packets is None:
            self._packets = self._source_packets()
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                self._done = True
                return
            t = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
            if self.end is not None and t >= self.end - 1e-6:
                self._done = True
                return
            if t - self.offset >= out_time:
                self._pending = packet
                return
            if not self._in_range(t):
                continue
            if self.copy:
                self._mux_copy(packet)
            else:
                self._mux_reencode(packet)

    def _mux_copy(self, packet) -> None:
        shift = int(round(self.offset / packet.time_base))
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        if (packet.dts if packet.dts is not None else packet.pts) < 0:
            return  # before the first video frame (only when the source audio starts earlier)
        packet.stream = self.stream
        self._out.mux(packet)
        self.muxed += 1

    def _mux_reencode(self, packet) -> None:
        import av

        if self._resampler is None:
            cc = self.stream.codec_context
            self._resampler = av.AudioResampler(
                format=cc.format.name, layout=cc.layout.name, rate=cc.sample_rate, frame_size=cc.frame_size or None
            )
            self._next_pts = 0
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            log.warning("skipping an undecodable audio packet in %s: %s", self.src, exc)
            return
        for frame in frames:
            frame = self._trim(frame)
            if frame is not None:
                self._encode(self._resampler.resample(frame))

    def _trim(self, frame):
        """Cut a decoded frame to the range (sample-accurate) and shift its pts by the offset."""
        t0 = float(frame.time)
        rate = frame.sample_rate
        n = frame.samples
        lo = max(0, int(round((max(self.start, self.offset) - t0) * rate)))
        hi = n if self.end is None else min(n, int(round((self.end - t0) * rate)))
        if hi <= lo:
            return None
        if lo > 0 or hi < n:
            import av

            arr = frame.to_ndarray()
            planar = frame.format.is_planar
            arr = arr[:, lo:hi] if planar else arr[:, lo * len(frame.layout.channels) : hi * len(frame.layout.channels)]
            new = av.AudioFrame.from_ndarray(arr, format=frame.format.name, layout=frame.layout.name)
            new.sample_rate = rate
            frame, t0 = new, t0 + lo / rate
        frame.pts = int(round((t0 - self.offset) * rate))
        frame.time_base = Fraction(1, rate)
        return frame

    def _encode(self, frames) -> None:
        for f in frames:
            if f.pts is None:
                f.pts = self._next_pts
            self._next_pts = f.pts + f.samples
            for p in self.stream.encode(f):
                self._out.mux(p)
                self.muxed += 1

    def finish(self) -> None:
        """Mux the rest of the range and flush the encoder (re-encode path)."""
        self.mux_until(math.inf)
        if not self.copy and self._resampler is not None:
            self._encode(self._resampler.resample(None))
            for p in self.stream.encode(None):
                self._out.mux(p)
                self.muxed += 1
        self.close()

    def close(self) -> None:
        self._packets = None
        self._pending = None
        self._in.close()
