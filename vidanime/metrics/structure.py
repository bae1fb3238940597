"""Structure kept: how well a translation keeps the source's layout, as parsing mIoU between input and output.

The source is parsed with a portrait parser and the output with an anime parser (or both maps are given); the source
map plays the ground truth and the output map the prediction in the confusion matrix of
:mod:`vidanime.metrics.segmentation` (Table 1's definitions, classes absent from both left out).  Both maps are first
mapped to the 17-class Danbooru-Parsing set — the set both domains share (lips merge into the mouth) — and the output
map is resized (nearest) to the source's size when they differ.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .. import labels as L
from .segmentation import ConfusionMeter, SegmentationScores

__all__ = ["COMMON_LABEL_SET", "to_common", "StructureMeter", "structure_kept", "layout_kept"]

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


def layout_kept(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], thumb: int = 16) -> float:
    """Parser-free layout measure: correlation of ``thumb``² grey thumbnails of each input with its own output, minus
    the mean correlation with the other inputs' outputs.  0 = outputs no more like their own input than any other
    (e.g. the same face for every input); images are (H, W, 3) uint8 RGB of any size."""
    import cv2

    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise ValueError(f"layout_kept needs as many outputs as inputs, at least 2 (got {len(inputs)}, {len(outputs)})")

    def thumbs(images: Sequence[np.ndarray]) -> np.ndarray:
        t = np.stack([cv2.resize(cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY), (thumb, thumb),
                                 interpolation=cv2.INTER_AREA).astype(np.float64).ravel() for im in images])
        t -= t.mean(1, keepdims=True)
        return t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)

    c = thumbs(inputs) @ thumbs(outputs).T  # (N, N) Pearson correlations
    n = len(inputs)
    own = float(np.trace(c)) / n
    other = float((c.sum() - np.trace(c)) / (n * (n - 1)))
    return own - other
