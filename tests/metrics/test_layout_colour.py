"""Parser-free layout measure and colour specificity on hand-built images."""
import math

import numpy as np
import pytest

from vidanime import labels as L
from vidanime.metrics.color import colour_specificity, region_mean_lab
from vidanime.metrics.structure import layout_kept

HAIR = L.class_ids("bisenet", "hair")[0]


def _blob(x0: int, y0: int, size: int = 64) -> np.ndarray:
    im = np.full((size, size, 3), 30, np.uint8)
    im[y0 : y0 + 20, x0 : x0 + 20] = 220
    return im


def test_layout_kept_is_high_for_copies_and_zero_for_one_face_for_all():
    inputs = [_blob(4, 4), _blob(40, 4), _blob(4, 40), _blob(40, 40)]  # 5x5 cells of the 16x16 thumbnail each
    # own correlation 1; two disjoint binary patterns with p = 25/256 of cells set correlate at -p / (1 - p) = -25/231
    assert layout_kept(inputs, inputs) == pytest.approx(1 + 25 / 231, abs=1e-9)
    same = [inputs[0]] * 4
    assert layout_kept(inputs, same) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        layout_kept(inputs, inputs[:3])


def test_colour_specificity_one_when_ignored_zero_when_kept():
    lab = np.full((32, 32), HAIR)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    ims = [np.full((32, 32, 3), c, np.uint8) for c in colours]
    assert colour_specificity(ims, [lab] * 3, ims, [lab] * 3) == pytest.approx(0.0)
    grey = [np.full((32, 32, 3), 128, np.uint8)] * 3  # every output the same colour: own as far as the others
    assert colour_specificity(ims, [lab] * 3, grey, [lab] * 3) == pytest.approx(1.0)
    none = np.zeros((32, 32), int)
    assert math.isnan(colour_specificity(ims, [none] * 3, ims, [lab] * 3))
    white = region_mean_lab(np.full((8, 8, 3), 255, np.uint8), np.full((8, 8), HAIR), [HAIR])
    np.testing.assert_allclose(white, [100, 0, 0], atol=0.6)
