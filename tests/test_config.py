"""Typed configs: YAML → dataclass, unknown keys and bad types are one-line errors naming the key."""
from dataclasses import dataclass, field

import pytest

from vidanime.config import apply_overrides, config_from_dict, config_to_dict, load_config, save_config
from vidanime.errors import ConfigError


@dataclass
class Model:
    size: int = 64
    lr: float = 1e-3
    blur: tuple[int, ...] = (1, 3, 3, 1)


@dataclass
class Job:
    name: str = "job"
    model: Model = field(default_factory=Model)
    layers: list[int] = field(default_factory=lambda: [1, 2])
    device: str | None = None


def test_nested_load_and_round_trip(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nmodel:\n  size: 128\n  lr: 1e-4\n  blur: [1, 2, 1]\nlayers: [3]\n")
    cfg = load_config(p, Job)
    assert cfg.model.size == 128 and cfg.model.lr == pytest.approx(1e-4) and cfg.model.blur == (1, 2, 1)
    assert cfg.layers == [3] and cfg.device is None
    out = tmp_path / "resolved.yaml"
    save_config(cfg, out)
    assert load_config(out, Job) == cfg
    assert config_to_dict(cfg)["model"] == {"size": 128, "lr": 1e-4, "blur": [1, 2, 1]}


def test_typo_key_names_key_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  sizee: 128\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sizee'.*did you mean 'size'"):
        load_config(p, Job)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"model\.size: expected an integer, got 'big'"):
        config_from_dict({"model": {"size": "big"}}, Job)
    with pytest.raises(ConfigError, match="expected true/false"):
        config_from_dict({"flag": 1}, _Flag)


@dataclass
class _Flag:
    flag: bool = False


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", Job)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, Job)
    binary = tmp_path / "clip.mp4"  # a video given where the config belongs
    binary.write_bytes(bytes([0x00, 0xFC, 0xFF, 0x80]) * 64)
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(binary, Job)


def test_overrides():
    data = apply_overrides({"model": {"size": 64}}, {"model.size": 32, "name": "y"})
    cfg = config_from_dict(data, Job)
    assert cfg.model.size == 32 and cfg.name == "y"


def test_parse_overrides_reads_yaml_values_and_rejects_bad_items():
    from vidanime.config import parse_overrides

    assert parse_overrides(["train.lr=0.001", "data.limit=64", "name=x", "flip=false", "init_from="]) == {
        "train.lr": 1e-3, "data.limit": 64, "name": "x", "flip": False, "init_from": None}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_overrides(["a=[1, 2"])


def test_options_to_overrides_keeps_only_given_options():
    from vidanime.config import options_to_overrides

    got = options_to_overrides(["train.lr=0.5", "data.limit=3"], ("train.device", "cpu"), ("train.amp", None),
                               ("train.lr", 0.1), ("base.enabled", False))
    assert got == {"train.lr": 0.1, "data.limit": 3, "train.device": "cpu", "base.enabled": False}
