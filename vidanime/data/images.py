"""Image-folder dataset for GAN training: every image under a folder, as (3, S, S) tensors in [-1, 1].

Files are found recursively by extension and sorted (so ``limit=64`` means the first 64 sorted paths).  Each image is
converted to 8-bit RGB (grayscale, palette, RGBA composited on white, 16-bit scaled down), centre-cropped to a square
when needed and resized with an antialiasing (Lanczos) filter to the model size.  Random horizontal flips are drawn
from an explicit ``torch.Generator`` in :meth:`ImageFolderDataset.sample_batch`, so training is reproducible.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import MediaError
from .image_io import read_image_rgb, to_rgb_uint8

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "list_images", "load_image", "to_rgb_uint8"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def list_images(root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Sorted image paths under ``root`` (recursive, extension match is case-insensitive); errors if none."""
    root = Path(root)
    if not root.exists():
        raise MediaError(f"image folder not found: {root}")
    if not root.is_dir():
        raise MediaError(f"expected a folder of images, got a file: {root}")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())
    if not files:
        raise MediaError(f"no images with extensions {', '.join(sorted(exts))} found in {root}")
    return files


def load_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Read ``path`` as an (S, S, 3) uint8 RGB array (centre-cropped square, Lanczos-resized to ``size``).

    An unreadable or corrupt file raises :class:`MediaError` naming the file.
    """
    from PIL import Image

    rgb = read_image_rgb(path, min_side=1)
    if size is None:
        return rgb
    h, w = rgb.shape[:2]
    if h != w:  # centre crop to a square so faces are not stretched
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        rgb = rgb[y0 : y0 + s, x0 : x0 + s]
    if rgb.shape[0] != size:
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.LANCZOS))
    return rgb


class ImageFolderDataset(torch.utils.data.Dataset):
    """All images under ``root`` as (3, size, size) float tensors in [-1, 1].

    Args:
        root: folder searched recursively for ``extensions``.
        size: output side in pixels (the generator's resolution).
        files: explicit list of files (absolute, or relative to ``root``) instead of searching the folder.
        limit: keep only the first ``limit`` files (sorted), e.g. 64 for tests.
        hflip: flip horizontally with probability 0.5 (in ``__getitem__`` with torch's global RNG, in
            :meth:`sample_batch` with the given generator).
        skip_bad: log and skip unreadable images instead of raising :class:`MediaError`.
        preload: decode every image once at construction and keep uint8 copies in memory (fast for small sets).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int,
        *,
        files: Sequence[str | os.PathLike] | None = None,
        limit: int | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        hflip: bool = False,
        skip_bad: bool = False,
        preload: bool = False,
    ):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 (or None for all), got {limit!r}")
        self.root = Path(root)
        self.size = size
        self.hflip = hflip
        self.skip_bad = skip_bad
        if files is not None:
            paths = [Path(f) if Path(f).is_absolute() else self.root / f for f in files]
            missing = [p for p in paths if not p.is_file()]
            if missing:
                more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
                raise MediaError(f"image file not found: {missing[0]}" + more)
            if not paths:
                raise MediaError(f"the file list for {self.root} is empty")
        else:
            paths = list_images(self.root, extensions)
        if limit is not None:
            paths = paths[:limit]
        self.files: list[Path] = paths
        self.bad: list[Path] = []
        self._cache: list[torch.Tensor] | None = None
        self._stack: torch.Tensor | None = None  # (N, 3, S, S) uint8 on an accelerator, after .to(device)
        if preload:
            self._preload()

    def _read(self, path: Path) -> torch.Tensor:
        """(3, S, S) uint8 tensor of one file."""
        return torch.from_numpy(np.array(load_image(path, self.size), copy=True)).permute(2, 0, 1).contiguous()

    def _preload(self) -> None:
        cache, good = [], []
        for p in self.files:
            try:
                cache.append(self._read(p))
                good.append(p)
            except MediaError as exc:
                if not self.skip_bad:
                    raise
                logger.warning("skipping unreadable image: %s", exc)
                self.bad.append(p)
        if not good:
            raise MediaError(f"none of the {len(self.files)} images in {self.root} could be read")
        self.files, self._cache = good, cache

    def __len__(self) -> int:
        return len(self.files)

    def get_uint8(self, index: int) -> torch.Tensor:
        """Image ``index`` as a (3, S, S) uint8 tensor, unflipped.

        With ``skip_bad``, an unreadable file is logged and the next readable one (cyclically) is returned instead.
        """
        if self._cache is not None:
            return self._cache[index]
        n = len(self.files)
        for k in range(n):
            path = self.files[(index + k) % n]
            try:
                return self._read(path)
            except MediaError as exc:
                if not self.skip_bad:
                    raise
                if path not in self.bad:
                    logger.warning("skipping unreadable image: %s", exc)
                    self.bad.append(path)
        raise MediaError(f"none of the {n} images in {self.root} could be read")

    @staticmethod
    def to_float(x: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] → float32 [-1, 1] (any shape)."""
        return x.to(torch.float32).div(127.5).sub(1.0)

    def __getitem__(self, index: int) -> torch.Tensor:
        x = self.to_float(self.get_uint8(index))
        if self.hflip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return x

    def to(self, device: torch.device | str) -> "ImageFolderDataset":
        """Keep the preloaded images as one uint8 tensor on ``device`` (e.g. a GPU), so :meth:`sample_batch` gathers
        batches there without a host copy; CPU is a no-op.  Needs ``preload``."""
        device = torch.device(device)
        if device.type == "cpu":
            self._stack = None
            return self
        if self._cache is None:
            raise ValueError("ImageFolderDataset.to(device) needs preload=True")
        self._stack = torch.stack(self._cache).to(device)
        return self

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random batch (B, 3, S, S) in [-1, 1], indices drawn with replacement, flips drawn from ``generator``
        (on the device given to :meth:`to`, else on the CPU; the same draws either way)."""
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        flips = torch.rand(batch_size, generator=generator) < 0.5
        if self._stack is not None:
            dev = self._stack.device
            batch = self.to_float(self._stack[idx.to(dev)])
            return torch.where(flips.to(dev)[:, None, None, None], batch.flip(-1), batch) if self.hflip else batch
        batch = torch.stack([self.get_uint8(int(i)) for i in idx])
        batch = self.to_float(batch)
        if self.hflip:
            batch = torch.where(flips[:, None, None, None], batch.flip(-1), batch)
        return batch

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (3,) of all images in [-1, 1] (a cheap reference for sample statistics)."""
        total = torch.zeros(3, dtype=torch.float64)
        total_sq = torch.zeros(3, dtype=torch.float64)
        count = 0
        for i in range(len(self)):
            x = self.to_float(self.get_uint8(i)).to(torch.float64)
            total += x.sum(dim=(1, 2))
            total_sq += (x * x).sum(dim=(1, 2))
            count += x.shape[1] * x.shape[2]
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        return mean.float(), std.float()
