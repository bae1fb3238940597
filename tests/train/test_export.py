"""Model-set export: float16 copies of any checkpoint, float16 discriminators in StyleAnime exports, and the 128-px
GPU recipe's files within the limits of a bundled set (16 MiB a file, 48 MiB in all)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vidanime.checkpoint import load_checkpoint
from vidanime.config import config_from_dict, load_config
from vidanime.models.facebank import FaceBank, FaceBankConfig
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig, save_styleanime
from vidanime.models.stylegan2 import Discriminator, Generator, StyleGAN2Config, save_generator
from vidanime.registry import load_generator, load_styleanime
from vidanime.train.export import ExportItem, export_models, half_precision_copy
from vidanime.train.styleanime import LatentDiscriminator, discriminator_record, model_discriminators

REPO = Path(__file__).resolve().parents[2]
MiB = 2**20


def _tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(StyleGAN2Config(size=32, style_dim=16, n_mlp=2, channel_multiplier=1, channel_max=16)).eval()


def test_half_precision_copy_halves_the_file_and_keeps_the_drawings(tmp_path):
    gen = _tiny_generator()
    save_generator(tmp_path / "g.pt", gen, latent_avg=torch.randn(16), step=7)
    half = half_precision_copy(tmp_path / "g.pt", tmp_path / "g16.pt")
    full_size, half_size = (tmp_path / "g.pt").stat().st_size, half.stat().st_size
    assert half_size < 0.6 * full_size
    ckpt = load_checkpoint(half, format="vidanime.stylegan2")
    floats = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert ckpt["step"] == 7 and ckpt["latent_avg"].dtype == torch.float32  # extras kept as they were
    loaded = load_generator(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, _ = gen([z], randomize_noise=False)
        b, _ = loaded([z], randomize_noise=False)
    assert 0 < (a - b).abs().max() < 0.02  # rounded weights: close, not identical


def test_export_dtype_option(tmp_path):
    gen = _tiny_generator()
    save_generator(tmp_path / "g.pt", gen)
    reg = export_models([ExportItem("g32", tmp_path / "g.pt", "vidanime.stylegan2", "as trained"),
                         ExportItem("g16", tmp_path / "g.pt", "vidanime.stylegan2", "half", dtype="float16")],
                        tmp_path / "set")
    assert set(reg["models"]) == {"g32", "g16"}
    assert (tmp_path / "set" / "g32.pt").read_bytes() == (tmp_path / "g.pt").read_bytes()
    sd = load_checkpoint(tmp_path / "set" / "g16.pt")["state_dict"]
    assert next(iter(v for v in sd.values() if v.is_floating_point())).dtype == torch.float16
    with pytest.raises(ValueError, match="dtype='bfloat16'"):
        ExportItem("x", tmp_path / "g.pt", "vidanime.stylegan2", "", dtype="bfloat16")


def test_float16_styleanime_export_stores_its_discriminators_in_float16(tmp_path):
    torch.manual_seed(0)
    model = StyleAnime(load_config(REPO / "configs" / "styleanime_tiny.yaml", StyleAnimeConfig)).eval()
    g = model.config.generator
    d1, d2 = LatentDiscriminator(g.n_latent, g.style_dim, n_layers=4), Discriminator(g)
    record = discriminator_record(d1.state_dict(), d2.state_dict(), 4, 4)
    save_styleanime(tmp_path / "m16.pt", model, dtype="float16", discriminators=record)
    save_styleanime(tmp_path / "m32.pt", model, discriminators=record)
    disc16 = load_checkpoint(tmp_path / "m16.pt")["discriminators"]
    assert all(v.dtype == torch.float16 for part in ("d1", "d2") for v in disc16[part].values()
               if v.is_floating_point())
    assert load_checkpoint(tmp_path / "m32.pt")["discriminators"]["d2"]["convs.0.0.weight"].dtype == torch.float32
    back1, back2 = model_discriminators(load_styleanime(tmp_path / "m16.pt"))  # load back as float32 modules
    x = torch.randn(2, 3, g.size, g.size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(back2(x), d2.eval()(x), atol=0.02, rtol=0.02)
    assert next(back1.parameters()).dtype == torch.float32


def _recipe_model(stage_config: str) -> StyleAnimeConfig:
    return config_from_dict(yaml.safe_load((REPO / stage_config).read_text())["model"], StyleAnimeConfig, "model")


def test_gpu_128_recipe_exports_fit_a_bundled_set(tmp_path):
    """configs/train_all_gpu.yaml's exports, written from randomly initialised models of its architectures: each
    file <= 16 MiB (the limit of a tracked file and of what the device tool returns), the set <= 48 MiB with the
    parsers and the interpolator at their bundled sizes (the recipe trains them with the bundled configs)."""
    recipe = yaml.safe_load((REPO / "configs" / "train_all_gpu.yaml").read_text())
    stages = {s["name"]: s for s in recipe["stages"]}
    exports = {e["name"]: e for e in recipe["exports"]}
    sizes = {}
    gan = yaml.safe_load((REPO / stages["gan"]["config"]).read_text())["model"]
    gen = Generator(config_from_dict(gan, StyleGAN2Config, "model"))
    save_generator(tmp_path / "g.pt", gen)
    assert exports["stylegan2-anime-demo"].get("dtype") == "float16"
    sizes["stylegan2-anime-demo"] = half_precision_copy(tmp_path / "g.pt", tmp_path / "g16.pt").stat().st_size
    for name, stage in (("styleanime-p2a", "encoders"), ("styleanime-a2p", "a2p")):
        cfg = _recipe_model(stages[stage]["config"])
        assert cfg.generator == config_from_dict(gan, StyleGAN2Config, "model")  # encoders on the recipe's generator
        model = StyleAnime(cfg)
        g = cfg.generator
        record = discriminator_record(LatentDiscriminator(g.n_latent, g.style_dim, n_layers=4).state_dict(),
                                      Discriminator(g).state_dict(), 4, 4)
        bank = None
        if exports[name].get("facebank"):
            n = int(stages[exports[name]["facebank"]]["set"]["size"])
            bank = FaceBank(torch.randn(n, g.style_dim).half(), FaceBankConfig(dtype="float16"))
        path = save_styleanime(tmp_path / f"{name}.pt", model, facebank=bank, dtype="float16", discriminators=record)
        sizes[name] = path.stat().st_size
        back = load_styleanime(path)  # the narrow heads come back from the file's own config
        assert back.config.encoder.head_width == cfg.encoder.head_width == 48
    weights = REPO / "vidanime" / "weights"
    for name in ("parser-portrait", "parser-anime", "ifnet-demo"):
        sizes[name] = (weights / f"{name}.pt").stat().st_size
    assert set(sizes) == set(exports)
    assert max(sizes.values()) <= 16 * MiB, {k: round(v / MiB, 1) for k, v in sizes.items()}
    assert sum(sizes.values()) <= 48 * MiB, round(sum(sizes.values()) / MiB, 1)
