"""Typed configs: dataclasses filled from YAML files, strict about keys and types.

A config is a (nested) dataclass.  :func:`load_config` reads a YAML file (or a plain dict) into it, rejecting unknown
keys with an error that names the key, its section and the file, and checking scalar types.  :func:`config_to_dict`
turns a config back into plain data (what runs and checkpoints store as the resolved config).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar, Union

from .errors import ConfigError

T = TypeVar("T")

__all__ = ["load_config", "config_from_dict", "config_to_dict", "apply_overrides", "parse_overrides", "save_config"]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; ``where`` names the key for errors."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return _from_dict(value, tp, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML 1.1 reads "1e-4" as a string; accept numeric strings for floats.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(data: Mapping[str, Any], cls: type[T], where: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(fields)})"
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def config_from_dict(data: Mapping[str, Any], cls: type[T], source: str = "") -> T:
    """Build the dataclass ``cls`` from plain data; unknown keys and wrong types raise :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source or cls.__name__}: expected a mapping at the top level, got {type(data).__name__}")
    return _from_dict(data, cls, source)


def load_config(path: str | os.PathLike, cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """Read a YAML file into the dataclass ``cls``; ``overrides`` maps dotted keys to values applied on top."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected a YAML config)") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ConfigError(f"{path}: not valid YAML" + (f" (line {line + 1})" if line is not None else "")) from None
    if overrides:
        data = apply_overrides(data, overrides, str(path))
    return config_from_dict(data, cls, source=path.name)


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any], source: str = "") -> dict:
    """Return a copy of ``data`` with dotted-key ``overrides`` (``{"train.lr": 1e-3}``) set."""
    import copy

    out = copy.deepcopy(dict(data))
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: cannot set '{dotted}': '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.lr=0.001", "data.limit=64"]`` → ``{"train.lr": 0.001, "data.limit": 64}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.001")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    return out


def options_to_overrides(sets: list[str] | tuple[str, ...], *given: tuple[str, Any]) -> dict[str, Any]:
    """A command's overrides: its ``--set KEY=VALUE`` items (:func:`parse_overrides`), then each ``(dotted key, option
    value)`` whose value was given on the command line (None = not given; a flag passes True or None)."""
    out = parse_overrides(sets)
    out.update({key: value for key, value in given if value is not None})
    return out


def config_to_dict(cfg: Any) -> Any:
    """Turn a (nested) dataclass config into plain data: dicts, lists, str/int/float/bool/None."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically)."""
    import yaml

    from .fileio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
