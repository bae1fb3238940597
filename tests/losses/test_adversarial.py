"""L_da (Eq. 6–7) with the latent discriminator D1, L_adv (Eq. 8–9) and R1 on toy discriminators; Eq. 10 weights."""
from __future__ import annotations

import math

import pytest
import torch

from vidanime.losses.gan import r1_penalty
from vidanime.losses.latent import LatentDiscriminator, da_loss_discriminator, da_loss_encoder
from vidanime.losses.styleanime import StyleAnimeLoss, StyleAnimeLossConfig, adv_loss_discriminator, adv_loss_encoder

LOG2 = math.log(2.0)


def test_latent_discriminator_is_a_4_layer_mlp_over_w_plus():
    d1 = LatentDiscriminator(n_latent=14, style_dim=32)
    linears = [m for m in d1.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 and linears[0].in_features == 14 * 32 and linears[-1].out_features == 1
    w = torch.randn(5, 14, 32)
    assert d1(w).shape == (5, 1)
    # it judges the whole code: changing one style vector of sample 0 changes only sample 0's logit
    w2 = w.clone()
    w2[0, 13] += 1.0
    diff = (d1(w2) - d1(w)).abs().squeeze(1)
    assert diff[0] > 0 and torch.all(diff[1:] == 0)
    with pytest.raises(ValueError, match="expected"):
        d1(torch.randn(2, 13, 32))


def test_domain_adaptation_signs_and_values():
    zero = torch.zeros(4, 1)
    assert da_loss_encoder(zero).item() == pytest.approx(LOG2)
    assert da_loss_discriminator(zero, zero).item() == pytest.approx(2 * LOG2)
    big = torch.full((4, 1), 20.0)
    # E wins when D1 calls source codes real; D1 wins when target codes score high and source codes low.
    assert da_loss_encoder(big).item() < 1e-6 and da_loss_encoder(-big).item() == pytest.approx(20.0, rel=1e-6)
    assert da_loss_discriminator(big, -big).item() < 1e-6
    assert da_loss_discriminator(-big, big).item() == pytest.approx(40.0, rel=1e-6)
    # hand value: -log σ(1) = softplus(-1)
    assert da_loss_encoder(torch.ones(3, 1)).item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-6)


def test_adversarial_signs_and_values():
    z = torch.zeros(3, 1)
    assert adv_loss_encoder(z, z).item() == pytest.approx(2 * LOG2)
    assert adv_loss_discriminator(z, z, z).item() == pytest.approx(3 * LOG2)
    hi, lo = torch.full((3, 1), 15.0), torch.full((3, 1), -15.0)
    assert adv_loss_encoder(hi, hi).item() < 1e-6  # both fakes (ŷ and x̂) look real: encoders win
    assert adv_loss_encoder(hi, lo).item() == pytest.approx(15.0, rel=1e-5)  # x̂ still spotted
    assert adv_loss_discriminator(hi, lo, lo).item() < 1e-5  # real high, both fakes low: D2 wins
    assert adv_loss_discriminator(lo, lo, lo).item() == pytest.approx(15.0, rel=1e-5)
    # gradients push the right way: E raises fake logits, D2 lowers them and raises real ones
    f = torch.zeros(2, 1, requires_grad=True)
    adv_loss_encoder(f, torch.zeros(2, 1)).backward()
    assert torch.all(f.grad < 0)
    r, fy = torch.zeros(2, 1, requires_grad=True), torch.zeros(2, 1, requires_grad=True)
    adv_loss_discriminator(r, fy, torch.zeros(2, 1)).backward()
    assert torch.all(r.grad < 0) and torch.all(fy.grad > 0)


def test_r1_on_toy_discriminators():
    a = torch.tensor([1.0, -2.0, 3.0])
    x = torch.randn(4, 3, requires_grad=True)
    linear = (x * a).sum(1, keepdim=True)  # ∇_x D = a for every sample → R1 = |a|² = 14
    assert r1_penalty(linear, x).item() == pytest.approx(14.0, rel=1e-6)
    x2 = torch.randn(4, 3, requires_grad=True)
    quad = x2.pow(2).sum(1, keepdim=True)  # ∇ = 2x → R1 = mean_b 4|x_b|²
    assert r1_penalty(quad, x2).item() == pytest.approx((4 * x2.detach().pow(2).sum(1)).mean().item(), rel=1e-5)
    # the penalty is differentiable w.r.t. D's parameters (create_graph): d/da |a|² = 2a
    a_p = a.clone().requires_grad_(True)
    x3 = torch.randn(4, 3, requires_grad=True)
    r1_penalty((x3 * a_p).sum(1, keepdim=True), x3).backward()
    assert torch.allclose(a_p.grad, 2 * a)


def test_total_loss_is_the_weighted_sum_of_eq_10():
    cfg = StyleAnimeLossConfig(lambda_rec=2.5, lambda_lpips=0.0, lambda_cp=0.1, lambda_da=0.1, lambda_adv=0.1,
                               alpha_hair=2.0)
    loss = StyleAnimeLoss(cfg, "bisenet")
    y = torch.rand(2, 3, 16, 16) * 2 - 1
    y_hat = y * 0.5
    lab = torch.randint(0, 19, (2, 16, 16))
    d1, d2r, d2t = torch.randn(2, 1), torch.randn(2, 1), torch.randn(2, 1)
    total, parts = loss(y, y_hat, lab, d1, d2r, d2t)
    assert parts["rec"].item() == pytest.approx(((y - y_hat) ** 2).mean().item(), rel=1e-6)
    cp = 2 * parts["cp_hair"] + parts["cp_skin"] + parts["cp_eyes"]
    assert parts["cp"].item() == pytest.approx(cp.item(), rel=1e-5)
    expected = 2.5 * parts["rec"] + 0.1 * parts["cp"] + 0.1 * da_loss_encoder(d1) + 0.1 * adv_loss_encoder(d2r, d2t)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["lpips"].item() == 0.0
