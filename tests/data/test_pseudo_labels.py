"""Colour refinement of pseudo-labels on a hand-built flat-shaded case."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidanime import labels as L
from vidanime.data.pseudo_labels import colour_refine


def _case():
    names = L.class_names("bisenet")
    skin, hair, eye = names.index("skin"), names.index("hair"), names.index("l_eye")
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, :10] = (250, 225, 210)  # pale skin colour
    img[:, 10:] = (120, 70, 40)  # brown hair colour
    p = torch.full((19, 20, 20), 0.0)
    p[skin, :, :8], p[hair, :, :8] = 0.9, 0.1
    p[hair, :, 12:], p[skin, :, 12:] = 0.9, 0.1
    p[hair, :, 8:12], p[skin, :, 8:12] = 0.6, 0.4  # columns 8, 9 are skin-coloured but called hair
    p[:, 5, 5] = 0.0
    p[eye, 5, 5], p[skin, 5, 5], p[hair, 5, 5] = 0.8, 0.1, 0.1
    return img, p, skin, hair, eye


def test_colour_refine_moves_mislabelled_flat_region_and_keeps_features():
    img, p, skin, hair, eye = _case()
    r = colour_refine(p, img, "bisenet", weight=0.3)
    arg = r.argmax(0)
    assert (arg[:, 8:10] == skin).all() and (arg[:, 10:12] == hair).all()  # colour decided the wrong columns
    assert (p.argmax(0)[:, 8:10] == hair).all()  # (they were hair before)
    torch.testing.assert_close(r.sum(0), torch.ones(20, 20))
    assert r[eye, 5, 5].item() == pytest.approx(0.8)  # a facial feature's probability is untouched
    # weight 0 changes nothing
    torch.testing.assert_close(colour_refine(p, img, "bisenet", weight=0.0), p)


def test_colour_refine_needs_matching_shapes():
    img, p, *_ = _case()
    with pytest.raises(ValueError, match="must match"):
        colour_refine(p[:, :10], img, "bisenet")
