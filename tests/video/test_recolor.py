"""Region recolouring: hand-built drawings and parsings with known colours (vidanime.video.recolor)."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from vidanime import labels as L
from vidanime.errors import ConfigError
from vidanime.video.recolor import RecolorConfig, RegionRecolor, apply_map, region_map

S, M = 64, 32  # input crop side, drawing side
HAIR, SKIN = L.class_ids("bisenet", "hair")[0], L.class_ids("bisenet", "skin")[0]


class TopHalfHairParser(torch.nn.Module):
    """A stand-in parser: 'hair' on the top half of any image, 'skin' below (bisenet order, 64 px)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(label_set="bisenet", image_size=64)
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        logits = torch.zeros(n, L.num_classes("bisenet"), h, w)
        logits[:, HAIR, : h // 2] = 1
        logits[:, SKIN, h // 2 :] = 1
        return logits * self.scale


def _drawing(hair_rgb: tuple[int, int, int], skin_rgb=(230, 200, 180)) -> torch.Tensor:
    """(1, 3, M, M) in [-1, 1]: a flat hair colour on the top half, skin below."""
    img = np.zeros((M, M, 3), np.uint8)
    img[: M // 2], img[M // 2 :] = hair_rgb, skin_rgb
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1


def _input(hair_rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(1, S, S, 3) uint8 input with a hair colour on its top half, and its parsing (1, S, S)."""
    img = np.full((1, S, S, 3), 120, np.uint8)
    img[0, : S // 2] = hair_rgb
    lab = np.full((1, S, S), SKIN, np.uint8)
    lab[0, : S // 2] = HAIR
    return img, lab


def _u8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def _lab(rgb) -> np.ndarray:
    return cv2.cvtColor(np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB)[0, 0]


def test_region_map_moves_the_mean_and_caps_the_spread():
    """Hand case in Lab: drawing values 10 ± 2; input rows 32, 48, 40, 48 (median 44, std 6.6) → centre 44, spread
    ratio capped (1 for lightness, 2 for a/b)."""
    src = np.zeros((4, 4, 3), np.float32)
    src[..., :] = np.array([32.0, 48.0, 40.0, 48.0]).repeat(4).reshape(4, 4, 1)
    out = np.zeros((4, 4, 3), np.float32)
    out[..., :] = np.array([8.0, 12.0, 8.0, 12.0]).repeat(4).reshape(4, 4, 1)  # mean 10, std 2
    mask = np.ones((4, 4), bool)
    m = region_map(src, mask, out, mask, min_pixels=4, max_ratio=(1.0, 2.0, 2.0), chroma=1.0)
    sd_src = src[..., 0].std()
    np.testing.assert_allclose(m[0], 10.0, atol=1e-5)  # μ_out
    np.testing.assert_allclose(m[2], 44.0, atol=1e-5)  # the input's median
    np.testing.assert_allclose(m[1], [1.0, 2.0, 2.0], atol=1e-3)  # σ_in/σ_out = sd_src/2 > 2, capped
    assert sd_src / 2 > 2
    res = apply_map(out, np.ones((4, 4), np.float32), m)
    np.testing.assert_allclose(res[..., 0].mean(), 44.0, atol=1e-4)
    np.testing.assert_allclose(res[..., 0].std(), out[..., 0].std(), rtol=1e-4)  # lightness spread not amplified
    np.testing.assert_allclose(res[..., 1].std(), 2 * out[..., 1].std(), rtol=1e-4)
    half = apply_map(out, np.full((4, 4), 0.5, np.float32), m)
    np.testing.assert_allclose(half, (out + res) / 2, atol=1e-4)
    assert region_map(src, np.zeros((4, 4), bool), out, mask, min_pixels=4) is None  # region missing in the input
    stray = src.copy()
    stray[1, :2] = 90.0  # two stray pixels (a green screen between strands): the centre stays at the median
    np.testing.assert_allclose(region_map(stray, mask, out, mask, min_pixels=4, chroma=1.0)[2], 44.0, atol=1e-5)
    np.testing.assert_allclose(region_map(src, mask, out, mask, min_pixels=4, chroma=1.5)[2], [44.0, 66.0, 66.0])


def test_hair_takes_the_input_colour_and_the_rest_stays():
    rc = RegionRecolor(TopHalfHairParser(), RecolorConfig(strength=1.0, regions=("hair",), feather=0.0, chroma=1.0))
    inp, lab = _input((230, 200, 60))  # blond
    draw = _drawing((170, 40, 40))  # red hair
    out = _u8(rc(inp, lab, "bisenet", draw, [0]))
    hair = out[2 : M // 2 - 2].reshape(-1, 3).mean(0)
    assert np.abs(_lab(hair) - _lab((230, 200, 60))).max() < 2.0  # blond now, within 2 Lab units
    np.testing.assert_allclose(out[M // 2 + 2 :], _u8(draw)[M // 2 + 2 :], atol=1)  # skin as drawn
    off = RegionRecolor(TopHalfHairParser(), RecolorConfig(strength=0.0))
    assert torch.equal(off(inp, lab, "bisenet", draw, [0]), draw)


def test_half_strength_lands_halfway_in_lab():
    rc = RegionRecolor(TopHalfHairParser(), RecolorConfig(strength=0.5, regions=("hair",), feather=0.0, chroma=1.0))
    inp, lab = _input((40, 40, 200))
    out = _u8(rc(inp, lab, "bisenet", _drawing((200, 160, 40)), [0]))
    got = _lab(out[2 : M // 2 - 2].reshape(-1, 3).mean(0))
    want = (_lab((40, 40, 200)) + _lab((200, 160, 40))) / 2
    assert np.abs(got - want).max() < 2.5


def test_tracks_smooth_the_map_and_reset_forgets():
    """Frame 2 of a track with a new input colour moves only (1 - smooth) of the way; a new track or a reset moves all
    the way."""
    cfg = RecolorConfig(strength=1.0, regions=("hair",), feather=0.0, smooth=0.75, chroma=1.0)
    rc = RegionRecolor(TopHalfHairParser(), cfg)
    draw = _drawing((128, 128, 128))
    a, lab = _input((200, 60, 60))
    b, _ = _input((60, 60, 200))
    rc(a, lab, "bisenet", draw, [5])
    second = _lab(_u8(rc(b, lab, "bisenet", draw, [5]))[4].mean(0))
    want = 0.75 * _lab((200, 60, 60)) + 0.25 * _lab((60, 60, 200))  # flat regions: the map is a shift of the mean
    assert np.abs(second - want).max() < 2.5
    fresh = _lab(_u8(rc(b, lab, "bisenet", draw, [6]))[4].mean(0))
    assert np.abs(fresh - _lab((60, 60, 200))).max() < 2.0
    rc.reset()
    assert np.abs(_lab(_u8(rc(b, lab, "bisenet", draw, [5]))[4].mean(0)) - _lab((60, 60, 200))).max() < 2.0


def test_chroma_scales_the_target_colourfulness_not_its_lightness():
    """chroma 1.6: the recoloured hair has the input's lightness and hue, with a and b 1.6 times the input's."""
    rc = RegionRecolor(TopHalfHairParser(), RecolorConfig(strength=1.0, regions=("hair",), feather=0.0, chroma=1.6))
    inp, lab = _input((150, 110, 80))  # a light brown
    got = _lab(_u8(rc(inp, lab, "bisenet", _drawing((90, 90, 160)), [0]))[4].mean(0))
    want = _lab((150, 110, 80)) * np.array([1.0, 1.6, 1.6], np.float32)
    assert np.abs(got - want).max() < 2.0, (got, want)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="strength=1.5"):
        RecolorConfig(strength=1.5).check()
    with pytest.raises(ConfigError, match="chroma=5"):
        RecolorConfig(chroma=5).check()
    with pytest.raises(ConfigError, match="nose"):
        RecolorConfig(regions=("nose",)).check()
    from pipelines.translate import TranslatePipeline

    with pytest.raises(ConfigError, match="strength=-0.1"):
        TranslatePipeline.from_pretrained(recolor=-0.1)
