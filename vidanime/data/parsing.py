"""Paired image / parsing-mask folders for training and evaluating face parsers.

Two layouts are read:

* ``root/images/<stem>.{jpg,png,...}`` + ``root/masks/<stem>.png`` (matching stems), e.g. Danbooru-Parsing or the
  pseudo-labelled anime folders written by ``vidanime parser pseudo-label``;
* CelebAMask style: ``root/pairs.csv`` with columns ``id,image,mask`` (paths relative to ``root``), as in
  ../shared/assets/faces.

Masks are single-channel label-id PNGs in the order named by ``mask_labels`` (celebamask / bisenet / danbooru) and are
remapped on load to the parser's ``label_set`` via :mod:`vidanime.labels`; the id 255 means "ignore" (unlabelled or
low-confidence pixels) and survives remapping.  Images are resized with antialiasing, masks with nearest neighbour.
"""
from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import labels as L
from ..errors import ConfigError, MediaError
from .image_io import read_image_rgb, read_label_map
from .images import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_EXTS",
    "ParsingDataConfig",
    "ParsingDataset",
    "read_image_rgb",
    "read_mask",
    "list_pairs",
    "split_ids",
    "remap_mask",
    "flip_mask",
    "resize_image",
]

IGNORE_INDEX = L.IGNORE_INDEX  # re-exported: defined in vidanime.labels so vidanime.data.animeize can share it
IMAGE_EXTS = IMAGE_EXTENSIONS  # the image suffixes every reader of image folders accepts (vidanime.data.images)


@dataclass
class ParsingDataConfig:
    """Where the pairs are and how to read them (the ``data:`` section of a parser training config)."""

    root: str = "../shared/assets/faces"
    mask_labels: str = "celebamask"  # label order of the mask files: celebamask | bisenet | danbooru
    image_size: int = 256
    val_fraction: float = 0.1  # held-out share, chosen by a seeded shuffle of the sorted ids
    split_seed: int = 0
    val_ids_file: str = ""  # optional text file of held-out ids (one per line); overrides val_fraction
    flip: bool = True  # horizontal flip with left/right label swap
    scale_jitter: float = 0.1  # random zoom in [1-s, 1+s] and shift up to s/2 of the size (0 = off)
    color_jitter: float = 0.2  # random brightness/contrast/saturation factor in [1-c, 1+c] (0 = off)
    cache: bool = True  # keep decoded, resized pairs in memory (900 faces at 256² ≈ 240 MB)
    anime_style: float = 0.0  # share of training pairs drawn as anime (vidanime.data.animeize: big eyes, flat colour)
    limit: int = 0  # use only the first N sorted ids before the split (0 = all): smoke passes and tests


# ------------------------------------------------------------------------------------------------------------ reading
def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A single-channel label-id PNG → (H, W) uint8 (see :func:`vidanime.data.image_io.read_label_map`)."""
    return read_label_map(path, what="mask")


def remap_mask(mask: np.ndarray, src: str, dst: str, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Remap label ids ``src`` → ``dst`` keeping ``ignore_index``; ids that are neither valid nor ignore raise."""
    n = L.num_classes(src)
    bad = (mask >= n) & (mask != ignore_index)
    if bad.any():
        raise MediaError(
            f"mask holds id {int(mask[bad].max())}, outside the {n} classes of label set '{src}' "
            f"(and not {ignore_index} = ignore)"
        )
    out = np.full_like(mask, ignore_index)
    valid = mask != ignore_index
    out[valid] = L.remap(mask[valid], src, dst)
    return out


