"""Structure kept: how well a translation keeps the source's layout, as parsing mIoU between input and output.

The source is parsed with a portrait parser and the output with an anime parser (or both maps are given); the source
map plays the ground truth and the output map the prediction in the confusion matrix of
:mod:`vidanime.metrics.segmentation` (Table 1's definitions, classes absent from both left out).  Both maps are first
mapped to the 17-class Danbooru-Parsing set — the set both domains share (lips merge into the mouth) — and the output
map is resized (nearest) to the source's size when they differ.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .. import labels as L
from .segmentation import ConfusionMeter, SegmentationScores

__all__ = ["COMMON_LABEL_SET", "to_common", "StructureMeter", "structure_kept"]

COMMON_LABEL_SET = "danbooru"


def to_common(labels: np.ndarray, label_set: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) labels in ``label_set`` → Danbooru-Parsing ids, resized (nearest) to ``size`` = (H, W) if given."""
    lab = np.asarray(labels)
    if label_set != COMMON_LABEL_SET:
        lab = L.remap(lab, label_set, COMMON_LABEL_SET)
    if size is not None and tuple(lab.shape[:2]) != tuple(size):
        lab = L.resize_labels(lab, size)
    return np.asarray(lab)


class StructureMeter:
    """Accumulates (source map, output map) pairs; ``scores()`` gives pixel agreement and mIoU over all pairs."""

    def __init__(self) -> None:
        self.meter = ConfusionMeter(L.num_classes(COMMON_LABEL_SET))

    def update(self, src_labels: np.ndarray, src_set: str, out_labels: np.ndarray, out_set: str) -> None:
        src = to_common(src_labels, src_set)
        self.meter.update(src, to_common(out_labels, out_set, src.shape[:2]))

    def scores(self) -> SegmentationScores:
        return self.meter.scores()


def structure_kept(pairs: Iterable[tuple[np.ndarray, np.ndarray]], src_set: str = "bisenet",
                   out_set: str = "bisenet") -> SegmentationScores:
    """Scores of (source map, output map) pairs, source as ground truth; ``.miou`` is "structure kept"."""
    meter = StructureMeter()
    for src, out in pairs:
        meter.update(src, src_set, out, out_set)
    return meter.scores()
