"""The pure-PyTorch AlexNet LPIPS matches the lpips package and stands in for it where it is not installed."""
from __future__ import annotations

import sys

import pytest
import torch

from vidanime.metrics.lpips_net import AlexLPIPS

lpips = pytest.importorskip("lpips")


def _package_model() -> torch.nn.Module:
    import warnings

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False).eval()


def test_same_layout_and_same_distances_as_the_package():
    ref = _package_model()
    ours = AlexLPIPS().eval()
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    x.requires_grad_(True)
    d_ref = ref(x, y)
    (g_ref,) = torch.autograd.grad(d_ref.sum(), x)
    d_ours = ours(x, y)
    (g_ours,) = torch.autograd.grad(d_ours.sum(), x)
    assert d_ours.shape == (3, 1, 1, 1)
    torch.testing.assert_close(d_ours, d_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-7)
    assert float(ours(x, x).abs().max()) == 0.0


def test_load_lpips_without_the_package_gives_the_same_distances(tmp_path, monkeypatch):
    from vidanime.metrics.lpips_metrics import LPIPS_LIN_ENV, _lin_weights_path, load_lpips

    backbone = tmp_path / "alex_backbone.pth"
    torch.manual_seed(3)
    torch.save({f"net.{k}": v for k, v in AlexLPIPS().net.state_dict().items()}, backbone)
    with_package = load_lpips("alex", backbone)
    lin = _lin_weights_path("alex", "0.1")
    monkeypatch.setitem(sys.modules, "lpips", None)  # as on a machine without it
    monkeypatch.delenv(LPIPS_LIN_ENV, raising=False)
    with pytest.raises(Exception, match="pip install lpips, or set VIDANIME_LPIPS_LIN"):
        load_lpips("alex", backbone)
    monkeypatch.setenv(LPIPS_LIN_ENV, str(lin))
    without = load_lpips("alex", backbone)
    assert isinstance(without, AlexLPIPS) and not without.training
    x, y = torch.rand(2, 3, 48, 48) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    torch.testing.assert_close(without(x, y), with_package(x, y), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="needs the lpips package"):
        load_lpips("vgg", "random")
