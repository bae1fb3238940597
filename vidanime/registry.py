"""Model registry and ``load_model(name_or_path)`` (whisper-style).

Bundled models are listed in ``vidanime/weights/registry.json`` (name → file, sha256, format, description); their
files live in the same folder and are checked against the sha256 on load.  A path is loaded directly.  Each checkpoint
``format`` maps to a builder ``"module:function"`` that turns the loaded checkpoint dict into a ready module; builders
are imported only when used, so importing the registry stays cheap.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .checkpoint import load_checkpoint, sha256_file
from .errors import CheckpointError

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY_FILE = WEIGHTS_DIR / "registry.json"

__all__ = ["ModelEntry", "available_models", "get_entry", "register_builder", "load_model", "verify", "resolve_path",
           "install_set", "load_styleanime", "styleanime_from_data", "load_generator"]

# format name -> "module:function" taking the checkpoint dict (and device) and returning a module.
_BUILDERS: dict[str, str] = {
    "vidanime.stylegan2": "vidanime.models.stylegan2:generator_from_checkpoint",
    "vidanime.styleanime": "vidanime.models.styleanime:styleanime_from_checkpoint",
    "vidanime.parser": "vidanime.models.parser:parser_from_checkpoint",
    "vidanime.interp.ifnet": "interp.loaders:ifnet_from_checkpoint",
}


@dataclass(frozen=True)
class ModelEntry:
    """One bundled model: its weight file (relative to the weights folder), checksum and checkpoint format."""

    name: str
    file: str
    sha256: str
    format: str
    description: str = ""

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file  # module global read at call time (tests point it elsewhere)


def _read_registry(registry_file: Path | None = None) -> dict[str, ModelEntry]:
    registry_file = registry_file or REGISTRY_FILE
    if not registry_file.is_file():
        return {}
    raw = json.loads(registry_file.read_text())
    return {name: ModelEntry(name=name, **fields) for name, fields in raw.get("models", {}).items()}


def available_models() -> list[ModelEntry]:
    """The bundled models, sorted by name."""
    return sorted(_read_registry().values(), key=lambda e: e.name)


def get_entry(name: str) -> ModelEntry:
    """The registry entry ``name``; unknown names raise :class:`CheckpointError` listing the known ones."""
    models = _read_registry()
    if name not in models:
        known = ", ".join(sorted(models)) or "none bundled yet"
        raise CheckpointError(f"unknown model '{name}' (bundled models: {known}); or pass a checkpoint path")
    return models[name]


def register_builder(format: str, target: str | Callable[..., Any]) -> None:
    """Register how a checkpoint ``format`` becomes a module: a callable or a ``"module:function"`` string."""
    _BUILDERS[format] = target  # type: ignore[assignment]


def _builder(format: str) -> Callable[..., Any]:
    target = _BUILDERS.get(format)
    if target is None:
        raise CheckpointError(f"no model builder for checkpoint format '{format}' "
                              f"(known: {', '.join(sorted(_BUILDERS))})")
    if callable(target):
        return target
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def verify(entry: ModelEntry) -> bool:
    """True when the bundled file exists and its sha256 matches the registry."""
    return entry.path.is_file() and sha256_file(entry.path) == entry.sha256


def resolve_path(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file for a registry name (checksum verified) or an existing path."""
    p = Path(name_or_path)
    if p.suffix or p.exists() or os.sep in str(name_or_path):
        if not p.exists():
            raise CheckpointError(f"checkpoint not found: {p}")
        return p
    entry = get_entry(str(name_or_path))
    if not entry.path.is_file():
        raise CheckpointError(f"bundled model '{entry.name}' is listed but its file {entry.path} is missing; "
                              "reinstall vidanime")
    digest = sha256_file(entry.path)
    if digest != entry.sha256:
        raise CheckpointError(
            f"checksum mismatch for bundled model '{entry.name}': expected {entry.sha256[:16]}…, got {digest[:16]}…; "
            "the file is damaged, reinstall vidanime"
        )
    return entry.path


def load_model(name_or_path: str | os.PathLike, device: Any = "cpu", format: str | None = None) -> Any:
    """Load a bundled model by name or one of our checkpoints by path, built and in eval mode on ``device``."""
    path = resolve_path(name_or_path)
    ckpt = load_checkpoint(path, format=format)
    model = _builder(ckpt["format"])(ckpt)
    logger.debug("loaded %s (%s) from %s", type(model).__name__, ckpt["format"], path)
    return model.to(device).eval()


