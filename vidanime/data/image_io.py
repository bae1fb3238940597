"""Still-image files: read RGB pictures and label maps, write RGB pictures atomically.

One place for the rules every dataset, pipeline and command follows: missing, corrupt or tiny files are a one-line
:class:`~vidanime.errors.MediaError` naming the file; pictures of other modes are converted (grayscale replicated,
transparency composited on white, 16-bit scaled); label maps must hold one class id per pixel.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ..fileio import check_input_file

__all__ = ["MIN_SIDE", "to_rgb_uint8", "read_image_rgb", "read_label_map", "write_rgb", "IMAGE_FORMATS"]

logger = logging.getLogger(__name__)

MIN_SIDE = 16  # smaller pictures cannot hold a face worth translating
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}


def to_rgb_uint8(img) -> np.ndarray:
    """A PIL image of any common mode as an (H, W, 3) uint8 RGB array.

    16-bit modes are scaled to 8 bits (value / 257) instead of clipped; float images in [0, 1] are scaled by 255;
    transparent pixels are composited on white.
    """
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        a = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        scale = 255.0 if a.size and float(np.nanmax(a)) <= 1.0 else 1.0
        a = np.clip(np.round(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _open(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    check_input_file(path, what)  # missing, or a folder, FIFO or device: each named as such
    try:
        im = Image.open(path)
        im.load()
        return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MediaError(f"cannot read {what} {path} (corrupt or unsupported: {msg})") from None


def read_image_rgb(path: str | os.PathLike, min_side: int = MIN_SIDE) -> np.ndarray:
    """A picture file → (H, W, 3) uint8 RGB.

    Other modes are converted (see :func:`to_rgb_uint8`).  Sides under ``min_side`` px are refused.
    """
    path = Path(path)
    with _open(path, "image") as im:
        if im.mode != "RGB":
            logger.debug("image %s has mode '%s': converted to RGB", path, im.mode)
        arr = to_rgb_uint8(im)
    if min(arr.shape[:2]) < min_side:
        raise MediaError(f"image {path} is {arr.shape[1]}x{arr.shape[0]} px, "
                         f"too small (need at least {min_side} px a side)")
    return np.ascontiguousarray(arr)


def read_label_map(path: str | os.PathLike, what: str = "label map") -> np.ndarray:
    """A label PNG (one class id per pixel: mode L, P, or 16/32-bit ints up to 255) → (H, W) uint8 ids.

    Colour pictures are refused: a colour-coded visualisation is not a label map.
    """
    path = Path(path)
    with _open(path, what) as im:
        if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise MediaError(
                f"{what} {path} has mode '{im.mode}' (a colour image); expected a label PNG with one class id per "
                "pixel (8-bit grayscale)"
            )
        arr = np.asarray(im)
    if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
        raise MediaError(f"{what} {path} holds ids {arr.min()}..{arr.max()}, expected 0..255")
    return arr.astype(np.uint8)


def write_rgb(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB atomically; the format comes from the suffix (JPEG at quality 95)."""
    from PIL import Image

    from ..fileio import atomic_path

    fmt = IMAGE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise MediaError(f"cannot write {path}: unknown image suffix (expected one of {', '.join(IMAGE_FORMATS)})")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
