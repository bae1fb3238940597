"""LPIPS loader (no download, backbone from a torchvision-layout file) and LPIPS-s / LPIPS-d."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torchvision

from vidanime.errors import CheckpointError
from vidanime.metrics.lpips_metrics import load_lpips, lpips_d, lpips_pairs, random_pairs, to_lpips_input


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.delenv("VIDANIME_LPIPS_BACKBONE", raising=False)


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory):
    torch.manual_seed(0)
    net = torchvision.models.alexnet(weights=None)
    path = tmp_path_factory.mktemp("w") / "alexnet-owt-7be5be79.pth"
    torch.save(net.state_dict(), path)  # torchvision's public layout: features.*, classifier.*
    return path, net


def _reference_lpips(net, lins, x, y):
    """LPIPS by hand: AlexNet relu taps, unit-normalised channels, squared diff, 1x1 lin, spatial mean, sum."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = (1, 4, 7, 9, 11)
    total = 0
    fx, fy = (x - shift) / scale, (y - shift) / scale
    feats = []
    for i, layer in enumerate(net.features[:12]):
        fx, fy = layer(fx), layer(fy)
        if i in taps:
            feats.append((fx, fy))
    for (a, b), w in zip(feats, lins):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + torch.nn.functional.conv2d((a - b) ** 2, w).mean((2, 3))
    return total.flatten()


def test_loader_uses_backbone_file_and_matches_hand_computed_lpips(alex_file):
    path, net = alex_file
    model = load_lpips("alex", backbone_path=path)
    assert torch.equal(model.net.slice1[0].weight, net.features[0].weight)
    assert torch.equal(getattr(model.net.slice5, "10").weight, net.features[10].weight)
    assert not any(p.requires_grad for p in model.parameters())
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    lins = [getattr(model, f"lin{i}").model[-1].weight for i in range(5)]
    with torch.no_grad():
        got = model(x, y).flatten()
        want = _reference_lpips(net.eval(), lins, x, y)
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
        assert model(x, x).abs().max() < 1e-6


def test_missing_backbone_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth"):
        load_lpips("alex")
    with pytest.raises(CheckpointError, match="not found"):
        load_lpips("alex", backbone_path=tmp_path / "nope.pth")
    torch.save({"classifier.1.weight": torch.zeros(4096, 9216)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="no backbone keys"):
        load_lpips("alex", backbone_path=tmp_path / "wrong.pth")


def test_random_backbone_is_logged_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        load_lpips("alex", backbone_path="random")
    assert any("RANDOM" in r.message for r in caplog.records)


def test_lpips_s_and_d_on_image_sets(alex_file):
    model = load_lpips("alex", backbone_path=alex_file[0])
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    same = lpips_pairs(model, imgs, imgs, size=64)
    assert np.allclose(same, 0, atol=1e-6)
    diff = lpips_pairs(model, imgs, imgs[::-1], size=64)
    assert (diff[[0, 3]] > 0.01).all()
    # LPIPS-d of identical outputs is 0; of distinct outputs positive
    assert lpips_d(model, lambda idx: imgs[[0] * len(idx)], 4, n_pairs=5, size=64) == pytest.approx(0.0, abs=1e-6)
    assert lpips_d(model, lambda idx: imgs[idx], 4, n_pairs=5, size=64) > 0.01


def test_random_pairs_are_distinct_and_seeded():
    p = random_pairs(5, 200, seed=3)
    assert (p[:, 0] != p[:, 1]).all() and p.min() >= 0 and p.max() < 5
    assert np.array_equal(p, random_pairs(5, 200, seed=3))
    assert to_lpips_input(np.zeros((1, 8, 8, 3), np.uint8), size=16).min() == -1
