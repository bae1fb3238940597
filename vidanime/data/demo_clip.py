"""A demo input clip that exists on every fresh machine: a real face photo with smooth synthetic head motion.

The photo is scikit-image's public-domain ``astronaut`` (Eileen Collins, NASA), shipped inside the scikit-image wheel,
so ``make demo`` needs no download and no file from outside the package registries.  The clip gets a quiet tone as
its audio track so the demo also shows that audio is kept.
"""
from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import VidanimeError
from ..fileio import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["astronaut", "make_demo_clip"]

# Face centre of the 512x512 astronaut photo (pixels), measured by eye on the image.
_FACE_CENTER = (226.0, 118.0)


def astronaut() -> np.ndarray:
    """The public-domain astronaut photo, (512, 512, 3) uint8 RGB, from the scikit-image wheel."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise VidanimeError("the demo clip needs scikit-image (pip install scikit-image)") from exc
    return data.astronaut()


def _frame(image: np.ndarray, t: float, size: int) -> np.ndarray:
    """Frame at time ``t`` seconds: a similarity warp of ``image`` that sways, nods, and zooms gently."""
    import cv2

    cx, cy = _FACE_CENTER
    angle = 6.0 * math.sin(2 * math.pi * 0.35 * t)  # degrees of head roll
    scale = 1.25 + 0.08 * math.sin(2 * math.pi * 0.2 * t)
    dx = 18.0 * math.sin(2 * math.pi * 0.25 * t)
    dy = 8.0 * math.sin(2 * math.pi * 0.4 * t + 1.0)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    # put the face centre a bit above the middle of the output frame, plus the motion
    m[:, 2] += np.array([size / 2 - cx + dx, size * 0.42 - cy + dy])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def make_demo_clip(
    path: str | os.PathLike,
    seconds: float = 3.0,
    fps: int = 25,
    size: int = 384,
    tone_hz: float = 440.0,
    audio_rate: int = 44100,
) -> Path:
    """Write an H.264/AAC mp4 of the astronaut face moving smoothly; returns ``path``.

    ``size`` is the (square, even) frame size in pixels; ``seconds * fps`` frames are written.
    """
    import av

    if size % 2 or size < 64:
        raise VidanimeError(f"demo clip size must be even and >= 64, got {size}")
    image = astronaut()
    n_frames = max(1, round(seconds * fps))
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w") as out:
            vs = out.add_stream("libx264", rate=fps)
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": "18", "preset": "veryfast"}
            aus = out.add_stream("aac", rate=audio_rate)
            aus.layout = "stereo"
            for i in range(n_frames):
                frame = av.VideoFrame.from_ndarray(_frame(image, i / fps, size), format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            # tone with a soft 2 Hz tremolo, in chunks of 1024 samples (AAC frame size)
            n_samples = int(round(n_frames / fps * audio_rate))
            t = np.arange(n_samples) / audio_rate
            wave = (0.15 * np.sin(2 * np.pi * tone_hz * t)
                    * (0.75 + 0.25 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
            stereo = np.stack([wave, wave])
            for start in range(0, n_samples, 1024):
                chunk = np.ascontiguousarray(stereo[:, start : start + 1024])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                aframe.sample_rate = audio_rate
                aframe.pts = start
                aframe.time_base = Fraction(1, audio_rate)
                for packet in aus.encode(aframe):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    logger.info("wrote demo clip %s (%d frames, %d fps, %dx%d, with audio)", path, n_frames, fps, size, size)
    return path