def flip_mask(mask: np.ndarray, label_set: str, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Horizontal flip with left/right classes swapped (:func:`vidanime.labels.flip_lr`), keeping ``ignore_index``."""
    valid = mask != ignore_index
    tmp = np.where(valid, mask, 0).astype(mask.dtype)
    out = L.flip_lr(tmp, label_set)
    return np.where(valid[..., ::-1], out, ignore_index).astype(mask.dtype)


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 → (size, size, 3) with antialiasing (area filter when shrinking, cubic when growing)."""
    import cv2

    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


# ------------------------------------------------------------------------------------------------------------- listing
def list_pairs(root: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """(id, image path, mask path) of every pair under ``root``, sorted by id; see the module doc for layouts."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"parsing data folder not found: {root}")
    pairs: list[tuple[str, Path, Path]] = []
    csv_path = root / "pairs.csv"
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            need = {"id", "image", "mask"}
            if not need <= set(reader.fieldnames or []):
                raise ConfigError(f"{csv_path}: expected columns {sorted(need)}, found {reader.fieldnames}")
            for row in reader:
                pairs.append((row["id"], root / row["image"], root / row["mask"]))
    else:
        img_dir, mask_dir = root / "images", root / "masks"
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise ConfigError(f"{root}: expected a pairs.csv or the folders images/ and masks/ "
                              "with matching file stems")
        masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() == ".png"}
        unmatched = 0
        for p in sorted(img_dir.iterdir()):
            if p.suffix.lower() not in IMAGE_EXTS:
                continue
            if p.stem in masks:
                pairs.append((p.stem, p, masks[p.stem]))
            else:
                unmatched += 1
        if unmatched:
            logger.warning("%s: %d images have no mask of the same stem in masks/ and are skipped", root, unmatched)
    if not pairs:
        raise ConfigError(f"{root}: no image/mask pairs found")
    return sorted(pairs, key=lambda t: t[0])


def split_ids(ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids): a seeded shuffle of the sorted ids; the first ``round(n·val_fraction)`` are held
    out."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return train, val


# ------------------------------------------------------------------------------------------------------------- dataset
class ParsingDataset:
    """Map-style dataset of image/mask pairs → {"image": (3, S, S) float in [0, 1], "labels": (S, S) int64, "id": str}.

    ``label_set`` is the parser's order (masks are remapped to it); ``augment`` turns on flip / scale / colour jitter
    as set in ``cfg``.  Pass ``ids`` to restrict to a split (see :func:`split_ids`).
    """

    def __init__(self, cfg: ParsingDataConfig, label_set: str, ids: Sequence[str] | None = None,
                 augment: bool = False, seed: int = 0):
        L.num_classes(cfg.mask_labels)  # validates the names
        if not 0.0 <= cfg.anime_style <= 1.0:
            raise ConfigError(f"data.anime_style must be in [0, 1], got {cfg.anime_style}")
        L.num_classes(label_set)
        self.cfg = cfg
        self.label_set = label_set
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        pairs = list_pairs(cfg.root)
        if ids is not None:
            wanted = set(ids)
            pairs = [p for p in pairs if p[0] in wanted]
            missing = wanted - {p[0] for p in pairs}
            if missing:
                raise ConfigError(f"{cfg.root}: {len(missing)} requested ids have no pair, e.g. {sorted(missing)[0]}")
        self.pairs = pairs
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def ids(self) -> list[str]:
        return [p[0] for p in self.pairs]

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, resized, remapped pair i: ((S, S, 3) uint8, (S, S) uint8 in the parser's label order)."""
        if i in self._cache:
            return self._cache[i]
        sid, ip, mp = self.pairs[i]
        img = read_image_rgb(ip)
        mask = read_mask(mp)
        if img.shape[:2] != mask.shape:
            # masks may be stored at another resolution than images (CelebAMask-HQ: 1024 vs 512): nearest resize
            mask = L.resize_labels(mask, img.shape[:2])
        s = self.cfg.image_size
        img = resize_image(img, s)
        mask = L.resize_labels(mask, (s, s)) if mask.shape != (s, s) else mask
        mask = remap_mask(mask, self.cfg.mask_labels, self.label_set)
        if self.cfg.cache:
            self._cache[i] = (img, mask)
        return img, mask

    def preload(self) -> None:
        """Decode every pair into the cache now (with ``cfg.cache``): loader worker processes started afterwards get
        it with the dataset instead of each decoding the whole set again."""
        if self.cfg.cache:
            for i in range(len(self)):
                self.load(i)

    def _augment(self, img: np.ndarray, mask: np.ndarray,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        c = self.cfg
        r = rng if rng is not None else self.rng
        if c.anime_style > 0 and r.random() < c.anime_style:
            from .animeize import animeize_pair

            img, mask = animeize_pair(img, mask, self.label_set, r)
        if c.flip and r.random() < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
            mask = np.ascontiguousarray(flip_mask(mask, self.label_set))
        if c.scale_jitter > 0:
            s = img.shape[0]
            z = 1.0 + r.uniform(-c.scale_jitter, c.scale_jitter)
            tx, ty = r.uniform(-c.scale_jitter / 2, c.scale_jitter / 2, size=2) * s
            m = np.array([[z, 0, (1 - z) * s / 2 + tx], [0, z, (1 - z) * s / 2 + ty]], dtype=np.float64)
            img = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            mask = cv2.warpAffine(mask, m, (s, s), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=IGNORE_INDEX)
        if c.color_jitter > 0:
            f = img.astype(np.float32)
            b, k, sat = 1.0 + r.uniform(-c.color_jitter, c.color_jitter, size=3)
            gray = f.mean(axis=2, keepdims=True)
            f = gray + (f - gray) * sat
            f = (f - f.mean()) * k + f.mean()
            img = np.clip(f * b, 0, 255).astype(np.uint8)
        return img, mask

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.item(i)

    def item(self, i: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """Pair i, augmented (when ``augment``) with draws from ``rng`` (default: the dataset's own stream)."""
        import torch

        img, mask = self.load(i)
        if self.augment:
            img, mask = self._augment(img, mask, rng)
        img, mask = (a if a.flags.writeable else a.copy() for a in (img, mask))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255.0),
            "labels": torch.from_numpy(np.ascontiguousarray(mask)).long(),
            "id": self.pairs[i][0],
        }
