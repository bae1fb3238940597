"""Rosinality stylegan2-pytorch checkpoints: the public key layout, both file layouts, and one-line errors."""
from __future__ import annotations

import argparse

import pytest
import torch

from vidanime.errors import CheckpointError
from vidanime.importers.rosinality import convert_rosinality, import_rosinality, infer_config
from vidanime.models.stylegan2 import Discriminator, Generator, StyleGAN2Config
from vidanime.registry import load_model

TINY = StyleGAN2Config(size=32, style_dim=16, n_mlp=3, channel_max=8)


def test_full_size_keys_match_public_layout():
    """256 px, style_dim 512, n_mlp 8, cm 2 (the StyleAnime decoder): names/shapes as listed in DESIGN.md."""
    g = Generator.from_kwargs(256, 512, 8, channel_multiplier=2)
    sd = g.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert sum(p.numel() for p in g.parameters()) == 30_034_338  # ≈ 30.0M
    assert [f"style.{i}.weight" in sd and f"style.{i}.bias" in sd for i in range(1, 9)] == [True] * 8
    assert "style.0.weight" not in sd and "style.9.weight" not in sd  # style.0 is PixelNorm
    assert shapes["style.8.weight"] == (512, 512)
    assert shapes["input.input"] == (1, 512, 4, 4)
    assert shapes["conv1.conv.weight"] == (1, 512, 512, 3, 3)
    assert shapes["conv1.conv.modulation.weight"] == (512, 512)
    assert shapes["conv1.noise.weight"] == (1,) and shapes["conv1.activate.bias"] == (512,)
    assert shapes["to_rgb1.conv.weight"] == (1, 3, 512, 1, 1) and shapes["to_rgb1.bias"] == (1, 3, 1, 1)
    assert shapes["convs.0.conv.weight"] == (1, 512, 512, 3, 3)
    assert shapes["convs.6.conv.weight"] == (1, 512, 512, 3, 3)  # 64 px: 256 * 2
    assert shapes["convs.8.conv.weight"] == (1, 256, 512, 3, 3)  # 128 px: 128 * 2
    assert shapes["convs.11.conv.weight"] == (1, 128, 128, 3, 3)  # 256 px: 64 * 2
    assert shapes["convs.11.conv.modulation.bias"] == (128,)
    assert "convs.12.conv.weight" not in sd
    assert shapes["to_rgbs.5.conv.weight"] == (1, 3, 128, 1, 1) and "to_rgbs.6.bias" not in sd
    assert shapes["noises.noise_0"] == (1, 1, 4, 4) and shapes["noises.noise_12"] == (1, 1, 256, 256)
    assert "noises.noise_13" not in sd
    assert shapes["convs.0.conv.blur.kernel"] == (4, 4) and shapes["to_rgbs.0.upsample.kernel"] == (4, 4)
    assert infer_config(sd) == StyleGAN2Config()


def _rosinality_state(seed: int = 0) -> tuple[Generator, Generator, Discriminator]:
    torch.manual_seed(seed)
    g, g_ema, d = Generator(TINY), Generator(TINY), Discriminator(TINY)
    for p in g_ema.parameters():
        if p.shape == (1,):  # noise strengths: nonzero so the noise buffers matter
            p.data.fill_(0.2)
    return g, g_ema, d


