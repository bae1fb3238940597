"""upfirdn2d and fused leaky ReLU against numpy references written here (loops over np.pad'ed arrays)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidanime.models import ops
from vidanime.models.ops import fused_leaky_relu, upfirdn2d, upfirdn2d_fast, upfirdn2d_reference


def np_upfirdn2d(x: np.ndarray, k: np.ndarray, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0)) -> np.ndarray:
    """Zero-insert, pad/crop (x0, x1, y0, y1), true 2-D convolution (valid), subsample; float64 loops."""
    (up_x, up_y), (down_x, down_y) = up, down
    x0, x1, y0, y1 = pad
    b, c, h, w = x.shape
    u = np.zeros((b, c, h * up_y, w * up_x))
    u[:, :, ::up_y, ::up_x] = x
    p = np.pad(u, ((0, 0), (0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))))
    p = p[:, :, max(-y0, 0) : p.shape[2] - max(-y1, 0), max(-x0, 0) : p.shape[3] - max(-x1, 0)]
    kh, kw = k.shape
    oh, ow = p.shape[2] - kh + 1, p.shape[3] - kw + 1
    out = np.zeros((b, c, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += p[:, :, i : i + oh, j : j + ow] * k[kh - 1 - i, kw - 1 - j]  # convolution: flipped kernel
    return out[:, :, ::down_y, ::down_x]


# (up, down, pad, kernel shape): rosinality's uses (Upsample, Blur after transposed conv, Downsample) and odd cases.
CASES = [
    (1, 1, (0, 0), (3, 3)),
    (2, 1, (2, 1), (4, 4)),  # Upsample([1,3,3,1]) in ToRGB
    (1, 1, (2, 2), (4, 4)),  # Blur after the stride-2 transposed conv
    (1, 2, (1, 1), (4, 4)),  # Downsample
    (2, 2, (1, 0, 2, 1), (4, 4)),  # 4-tuple pad (x0, x1, y0, y1)
    ((2, 1), (1, 2), (-1, 2, 1, -2), (3, 2)),  # per-axis factors, negative pads crop, non-square kernel
    (3, 2, (0, 3), (5, 3)),
]


def _as_pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _as_quad(p):
    return (p[0], p[1], p[0], p[1]) if len(p) == 2 else tuple(p)


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("up,down,pad,kshape", CASES)
def test_upfirdn2d_matches_numpy(impl, up, down, pad, kshape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    k = rng.standard_normal(kshape)  # asymmetric, non-separable: catches flips and transposes
    want = np_upfirdn2d(x, k, _as_pair(up), _as_pair(down), _as_quad(pad))
    got = upfirdn2d(torch.from_numpy(x).float(), torch.from_numpy(k).float(), up=up, down=down, pad=pad, impl=impl)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_is_a_true_convolution():
    """Hand case: a unit impulse, padded by k-1, filtered by K gives K itself (not K flipped)."""
    x = torch.zeros(1, 1, 1, 1)
    x[0, 0, 0, 0] = 1.0
    k = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    for impl in ("reference", "fast"):
        out = upfirdn2d(x, k, pad=(1, 1), impl=impl)
        assert out[0, 0].tolist() == k.tolist()


def test_fast_matches_reference_channels_last_and_gradients():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 8, 8).to(memory_format=torch.channels_last).requires_grad_(True)
    k = torch.randn(4, 4)
    for up, down, pad in [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (2, 2))]:
        a = upfirdn2d_reference(x, k, up, down, pad)
        b = upfirdn2d_fast(x, k, up, down, pad)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        (ga,) = torch.autograd.grad(a.square().sum(), x)
        (gb,) = torch.autograd.grad(b.square().sum(), x)
        torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-4)


def test_fast_matches_reference_second_order():
    """R1 and path-length regularisation differentiate a gradient: the second derivative must agree too."""
    torch.manual_seed(2)
    k = torch.randn(4, 4)
    for up, down, pad in [(2, 1, (2, 1)), (1, 2, (1, 1))]:
        grads = []
        for impl in ("reference", "fast"):
            x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
            out = upfirdn2d(x, k, up, down, pad, impl=impl)
            (g,) = torch.autograd.grad((out.sin() * out).sum(), x, create_graph=True)
            (gg,) = torch.autograd.grad(g.square().sum(), x)
            grads.append(gg)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)


def test_stylegan2_models_agree_across_impls():
    """The whole generator and discriminator (with an R1 penalty) give the same numbers with either implementation."""
    from vidanime.models.stylegan2 import Discriminator, Generator, StyleGAN2Config

    torch.manual_seed(0)
    cfg = StyleGAN2Config(size=32, style_dim=32, n_mlp=2, channel_max=32)
    g, d = Generator(cfg).eval(), Discriminator(cfg)
    w = torch.randn(2, g.n_latent, 32)
    results = []
    for impl in ("reference", "fast"):
        previous = ops.get_upfirdn2d_impl()
        ops.set_upfirdn2d_impl(impl)
        try:
            img = g.synthesis(w)
            x = img.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
            r1 = grad.square().sum()
            r1_grads = [t for t in torch.autograd.grad(r1, list(d.parameters()), allow_unused=True) if t is not None]
        finally:
            ops.set_upfirdn2d_impl(previous)
        results.append([img, r1.detach(), *r1_grads])
    assert results[0][1] > 0
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_impl_selection_and_bad_values(monkeypatch):
    assert ops.get_upfirdn2d_impl() in ops.UPFIRDN2D_IMPLS
    previous = ops.get_upfirdn2d_impl()
    try:
        ops.set_upfirdn2d_impl("fast")
        assert ops.get_upfirdn2d_impl() == "fast"
    finally:
        ops.set_upfirdn2d_impl(previous)
    with pytest.raises(ValueError, match="cuda"):
        ops.set_upfirdn2d_impl("cuda")
    monkeypatch.delenv("VIDANIME_UPFIRDN2D", raising=False)
    assert ops._impl_from_env() == "fast"  # the default: tested against the reference above
    monkeypatch.setenv("VIDANIME_UPFIRDN2D", "reference")
    assert ops._impl_from_env() == "reference"
    monkeypatch.setenv("VIDANIME_UPFIRDN2D", "bogus")
    with pytest.raises(ValueError, match="VIDANIME_UPFIRDN2D"):
        ops._impl_from_env()
    with pytest.raises(ValueError, match=r"pad=\(1, 2, 3\)"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(2, 2), pad=(1, 2, 3))


def test_fused_leaky_relu_hand_values():
    x = torch.tensor([[[-1.0, 0.5]], [[2.0, -3.0]]]).reshape(1, 2, 1, 2)  # channels 0: [-1, .5], 1: [2, -3]
    bias = torch.tensor([0.5, 1.0])
    out = fused_leaky_relu(x, bias)
    s = 2**0.5
    want = torch.tensor([[-0.5 * 0.2 * s, 1.0 * s], [3.0 * s, -2.0 * 0.2 * s]]).reshape(1, 2, 1, 2)
    torch.testing.assert_close(out, want)
    # 2-D input (EqualLinear with activation): bias along dim 1
    torch.testing.assert_close(fused_leaky_relu(torch.tensor([[-1.0, 1.0]]), torch.zeros(2)),
                               torch.tensor([[-0.2 * s, s]]))
    module = ops.FusedLeakyReLU(3)
    assert [n for n, _ in module.named_parameters()] == ["bias"]
