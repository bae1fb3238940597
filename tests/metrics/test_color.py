"""Appearance kept (colour-histogram distances) and structure kept on hand-built faces."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vidanime import labels as L
from vidanime.metrics.color import color_distance, histogram_distance, region_histogram
from vidanime.metrics.structure import structure_kept


def _face(hair=(40, 30, 20), skin=(220, 180, 150), eyes=(60, 90, 120)):
    """(64, 64) image + BiSeNet labels: hair on top, skin below, two eye blocks."""
    lab = np.zeros((64, 64), np.uint8)
    lab[:20] = L.class_ids("bisenet", "hair")[0]
    lab[20:] = L.class_ids("bisenet", "skin")[0]
    lab[30:34, 16:24] = L.class_ids("bisenet", "l_eye")[0]
    lab[30:34, 40:48] = L.class_ids("bisenet", "r_eye")[0]
    img = np.zeros((64, 64, 3), np.uint8)
    for name, col in (("hair", hair), ("skin", skin), ("l_eye", eyes), ("r_eye", eyes)):
        img[lab == L.class_ids("bisenet", name)[0]] = col
    return img, lab


def test_identical_regions_score_zero():
    img, lab = _face()
    d = color_distance(img, lab, img, lab)
    assert d == {"hair": 0.0, "skin": 0.0, "eyes": 0.0}


def test_emd_of_a_constant_shift_is_shift_over_255():
    img, lab = _face()
    img2, _ = _face(hair=(50, 30, 20))  # red channel of the hair +10 code values
    d = color_distance(img, lab, img2, lab)
    assert d["hair"] == pytest.approx(10 / 255 / 3)
    assert d["skin"] == 0.0 and d["eyes"] == 0.0


def test_chi2_disjoint_is_one_and_label_sets_match_by_name():
    img, lab = _face()
    img2, lab2 = _face(skin=(20, 250, 10))
    lab2_danbooru = L.remap(lab2, "bisenet", "danbooru")
    d = color_distance(img, lab, img2, lab2_danbooru, out_label_set="danbooru", distance="chi2")
    assert d["skin"] == pytest.approx(1.0)
    assert d["hair"] == 0.0


def test_missing_region_is_nan():
    img, lab = _face()
    lab_no_eyes = lab.copy()
    lab_no_eyes[np.isin(lab, L.class_ids("bisenet", "l_eye", "r_eye"))] = L.class_ids("bisenet", "skin")[0]
    d = color_distance(img, lab, img, lab_no_eyes)
    assert math.isnan(d["eyes"]) and d["hair"] == 0.0


def test_region_histogram_checks_sizes():
    img, lab = _face()
    with pytest.raises(ValueError, match="does not match"):
        region_histogram(img, lab[:10], [1])
    with pytest.raises(ValueError, match="unknown histogram distance"):
        histogram_distance(np.ones((3, 4)) / 4, np.ones((3, 4)) / 4, "l7")


def test_structure_kept_identity_and_hand_count():
    _, lab = _face()
    assert structure_kept([(lab, lab)]).miou == pytest.approx(1.0)
    # Output loses the hair (becomes background): hair IoU 0, background IoU 0 (no gt background), skin/eyes 1.
    out = lab.copy()
    out[lab == L.class_ids("bisenet", "hair")[0]] = 0
    sc = structure_kept([(lab, out)])
    # classes present (danbooru): background (pred only) 0, skin 1, l_eye 1, r_eye 1, hair 0 → mIoU 3/5
    assert sc.miou == pytest.approx(3 / 5)
    assert sc.overall_accuracy == pytest.approx(1 - 20 * 64 / 64 ** 2)
