"""Official StyleAnime / pSp importers: key layout (paper size, meta device), round trips, wrong files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidanime.config import load_config
from vidanime.errors import CheckpointError
from vidanime.importers.styleanime_official import (
    generator_from_psp,
    import_official_styleanime,
    official_config,
    styleanime_from_official,
    to_official_layout,
)
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig
from vidanime.registry import load_styleanime

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def official_encoder_keys(in_units=(3, 4, 14, 3), widths=(64, 128, 256, 512), n_styles=10,
                          head_convs=(4,) * 3 + (5,) * 7):
    """pSp GradualStyleEncoder key names, written out from the published layout (not from our modules)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"input_layer.0.weight", "input_layer.2.weight", *(f"input_layer.1.{b}" for b in bn)}
    i, prev = 0, widths[0]
    for n, depth in zip(in_units, widths):
        for u in range(n):
            p = f"body.{i}."
            if u == 0 and prev != depth:  # projected shortcut: conv 1x1 + BN
                keys |= {p + "shortcut_layer.0.weight", *(p + f"shortcut_layer.1.{b}" for b in bn)}
            keys |= {*(p + f"res_layer.0.{b}" for b in bn), p + "res_layer.1.weight", p + "res_layer.2.weight",
                     p + "res_layer.3.weight", *(p + f"res_layer.4.{b}" for b in bn), p + "res_layer.5.fc1.weight",
                     p + "res_layer.5.fc2.weight"}
            i, prev = i + 1, depth
    for j in range(n_styles):
        keys |= {f"styles.{j}.linear.weight", f"styles.{j}.linear.bias"}
        keys |= {f"styles.{j}.convs.{2 * c}.{t}" for c in range(head_convs[j]) for t in ("weight", "bias")}
    return keys | {"latlayer1.weight", "latlayer1.bias", "latlayer2.weight", "latlayer2.bias"}


def test_paper_size_state_dict_has_the_official_layout():
    cfg = load_config(CONFIGS / "styleanime_paper.yaml", StyleAnimeConfig)
    with torch.device("meta"):
        model = StyleAnime(cfg)
    sd = model.state_dict()
    e1 = {k[len("encoder.encoder_1."):] for k in sd if k.startswith("encoder.encoder_1.")}
    e2 = {k[len("encoder.encoder_2."):] for k in sd if k.startswith("encoder.encoder_2.")}
    assert e1 == official_encoder_keys()
    assert e2 == official_encoder_keys(n_styles=4, head_convs=(6,) * 4)
    dec = {k[len("decoder."):] for k in sd if k.startswith("decoder.")}
    assert {f"style.{i}.weight" for i in range(1, 9)} <= dec and "style.9.weight" not in dec
    assert {"input.input", "conv1.conv.weight", "to_rgb1.conv.weight", "convs.11.conv.weight", "to_rgbs.5.conv.weight",
            "noises.noise_0", "noises.noise_12"} <= dec and "convs.12.conv.weight" not in dec
    assert set(sd) == {f"encoder.encoder_1.{k}" for k in e1} | {f"encoder.encoder_2.{k}" for k in e2} | \
        {f"decoder.{k}" for k in dec} | {"latent_avg"}
    assert tuple(sd["encoder.encoder_1.input_layer.0.weight"].shape) == (64, 19, 3, 3)
    assert tuple(sd["encoder.encoder_2.input_layer.0.weight"].shape) == (64, 3, 3, 3)
    assert tuple(sd["decoder.convs.0.conv.weight"].shape) == (1, 512, 512, 3, 3)
    assert round(sum(p.numel() for p in model.decoder.parameters()) / 1e6, 1) == 30.0
    assert official_config(sd) == cfg  # shapes → the paper config


def _tiny(label_set="bisenet") -> StyleAnime:
    torch.manual_seed(0)
    return StyleAnime(load_config(CONFIGS / "styleanime_tiny.yaml", StyleAnimeConfig,
                                  overrides={"label_set": label_set})).eval()


