"""The interpolators: middle frame of a moving square, gradients to both inputs, padding, bad input."""
from __future__ import annotations

import pytest
import torch

import interp
from interp.animeinterp import AnimeInterp
from interp.animeinterp.sgm import SegmentGuidedMatching, segment_frame
from interp.classical import ClassicalInterpolator
from interp.ifnet import IFNet, IFNetConfig
from interp.metrics import psnr
from vidanime.errors import VidanimeError

from .helpers import moving_square

TINY = IFNetConfig(c0=16, c1=12, c2=8, c_tea=8, ctx=4)


@pytest.mark.parametrize("name,margin", [("classical", 3.0), ("classical-farneback", 1.0)])
def test_classical_recovers_moving_square_better_than_average(name, margin):
    a, mid, b = moving_square()
    m = interp.load(name)
    out = m(a, b)
    p_model, p_avg = float(psnr(out, mid)), float(psnr(0.5 * (a + b), mid))
    assert p_model > p_avg + margin, (p_model, p_avg)


def test_classical_gradients_reach_both_inputs():
    a, _, b = moving_square()
    a, b = a.requires_grad_(True), b.requires_grad_(True)
    m = interp.load("classical")
    m(a, b).square().sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_ifnet_frozen_gradients_and_unaligned_size():
    torch.manual_seed(0)
    m = interp.freeze(IFNet(TINY))
    a = torch.rand(1, 3, 37, 45, requires_grad=True)
    b = torch.rand(1, 3, 37, 45, requires_grad=True)
    out = m(a, b)
    assert out.shape == (1, 3, 37, 45) and 0 <= out.min() and out.max() <= 1
    out.mean().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in m.parameters())


def test_ifnet_paper_size_and_key_names():
    m = IFNet()
    n = sum(p.numel() for p in m.parameters())
    assert 9.5e6 < n < 11e6  # public flownet.pkl ~ 10M (students 9.8M + teacher block)
    keys = set(m.state_dict())
    for k in ("block0.conv0.0.0.weight", "block0.conv0.0.1.weight", "block0.convblock.7.0.weight",
              "block_tea.lastconv.weight", "contextnet.conv4.conv2.0.weight", "unet.down0.conv1.0.weight",
              "unet.up3.0.weight", "unet.conv.bias"):
        assert k in keys
    assert m.state_dict()["block0.conv0.0.0.weight"].shape == (120, 6, 3, 3)


def test_animeinterp_gradients_and_output_range():
    torch.manual_seed(0)
    m = interp.freeze(AnimeInterp(rfr_iters=1, use_sgm=False))
    a = torch.rand(1, 3, 30, 34, requires_grad=True)  # padded to 64x64 inside (RFR's pyramid), cropped back
    b = torch.rand(1, 3, 30, 34, requires_grad=True)
    out = m(a, b)
    assert out.shape == (1, 3, 30, 34)
    out.mean().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_sgm_segments_and_matches_a_moving_square():
    a, _, b = moving_square(h=64, w=80, size=16, step=(10, 6))
    sgm = SegmentGuidedMatching()
    f01, f10 = sgm(a, b)
    assert not f01.requires_grad
    # pixels well inside the square at t=0 move by (10, 6); inside the square at t=1 by (-10, -6)
    torch.testing.assert_close(f01[0, :, 18:26, 14:22].mean((1, 2)), torch.tensor([10.0, 6.0]), atol=1.0, rtol=0)
    torch.testing.assert_close(f10[0, :, 24:32, 24:32].mean((1, 2)), torch.tensor([-10.0, -6.0]), atol=1.0, rtol=0)
    labels = segment_frame((a[0].permute(1, 2, 0) * 255).byte().numpy())
    assert len(set(labels[18:26, 14:22].reshape(-1).tolist())) == 1  # square interior = one segment


def test_bad_input_is_a_one_line_error():
    m = ClassicalInterpolator()
    with pytest.raises(VidanimeError, match="differ in size"):
        m(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 18))
    with pytest.raises(VidanimeError, match=r"\(B, 3, H, W\)"):
        m(torch.rand(3, 16, 16), torch.rand(3, 16, 16))
    with pytest.raises(VidanimeError, match="t=0.3"):
        IFNet(TINY)(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), t=0.3)


def test_ifnet_zero_heads_start_at_the_average_and_still_learn():
    """start_from_average: flow 0, mask 0.5, residual 0 → exactly the "average" baseline; the zeroed heads get
    gradients, so training moves away from it (a few small Adam steps on the moving square beat the average)."""
    torch.manual_seed(0)
    m = IFNet(TINY).zero_heads_()
    a, mid, b = moving_square()
    out = m(a, b)
    assert torch.allclose(out, 0.5 * (a + b), atol=1e-5)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    loss0 = (m(a, b) - mid).abs().mean()
    loss0.backward()
    assert m.block0.lastconv.weight.grad.abs().sum() > 0 and m.unet.conv.weight.grad.abs().sum() > 0
    opt.step()
    for _ in range(5):
        opt.zero_grad()
        loss = (m(a, b) - mid).abs().mean()
        loss.backward()
        opt.step()
    assert loss.item() < loss0.item()
