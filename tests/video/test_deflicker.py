"""Flow-guided blending of translated crops (--temporal flow): hand-computed still case, motion followed without lag,
distrusted flow passes the new drawing through, tracks independent."""
import numpy as np
import pytest

from vidanime.errors import ConfigError
from vidanime.metrics.temporal import FramePair, reduce_warp_error, warp_error_terms
from vidanime.video.deflicker import CropFlowBlend, FlowBlendConfig

S = 96


def _texture(seed: int = 0, size: int = S + 40) -> np.ndarray:
    """A smooth random texture (uint8 RGB) that optical flow can track."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 6, size // 6, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def test_still_input_blends_by_beta_exactly():
    """No motion: the flow is zero and trusted everywhere, so O'_1 = O_1 + beta (O_0 - O_1) (to rounding)."""
    blend = CropFlowBlend(FlowBlendConfig(beta=0.6, tau=0.05))
    inp = np.repeat(_texture()[None, :S, :S], 2, 0)
    o0 = np.full((S, S, 3), 200, np.uint8)
    o1 = np.full((S, S, 3), 100, np.uint8)
    out = blend(inp, np.stack([o0, o1]), [7, 7])
    assert np.array_equal(out[0], o0)  # a track's first frame passes through
    np.testing.assert_allclose(out[1].astype(float), 100 + 0.6 * (200 - 100), atol=1.0)
    # the state is the blended crop: a third identical frame moves on from 160, not from 100
    again = blend(inp[:1], o1[None], [7])
    np.testing.assert_allclose(again[0].astype(float), 100 + 0.6 * (160 - 100), atol=1.0)
    blend.reset()
    assert np.array_equal(blend(inp[:1], o1[None], [7])[0], o1)  # after reset: a first frame again


def test_paste_masks_follow_the_same_blend():
    """Still input: the mask is blended like the drawing, m'_1 = m_1 + beta (m'_0 - m_1), and the state carries the
    blended mask; with ``masks=False`` the masks pass through unchanged (the drawing is still blended)."""
    inp = np.repeat(_texture()[None, :S, :S], 2, 0)
    outs = np.stack([np.full((S, S, 3), 200, np.uint8), np.full((S, S, 3), 100, np.uint8)])
    m = np.stack([np.ones((S, S), np.float32), np.zeros((S, S), np.float32)])
    blend = CropFlowBlend(FlowBlendConfig(beta=0.6, tau=0.05))
    out, mb = blend.blend(inp, outs, [3, 3], m)
    c = slice(8, S - 8)  # away from the border, where the weight's blur meets the out-of-crop zero
    np.testing.assert_array_equal(mb[0], m[0])
    np.testing.assert_allclose(mb[1][c, c], 0.6, atol=1e-3)
    _, again = blend.blend(inp[:1], outs[1:], [3], m[1:])
    np.testing.assert_allclose(again[0][c, c], 0.6 * 0.6, atol=1e-3)  # moves on from the blended 0.6
    assert np.all(m[1] == 0)  # the caller's masks are not changed in place
    out_off, m_off = CropFlowBlend(FlowBlendConfig(beta=0.6, tau=0.05, masks=False)).blend(inp, outs, [3, 3], m)
    np.testing.assert_array_equal(m_off, m)
    np.testing.assert_array_equal(out_off, out)


def test_moving_input_steadies_the_drawing_without_lag():
    """Input and drawing slide 2 px per frame; the drawing also flickers (noise each frame).  Blending carries the
    previous drawing along the input's motion: the warp error falls, and the drawing's content stays where the
    input's motion puts it (no lag: a bright square stays at its true place)."""
    rng = np.random.default_rng(1)
    tex = _texture(2)
    frames, drawn = [], []
    for t in range(12):
        x = 4 + 2 * t
        frames.append(tex[10 : 10 + S, x : x + S].copy())
        d = np.full((S, S, 3), 90, np.float32)
        d[40:56, 30 - 2 * t + 20 : 46 - 2 * t + 20] = 240  # a square moving with the content (leftwards in the crop)
        drawn.append(np.clip(d + rng.normal(0, 12, d.shape), 0, 255).astype(np.uint8))
    frames, drawn = np.stack(frames), np.stack(drawn)
    out = CropFlowBlend()(frames, drawn, [0] * len(frames))

    def warp(o):
        return reduce_warp_error([warp_error_terms(FramePair(frames[t], frames[t + 1], o[t], o[t + 1]))
                                  for t in range(len(o) - 1)])["value"]

    assert warp(out) < 0.3 * warp(drawn)  # measured 0.07x
    for t in (6, 11):  # the square's centre column in the blended drawing stays within 1 px of the truth
        cols = np.nonzero(out[t, 40:56, :, 0].mean(0) > 165)[0]
        assert abs(cols.mean() - (30 - 2 * t + 20 + 7.5)) < 1.0


