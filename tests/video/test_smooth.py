"""Landmark smoothing: Savitzky–Golay against scipy, One-Euro behaviour, and measured crop-jitter reduction."""
from __future__ import annotations

import numpy as np
import pytest

from vidanime.errors import ConfigError
from vidanime.video.align import estimate_similarity, transform_jitter
from vidanime.video.smooth import (
    OneEuroFilter,
    SmoothConfig,
    local_poly_smooth,
    savgol_smooth_sequence,
    smooth_sequence,
)

from .face_helpers import cached, read_frames, video, yunet_path


def test_savgol_interior_matches_scipy():
    from scipy.signal import savgol_filter

    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(40, 3)), axis=0)
    ours = savgol_smooth_sequence(x, window=9, order=2)
    ref = savgol_filter(x, 9, 2, axis=0)
    np.testing.assert_allclose(ours[4:-4], ref[4:-4], atol=1e-9)


def test_local_poly_is_exact_on_a_quadratic_with_gaps_and_edges():
    t = np.array([0.0, 1.0, 3.0, 4.0])  # a gap at 2, evaluation at the end
    v = 2 + 0.5 * t - 0.25 * t ** 2
    assert local_poly_smooth(t, v, 4.0, 2) == pytest.approx(2 + 2 - 4)
    assert local_poly_smooth(t[:1], v[:1], 0.0, 2) == pytest.approx(2.0)


def test_one_euro_keeps_constants_and_reduces_noise_but_follows_steps():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert all(f(np.array([3.0]), i / 25)[0] == pytest.approx(3.0) for i in range(10))
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (200, 1))
    cfg = SmoothConfig("one_euro", min_cutoff=1.0, beta=0.0)
    out = smooth_sequence(np.repeat(noise[:, None], 5, 1).repeat(2, -1) + 10, cfg, fps=25)
    assert out[50:].std() < 0.5 * noise.std()
    g = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    ys = [g(np.array([0.0 if i < 5 else 1.0]), i / 25)[0] for i in range(60)]
    assert ys[5] < 0.5 and ys[-1] > 0.99


def test_config_checks():
    with pytest.raises(ConfigError, match="odd"):
        SmoothConfig(window=4).check()
    with pytest.raises(ConfigError, match="method"):
        SmoothConfig(method="kalman").check()
    assert SmoothConfig(window=9).lookahead == 4 and SmoothConfig("one_euro").lookahead == 0


def _d0_landmarks(assets):
    """YuNet landmarks on all 78 frames of liveportrait_d0 (static head: MANIFEST says 0.05 face widths, 4 deg)."""
    from vidanime.video.detect import create_detector

    def run():
        frames = cached(("d0", None), lambda: read_frames(video(assets, "liveportrait_d0.mp4")))
        dets = create_detector("yunet", yunet_path(assets)).detect(frames)
        return np.stack([d[0].landmarks for d in dets])

    return cached("d0-yunet-landmarks", run)


@pytest.mark.parametrize("cfg,min_ratio", [(SmoothConfig("savgol", window=9), 1.5),
                                           (SmoothConfig("one_euro", min_cutoff=0.5, beta=0.5), 1.5)])
def test_crop_jitter_falls_on_a_static_head_clip(assets, cfg, min_ratio):
    lm = _d0_landmarks(assets)
    raw = transform_jitter([estimate_similarity(x)[0] for x in lm])["corner_px"]
    smooth = transform_jitter([estimate_similarity(x)[0] for x in smooth_sequence(lm, cfg, fps=25)])["corner_px"]
    assert raw / smooth > min_ratio, f"jitter {raw:.2f} -> {smooth:.2f} crop px"
    assert np.abs(smooth_sequence(lm, cfg, fps=25) - lm).mean() < 3.0  # no drift away from the face
