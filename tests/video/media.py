"""Synthetic clips for the video tests, written with PyAV: frame numbers drawn into the pixels, optional VFR pts,
display rotation, 10-bit, odd sizes and an audio track (AAC or PCM)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """Frame ``i`` of the synthetic clips: a smooth gradient (codec friendly) with ``i % 64`` written as two base-8
    digits in the grey levels (32 * digit + 16) of two 16x16 blocks at the top left: (H, W, 3) uint8."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), np.full_like(x, 128)], -1).astype(np.uint8)
    img[:16, :16] = 32 * ((i % 64) // 8) + 16
    img[:16, 16:32] = 32 * (i % 8) + 16
    return img


def frame_number(img: np.ndarray) -> int:
    """Inverse of :func:`pattern` (robust to codec noise)."""
    hi, lo = (int(np.clip(round((float(img[4:12, x:x + 8].mean()) - 16) / 32), 0, 7)) for x in (4, 20))
    return 8 * hi + lo


def yuv420p10_frame(img: np.ndarray) -> av.VideoFrame:
    """``img`` (H, W, 3) uint8 RGB as a 10-bit 4:2:0 frame, converted here (BT.601 limited range, 2x2 chroma mean with
    the edge repeated for odd sizes).  swscale's own rgb24 -> yuv420p10le path at odd widths is not deterministic
    (it gave 25.4 or 30.3 dB on the same input from run to run), so the fixture does not rely on it."""
    f = img.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape

    def half(c: np.ndarray) -> np.ndarray:
        c = np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge")
        return c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean((1, 3))

    frame = av.VideoFrame(w, h, "yuv420p10le")
    for plane, arr in zip(frame.planes, (y, half(cb), half(cr))):
        buf = np.zeros((arr.shape[0], plane.line_size // 2), np.uint16)
        buf[:, : arr.shape[1]] = np.round(arr * 4)
        plane.update(buf.tobytes()[: plane.buffer_size])
    return frame


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of (H, W, 3) RGB, float64 in [0, 255]."""
    f = img.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def make_clip(
    path: Path,
    n: int = 30,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    gop: int = 12,
    audio: str | None = None,
    audio_rate: int = 44100,
    audio_seconds: float | None = None,
) -> Path:
    """Write a clip of ``n`` frames (``size`` = (W, H) as stored) and return its path.

    ``pts``: explicit timestamps in ``time_base`` ticks (VFR); ``rotation``: display-matrix angle (counter-clockwise,
    PyAV's ``set_display_rotation``); ``audio``: "aac" or "pcm_s16le" (a 440 Hz tone lasting the video's duration).
    """
    w, h = size
    out = av.open(str(path), "w")
    s = out.add_stream(codec, rate=fps)
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    tb = time_base or Fraction(1, fps * 100)
    s.time_base = tb
    s.codec_context.time_base = tb
    if codec == "libx264":
        s.options = {"crf": "10", "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "bframes": "2"}
    if rotation:
        s.set_display_rotation(rotation)
    a = None
    if audio:
        a = out.add_stream(audio, rate=audio_rate)
        a.layout = "stereo"
    step = int(round(1 / (fps * tb)))
    for i in range(n):
        if pix_fmt == "yuv420p10le":
            frame = yuv420p10_frame(pattern(i, h, w))
        else:
            frame = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")
        frame.pts = pts[i] if pts is not None else i * step
        frame.time_base = tb
        for p in s.encode(frame):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    if a is not None:
        dur = audio_seconds if audio_seconds is not None else float((pts[-1] + step) * tb if pts else n / fps)
        total = int(round(dur * audio_rate))
        t = np.arange(total) / audio_rate
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        chunk = 1024
        for k in range(0, total, chunk):
            block = np.repeat(tone[None, k : k + chunk], 2, 0).T.reshape(1, -1)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="s16", layout="stereo")
            af.sample_rate = audio_rate
            af.pts = k
            af.time_base = Fraction(1, audio_rate)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    out.close()
    return path


def audio_duration(path: Path) -> float:
    """Seconds of audio played from ``path``: end of the last packet minus max(0, first pts), from the packets."""
    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        first, last_end = None, None
        for p in c.demux(st):
            if p.pts is None:
                continue
            t0 = float(p.pts * p.time_base)
            first = t0 if first is None else min(first, t0)
            last_end = t0 + float((p.duration or 0) * p.time_base)
        return (last_end or 0.0) - max(first or 0.0, 0.0)  # encoder priming (negative pts) is not played


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