def styleanime_from_data(data: Any, path: str | os.PathLike) -> Any:
    """A :class:`~vidanime.models.styleanime.StyleAnime` from a file's contents
    (:func:`~vidanime.checkpoint.read_torch_file`): our ``vidanime.styleanime`` checkpoint or an official StyleAnime
    ``.pt`` (detected by its keys); ``path`` names the file in errors.  For callers that also need other entries of the
    same file, read once.  (Lives here, above models and importers, so neither imports the other.)"""
    from .checkpoint import check_checkpoint
    from .models.styleanime import FORMAT, styleanime_from_checkpoint

    if isinstance(data, dict) and data.get("format") == FORMAT:
        return styleanime_from_checkpoint(check_checkpoint(data, path, format=FORMAT))
    if isinstance(data, dict) and "format" in data:
        raise CheckpointError(
            f"{path} is a '{data['format']}' checkpoint, expected '{FORMAT}' or an official StyleAnime .pt"
        )
    from .importers.styleanime_official import styleanime_from_official

    return styleanime_from_official(data, source=str(path))


def load_styleanime(name_or_path: str | os.PathLike, device: Any = "cpu") -> Any:
    """Load our ``vidanime.styleanime`` checkpoint (a bundled name or a path, checksum-verified when bundled), or an
    official StyleAnime ``.pt`` (detected by its keys), in eval mode on ``device``."""
    from .checkpoint import read_torch_file

    path = resolve_path(name_or_path)
    return styleanime_from_data(read_torch_file(path), path).to(device).eval()


def load_generator(name_or_path: str | os.PathLike) -> Any:
    """A StyleGAN2 generator from our stylegan2/styleanime checkpoints (a StyleAnime gives its decoder) or the decoder
    of an official StyleAnime / pSp file."""
    from .checkpoint import read_torch_file

    path = resolve_path(name_or_path)
    data = read_torch_file(path)
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt == "vidanime.stylegan2":
        from .models.stylegan2 import generator_from_checkpoint

        return generator_from_checkpoint(data)
    if fmt == "vidanime.styleanime":
        from .models.styleanime import styleanime_from_checkpoint

        return styleanime_from_checkpoint(data).decoder
    if fmt is None and isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        from .importers.styleanime_official import generator_from_psp

        return generator_from_psp(data, source=str(path))[0]
    found = f"a '{fmt}' checkpoint" if fmt else "an unknown layout"
    raise CheckpointError(
        f"{path} is {found}: expected a vidanime.stylegan2 or vidanime.styleanime checkpoint, "
        "or an official StyleAnime / pSp .pt"
    )


def install_set(src: str | os.PathLike, force: bool = False, dest: Path | None = None) -> list[str]:
    """Copy a model set (a folder with ``registry.json`` + files, as ``vidanime train-all --out`` writes) into the
    package's weights folder and merge its registry entries.  Every file's sha256 is checked before anything is
    copied; an existing file that differs is replaced only with ``force``.  Returns the installed names."""
    import shutil

    from .fileio import atomic_path, atomic_write_text

    src = Path(src)
    dest = Path(dest) if dest is not None else WEIGHTS_DIR
    incoming = _read_registry(src / "registry.json")
    if not incoming:
        raise CheckpointError(f"{src} holds no registry.json with models (expected the output folder of train-all)")
    for e in incoming.values():
        f = src / e.file
        if not f.is_file():
            raise CheckpointError(f"{src}: model '{e.name}' lists {e.file}, which is missing")
        if sha256_file(f) != e.sha256:
            raise CheckpointError(f"{src}: checksum mismatch for '{e.name}' ({e.file}); the set is damaged")
        target = dest / e.file
        if target.is_file() and not force and sha256_file(target) != e.sha256:
            raise CheckpointError(f"{target} exists and differs from the set's '{e.name}'; pass --force to replace it")
    reg_file = dest / "registry.json"
    registry = json.loads(reg_file.read_text()) if reg_file.is_file() else {"models": {}}
    for e in incoming.values():
        with atomic_path(dest / e.file) as tmp:
            shutil.copyfile(src / e.file, tmp)
        registry["models"][e.name] = {"file": e.file, "sha256": e.sha256, "format": e.format,
                                      "description": e.description}
    atomic_write_text(reg_file, json.dumps(registry, indent=2) + "\n")
    return sorted(incoming)

