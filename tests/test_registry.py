"""Model registry: names resolve to bundled files whose sha256 is checked; paths load directly."""
import json

import pytest
import torch

from vidanime import registry
from vidanime.checkpoint import save_checkpoint, sha256_file
from vidanime.errors import CheckpointError


class Tiny(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(n, n)


def build_tiny(ckpt):
    m = Tiny(ckpt["config"]["n"])
    m.load_state_dict(ckpt["state_dict"])
    return m


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(registry, "REGISTRY_FILE", tmp_path / "registry.json")
    monkeypatch.setitem(registry._BUILDERS, "test.tiny", build_tiny)
    m = Tiny(3)
    p = save_checkpoint(tmp_path / "tiny.pt", format="test.tiny", config={"n": 3}, state_dict=m.state_dict())
    entry = {"file": "tiny.pt", "sha256": sha256_file(p), "format": "test.tiny", "description": "test"}
    (tmp_path / "registry.json").write_text(json.dumps({"models": {"tiny": entry}}))
    return m, p


def test_load_by_name_and_path(fake_registry):
    m, p = fake_registry
    for ref in ("tiny", p):
        loaded = registry.load_model(ref)
        assert torch.equal(loaded.lin.weight, m.lin.weight) and not loaded.training
    assert [e.name for e in registry.available_models()] == ["tiny"]
    assert registry.verify(registry.get_entry("tiny"))


def test_checksum_mismatch_is_an_error(fake_registry):
    _, p = fake_registry
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch for bundled model 'tiny'"):
        registry.load_model("tiny")


def test_unknown_name_and_format(fake_registry, tmp_path):
    with pytest.raises(CheckpointError, match=r"unknown model 'nope' \(bundled models: tiny\)"):
        registry.load_model("nope")
    other = save_checkpoint(tmp_path / "o.pt", format="test.unknown", config={}, state_dict={})
    with pytest.raises(CheckpointError, match="no model builder for checkpoint format 'test.unknown'"):
        registry.load_model(other)


# ---- the one loader: registry.load(name_or_path, expect=KIND) ------------------------------------------------------
def _tiny_styleanime():
    from pathlib import Path

    from vidanime.config import load_config
    from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig

    torch.manual_seed(0)
    cfg = Path(__file__).resolve().parents[1] / "configs" / "styleanime_tiny.yaml"
    model = StyleAnime(load_config(cfg, StyleAnimeConfig)).eval()
    model.set_latent_avg(torch.randn(model.config.generator.style_dim) * 0.1)
    return model


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


def _count_reads(monkeypatch):
    calls = []
    real = registry.read_torch_file
    monkeypatch.setattr(registry, "read_torch_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def test_load_ours_reads_once_and_returns_the_metadata(tmp_path, monkeypatch):
    from vidanime.models.styleanime import save_styleanime

    model = _tiny_styleanime()
    p = save_styleanime(tmp_path / "sa.pt", model, train_config={"train": {"lr": 0.5}}, step=1234,
                        inference={"alpha": 0.7, "k": 5})
    calls = _count_reads(monkeypatch)
    ld = registry.load(p, expect="styleanime")
    assert len(calls) == 1  # one read gives the model and everything the callers need beside it
    assert (ld.kind, ld.format, ld.ours, ld.entry) == ("styleanime", "vidanime.styleanime", True, None)
    assert ld.train_config == {"train": {"lr": 0.5}} and ld.step == 1234
    assert ld.metadata["inference"] == {"alpha": 0.7, "k": 5} and "state_dict" not in ld.metadata
    assert ld.config["label_set"] == model.config.label_set and not ld.model.training
    assert _same_weights(ld.model, model)
    # a StyleAnime file gives its generator when a generator is expected; other kinds are refused by name
    gen = registry.load(p, expect="generator")
    assert gen.kind == "generator" and _same_weights(gen.model, model.decoder)
    with pytest.raises(CheckpointError, match=r"is a 'vidanime.styleanime' checkpoint, expected 'vidanime.parser'"):
        registry.load(p, expect="parser")
    with pytest.raises(CheckpointError, match=r"expect='nope': expected one of styleanime, generator"):
        registry.load(p, expect="nope")


def test_load_public_layouts_by_their_keys(tmp_path):
    """Official StyleAnime, pSp and rosinality files (built here in their public layouts) load through the same call,
    with the same weights as the model they were written from."""
    import argparse

    from vidanime.importers.styleanime_official import to_official_layout

    model = _tiny_styleanime()
    off = tmp_path / "official.pt"
    torch.save(to_official_layout(model), off)
    ld = registry.load(off)
    assert (ld.kind, ld.format, ld.ours, ld.train_config) == ("styleanime", "official-styleanime", False, None)
    assert _same_weights(ld.model, model) and "opts" in ld.metadata
    g = registry.load(off, expect="generator")  # the generator-giving reader goes first
    assert (g.kind, g.format) == ("generator", "psp") and _same_weights(g.model, model.decoder)

    ros = tmp_path / "ros.pt"
    args = argparse.Namespace(size=model.config.generator.size, channel_multiplier=2)
    torch.save({"g_ema": model.decoder.state_dict(), "args": args}, ros)  # options pickled as rosinality does
    r = registry.load(ros, expect="generator")
    assert (r.kind, r.format) == ("generator", "rosinality") and _same_weights(r.model, model.decoder)
    assert r.metadata["args"].size == model.config.generator.size
    with pytest.raises(CheckpointError, match=r"ros.pt is a rosinality file \(a generator\), expected "
                                              r"'vidanime.styleanime' or an official StyleAnime .pt"):
        registry.load(ros, expect="styleanime")

    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(CheckpointError, match=r"junk.pt is an unknown layout \(keys \['weights'\]\), expected a "
                                              r"vidanime checkpoint"):
        registry.load(junk)
    with pytest.raises(CheckpointError, match=r"expected a 'vidanime.parser' checkpoint"):
        registry.load(off, format="vidanime.parser")


def test_load_by_name_keeps_the_registry_entry(fake_registry):
    ld = registry.load("tiny")
    assert ld.entry is not None and ld.entry.name == "tiny" and ld.entry.description == "test"
    assert ld.format == "test.tiny" and ld.kind == "unknown"
