"""Segmentation metrics as in the paper's Table 1: per-class pixel accuracy, overall pixel accuracy, mIoU.

All three come from one confusion matrix ``cm[gt, pred]`` (pixel counts) accumulated over the whole test set:

* per-class accuracy of class c = cm[c, c] / Σ_p cm[c, p]  (share of the class's ground-truth pixels predicted right)
* overall accuracy = Σ_c cm[c, c] / Σ cm  (over all pixels)
* IoU of c = cm[c, c] / (Σ_p cm[c, p] + Σ_g cm[g, c] − cm[c, c]); mIoU = mean of IoU over classes

A class absent from both ground truth and prediction has an undefined IoU (0/0): it is **left out** of the mean
(NaN in the per-class list), so a test set without hats neither rewards nor punishes the model for hats.  A class absent
from the ground truth but predicted has IoU 0 and counts.  Per-class accuracy of a class without ground-truth pixels is
NaN.  Pixels whose ground truth equals ``ignore_index`` (or lies outside ``0..C-1``) are not counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["confusion_matrix", "ConfusionMeter", "SegmentationScores", "scores_from_confusion", "format_scores"]


def confusion_matrix(gt: Any, pred: Any, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """(C, C) int64 pixel counts, rows = ground truth, columns = prediction, from integer maps of equal shape."""
    gt = np.asarray(gt.cpu() if hasattr(gt, "cpu") else gt).astype(np.int64).ravel()
    pred = np.asarray(pred.cpu() if hasattr(pred, "cpu") else pred).astype(np.int64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in size: {gt.size} vs {pred.size} pixels")
    keep = (gt >= 0) & (gt < num_classes) & (gt != ignore_index)
    gt, pred = gt[keep], pred[keep]
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predictions hold ids {pred.min()}..{pred.max()}, outside 0..{num_classes - 1}")
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass
class SegmentationScores:
    """Table-1 numbers, as fractions in [0, 1] (NaN where undefined, see the module doc)."""

    class_accuracy: list[float]
    class_iou: list[float]
    overall_accuracy: float
    miou: float
    pixels: int

    def as_dict(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Plain data for JSON logs; NaN becomes None."""
        clean = lambda v: None if math.isnan(v) else float(v)  # noqa: E731
        names = names or [str(i) for i in range(len(self.class_iou))]
        return {
            "overall_accuracy": clean(self.overall_accuracy),
            "miou": clean(self.miou),
            "pixels": self.pixels,
            "class_accuracy": {n: clean(v) for n, v in zip(names, self.class_accuracy)},
            "class_iou": {n: clean(v) for n, v in zip(names, self.class_iou)},
        }


def scores_from_confusion(cm: np.ndarray) -> SegmentationScores:
    """Per-class accuracy, per-class IoU, overall accuracy and mIoU from a confusion matrix (rows = ground truth)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    pr = cm.sum(axis=0)
    union = gt + pr - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(gt > 0, tp / gt, np.nan)
        iou = np.where(union > 0, tp / union, np.nan)
    total = cm.sum()
    overall = float(tp.sum() / total) if total > 0 else math.nan
    miou = float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else math.nan
    return SegmentationScores(acc.tolist(), iou.tolist(), overall, miou, int(total))


class ConfusionMeter:
    """Accumulates a confusion matrix over batches: ``update(gt, pred)`` then ``scores()``."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cm = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, gt: Any, pred: Any) -> None:
        """Add label maps (any shape, e.g. (B, H, W)) to the counts."""
        self.cm += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)

    def scores(self) -> SegmentationScores:
        return scores_from_confusion(self.cm)


def format_scores(scores: SegmentationScores, names: Sequence[str]) -> str:
    """Markdown table in the layout of the paper's Table 1: per-class accuracy (%), overall accuracy (%), mIoU (%)."""
    pct = lambda v: "–" if math.isnan(v) else f"{100 * v:.2f}"  # noqa: E731
    head = "| " + " | ".join(list(names) + ["Overall Acc.", "mIoU"]) + " |"
    sep = "|" + "|".join("---" for _ in range(len(names) + 2)) + "|"
    row = ("| " + " | ".join([pct(v) for v in scores.class_accuracy] + [pct(scores.overall_accuracy), pct(scores.miou)])
           + " |")
    iou = "| " + " | ".join([pct(v) for v in scores.class_iou] + ["", ""]) + " |"
    return "\n".join(
        ["per-class pixel accuracy (%), overall accuracy (%) over all pixels, mIoU (%) averaged over classes:",
         head, sep, row, "", "per-class IoU (%):", head, sep, iou]
    )
