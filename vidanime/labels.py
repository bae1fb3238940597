"""Parsing label sets, explicit remap tables between them, one-hot conversion and colour palettes.

Three orders meet in this project (see DESIGN.md):

* ``celebamask`` — CelebAMask-HQ file order, 19 ids (the masks in ../shared/assets/faces).
* ``bisenet`` — face-parsing.PyTorch / BiSeNet order, 19 ids; what the official StyleAnime code feeds its parsing
  encoder (one-hot, 19 channels).  This is vidanime's internal order.
* ``danbooru`` — Danbooru-Parsing, 17 ids (paper Table 1): BiSeNet with mouth + upper lip + lower lip merged into one
  ``mouth`` class, ``neck_l`` renamed ``necklace``.

``l_*``/``r_*`` are the subject's own left/right, so a horizontal flip swaps them (:func:`flip_lr`).
Label maps are integer images: resize them with nearest neighbour only (:func:`resize_labels`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import VidanimeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "IGNORE_INDEX",
    "LABEL_SETS",
    "CELEBAMASK",
    "BISENET",
    "DANBOORU",
    "num_classes",
    "remap",
    "remap_table",
    "one_hot",
    "flip_lr",
    "lr_swap_table",
    "resize_labels",
    "palette",
    "colorize",
    "class_ids",
    "class_names",
]

IGNORE_INDEX = 255  # label id of "unknown" pixels in masks: ignored by losses and metrics

CELEBAMASK = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
BISENET = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
DANBOORU = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "neck", "neck_l", "cloth", "hair", "hat",
)
LABEL_SETS: dict[str, tuple[str, ...]] = {"celebamask": CELEBAMASK, "bisenet": BISENET, "danbooru": DANBOORU}

# Names that merge when going to a set that lacks them (lips are part of the mouth in Danbooru-Parsing).
_MERGE = {"u_lip": "mouth", "l_lip": "mouth"}
_LR_PAIRS = (("l_brow", "r_brow"), ("l_eye", "r_eye"), ("l_ear", "r_ear"))


def _check_set(name: str) -> tuple[str, ...]:
    if name not in LABEL_SETS:
        raise VidanimeError(f"unknown label set '{name}' (expected one of: {', '.join(LABEL_SETS)})")
    return LABEL_SETS[name]


def num_classes(label_set: str) -> int:
    """Number of classes of a label set (19, 19 or 17)."""
    return len(_check_set(label_set))


def class_names(label_set: str) -> tuple[str, ...]:
    """The class names of ``label_set`` in id order."""
    return _check_set(label_set)


def class_ids(label_set: str, *names: str) -> list[int]:
    """Ids of the named classes in ``label_set`` (e.g. ``class_ids("bisenet", "l_eye", "r_eye")``)."""
    labels = _check_set(label_set)
    return [labels.index(n) for n in names]


def remap_table(src: str, dst: str) -> np.ndarray:
    """Lookup table ``t`` with ``t[src_id] == dst_id``; lips merge into mouth when ``dst`` has no lip classes.

    Going from 17 classes back to 19 is one-to-one on the shared names (``mouth`` stays ``mouth``).
    """
    s, d = _check_set(src), _check_set(dst)
    table = np.empty(len(s), dtype=np.int64)
    for i, name in enumerate(s):
        target = name if name in d else _MERGE.get(name)
        if target is None or target not in d:
            raise VidanimeError(f"label '{name}' of set '{src}' has no counterpart in '{dst}'")
        table[i] = d.index(target)
    return table


def _check_range(labels, n: int, src: str) -> None:
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n:
        raise VidanimeError(f"label map has ids {lo}..{hi}, outside the {n} classes of label set '{src}'")


def remap(labels, src: str, dst: str):
    """Remap a label map (numpy array or torch tensor of ints) from order ``src`` to order ``dst``."""
    if src == dst:
        return labels
    table = remap_table(src, dst)
    if labels.size == 0 if isinstance(labels, np.ndarray) else labels.numel() == 0:
        return labels
    _check_range(labels, len(table), src)
    if isinstance(labels, np.ndarray):
        return table[labels.astype(np.int64)].astype(labels.dtype)
    import torch

    return torch.as_tensor(table, device=labels.device)[labels.long()].to(labels.dtype)


def one_hot(labels: "torch.Tensor", label_set: str) -> "torch.Tensor":
    """(B, H, W) integer labels → (B, C, H, W) float one-hot in {0, 1}; ids outside the set raise."""
    import torch

    n = num_classes(label_set)
    if labels.dim() == 2:
        labels = labels[None]
    if labels.dim() != 3:
        raise VidanimeError(f"expected label maps of shape (B, H, W), got {tuple(labels.shape)}")
    _check_range(labels, n, label_set)
    return torch.nn.functional.one_hot(labels.long(), n).permute(0, 3, 1, 2).float()


def lr_swap_table(label_set: str) -> np.ndarray:
    """(C,) int64 table ``t`` with ``t[id]`` = the id of the mirrored class (l_eye ↔ r_eye, ...; others unchanged).

    Also reorders class *channels* of a mirrored prediction: ``probs.flip(-1)[:, t]``."""
    names = _check_set(label_set)
    table = np.arange(len(names))
    for a, b in _LR_PAIRS:
        ia, ib = names.index(a), names.index(b)
        table[ia], table[ib] = ib, ia
    return table


def flip_lr(labels, label_set: str):
    """Mirror a label map horizontally (last axis) and swap left/right classes, so it stays anatomically correct."""
    table = lr_swap_table(label_set)
    if isinstance(labels, np.ndarray):
        return table[labels[..., ::-1].astype(np.int64)].astype(labels.dtype)
    import torch

    return torch.as_tensor(table, device=labels.device)[labels.flip(-1).long()].to(labels.dtype)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) label map to ``size`` = (H', W') with nearest neighbour (never interpolate label ids)."""
    import cv2

    h, w = size
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


# Colours for visualisation: the face-parsing.PyTorch palette for BiSeNet order; other sets map through names.
_BISENET_COLORS = np.array(
    [
        [0, 0, 0], [204, 0, 0], [76, 153, 0], [204, 204, 0], [51, 51, 255], [204, 0, 204], [0, 255, 255],
        [255, 204, 204], [102, 51, 0], [255, 0, 0], [102, 204, 0], [255, 255, 0], [0, 0, 153], [0, 0, 204],
        [255, 51, 153], [0, 204, 204], [0, 51, 0], [255, 153, 51], [0, 204, 0],
    ],
    dtype=np.uint8,
)


def palette(label_set: str) -> np.ndarray:
    """(C, 3) uint8 RGB colour per class; the same class name has the same colour in every set."""
    names = _check_set(label_set)
    return np.stack([_BISENET_COLORS[BISENET.index(n)] for n in names])


def colorize(labels: np.ndarray, label_set: str) -> np.ndarray:
    """(H, W) label map → (H, W, 3) uint8 RGB picture."""
    pal = palette(label_set)
    _check_range(labels, len(pal), label_set)
    return pal[labels.astype(np.int64)]
