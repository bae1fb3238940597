"""pSp-style encoders: official layout at paper size (meta device), FPN taps, heads, split of W+ codes, bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidanime.errors import ConfigError, VidanimeError
from vidanime.models.encoders import EncoderConfig, EqualLinear, GradualStyleEncoder, SEModule, split_levels


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_size_parameter_counts_and_first_convs():
    levels = split_levels(14)
    with torch.device("meta"):
        e_p = GradualStyleEncoder(19, levels[:10])
        e_s = GradualStyleEncoder(3, levels[10:])
    assert round(_n_params(e_p) / 1e6, 1) == 144.7  # paper / DESIGN.md
    assert round(_n_params(e_s) / 1e6, 1) == 88.8
    assert tuple(e_p.input_layer[0].weight.shape) == (64, 19, 3, 3)
    assert tuple(e_s.input_layer[0].weight.shape) == (64, 3, 3, 3)
    assert len(e_p.body) == 24 and EncoderConfig().taps == (6, 20, 23)
    # coarse heads read 16x16 (4 stride-2 convs), medium 32x32 (5), fine 64x64 (6)
    assert [len(h.convs) // 2 for h in e_p.styles] == [4] * 3 + [5] * 7
    assert [len(h.convs) // 2 for h in e_s.styles] == [6] * 4
    assert tuple(e_p.latlayer1.weight.shape) == (512, 256, 1, 1)
    assert tuple(e_p.latlayer2.weight.shape) == (512, 128, 1, 1)


def test_split_levels_scale_with_generator_size():
    assert split_levels(14) == ["coarse"] * 3 + ["medium"] * 7 + ["fine"] * 4
    assert split_levels(8) == ["coarse"] * 2 + ["medium"] * 4 + ["fine"] * 2  # 32 px
    assert split_levels(18).count("fine") == 5  # 1024 px: 13 structure codes
    assert split_levels(14, n_structure=9, n_coarse=0) == ["medium"] * 9 + ["fine"] * 5
    with pytest.raises(ConfigError, match="n_structure_codes=14: expected 1..13"):
        split_levels(14, n_structure=14)
    with pytest.raises(ConfigError, match="units"):
        EncoderConfig(units=(3, 4, 14))


def test_equal_linear_and_se_module_values():
    torch.manual_seed(1)
    lin = EqualLinear(6, 4, lr_mul=0.5)
    x = torch.randn(3, 6)
    ref = x @ (lin.weight * 0.5 / math.sqrt(6)).T + lin.bias * 0.5
    torch.testing.assert_close(lin(x), ref)
    se = SEModule(8, 4)
    y = torch.randn(2, 8, 5, 5)
    gate = torch.sigmoid(F.conv2d(F.relu(F.conv2d(y.mean((2, 3), keepdim=True), se.fc1.weight)), se.fc2.weight))
    torch.testing.assert_close(se(y), y * gate)


def test_fpn_levels_match_a_manual_forward():
    cfg = EncoderConfig(units=(1, 2, 2, 1), widths=(8, 16, 24, 32), se_reduction=4)
    enc = GradualStyleEncoder(5, ["coarse", "medium", "fine"], cfg, style_dim=12, image_size=32).eval()
    assert cfg.taps == (2, 4, 5)
    x = torch.randn(2, 5, 32, 32)
    with torch.no_grad():
        out = enc(x)
        h = enc.input_layer(x)
        feats = []
        for unit in enc.body:
            h = unit(h)
            feats.append(h)
        c1, c2, c3 = feats[2], feats[4], feats[5]
        assert c1.shape[-1] == 8 and c2.shape[-1] == 4 and c3.shape[-1] == 2  # input/4, /8, /16
        up = lambda a, b: F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=True) + b  # noqa: E731
        p2 = up(c3, enc.latlayer1(c2))
        p1 = up(p2, enc.latlayer2(c1))
        ref = torch.stack([enc.styles[0](c3), enc.styles[1](p2), enc.styles[2](p1)], 1)
    assert out.shape == (2, 3, 12)
    torch.testing.assert_close(out, ref)


def test_encoder_bad_input_names_expected_shape():
    enc = GradualStyleEncoder(19, ["coarse"], EncoderConfig(units=(1, 1, 1, 1), widths=(4, 8, 8, 8)), 8, 32)
    with pytest.raises(VidanimeError, match=r"expected \(B, 19, 32, 32\)"):
        enc(torch.zeros(1, 17, 32, 32))
    with pytest.raises(VidanimeError, match="expected 32x32"):
        enc(torch.zeros(1, 19, 64, 64))


def test_narrow_heads_match_a_manual_forward_and_count():
    """head_width: the map2style convs are that wide and the linear maps the width to the style dimension."""
    cfg = EncoderConfig(units=(1, 1, 1, 1), widths=(8, 8, 8, 16), se_reduction=4, head_width=6)
    enc = GradualStyleEncoder(5, ["coarse", "fine"], cfg, style_dim=12, image_size=32).eval()
    head = enc.styles[1]  # fine level: 8x8 → three stride-2 convs
    convs = [m for m in head.convs if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(6, 16, 3, 3), (6, 6, 3, 3), (6, 6, 3, 3)]
    assert tuple(head.linear.weight.shape) == (12, 6)
    assert _n_params(head) == (16 * 6 * 9 + 6) + 2 * (6 * 6 * 9 + 6) + (6 * 12 + 12)
    x = torch.randn(2, 16, 8, 8)
    h = x
    for c in convs:
        h = F.leaky_relu(F.conv2d(h, c.weight, c.bias, stride=2, padding=1), 0.01)
    ref = h.reshape(2, 6) @ (head.linear.weight / math.sqrt(6)).T + head.linear.bias
    torch.testing.assert_close(head(x), ref)
    assert enc(torch.randn(2, 5, 32, 32)).shape == (2, 2, 12)
    wide = GradualStyleEncoder(5, ["coarse", "fine"], EncoderConfig(units=(1, 1, 1, 1), widths=(8, 8, 8, 16),
                                                                    se_reduction=4), style_dim=12, image_size=32)
    assert _n_params(wide.styles[1]) == (16 * 12 * 9 + 12) + 2 * (12 * 12 * 9 + 12) + (12 * 12 + 12)  # pSp: style-wide
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="head_width"):
            EncoderConfig(head_width=bad)
