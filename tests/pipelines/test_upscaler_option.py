"""--upscaler: auto takes the bundled upscaler only where the model draws below its size; none / a path / errors."""
import json
import types

import pytest

from pipelines.translate import build_upscaler
from vidanime import registry
from vidanime.checkpoint import save_checkpoint, sha256_file
from vidanime.errors import CheckpointError
from vidanime.models.upscaler import UPSCALER_FORMAT, Upscaler, UpscalerConfig


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A registry holding only an 'upscaler-anime' (x2 to 128 px)."""
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(registry, "REGISTRY_FILE", tmp_path / "registry.json")
    net = Upscaler(UpscalerConfig(channels=8, blocks=1, train_size=128))
    p = save_checkpoint(tmp_path / "up.pt", format=UPSCALER_FORMAT, config=net.config, state_dict=net.state_dict())
    entry = {"file": "up.pt", "sha256": sha256_file(p), "format": UPSCALER_FORMAT, "description": "test"}
    (tmp_path / "registry.json").write_text(json.dumps({"models": {"upscaler-anime": entry}}))
    return p


def model(size):
    return types.SimpleNamespace(image_size=size)


def test_auto_uses_the_bundled_upscaler_below_its_size_only(weights):
    assert isinstance(build_upscaler("p2a", "auto", model(64)), Upscaler)
    assert isinstance(build_upscaler("p2a", None, model(64)), Upscaler)
    assert build_upscaler("p2a", "auto", model(128)) is None  # a 128-px model already draws at its size
    assert build_upscaler("a2p", "auto", model(64)) is None  # no upscaler for drawn portraits
    assert build_upscaler("p2a", "none", model(64)) is None


def test_auto_without_a_bundled_upscaler_is_off_and_a_named_one_must_exist(weights, tmp_path):
    (tmp_path / "registry.json").write_text(json.dumps({"models": {}}))
    assert build_upscaler("p2a", "auto", model(64)) is None
    assert isinstance(build_upscaler("p2a", str(weights), model(128)), Upscaler)  # asked for by path: always used
    with pytest.raises(CheckpointError, match="unknown model 'upscaler-x'"):
        build_upscaler("p2a", "upscaler-x", model(64))
    with pytest.raises(CheckpointError):
        build_upscaler("p2a", str(tmp_path / "missing.pt"), model(64))
