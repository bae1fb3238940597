"""Landmark smoothing: Savitzky–Golay against scipy, One-Euro behaviour, and measured crop-jitter reduction."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("cfg,min_ratio", [(SmoothConfig("savgol", window=9, order=2), 1.5),
                                           (SmoothConfig("one_euro", min_cutoff=0.5, beta=0.5), 1.5)])
def test_crop_jitter_falls_on_a_static_head_clip(assets, cfg, min_ratio):
    lm = _d0_landmarks(assets)
    raw = transform_jitter([estimate_similarity(x)[0] for x in lm])["corner_px"]
    smooth = transform_jitter([estimate_similarity(x)[0] for x in smooth_sequence(lm, cfg, fps=25)])["corner_px"]
    assert raw / smooth > min_ratio, f"jitter {raw:.2f} -> {smooth:.2f} crop px"
    assert np.abs(smooth_sequence(lm, cfg, fps=25) - lm).mean() < 3.0  # no drift away from the face


# ----------------------------------------------------------------------------------------------- latent filtering
def _codes(values, n_layers=4, dim=3):
    """(T, L, D) codes whose every element follows ``values`` (T,)."""
    import torch

    v = torch.as_tensor(values, dtype=torch.float32)
    return v[:, None, None].expand(-1, n_layers, dim).clone()


def test_latent_filter_step_response_structure_faster_than_appearance():
    from vidanime.video.smooth import LatentFilter, LatentFilterConfig

    seq = _codes([0.0] * 10 + [1.0] * 40)
    f = LatentFilter(n_structure=2, config=LatentFilterConfig(structure_cutoff=2.0, appearance_cutoff=0.3, beta=0.0),
                     fps=25.0)
    out = torch.stack([f(seq[i:i + 1], [7])[0] for i in range(len(seq))])  # one frame at a time, track 7
    assert torch.equal(out[:10], seq[:10])  # constant input: unchanged
    # A first-order low-pass at cut-off fc, sampled at 25 fps: alpha = 1 / (1 + 25 / (2 pi fc)).
    a_s, a_a = 1 / (1 + 25 / (2 * math.pi * 2.0)), 1 / (1 + 25 / (2 * math.pi * 0.3))
    torch.testing.assert_close(out[10, 0, 0], torch.tensor(a_s))  # first frame after the step, hand-computed
    torch.testing.assert_close(out[10, 3, 0], torch.tensor(a_a))
    torch.testing.assert_close(out[12, 0, 0], torch.tensor(1 - (1 - a_s) ** 3))
    assert float(out[49, 0, 0]) > 0.999 and 0.5 < float(out[49, 3, 0]) < 0.98  # structure settles, appearance lags


def test_latent_filter_new_track_and_reset_start_unfiltered():
    from vidanime.video.smooth import LatentFilter

    f = LatentFilter(n_structure=2, fps=25.0)
    a, b = _codes([0.0])[0:1], _codes([5.0])[0:1]
    f(a, [1])
    assert not torch.equal(f(b, [1]), b)  # same track: filtered
    assert torch.equal(f(b, [2]), b)  # a new track (e.g. after a scene cut): passes through unfiltered
    f.reset(fps=30.0)
    assert f.fps == 30.0 and torch.equal(f(b, [1]), b)
    two = f(torch.cat([a, b]), [3, 4])  # two new tracks in one batch: each its own filter
    assert torch.equal(two, torch.cat([a, b]))


def test_latent_filter_fast_motion_opens_the_filter():
    from vidanime.video.smooth import LatentFilter, LatentFilterConfig

    seq = _codes([0.0] * 5 + [10.0] * 5)
    lag = {}
    for beta in (0.0, 1.0):
        f = LatentFilter(n_structure=4, config=LatentFilterConfig(structure_cutoff=1.0, beta=beta), fps=25.0)
        out = [f(seq[i:i + 1], [0])[0, 0, 0].item() for i in range(len(seq))]
        lag[beta] = 10.0 - out[6]
    assert lag[1.0] < 0.5 * lag[0.0]  # the speed term follows a fast change much sooner
