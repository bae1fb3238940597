"""Editing helpers: style mixing on appearance codes only, PTI on a copy of G, masks and edit-locality numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.pipelines.app_helpers import face_labels, tiny_styleanime
from vidanime.errors import VidanimeError
from vidanime.models.editing import (
    changed_region,
    edit_latents,
    edit_locality,
    feather,
    lpips_map,
    mix_styles,
    pti_tune,
    render,
)


def test_mix_styles_touches_only_appearance_codes():
    a, b = torch.randn(2, 8, 4), torch.randn(1, 8, 4)
    w = mix_styles(a, b, 0.25, n_structure=6)
    assert torch.equal(w[:, :6], a[:, :6])
    torch.testing.assert_close(w[:, 6:], 0.75 * a[:, 6:] + 0.25 * b[:, 6:].expand(2, -1, -1))
    assert torch.equal(mix_styles(a, b, 1.0, 6)[:, 6:], b[:, 6:].expand(2, -1, -1))  # swap is exact
    assert torch.equal(mix_styles(a, b, 0.0, 6), a)
    for bad in (1.5, -0.1, "half", True):
        with pytest.raises(VidanimeError, match="mix="):
            mix_styles(a, b, bad, 6)


def test_edit_latents_structure_from_map_appearance_from_images():
    model = tiny_styleanime()
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    lab = torch.from_numpy(face_labels())[None]
    w = edit_latents(model, x, lab, style_image=y, mix=1.0)
    assert torch.equal(w[:, :6], model.encode_structure(lab)) and torch.equal(w[:, 6:], model.encode_appearance(y))
    w_half = edit_latents(model, x, lab, style_image=y, mix=0.5)
    torch.testing.assert_close(w_half[:, 6:], (model.encode_appearance(x) + model.encode_appearance(y)) / 2)
    assert torch.equal(edit_latents(model, x, lab), model.encode(x, lab))


def test_changed_region_and_feather():
    a = torch.zeros(1, 16, 16, dtype=torch.long)
    b = a.clone()
    b[0, 7:9, 7:9] = 3
    region = changed_region(a, b)
    assert int(region.sum()) == 4
    m = feather(region, margin=2)
    assert m.shape == (1, 16, 16) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert torch.all(m[region] == 1)  # the edited pixels keep the full edit
    assert float(m[0, 5, 8]) > 0.2 and float(m[0, 0, 0]) == 0 and float(m[0, 15, 15]) == 0  # soft ring, then nothing
    assert torch.equal(feather(region, margin=0), region.float())


def test_edit_locality_hand_computed():
    before = torch.zeros(1, 3, 8, 8)
    after = before + 0.1
    after[..., :2, :4] = 1.0  # inside: squared diff 1.0; outside 0.01
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[:2, :4] = True
    loc = edit_locality(before, after, region)
    assert loc["region_fraction"] == pytest.approx(8 / 64)
    assert loc["l2_inside"] == pytest.approx(1.0) and loc["l2_outside"] == pytest.approx(0.01)
    assert loc["l2_ratio"] == pytest.approx(100.0)
    empty = edit_locality(before, after, torch.zeros(8, 8, dtype=torch.bool))
    assert empty["l2_inside"] is None and empty["l2_ratio"] is None


@pytest.fixture(scope="module")
def lpips_loss():
    from vidanime.losses.reconstruction import LPIPSLoss

    return LPIPSLoss("alex", "random")  # random backbone: tests only


def test_lpips_map_matches_lpips_spatial(lpips_loss):
    import copy

    ref = copy.deepcopy(lpips_loss.lpips)
    ref.spatial = True  # lpips's own spatial path as the reference
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    got = lpips_map(lpips_loss, a, b)
    torch.testing.assert_close(got, ref(a, b)[:, 0])
    assert torch.all(lpips_map(lpips_loss.lpips, a, a) == 0)
    small = lpips_map(lpips_loss, a[..., :32, :32], b[..., :32, :32])  # upsampled to 64, map back at 32
    assert small.shape == (2, 32, 32) and float(small.min()) >= 0


def test_pti_tunes_a_copy_and_the_loss_falls(lpips_loss):
    model = tiny_styleanime()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    lab = torch.from_numpy(face_labels())[None]
    w = model.encode(x, lab)
    res = pti_tune(model, x, w, steps=12, lpips=lpips_loss, stop_lpips=None)
    assert len(res.losses) == 12 and res.losses[-1] < 0.9 * res.losses[0]
    with torch.no_grad():
        err_before = float((model.decode(w) - x).pow(2).mean())
        err_after = float((render(res.generator, w) - x).pow(2).mean())
    assert err_after < 0.9 * err_before
    assert res.generator is not model.decoder and not any(p.requires_grad for p in res.generator.parameters())
    for k, v in model.state_dict().items():  # the loaded model is untouched
        assert torch.equal(v, before[k]), k
    assert not any(p.requires_grad for p in model.decoder.parameters())
    with pytest.raises(VidanimeError, match="LPIPS"):
        pti_tune(model, x, w, steps=2)
    with pytest.raises(VidanimeError, match="steps"):
        pti_tune(model, x, w, steps=0, lpips_weight=0)
    np.testing.assert_equal(len(pti_tune(model, x, w, steps=2, lpips_weight=0).losses), 2)
