"""Backward warping, forward splatting (against the slow reference), padding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.softsplat import forward_splat, forward_splat_reference, softsplat
from interp.warp import backward_warp, crop_to, pad_to_multiple, resize_flow


def _smooth(h: int = 24, w: int = 32) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.stack([torch.sin(xs / 4) * torch.cos(ys / 5), xs / w, ys / h])[None]


def test_backward_warp_integer_shift_matches_roll():
    img = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out[y, x] = img[y - 1, x + 2]
    out = backward_warp(img, flow)
    torch.testing.assert_close(out[..., 1:, :-2], img[..., :-1, 2:])


def test_warp_by_known_flow_and_back():
    img = _smooth()
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0], flow[:, 1] = 1.5, -0.75
    there = backward_warp(img, flow)
    back = backward_warp(there, -flow)
    inner = (..., slice(3, -3), slice(3, -3))
    assert (back - img)[inner].abs().max() < 0.03  # bilinear twice blurs a little, nothing more
    assert (there - img)[inner].abs().max() > 0.1  # the warp did move the image


def test_forward_splat_matches_slow_reference():
    g = torch.Generator().manual_seed(1)
    src = torch.rand(2, 3, 7, 9, generator=g)
    flow = (torch.rand(2, 2, 7, 9, generator=g) - 0.5) * 6  # fractional, some leave the frame
    out = forward_splat(src, flow)
    for b in range(2):
        ref = forward_splat_reference(src[b].numpy(), flow[b].numpy())
        np.testing.assert_allclose(out[b].numpy(), ref, rtol=1e-5, atol=1e-5)


def test_forward_splat_integer_flow_inverts_backward_warp():
    img = _smooth()
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0], flow[:, 1] = 3.0, 2.0
    fwd = softsplat(img, flow, mode="average")
    bwd = backward_warp(img, -flow)
    torch.testing.assert_close(fwd[..., 2:, 3:], bwd[..., 2:, 3:])
    assert fwd[..., :2, :].abs().max() == 0  # holes where nothing lands stay 0


def test_softmax_splat_lets_the_higher_metric_win():
    src = torch.zeros(1, 1, 1, 4)
    src[0, 0, 0, 0], src[0, 0, 0, 2] = 1.0, 5.0
    flow = torch.zeros(1, 2, 1, 4)
    flow[0, 0, 0, 0] = 2.0  # pixel 0 lands on pixel 2
    metric = torch.zeros(1, 1, 1, 4)
    metric[0, 0, 0, 0] = 10.0
    out = softsplat(src, flow, metric, mode="softmax")
    assert out[0, 0, 0, 2] == pytest.approx(1.0, abs=1e-3)
    assert softsplat(src, flow, mode="average")[0, 0, 0, 2] == pytest.approx(3.0)


def test_forward_splat_gradients_reach_values_and_flow():
    src = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    flow = ((torch.rand(1, 2, 4, 5, dtype=torch.float64) - 0.5) * 2.3).requires_grad_(True)
    assert torch.autograd.gradcheck(forward_splat, (src, flow), eps=1e-6, atol=1e-5)


def test_pad_to_multiple_and_crop_back():
    x = torch.rand(1, 3, 37, 45)
    p, size = pad_to_multiple(x, 32)
    assert p.shape[-2:] == (64, 64) and size == (37, 45)
    torch.testing.assert_close(crop_to(p, size), x)


def test_resize_flow_scales_vectors():
    flow = torch.ones(1, 2, 8, 8)
    out = resize_flow(flow, (16, 4))
    torch.testing.assert_close(out[:, 0], torch.full((1, 16, 4), 0.5))
    torch.testing.assert_close(out[:, 1], torch.full((1, 16, 4), 2.0))
