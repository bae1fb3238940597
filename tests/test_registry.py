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
