"""L_rec and the LPIPS wrapper: backbone loading from a torchvision-layout file, clear errors, random trunk."""
from __future__ import annotations

import pytest
import torch

from vidanime.errors import CheckpointError, VidanimeError
from vidanime.losses.reconstruction import LPIPSLoss, l2_loss
from vidanime.metrics.lpips_metrics import load_lpips


def test_l2_hand_value():
    a = torch.zeros(1, 3, 2, 2)
    b = torch.zeros(1, 3, 2, 2)
    b[0, 0, 0, 0] = 2.0
    assert l2_loss(b, a).item() == pytest.approx(4.0 / 12)


def test_lpips_backbone_must_be_given(monkeypatch):
    monkeypatch.delenv("VIDANIME_LPIPS_BACKBONE", raising=False)
    with pytest.raises(CheckpointError, match="alexnet-owt.*cannot download.*--lpips-backbone"):
        LPIPSLoss("alex", None)
    with pytest.raises(VidanimeError, match="resnet"):
        LPIPSLoss("resnet", "random")


@pytest.mark.slow
def test_lpips_backbone_from_torchvision_file(tmp_path):
    """The loss uses the metrics' loader: a torchvision-layout AlexNet file lands in the LPIPS trunk."""
    import torchvision

    torch.manual_seed(3)
    alex = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(alex.state_dict(), path)
    model = load_lpips("alex", path)
    assert torch.equal(getattr(model.net.slice1, "0").weight, alex.features[0].weight)
    assert torch.equal(getattr(model.net.slice5, "10").bias, alex.features[10].bias)
    assert not any(p.requires_grad for p in model.parameters())
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_lpips("alex", tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_lpips("alex", tmp_path / "nope.pth")


def test_lpips_loss_random_trunk(caplog):
    with caplog.at_level("WARNING"):
        loss = LPIPSLoss("alex", "random")
    assert "RANDOM" in caplog.text
    x = torch.rand(2, 3, 32, 32) * 2 - 1  # below AlexNet's minimum: upsampled to 64 px inside
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    y = x.flip(-1).requires_grad_(True)
    d = loss(y, x)
    assert d.item() > 0
    d.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    loss.train()
    assert not loss.lpips.training
