"""Black-and-white input: tell a grey crop or photo from a colour one, and turn a drawing grey to match.

The model always draws in colour; for a black-and-white source those colours would be invented, so the image and
video paths give such a source a grey drawing (BT.601 luma).
"""
from __future__ import annotations

import numpy as np

__all__ = ["is_grey", "grey_like", "GREY_TOLERANCE"]

# Largest channel difference (grey levels) of a crop still taken as black-and-white: decoded H.264 of a greyscale
# clip has exactly equal channels, and warping the crop keeps them equal; a colour face is never this flat.
GREY_TOLERANCE = 2


def is_grey(image: np.ndarray, tolerance: int = 0) -> bool:
    """Whether (H, W, 3) uint8 ``image`` is black and white: its three channels differ by at most ``tolerance``."""
    if image.ndim != 3 or image.shape[-1] != 3:
        return False
    a = image.astype(np.int16)
    return bool(np.abs(a[..., 0] - a[..., 1]).max() <= tolerance and np.abs(a[..., 1] - a[..., 2]).max() <= tolerance)


def grey_like(source: np.ndarray, picture: np.ndarray, tolerance: int = 0) -> np.ndarray:
    """``picture`` (H, W, 3) uint8, turned grey (BT.601 luma) when ``source`` (any size) is black and white
    (:func:`is_grey`)."""
    if not is_grey(source, tolerance):
        return picture
    luma = np.rint(picture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
