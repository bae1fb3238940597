"""StyleGAN2 losses against hand-computed values and closed-form gradients."""
from __future__ import annotations

import math

import torch

from vidanime.losses.gan import d_logistic_loss, g_nonsaturating_loss, path_length_penalty, r1_penalty


def test_logistic_losses_hand_values():
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [3.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731 - softplus
    expected_d = (sp(-2.0) + sp(0.0)) / 2 + (sp(-1.0) + sp(3.0)) / 2
    assert math.isclose(d_logistic_loss(real, fake).item(), expected_d, rel_tol=1e-6)
    assert math.isclose(g_nonsaturating_loss(fake).item(), (sp(1.0) + sp(-3.0)) / 2, rel_tol=1e-6)
    zero = torch.zeros(4, 1)
    assert math.isclose(d_logistic_loss(zero, zero).item(), 2 * math.log(2), rel_tol=1e-6)
    # stable for large logits (no inf/nan)
    assert torch.isfinite(d_logistic_loss(torch.tensor([[-200.0]]), torch.tensor([[200.0]])))


def test_r1_matches_closed_form_gradient():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    w = torch.randn(2, 4, 4)
    logits = (x * w).sum(dim=(1, 2, 3))[:, None] + 0.5 * x.pow(2).sum(dim=(1, 2, 3))[:, None]
    r1 = r1_penalty(logits, x)
    grad = w[None] + x.detach()  # d/dx of w·x + ½|x|²
    assert torch.allclose(r1, grad.pow(2).sum(dim=(1, 2, 3)).mean(), rtol=1e-5)
    r1.backward()  # differentiable (create_graph): d r1 / dx = 2·grad / B
    assert torch.allclose(x.grad, 2 * grad / 3, rtol=1e-5, atol=1e-6)


def test_path_length_linear_generator():
    torch.manual_seed(0)
    b, n_latent, dim, h, w = 4, 3, 5, 2, 3
    a = torch.randn(n_latent, dim, 3 * h * w, requires_grad=True)
    latents = torch.randn(b, n_latent, dim, requires_grad=True)
    fake = torch.einsum("bls,lsp->bp", latents, a).view(b, 3, h, w)
    penalty, new_mean, lengths = path_length_penalty(fake, latents, 0.5, decay=0.1,
                                                     generator=torch.Generator().manual_seed(7))
    y = torch.randn((b, 3, h, w), generator=torch.Generator().manual_seed(7)) / math.sqrt(h * w)
    jty = torch.einsum("lsp,bp->bls", a.detach(), y.view(b, -1))  # Jᵀy per sample
    ref_len = jty.pow(2).sum(2).mean(1).sqrt()
    assert torch.allclose(lengths, ref_len, rtol=1e-5)
    ref_mean = 0.5 + 0.1 * (ref_len.mean() - 0.5)
    assert torch.allclose(new_mean, ref_mean, rtol=1e-5)
    assert torch.allclose(penalty, (ref_len - ref_mean).pow(2).mean(), rtol=1e-5)
    penalty.backward()  # reaches G's weights through the double-backward graph
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert not new_mean.requires_grad and not lengths.requires_grad
