"""`vidanime weights import rosinality`: a rosinality-layout file becomes our checkpoint with the same images."""
import torch
from click.testing import CliRunner

from pipelines.commands.weights import cli
from vidanime.models.stylegan2 import Generator, StyleGAN2Config
from vidanime.registry import load_model


def test_import_rosinality_via_cli(tmp_path):
    torch.manual_seed(0)
    g = Generator(StyleGAN2Config(size=32, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=16)).eval()
    avg = torch.randn(1, 32)
    src = tmp_path / "ros.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": avg}, src)  # rosinality's {g_ema, latent_avg} layout
    dst = tmp_path / "ours.pt"
    r = CliRunner().invoke(cli, ["import", "rosinality", str(src), str(dst)])
    assert r.exit_code == 0, r.output
    g2 = load_model(dst)
    w = torch.randn(2, g.n_latent, 32)
    assert torch.equal(g.synthesis(w), g2.synthesis(w))
    assert torch.equal(g2.latent_avg.view(1, -1), avg)


def test_list_without_bundled_models_says_so(monkeypatch, tmp_path):
    from vidanime import registry

    monkeypatch.setattr(registry, "REGISTRY_FILE", tmp_path / "none.json")
    r = CliRunner().invoke(cli, ["list"])
    assert r.exit_code == 0 and "no bundled models" in r.output
