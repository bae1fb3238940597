"""Table-1 metrics on hand-built confusion cases and against a brute-force reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vidanime.metrics.segmentation import ConfusionMeter, confusion_matrix, format_scores, scores_from_confusion

GT = np.array([[0, 0, 1], [1, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 0]])


def test_confusion_matrix_hand_case():
    cm = confusion_matrix(GT, PRED, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def test_scores_hand_case():
    s = scores_from_confusion(confusion_matrix(GT, PRED, 3))
    np.testing.assert_allclose(s.class_accuracy, [1 / 2, 1.0, 1 / 2])
    assert s.overall_accuracy == pytest.approx(4 / 6)
    # IoU: 1/(2+2-1), 2/(2+3-2), 1/(2+1-1)
    np.testing.assert_allclose(s.class_iou, [1 / 3, 2 / 3, 1 / 2])
    assert s.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s.pixels == 6


def test_class_absent_from_gt_and_prediction_is_left_out_of_miou():
    s = scores_from_confusion(confusion_matrix(GT, PRED, 4))  # class 3 never occurs
    assert math.isnan(s.class_iou[3]) and math.isnan(s.class_accuracy[3])
    assert s.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_class_predicted_but_absent_from_gt_counts_as_zero():
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])  # class 2 predicted once, never in GT
    s = scores_from_confusion(confusion_matrix(gt, pred, 3))
    assert s.class_iou[2] == 0.0 and math.isnan(s.class_accuracy[2])
    assert s.miou == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert s.overall_accuracy == pytest.approx(3 / 4)


def test_ignore_index_pixels_are_not_counted():
    gt = np.array([0, 255, 1, 255])
    pred = np.array([0, 1, 1, 0])
    s = scores_from_confusion(confusion_matrix(gt, pred, 2))
    assert s.pixels == 2 and s.overall_accuracy == 1.0 and s.miou == 1.0


def test_meter_accumulates_over_batches_like_one_big_matrix():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, size=(6, 8, 8))
    pred = np.where(rng.random((6, 8, 8)) < 0.6, gt, rng.integers(0, 5, size=(6, 8, 8)))
    meter = ConfusionMeter(5)
    for g, p in zip(gt, pred):
        meter.update(g, p)
    s = meter.scores()
    # brute-force reference
    ious = []
    for c in range(5):
        inter = np.sum((gt == c) & (pred == c))
        union = np.sum((gt == c) | (pred == c))
        ious.append(inter / union)
        assert s.class_accuracy[c] == pytest.approx(inter / np.sum(gt == c))
    assert s.miou == pytest.approx(np.mean(ious))
    assert s.overall_accuracy == pytest.approx(np.mean(gt == pred))


def test_prediction_out_of_range_raises():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)


def test_format_scores_layout():
    s = scores_from_confusion(confusion_matrix(GT, PRED, 3))
    text = format_scores(s, ["bg", "skin", "hair"])
    assert "| bg | skin | hair | Overall Acc. | mIoU |" in text
    assert "| 50.00 | 100.00 | 50.00 | 66.67 | 50.00 |" in text
