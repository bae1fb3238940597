"""Colour-preservation loss (Eq. 4–5): histogram matching against numpy, zero for matching histograms, positive
after a hue shift of the hair only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidanime import labels as L
from vidanime.losses.color import color_preservation_loss, component_masks, histogram_match, soft_histogram

HAIR, SKIN, L_EYE, R_EYE = L.class_ids("bisenet", "hair", "skin", "l_eye", "r_eye")


def _face(b: int = 2, s: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random colourful images (B, 3, S, S) in [-1, 1] with a label map: hair on top, skin below, two eyes."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    lab = torch.zeros(b, s, s, dtype=torch.long)
    lab[:, : s // 3] = HAIR
    lab[:, s // 3 :, 4 : s - 4] = SKIN
    lab[:, s // 2, 6:9] = R_EYE
    lab[:, s // 2, s - 9 : s - 6] = L_EYE
    red = torch.tensor([0.8, -0.2, -0.6])[None, :, None, None]  # reddish hair with some texture
    img = torch.where((lab == HAIR)[:, None], red + 0.15 * img, img)
    return img, lab


def _np_match(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Reference CDF matching of one channel: rank → quantile of the reference (np.interp between order stats)."""
    n, m = len(src), len(ref)
    ranks = np.empty(n)
    ranks[np.argsort(src, kind="stable")] = np.arange(n)
    q = ranks * (m - 1) / max(n - 1, 1)
    return np.interp(q, np.arange(m), np.sort(ref))


@pytest.mark.parametrize("n,m", [(50, 50), (37, 90), (90, 11)])
def test_histogram_match_against_numpy(n, m):
    g = torch.Generator().manual_seed(n + m)
    src, ref = torch.rand(3, n, generator=g), torch.randn(3, m, generator=g)
    out = histogram_match(src, ref)
    for c in range(3):
        np.testing.assert_allclose(out[c].numpy(), _np_match(src[c].numpy(), ref[c].numpy()), rtol=1e-5, atol=1e-6)
    if n == m:  # equal counts: the output is exactly a permutation of the reference values
        assert torch.equal(out.sort(dim=1).values, ref.sort(dim=1).values)


@pytest.mark.parametrize("mode", ["hm", "soft_hist"])
def test_zero_when_histograms_match(mode):
    y, lab = _face()
    y_hat = y.clone()
    for b in range(y.shape[0]):  # shuffle pixels inside every component: same histograms, different images
        for mask in component_masks(lab, "bisenet").values():
            idx = mask[b].nonzero(as_tuple=True)
            perm = torch.randperm(len(idx[0]), generator=torch.Generator().manual_seed(b))
            y_hat[b][:, idx[0], idx[1]] = y[b][:, idx[0][perm], idx[1][perm]]
    assert not torch.equal(y_hat, y)
    total, parts = color_preservation_loss(y_hat, y, lab, "bisenet", mode=mode)
    assert float(total) == pytest.approx(0.0, abs=1e-6)
    assert set(parts) == {"hair", "skin", "eyes"}


@pytest.mark.parametrize("mode", ["hm", "soft_hist"])
def test_positive_after_hair_hue_shift_only(mode):
    y, lab = _face(s=32)
    hair = (lab == HAIR)[:, None].expand_as(y)
    y_hat = y.clone()
    y_hat[hair] = y[:, [1, 2, 0]][hair]  # rotate RGB channels = a hue shift, hair only
    _, parts = color_preservation_loss(y_hat, y, lab, "bisenet", mode=mode)
    assert float(parts["hair"]) > 0.01
    assert float(parts["skin"]) == pytest.approx(0.0, abs=1e-7)
    assert float(parts["eyes"]) == pytest.approx(0.0, abs=1e-7)
    total, _ = color_preservation_loss(y_hat, y, lab, "bisenet", weights={"hair": 2.0, "skin": 1.0, "eyes": 1.0},
                                       mode=mode)
    assert float(total) == pytest.approx(2 * float(parts["hair"]), rel=1e-5)


def test_gradient_step_reduces_hm_loss():
    y, lab = _face(s=32)
    y_hat = (y * 0.3 + 0.4).clamp(-1, 1).requires_grad_(True)  # washed-out colours
    loss0, _ = color_preservation_loss(y_hat, y, lab, "bisenet")
    loss0.backward()
    assert y_hat.grad is not None and y_hat.grad.abs().sum() > 0
    outside = (lab == 0)[:, None].expand_as(y)
    assert float(y_hat.grad[outside].abs().max()) == 0.0  # only the components' pixels are pulled
    with torch.no_grad():
        stepped = y_hat - 5.0 * y_hat.grad
    loss1, _ = color_preservation_loss(stepped, y, lab, "bisenet")
    assert loss1.item() < 0.95 * loss0.item()


def test_missing_component_contributes_zero_and_soft_histogram_sums_to_one():
    y, lab = _face()
    lab[0][lab[0] == HAIR] = 0  # no hair in the first image
    y_hat = y.flip(-2)
    _, parts = color_preservation_loss(y_hat, y, lab, "bisenet")
    _, parts1 = color_preservation_loss(y_hat[1:], y[1:], lab[1:], "bisenet")
    assert float(parts["hair"]) == pytest.approx(float(parts1["hair"]) / 2, rel=1e-5)  # batch mean, 0 for image 0
    h = soft_histogram(torch.rand(3, 100) * 2 - 1, bins=16)
    assert torch.allclose(h.sum(1), torch.ones(3), atol=1e-5)
