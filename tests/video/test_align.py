"""Alignment: Umeyama similarity, FFHQ-style template, warp and inverse warp, border padding."""
from __future__ import annotations

import numpy as np
import pytest

from vidanime.errors import ConfigError, VidanimeError
from vidanime.video.align import (
    FFHQ_TEMPLATE_512,
    apply_affine,
    estimate_similarity,
    invert_affine,
    template,
    transform_jitter,
    umeyama,
    unwarp_face,
    valid_mask,
    warp_face,
)
from vidanime.video.paste import ellipse_mask, psnr

from .face_helpers import D0_FRAME0_LANDMARKS, cached, read_frames


def _similarity(scale, deg, tx, ty):
    a = np.radians(deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _complex_ls(src, dst):
    """Reference: a 2-D similarity is z' = a z + b with complex a, b; solve it by ordinary least squares."""
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    (a, b), *_ = np.linalg.lstsq(np.stack([zs, np.ones_like(zs)], 1), zd, rcond=None)
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def test_umeyama_recovers_exact_similarity():
    m = _similarity(1.7, 20.0, 13.0, -4.0)
    src = FFHQ_TEMPLATE_512
    est = umeyama(src, apply_affine(m, src))
    np.testing.assert_allclose(est, m, atol=1e-9)


def test_umeyama_matches_complex_least_squares_on_noisy_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    dst = apply_affine(_similarity(0.6, -35.0, 50.0, 7.0), src) + rng.normal(0, 2.0, (5, 2))
    np.testing.assert_allclose(umeyama(src, dst), _complex_ls(src, dst), atol=1e-9)


def test_umeyama_rejects_degenerate_points():
    with pytest.raises(VidanimeError, match="same place"):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))


def test_template_scales_with_size_and_keeps_order():
    np.testing.assert_allclose(template(256), FFHQ_TEMPLATE_512 / 2)
    t = template(1024)
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]  # image-left before image-right
    assert t[0, 1] < t[2, 1] < t[3, 1]  # eyes above nose above mouth
    with pytest.raises(ConfigError):
        template(8)


def test_estimate_similarity_maps_landmarks_near_template_and_inverse_is_inverse():
    m, inv = estimate_similarity(D0_FRAME0_LANDMARKS, 256)
    err = np.linalg.norm(apply_affine(m, D0_FRAME0_LANDMARKS) - template(256), axis=1)
    assert err.max() < 8.0  # a real face fits the template to a few pixels (3 % of the crop)
    np.testing.assert_allclose(apply_affine(inv, apply_affine(m, D0_FRAME0_LANDMARKS)), D0_FRAME0_LANDMARKS, atol=1e-6)
    np.testing.assert_allclose(invert_affine(inv), m, atol=1e-9)


def test_warp_samples_the_frame_exactly_on_a_linear_ramp():
    """Bilinear warping of an affine intensity ramp is exact, so crop pixels equal the ramp at M^-1 (x, y)."""
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = np.stack([xx, yy, 0.5 * xx + 0.25 * yy], -1)
    m = _similarity(0.8, 10.0, -20.0, 5.0)
    crop = warp_face(ramp, m, 64)
    qy, qx = np.mgrid[0:64, 0:64].astype(np.float64)
    p = apply_affine(invert_affine(m), np.stack([qx, qy], -1))
    inside = (p[..., 0] > 1) & (p[..., 0] < w - 2) & (p[..., 1] > 1) & (p[..., 1] < h - 2)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(crop[..., 0][inside], p[..., 0][inside], atol=0.02)
    np.testing.assert_allclose(crop[..., 1][inside], p[..., 1][inside], atol=0.02)


def _d0_frame(assets):
    return cached(("d0", 1), lambda: read_frames(assets / "video" / "liveportrait_d0.mp4", n=1))[0]


@pytest.mark.parametrize("size,min_db", [(512, 40.0), (256, 36.0)])
def test_align_inverse_align_round_trip_inside_face(assets, size, min_db):
    """512: the crop does not downsample the face, round trip > 40 dB; 256 downsamples it 1.5x (detail lost)."""
    frame = _d0_frame(assets)
    m, _ = estimate_similarity(D0_FRAME0_LANDMARKS, size)
    back = unwarp_face(warp_face(frame, m, size), m, frame.shape[:2])
    face = unwarp_face(ellipse_mask(size), m, frame.shape[:2]) > 0.5
    assert face.sum() > 20000
    assert psnr(back, frame, face) > min_db


@pytest.mark.parametrize("border", ["reflect", "constant"])
def test_face_cut_by_border_is_padded_and_flagged(border):
    rng = np.random.default_rng(1)
    frame = rng.integers(30, 255, (200, 300, 3), dtype=np.uint8)
    # Face whose left half is outside the frame: eye midpoint at x = 0.
    lm = template(100) - np.array([50.0, 0.0]) + np.array([0.0, 50.0])
    m, _ = estimate_similarity(lm, 100)
    crop = warp_face(frame, m, 100, border=border)
    valid = valid_mask(m, frame.shape[:2], 100)
    assert 0.35 < valid.mean() < 0.65  # about half of the crop lies outside the frame
    outside = valid < 0.5
    if border == "constant":
        assert (crop[outside] == 0).all()
    else:
        assert (crop[outside] > 0).all()  # reflected frame content, no black wedge
    with pytest.raises(ConfigError, match="border"):
        warp_face(frame, m, 100, border="wrap")


def test_transform_jitter_zero_for_static_and_measures_noise():
    m = _similarity(0.5, 3.0, 10.0, 20.0)
    assert transform_jitter([m] * 5)["corner_px"] == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    noisy = [estimate_similarity(D0_FRAME0_LANDMARKS + rng.normal(0, 2.0, (5, 2)))[0] for _ in range(50)]
    quiet = [estimate_similarity(D0_FRAME0_LANDMARKS + rng.normal(0, 0.5, (5, 2)))[0] for _ in range(50)]
    assert transform_jitter(noisy)["corner_px"] > 3 * transform_jitter(quiet)["corner_px"]
    with pytest.raises(VidanimeError):
        transform_jitter([m, m])
