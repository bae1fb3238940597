"""StyleGAN2 generator/discriminator: config rules, determinism, truncation, mixing, save/load, a seeded output
slice."""
from __future__ import annotations

import pytest
import torch

from vidanime.errors import CheckpointError, ConfigError
from vidanime.models import ops
from vidanime.models.stylegan2 import (
    Discriminator,
    Generator,
    StyleGAN2Config,
    channel_table,
    generator_from_checkpoint,
    save_generator,
)

TINY = dict(size=32, style_dim=16, n_mlp=2, channel_max=8)


@pytest.fixture(scope="module")
def g() -> Generator:
    torch.manual_seed(0)
    gen = Generator(StyleGAN2Config(**TINY)).eval()
    for p in gen.parameters():  # noise weights start at 0 in rosinality; make noise matter for the tests
        if p.shape == (1,):
            p.data.fill_(0.3)
    return gen


def test_config_rules():
    assert channel_table() == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    assert channel_table(1, 512)[64] == 256
    assert channel_table(2, 32) == {res: 32 for res in channel_table()}
    assert StyleGAN2Config(size=256).n_latent == 14 and StyleGAN2Config(size=256).num_layers == 13
    for bad in (16, 48, 2048):
        with pytest.raises(ConfigError, match=f"size {bad}"):
            StyleGAN2Config(size=bad)
    with pytest.raises(ConfigError, match="channel_max 0"):
        StyleGAN2Config(channel_max=0)
    with pytest.raises(ConfigError):
        Generator({"size": 32})  # a dict, not a config


def test_image_range_and_bit_identical_repeat(g):
    w = g.mapping(torch.randn(2, 16))
    w_plus = w.unsqueeze(1).repeat(1, g.n_latent, 1)
    with torch.no_grad():
        a = g.synthesis(w_plus)
        b = g.synthesis(w_plus.clone())
        c, latent = g([w_plus], input_is_latent=True, return_latents=True)
        d, _ = g([w], input_is_latent=True)  # W broadcast to W+
        r1, _ = g([w], input_is_latent=True, randomize_noise=True)
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)  # fixed noise buffers by default
    assert torch.equal(latent, w_plus)
    assert not torch.allclose(r1, a)  # fresh noise changes the image
    assert torch.isfinite(a).all() and a.std() > 0.1  # untrained weights: not yet in [-1, 1]


def test_explicit_noise_list(g):
    w_plus = torch.randn(1, g.n_latent, 16)
    with torch.no_grad():
        fixed = g.synthesis(w_plus, noise=g.fixed_noise())
        default = g.synthesis(w_plus)
        other = g.synthesis(w_plus, noise=g.make_noise())
    assert torch.equal(fixed, default) and not torch.allclose(other, default)
    with pytest.raises(ValueError, match="noise list of length 2"):
        g.synthesis(w_plus, noise=[None, None])
    with pytest.raises(ValueError, match=r"W\+ of shape \(1, 3, 16\)"):
        g.synthesis(torch.randn(1, 3, 16))


