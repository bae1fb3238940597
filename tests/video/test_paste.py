"""Paste-back: masks, compositing weights, colour matching at the seam, fade weights, identity reproduction."""
from __future__ import annotations

import numpy as np
import pytest

from vidanime.errors import ConfigError, MediaError
from vidanime.labels import class_ids
from vidanime.video.align import estimate_similarity, template, unwarp_face, warp_face
from vidanime.video.paste import (
    SEAM_COLOR_MATCH,
    PasteItem,
    edge_fade,
    ellipse_mask,
    fade_weight,
    parsing_mask,
    paste_face,
    paste_faces,
    psnr,
)

from .face_helpers import D0_FRAME0_LANDMARKS, cached, read_frames


def test_ellipse_mask_covers_face_and_vanishes_at_edges():
    m = ellipse_mask(256)
    assert m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    t = template(256)
    for x, y in t:  # every landmark of the template is well inside the mask
        assert m[int(y), int(x)] > 0.95
    assert m[0].max() == 0 and m[-1].max() == 0 and m[:, 0].max() == 0 and m[:, -1].max() == 0
    assert m[5, 5] == 0


def test_edge_fade_ramp():
    f = edge_fade(100, margin=0.1)
    assert f[50, 50] == 1.0 and f[0, 50] == 0.0 and f[4, 50] == pytest.approx(0.4)


def test_parsing_mask_follows_face_classes():
    labels = np.zeros((128, 128), np.int64)
    labels[20:110, 30:100] = class_ids("bisenet", "skin")[0]
    labels[100:128, 30:100] = class_ids("bisenet", "cloth")[0]
    m = parsing_mask(labels, "bisenet")
    assert m[60, 64] > 0.99  # inside the skin
    assert m[122, 64] < 0.01  # cloth is not pasted
    assert m[60, 5] < 0.01  # background
    with pytest.raises(MediaError):
        parsing_mask(np.zeros((4, 4, 3), np.int64))


def test_paste_weights_blend_exactly():
    frame = np.full((100, 100, 3), 100, np.uint8)
    crop = np.full((64, 64, 3), 200, np.uint8)
    m, _ = estimate_similarity(template(64) + 18.0, 64)  # identity-like: the crop sits at (18, 18) in the frame
    mask = np.ones((64, 64), np.float32)
    half = paste_face(frame, crop, m, mask, weight=0.5, color_match=0)
    assert half[50, 50].tolist() == [150, 150, 150]
    assert half[5, 5].tolist() == [100, 100, 100]  # outside the crop: untouched
    assert (paste_face(frame, crop, m, mask, weight=0.0) == frame).all()
    with pytest.raises(ConfigError):
        paste_face(frame, crop, m, mask, weight=1.5)
    with pytest.raises(MediaError):
        paste_face(frame, crop, m, np.ones((32, 32), np.float32))


def test_no_items_pass_frame_through_unchanged():
    frame = np.zeros((10, 10, 3), np.uint8)
    assert paste_faces(frame, []) is frame


def _d0_frame(assets):
    return cached(("d0", 1), lambda: read_frames(assets / "video" / "liveportrait_d0.mp4", n=1))[0]


def test_paste_back_of_unmodified_crop_reproduces_frame(assets):
    frame = _d0_frame(assets)
    m, _ = estimate_similarity(D0_FRAME0_LANDMARKS, 512)
    crop = warp_face(frame, m, 512)
    mask = ellipse_mask(512)
    out = paste_faces(frame, [PasteItem(crop, m, mask, 1.0)], color_match=1.0)
    inside = unwarp_face(mask, m, frame.shape[:2]) > 0.5
    assert psnr(out, frame, inside) > 40.0
    assert psnr(out, frame) > 40.0  # and the rest of the frame is untouched or blended with itself


def test_colour_matching_removes_a_colour_step_at_the_seam(assets):
    frame = _d0_frame(assets)
    m, _ = estimate_similarity(D0_FRAME0_LANDMARKS, 256)
    shifted = np.clip(warp_face(frame, m, 256).astype(np.int16) + np.array([40, -30, 20]), 0, 255).astype(np.uint8)
    mask = ellipse_mask(256)
    band = unwarp_face(((mask > 0.05) & (mask < 0.5)).astype(np.float32), m, frame.shape[:2]) > 0.5
    raw = paste_face(frame, shifted, m, mask, color_match=0.0)
    matched = paste_face(frame, shifted, m, mask, color_match=1.0)
    err_raw = np.abs(raw.astype(float) - frame)[band].mean()
    err_matched = np.abs(matched.astype(float) - frame)[band].mean()
    assert err_raw > 5.0 and err_matched < 0.35 * err_raw


def test_fade_weight_hand_values():
    assert [fade_weight(k, None, 4) for k in range(6)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    assert fade_weight(10, 0, 4) == 0.2 and fade_weight(10, 3, 4) == 0.8
    assert fade_weight(0, 0, 4, fade_in=False, fade_out=False) == 1.0
    assert fade_weight(0, None, 0) == 1.0


def test_drawings_are_pasted_without_the_backdrops_colour(assets):
    """p2a pastes a drawing as drawn: on the green-screen clip, seam matching would shift the whole drawing toward the
    backdrop (the green hair it gave, README "Pasting back"); a2p (photos) keeps the seam matching."""
    frame = _d0_frame(assets)
    m, _ = estimate_similarity(D0_FRAME0_LANDMARKS, 256)
    drawing = np.full((256, 256, 3), (236, 224, 218), np.uint8)  # a pale drawn skin tone, no green in it
    mask = ellipse_mask(256)
    centre = unwarp_face((mask > 0.99).astype(np.float32), m, frame.shape[:2]) > 0.5
    p2a = paste_face(frame, drawing, m, mask, color_match=SEAM_COLOR_MATCH["p2a"])[centre].mean(0)
    a2p = paste_face(frame, drawing, m, mask, color_match=SEAM_COLOR_MATCH["a2p"])[centre].mean(0)
    assert np.abs(p2a - (236, 224, 218)).max() < 1.0
    assert (a2p[1] - a2p[0]) - (224 - 236) > 30  # matched: pulled toward the green backdrop (G above R)