@pytest.mark.parametrize("latent_avg_shape", ["w", "w+"])
def test_official_file_round_trip(tmp_path, latent_avg_shape):
    model = _tiny()
    with torch.no_grad():
        for p in model.parameters():  # non-trivial weights everywhere (BN stats, noise strengths, ...)
            p.add_(torch.randn_like(p) * 0.02)
        for layer in [model.decoder.conv1, *model.decoder.convs]:
            layer.noise.weight.fill_(0.1)
    model.set_latent_avg(torch.randn(32) * 0.1)
    path = tmp_path / "styleanime_official.pt"
    torch.save(to_official_layout(model, opts={"label_nc": 19, "encoder_type": "GradualStyleEncoder"},
                                  latent_avg_shape=latent_avg_shape), path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "latent_avg", "opts"}
    assert all(k.split(".")[0] in ("encoder", "decoder") for k in raw["state_dict"])
    g = torch.Generator().manual_seed(4)
    image, labels = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 19, (2, 32, 32), generator=g)
    before = model.translate(image, labels)
    imported = styleanime_from_official(path)
    torch.testing.assert_close(imported.translate(image, labels), before, atol=1e-6, rtol=0)
    # official → our format → load again
    ours = import_official_styleanime(path, tmp_path / "ours.pt")
    torch.testing.assert_close(load_styleanime(ours).translate(image, labels), before, atol=1e-6, rtol=0)
    torch.testing.assert_close(load_styleanime(path).translate(image, labels), before, atol=1e-6, rtol=0)


def test_seventeen_channel_official_file_is_danbooru():
    model = _tiny("danbooru")
    assert styleanime_from_official(to_official_layout(model)).config.label_set == "danbooru"


def test_wrong_files_name_what_is_missing(tmp_path):
    model = _tiny()
    good = to_official_layout(model)
    sd = dict(good["state_dict"])
    del sd["encoder.encoder_1.styles.5.linear.bias"]
    sd["encoder.encoder_2.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys: encoder\.encoder_1\.styles\.5\.linear\.bias.*"
                                              r"unexpected keys: encoder\.encoder_2\.extra\.weight"):
        styleanime_from_official({**good, "state_dict": sd})
    torch.save({"g_ema": model.decoder.state_dict()}, tmp_path / "rosinality.pt")
    with pytest.raises(CheckpointError, match=r"rosinality StyleGAN2 checkpoint \(g_ema\), expected an official"):
        styleanime_from_official(tmp_path / "rosinality.pt")
    psp = {"state_dict": {"encoder.input_layer.0.weight": torch.zeros(64, 3, 3, 3),
                          **{f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}},
           "latent_avg": torch.zeros(32), "opts": {}}
    with pytest.raises(CheckpointError, match="pSp/e4e checkpoint"):
        styleanime_from_official(psp)
    with pytest.raises(CheckpointError, match="no 'latent_avg'"):
        styleanime_from_official({"state_dict": good["state_dict"], "opts": {}})
    bad_in = dict(good["state_dict"])
    bad_in["encoder.encoder_1.input_layer.0.weight"] = torch.zeros(8, 5, 3, 3)
    with pytest.raises(CheckpointError, match="takes 5 channels, expected 19"):
        styleanime_from_official({**good, "state_dict": bad_in})


def test_psp_generator_import():
    model = _tiny()
    la = torch.randn(32)
    psp = {"state_dict": {"encoder.styles.0.linear.weight": torch.zeros(32, 32),
                          **{f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}},
           "latent_avg": la, "opts": {"n_styles": 8}}
    g, latent_avg = generator_from_psp(psp)
    assert torch.equal(latent_avg, la) and torch.equal(g.latent_avg[0], la)
    w = torch.randn(1, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(g.synthesis(w), model.decoder.synthesis(w), atol=1e-6, rtol=0)
    with pytest.raises(CheckpointError, match="expected a pSp/e4e checkpoint"):
        generator_from_psp({"g_ema": {}})


def test_official_layout_with_narrow_heads_round_trips(tmp_path):
    """A pSp-layout file whose map2style convs are narrower than the style dimension imports with that head width."""
    torch.manual_seed(0)
    model = StyleAnime(load_config(CONFIGS / "styleanime_tiny.yaml", StyleAnimeConfig,
                                   overrides={"encoder.head_width": 5})).eval()
    assert model.encoder.encoder_1.styles[0].linear.weight.shape[1] == 5
    path = tmp_path / "narrow.pt"
    torch.save(to_official_layout(model, opts={"label_nc": 19}), path)
    imported = styleanime_from_official(path)
    assert imported.config.encoder.head_width == 5
    g = torch.Generator().manual_seed(4)
    image, labels = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 19, (2, 32, 32), generator=g)
    torch.testing.assert_close(imported.translate(image, labels), model.translate(image, labels), atol=1e-6, rtol=0)
    assert official_config(to_official_layout(StyleAnime(load_config(CONFIGS / "styleanime_tiny.yaml",
                                                                     StyleAnimeConfig)))["state_dict"]
                           ).encoder.head_width is None  # style-wide heads: pSp's layout, no width recorded