def _adam_state(module: torch.nn.Module) -> dict:
    """What ``torch.optim.Adam(module.parameters()).state_dict()`` holds after a step (built by hand: the first real
    Adam step imports torch._dynamo, ~10 s on a loaded machine)."""
    params = list(module.parameters())
    state = {
        i: {"step": torch.tensor(1.0), "exp_avg": torch.full_like(p, 1e-4), "exp_avg_sq": torch.full_like(p, 1e-9)}
        for i, p in enumerate(params)
    }
    group = {"lr": 0.002, "betas": (0.0, 0.99), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "maximize": False,
             "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "params": list(range(len(params)))}
    return {"state": state, "param_groups": [group]}


def _save_training_layout(path, g, g_ema, d) -> None:
    g_optim, d_optim = _adam_state(g), _adam_state(d)
    args = argparse.Namespace(size=32, latent=16, n_mlp=3, channel_multiplier=2, r1=10.0, path="lmdb", iter=800000)
    torch.save(
        {
            "g": g.state_dict(),
            "d": d.state_dict(),
            "g_ema": g_ema.state_dict(),
            "g_optim": g_optim,
            "d_optim": d_optim,
            "args": args,
        },
        path,
    )


def test_training_layout_loads_and_images_survive_our_save_load(tmp_path):
    g, g_ema, d = _rosinality_state()
    src = tmp_path / "550000.pt"
    _save_training_layout(src, g, g_ema, d)

    imp = import_rosinality(src)
    assert imp.config == TINY and imp.latent_avg is None and imp.args["r1"] == 10.0
    # the importer uses the EMA weights, not `g`
    assert torch.equal(imp.generator.conv1.conv.weight, g_ema.conv1.conv.weight)
    assert not torch.equal(imp.generator.conv1.conv.weight, g.conv1.conv.weight)
    z = torch.randn(2, TINY.style_dim)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = g_ema([z])[0]
        assert torch.equal(imp.generator([z])[0], want)
        assert torch.equal(imp.discriminator(x), d(x))

    ours = convert_rosinality(src, tmp_path / "ours.pt")
    loaded = load_model(ours)
    with torch.no_grad():
        assert torch.equal(loaded([z])[0], want)


def test_export_layout_with_latent_avg(tmp_path):
    _, g_ema, _ = _rosinality_state(1)
    latent_avg = g_ema.mean_latent(64)[0]  # rosinality's convert_weight.py stores shape (style_dim,)
    src = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": g_ema.state_dict(), "latent_avg": latent_avg}, src)

    imp = import_rosinality(src)
    assert imp.discriminator is None and imp.args is None
    torch.testing.assert_close(imp.latent_avg, latent_avg[None], rtol=0, atol=0)
    z = torch.randn(1, TINY.style_dim)
    with torch.no_grad():  # the stored latent_avg is the default truncation centre
        got = imp.generator([z], truncation=0.0)[0]
        want = g_ema([latent_avg[None]], input_is_latent=True)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        import_rosinality(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_errors_are_one_line(tmp_path):
    _, g_ema, _ = _rosinality_state()
    good = tmp_path / "good.pt"
    torch.save({"g_ema": g_ema.state_dict()}, good)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated" in _one_line_error(truncated)

    other = tmp_path / "psp.pt"
    torch.save({"state_dict": {"encoder.x": torch.zeros(1)}, "latent_avg": torch.zeros(16)}, other)
    msg = _one_line_error(other)
    assert "g_ema" in msg and "state_dict" in msg  # names expected and found keys

    assert "32 px generator, expected 256 px" in _one_line_error(good, size=256)

    sd = g_ema.state_dict()
    sd["convs.1.conv.weight"] = torch.zeros(1, 8, 8, 1, 1)
    bad_shape = tmp_path / "bad_shape.pt"
    torch.save({"g_ema": sd}, bad_shape)
    assert "convs.1.conv.weight" in _one_line_error(bad_shape)

    sd = g_ema.state_dict()
    del sd["noises.noise_6"]
    fewer_noises = tmp_path / "fewer.pt"
    torch.save({"g_ema": sd}, fewer_noises)
    assert "noise" in _one_line_error(fewer_noises)

    pickled = tmp_path / "pickled.pt"
    torch.save({"g_ema": g_ema.state_dict(), "args": _Custom()}, pickled)
    assert "pickled" in _one_line_error(pickled)

    assert "not found" in _one_line_error(tmp_path / "missing.pt")


class _Custom:
    """An arbitrary pickled class: must not be unpickled (weights_only)."""