def test_fine_texture_the_flow_cannot_follow_does_not_veto_the_blend():
    """A still face whose fine texture (grain, strands) changes every frame: pixel by pixel the flow seems not to
    explain the input, but at the drawing's scale (``gate_sigma``) it does, so the drawing is carried; a real change
    of the input's coarse content is still not trusted."""
    rng = np.random.default_rng(5)
    base = _texture(6)[:S, :S].astype(np.float32)
    grain = [np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8) for _ in range(2)]
    o0, o1 = np.full((S, S, 3), 200, np.uint8), np.full((S, S, 3), 100, np.uint8)
    c = slice(16, S - 16)
    gated = CropFlowBlend(FlowBlendConfig(beta=0.7, tau=0.06))(np.stack(grain), np.stack([o0, o1]), [0, 0])
    pixelwise = CropFlowBlend(FlowBlendConfig(beta=0.7, tau=0.06, gate_sigma=0))(np.stack(grain), np.stack([o0, o1]),
                                                                                  [0, 0])
    assert gated[1][c, c].mean() > 100 + 0.6 * 100  # nearly the full beta 0.7 of the previous drawing
    assert pixelwise[1][c, c].mean() < 100 + 0.3 * 100
    other = np.clip(_texture(7)[:S, :S].astype(np.float32) + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    cut = CropFlowBlend(FlowBlendConfig(beta=0.7, tau=0.06))(np.stack([grain[0], other]), np.stack([o0, o1]), [0, 0])
    assert cut[1][c, c].mean() < 100 + 0.1 * 100


def test_distrusted_flow_passes_the_new_drawing_through_and_tracks_are_independent():
    """A cut-like change of the input (no flow explains it): the new drawing shows unchanged; two interleaved tracks
    keep their own state."""
    blend = CropFlowBlend()
    a, b = _texture(3)[:S, :S], _texture(4)[:S, :S]
    o0, o1 = np.full((S, S, 3), 30, np.uint8), np.full((S, S, 3), 220, np.uint8)
    out = blend(np.stack([a, a, b]), np.stack([o0, o1, o1]), [1, 2, 1])
    assert np.array_equal(out[1], o1)  # track 2's first frame, not blended with track 1
    assert np.abs(out[2].astype(int) - 220).mean() < 8  # track 1: new content, the flow is not trusted


def test_config_checks():
    with pytest.raises(ConfigError, match="expected 0 <= beta < 1"):
        FlowBlendConfig(beta=1.0).check()
    with pytest.raises(ConfigError, match="gate_sigma=-1"):
        FlowBlendConfig(gate_sigma=-1).check()
    off = CropFlowBlend(FlowBlendConfig(beta=0.0))
    x = np.zeros((2, S, S, 3), np.uint8)
    y = np.full((2, S, S, 3), 9, np.uint8)
    assert off(x, y, [0, 0]) is y


def test_detail_layer_is_carried_with_its_own_weight():
    """Still input, the previous drawing has fine lines the new one lacks: the coarse level is blended by beta as
    before, the lines by detail_beta — O'_1 = O_1 + β (O_0 − O_1) + (β_d − β)(H(O_0) − H(O_1)), H(x) = x − g∗x."""
    import cv2

    inp = np.repeat(_texture()[None, :S, :S], 2, 0)
    o0 = np.full((S, S, 3), 120, np.uint8)
    o0[:, ::6] = 40  # thin dark lines every 6 px
    o1 = np.full((S, S, 3), 160, np.uint8)
    plain = CropFlowBlend(FlowBlendConfig(beta=0.6, tau=0.05, detail_beta=0.6))(inp, np.stack([o0, o1]), [1, 1])[1]
    split = CropFlowBlend(FlowBlendConfig(beta=0.6, tau=0.05, detail_beta=0.9, detail_sigma=4.0))(
        inp, np.stack([o0, o1]), [1, 1])[1]
    np.testing.assert_allclose(plain.astype(float), 160 + 0.6 * (o0.astype(float) - 160), atol=1.0)
    s = 4.0 * S / 256
    f0 = o0.astype(np.float32)
    detail = f0 - cv2.GaussianBlur(f0, (0, 0), s)  # H(O_1) = 0: a flat drawing has no detail
    want = 160 + 0.6 * (f0 - 160) + 0.3 * detail
    np.testing.assert_allclose(split.astype(float), np.clip(np.rint(want), 0, 255), atol=1.0)
    assert np.abs(split[:, ::6].astype(float) - 160).mean() > np.abs(plain[:, ::6].astype(float) - 160).mean() + 5
    with pytest.raises(ConfigError, match="detail_beta=1.0"):
        FlowBlendConfig(detail_beta=1.0).check()
    FlowBlendConfig(beta=0.95).check()  # a beta above the default detail_beta: one weight for all
