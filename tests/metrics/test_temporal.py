"""Temporal metrics on hand-built clips: translation handled by the flow, added noise, latent roughness."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidanime.errors import VidanimeError
from vidanime.metrics.temporal import flicker_index, latent_roughness, warp_error


def _texture(h=200, w=200, seed=0):
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 3)
    return cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _translating_clip(n=5, dx=3, dy=2):
    big = _texture()
    return [big[20 + dy * t : 20 + dy * t + 96, 30 + dx * t : 30 + dx * t + 128].copy() for t in range(n)]


def _noisy(frames, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(np.float64) + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def test_warp_error_zero_for_global_translation():
    ins = _translating_clip()
    outs = [255 - f for f in ins]  # a per-pixel "translation" of the frames moves with them
    res = warp_error(ins, outs)
    unwarped = np.mean([(((outs[t].astype(float) - outs[t + 1]) / 255) ** 2).sum(-1).mean() for t in range(4)])
    assert res["value"] < 1e-4
    assert res["value"] < 0.01 * unwarped
    assert res["valid_fraction"] > 0.8  # only the strip that leaves the frame is masked


def test_warp_error_grows_with_output_noise():
    ins = _translating_clip()
    clean = warp_error(ins, ins)["value"]
    noisy = warp_error(ins, _noisy(ins, 8))["value"]
    noisier = warp_error(ins, _noisy(ins, 16))["value"]
    assert clean < noisy < noisier
    # noise of std s in [0,1] units, independent per frame, per channel: E = 3 * 2 s^2 (clipping lowers it a little)
    assert noisy == pytest.approx(6 * (8 / 255) ** 2, rel=0.25)


def test_flicker_index_grows_with_per_frame_noise():
    still = [_texture(96, 128)] * 6
    values = [flicker_index(still, _noisy(still, s))["value"] for s in (0, 2, 6, 12)]
    assert values[0] == 0.0
    assert values[0] < values[1] < values[2] < values[3]


def test_flicker_index_is_one_when_output_copies_noisy_input():
    noisy_in = _noisy([_texture(96, 128)] * 6, 6)
    res = flicker_index(noisy_in, noisy_in)
    assert res["value"] == pytest.approx(1.0)
    assert res["static_fraction"] > 0.5


def test_latent_roughness_closed_form():
    t = np.arange(6, dtype=np.float64)[:, None, None]
    linear = np.broadcast_to(t * np.ones((1, 2, 4)), (6, 2, 4))
    assert latent_roughness(linear) == pytest.approx(0.0, abs=1e-12)
    zigzag = linear.copy()
    zigzag[1::2] += 1.0  # odd frames up by 1 in every coordinate: |second difference| = 1 per coordinate
    assert latent_roughness(zigzag) == pytest.approx(2.0)  # sqrt(4 coordinates * 1^2)
    with pytest.raises(VidanimeError, match="at least 3"):
        latent_roughness(linear[:2])


def test_bad_frames_raise():
    with pytest.raises(VidanimeError, match="uint8"):
        warp_error([np.zeros((8, 8, 3))] * 2, [np.zeros((8, 8, 3))] * 2)
    with pytest.raises(VidanimeError, match="at least 2"):
        flicker_index([_texture(32, 32)], [_texture(32, 32)])
