"""Manga preprocessing for parsing (paper §6.2): grey → screen-tone flattening → contrast normalisation → RGB.

Manga pages are black-and-white line art whose grey areas are printed as screen tones (halftone dots or hatching).
A face parser trained on colour anime sees the dots as texture; flattening them into the grey level they stand for
(Gaussian low-pass at about the dot period, then a median filter against what is left of the dots, optionally a
morphological closing that removes isolated dark dots) and stretching the contrast (percentiles → 0…255) gives an
image closer to the parser's training data.  The result is grey, repeated on 3 channels, (H, W, 3) uint8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, MediaError

__all__ = ["MangaConfig", "to_gray", "flatten_screentone", "normalize_contrast", "manga_to_rgb"]


@dataclass
class MangaConfig:
    """``tone_sigma``: Gaussian σ in px (≈ half the screen-tone period; 0 = off); ``median``: odd median kernel
    (0/1 = off); ``closing``: odd kernel of a morphological closing (removes dark dots smaller than it; 0 = off);
    ``low_pct``/``high_pct``: percentiles mapped to black/white."""

    tone_sigma: float = 1.5
    median: int = 3
    closing: int = 0
    low_pct: float = 1.0
    high_pct: float = 99.0

    def __post_init__(self) -> None:
        if self.tone_sigma < 0:
            raise ConfigError(f"tone_sigma={self.tone_sigma}: expected >= 0 px")
        for name in ("median", "closing"):
            k = getattr(self, name)
            if k < 0 or (k > 1 and k % 2 == 0):
                raise ConfigError(f"{name}={k}: expected 0 (off) or an odd kernel size")
        if not 0.0 <= self.low_pct < self.high_pct <= 100.0:
            raise ConfigError(f"low_pct={self.low_pct}, high_pct={self.high_pct}: expected 0 <= low < high <= 100")


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA uint8 → (H, W) uint8 luminance (BT.601; alpha dropped)."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise MediaError(f"manga image has dtype {image.dtype}: expected uint8 (0..255)")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    raise MediaError(f"manga image has shape {image.shape}: expected (H, W) grey or (H, W, 3) RGB")


def flatten_screentone(gray: np.ndarray, tone_sigma: float = 1.5, median: int = 3, closing: int = 0) -> np.ndarray:
    """(H, W) uint8 → (H, W) uint8 with halftone dots replaced by their mean grey (see :class:`MangaConfig`)."""
    import cv2

    out = np.ascontiguousarray(gray)
    if closing > 1:
        out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (closing, closing)))
    if tone_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=float(tone_sigma), borderType=cv2.BORDER_REFLECT)
    if median > 1:
        out = cv2.medianBlur(out, int(median))
    return out


def normalize_contrast(gray: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Linear stretch of (H, W) uint8 so that the ``low_pct`` percentile becomes 0 and ``high_pct`` 255 (clipped);
    a flat image is returned unchanged."""
    lo, hi = np.percentile(gray, [low_pct, high_pct])
    if hi - lo < 1.0:
        return gray.copy()
    out = (gray.astype(np.float64) - lo) * 255.0 / (hi - lo)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def manga_to_rgb(image: np.ndarray, config: MangaConfig | None = None) -> np.ndarray:
    """A manga image (grey or RGB uint8) → (H, W, 3) uint8 grey image ready for the anime parser."""
    c = config or MangaConfig()
    gray = to_gray(image)
    if min(gray.shape) < 16:
        raise MediaError(f"manga image is {gray.shape[1]}x{gray.shape[0]} px: expected at least 16 px a side")
    gray = flatten_screentone(gray, c.tone_sigma, c.median, c.closing)
    gray = normalize_contrast(gray, c.low_pct, c.high_pct)
    return np.repeat(gray[..., None], 3, axis=2)