def test_truncation_zero_gives_truncation_latent_image(g):
    z = torch.randn(3, 16)
    w_avg = g.mean_latent(64)
    assert w_avg.shape == (1, 16)
    with torch.no_grad():
        img, _ = g([z], truncation=0.0, truncation_latent=w_avg)
        ref, _ = g([w_avg.repeat(3, 1)], input_is_latent=True)
        half, _ = g([z], truncation=0.5, truncation_latent=w_avg)
    torch.testing.assert_close(img, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(half, ref, atol=1e-3)
    with pytest.raises(ValueError, match="truncation_latent"):
        g([z], truncation=0.5)
    g.set_latent_avg(w_avg[0])  # (style_dim,) is accepted; the generator's latent_avg is the default centre
    try:
        with torch.no_grad():
            torch.testing.assert_close(g([z], truncation=0.0)[0], ref, rtol=0, atol=1e-6)
    finally:
        g.set_latent_avg(None)


def test_style_mixing_uses_second_style_from_inject_index(g):
    z1, z2 = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        img, latent = g([z1, z2], inject_index=5, return_latents=True)
        w1, w2 = g.mapping(z1), g.mapping(z2)
        want = torch.cat([w1.unsqueeze(1).repeat(1, 5, 1), w2.unsqueeze(1).repeat(1, g.n_latent - 5, 1)], 1)
        torch.testing.assert_close(latent, want, rtol=0, atol=0)
        torch.testing.assert_close(img, g.synthesis(want), rtol=0, atol=0)
        only1, _ = g([z1])
        assert not torch.allclose(img, only1, atol=1e-4)
        torch.manual_seed(3)
        _, rand_latent = g([z1, z2], return_latents=True)  # random index in [1, n_latent)
    k = int((rand_latent[0] == w1[0]).all(-1).sum())
    assert 1 <= k < g.n_latent and torch.equal(rand_latent[0, k:], w2[0].expand(g.n_latent - k, -1))
    with pytest.raises(ValueError, match="3 styles"):
        g([z1, z1, z1])


def test_fast_upfirdn2d_path_matches_reference(g):
    w_plus = torch.randn(2, g.n_latent, 16)
    disc = Discriminator(StyleGAN2Config(**TINY))
    previous = ops.get_upfirdn2d_impl()
    with torch.no_grad():
        try:
            ops.set_upfirdn2d_impl("reference")
            ref = g.synthesis(w_plus)
            ref_d = disc(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
            ops.set_upfirdn2d_impl("fast")
            fast = g.synthesis(w_plus)
            fast_d = disc(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
        finally:
            ops.set_upfirdn2d_impl(previous)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_d, ref_d, rtol=1e-4, atol=1e-5)


def test_discriminator_logits_and_minibatch_stddev():
    disc = Discriminator(StyleGAN2Config(**TINY))
    x = torch.randn(6, 3, 32, 32)  # 6 is not divisible by 4: group of 3
    out = disc(x)
    assert out.shape == (6, 1)
    x2 = x.clone()
    x2[5] = x2[5] * 3
    out2 = disc(x2)
    assert not torch.allclose(out2[3], out[3])  # sample 3 shares a stddev group with sample 5
    with pytest.raises(ValueError, match=r"\(6, 3, 16, 16\)"):
        disc(torch.randn(6, 3, 16, 16))


def test_gradients_flow_for_training(g):
    """Mapping and synthesis get gradients; the discriminator supports R1 (grad of grad)."""
    gen = Generator(StyleGAN2Config(**TINY))
    img, _ = gen([torch.randn(2, 16)])
    img.mean().backward()
    assert gen.style[1].weight.grad is not None and gen.convs[0].conv.weight.grad.abs().sum() > 0
    disc = Discriminator(StyleGAN2Config(**TINY))
    real = torch.randn(2, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(disc(real).sum(), real, create_graph=True)
    grad.square().sum().backward()
    assert disc.convs[0][0].weight.grad.abs().sum() > 0


def test_save_and_load_roundtrip(tmp_path, g):
    from vidanime.registry import load_model

    w_avg = g.mean_latent(32)
    path = tmp_path / "g.pt"
    save_generator(path, g, latent_avg=w_avg, step=7)
    loaded = load_model(path)
    assert isinstance(loaded, Generator) and loaded.config == g.config
    torch.testing.assert_close(loaded.latent_avg, w_avg, rtol=0, atol=0)
    w_plus = torch.randn(2, g.n_latent, 16)
    with torch.no_grad():
        assert torch.equal(loaded.synthesis(w_plus), g.synthesis(w_plus))
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "vidanime.stylegan2" and ckpt["step"] == 7
    assert "latent_avg" not in ckpt["state_dict"]  # rosinality key set stays exact
    ckpt["state_dict"]["convs.0.conv.weight"] = torch.zeros(1, 8, 8, 3, 1)
    with pytest.raises(CheckpointError, match="convs.0.conv.weight"):
        generator_from_checkpoint(ckpt)
    ckpt["config"]["size"] = 48
    with pytest.raises(CheckpointError, match="size 48"):
        generator_from_checkpoint(ckpt)


def test_seeded_output_slice():
    """diffusers-style regression: fixed seed, tiny model, a few recorded output values."""
    torch.manual_seed(0)
    gen = Generator(StyleGAN2Config(size=32, style_dim=16, n_mlp=2, channel_max=8)).eval()
    z = torch.randn(1, 16)
    with torch.no_grad():
        img, _ = gen([z])
    got = img[0, :, -1, -3:].flatten()
    want = torch.tensor(EXPECTED_SLICE)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# recorded with torch 2.14.1 on CPU (rows: R, G, B; last row, last 3 columns)
EXPECTED_SLICE = [0.43538, 0.4395, 0.31684, -0.45745, -0.44493, -0.332, -0.70497, -0.59361, -0.3834]
