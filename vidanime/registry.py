"""Model registry and the one checkpoint loader, ``load(name_or_path, expect=KIND)`` (whisper-style).

Bundled models are listed in ``vidanime/weights/registry.json`` (name → file, sha256, format, description); their
files live in the same folder and are checked against the sha256 on load.  A path is loaded directly.

:func:`load` reads a file once and returns the model with what the file says about it (:class:`Loaded`: kind, format,
config, training config, step, inference defaults, the registry entry).  Our checkpoints name their ``format``, which
maps to a builder ``"module:function"`` inside vidanime (imported only when used, so importing the registry stays
cheap); public files carry no format and are recognised by their keys through the readers in :data:`_PUBLIC` (official
StyleAnime, pSp/e4e, rosinality StyleGAN2).  ``expect`` asks for one kind of model (``styleanime``, ``generator``,
``parser``, ``facebank``): a StyleAnime file gives its generator when a generator is expected; any other mismatch is
a one-line :class:`CheckpointError`.  Frame interpolators load through :func:`interp.load` (a package above this one),
or here after ``register_builder``.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .checkpoint import check_checkpoint, read_torch_file, sha256_file
from .errors import CheckpointError

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY_FILE = WEIGHTS_DIR / "registry.json"

__all__ = ["ModelEntry", "Loaded", "KINDS", "available_models", "read_registry", "get_entry", "register_builder",
           "load", "load_model", "verify", "resolve_path", "install_set", "load_styleanime", "load_generator"]

#: the kinds of model :func:`load` can be asked for
KINDS = ("styleanime", "generator", "parser", "facebank", "interp")

# Our formats: format name -> (kind, "module:attribute[.attribute]" taking the checkpoint dict, returning the model).
_BUILDERS: dict[str, str | Callable[..., Any]] = {
    "vidanime.stylegan2": "vidanime.models.stylegan2:generator_from_checkpoint",
    "vidanime.styleanime": "vidanime.models.styleanime:styleanime_from_checkpoint",
    "vidanime.parser": "vidanime.models.parser:parser_from_checkpoint",
    "vidanime.facebank": "vidanime.models.facebank:FaceBank.from_checkpoint",
    "vidanime.upscaler": "vidanime.models.upscaler:upscaler_from_checkpoint",
}
_FORMAT_KINDS: dict[str, str] = {
    "vidanime.stylegan2": "generator", "vidanime.styleanime": "styleanime", "vidanime.parser": "parser",
    "vidanime.facebank": "facebank", "vidanime.interp.ifnet": "interp", "vidanime.interp.ifnet_train": "interp",
    "vidanime.interp.animeinterp": "interp", "vidanime.upscaler": "upscaler",
}
# Top-level entries of our checkpoints that are weights, not metadata (kept out of Loaded.metadata).
_WEIGHT_KEYS = ("state_dict", "facebank")


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


@dataclass
class Loaded:
    """A model and what its file says about it.

    ``kind``: what ``model`` is (one of :data:`KINDS`); ``format``: the file's (ours, e.g. ``vidanime.styleanime``, or
    a public layout: ``official-styleanime``, ``psp``, ``rosinality``); ``metadata``: the file's other top-level
    entries (ours: ``config``, ``train_config``, ``step``, ``inference``, ``discriminators``, versions; public files:
    e.g. ``opts``); ``entry``: the registry entry when loaded by name (description and checksum = provenance)."""

    model: Any
    kind: str
    format: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    entry: ModelEntry | None = None

    @property
    def ours(self) -> bool:
        """True for a vidanime checkpoint (the file names its format), False for an imported public file."""
        return self.format.startswith("vidanime.")

    @property
    def config(self) -> dict[str, Any]:
        """The model configuration as stored (ours), else {}."""
        return dict(self.metadata.get("config") or {}) if self.ours else {}

    @property
    def train_config(self) -> dict[str, Any] | None:
        """The training configuration saved with the model (our exports), else None."""
        tc = self.metadata.get("train_config")
        return dict(tc) if isinstance(tc, Mapping) else None

    @property
    def step(self) -> int | None:
        """The training step the weights come from, when the file says."""
        s = self.metadata.get("step")
        return int(s) if isinstance(s, (int, float)) else None


def read_registry(registry_file: Path | None = None) -> dict[str, ModelEntry]:
    """The entries of a ``registry.json`` ({"models": {name: {file, sha256, format[, description]}}}); a file that is
    not that (bad JSON, wrong shape, missing keys, a file name outside its folder) raises a one-line
    :class:`CheckpointError`."""
    registry_file = registry_file or REGISTRY_FILE
    if not registry_file.is_file():
        return {}
    bad = f"{registry_file} is not a model registry"
    try:
        raw = json.loads(registry_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{bad}: {exc}") from None
    models = raw.get("models", {}) if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        raise CheckpointError(f"{bad}: expected {{\"models\": {{name: entry}}}}")
    entries = {}
    for name, fields in models.items():
        if not isinstance(fields, dict) or not {"file", "sha256", "format"} <= set(fields):
            raise CheckpointError(f"{bad}: entry '{name}' needs file, sha256 and format")
        unknown = set(fields) - {"file", "sha256", "format", "description"}
        if unknown:
            raise CheckpointError(f"{bad}: entry '{name}' has unknown keys {', '.join(sorted(unknown))}")
        file = fields["file"]
        # a plain file name: an entry must never point outside the folder it is installed into
        if not isinstance(file, str) or not file or Path(file).name != file or file in (".", ".."):
            raise CheckpointError(f"{bad}: entry '{name}' file {file!r} must be a plain file name in its folder")
        entries[name] = ModelEntry(name=name, **{k: str(v) for k, v in fields.items()})
    return entries


def available_models() -> list[ModelEntry]:
    """The bundled models, sorted by name."""
    return sorted(read_registry().values(), key=lambda e: e.name)


#: Names the commands default to that no bundled set holds yet, and how to get one (said instead of "unknown").
NOT_BUNDLED = {
    "styleanime-a2p": "no anime → portrait (a2p) model is bundled yet: the CPU-trained ones drew the same melted face "
                      "for every anime input. Pass a checkpoint trained for a2p (e.g. --checkpoint a2p.pt), or train "
                      "and install one: vidanime train-all --config configs/train_all_a2p.yaml --budget 100m --out DIR "
                      "(the GPU recipe configs/train_all_gpu.yaml trains it too), then vidanime weights install DIR",
}


def get_entry(name: str) -> ModelEntry:
    """The registry entry ``name``; unknown names raise :class:`CheckpointError` listing the known ones (or, for a
    default that is not bundled yet, saying how to get it: :data:`NOT_BUNDLED`)."""
    models = read_registry()
    if name not in models:
        if name in NOT_BUNDLED:
            raise CheckpointError(NOT_BUNDLED[name])
        known = ", ".join(sorted(models)) or "none bundled yet"
        raise CheckpointError(f"unknown model '{name}' (bundled models: {known}); or pass a checkpoint path")
    return models[name]


def register_builder(format: str, target: str | Callable[..., Any], kind: str | None = None) -> None:
    """Register how a checkpoint ``format`` becomes a model (a callable taking the checkpoint dict, or a
    ``"module:function"`` string) and, optionally, the ``kind`` of model it holds."""
    _BUILDERS[format] = target
    if kind is not None:
        _FORMAT_KINDS[format] = kind


def _builder(format: str) -> Callable[..., Any]:
    target = _BUILDERS.get(format)
    if target is None:
        if _FORMAT_KINDS.get(format) == "interp":
            raise CheckpointError(f"a '{format}' checkpoint is a frame interpolator: load it with interp.load(PATH)")
        raise CheckpointError(f"no model builder for checkpoint format '{format}' "
                              f"(known: {', '.join(sorted(_BUILDERS))})")
    if callable(target):
        return target
    module, _, attrs = target.partition(":")
    obj: Any = importlib.import_module(module)
    for a in attrs.split("."):
        obj = getattr(obj, a)
    return obj


def verify(entry: ModelEntry) -> bool:
    """True when the bundled file exists and its sha256 matches the registry."""
    return entry.path.is_file() and sha256_file(entry.path) == entry.sha256


def _is_path(name_or_path: str | os.PathLike) -> bool:
    p = Path(name_or_path)
    return bool(p.suffix) or p.exists() or os.sep in str(name_or_path)


def resolve_path(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file for a registry name (checksum verified) or an existing path."""
    p = Path(name_or_path)
    if _is_path(name_or_path):
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


# ---- public layouts (no "format" key): recognised by their keys ----------------------------------------------------
def _state_dict_keys(data: Any) -> list[str]:
    sd = data.get("state_dict") if isinstance(data, Mapping) else None
    return [str(k) for k in sd] if isinstance(sd, Mapping) else []


def _is_official(data: Any) -> bool:
    return any(k.startswith("encoder.encoder_1.") for k in _state_dict_keys(data))


def _is_psp(data: Any) -> bool:
    keys = _state_dict_keys(data)
    return any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys)


def _is_rosinality(data: Any) -> bool:
    return isinstance(data, Mapping) and "g_ema" in data


def _official(data: Any, source: str) -> Any:
    from .importers.styleanime_official import styleanime_from_official

    return styleanime_from_official(data, source=source)


def _psp(data: Any, source: str) -> Any:
    from .importers.styleanime_official import generator_from_psp

    return generator_from_psp(data, source=source)[0]


def _rosinality(data: Any, source: str) -> Any:
    from .importers.rosinality import rosinality_from_data

    return rosinality_from_data(data, source=source, load_discriminator=False).generator


# (format name, kind, test on the file's contents, builder(contents, source)), tried in order.
_PUBLIC: list[tuple[str, str, Callable[[Any], bool], Callable[[Any, str], Any]]] = [
    ("official-styleanime", "styleanime", _is_official, _official),
    ("psp", "generator", _is_psp, _psp),
    ("rosinality", "generator", _is_rosinality, _rosinality),
]

# What a file of one kind can give when another is expected.
_CONVERSIONS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("styleanime", "generator"): lambda m: m.decoder,
}
_EXPECT_FORMATS = {"styleanime": "'vidanime.styleanime' or an official StyleAnime .pt",
                   "generator": "a vidanime.stylegan2 or vidanime.styleanime checkpoint, or an official StyleAnime / "
                                "pSp / rosinality .pt",
                   "parser": "'vidanime.parser'", "facebank": "'vidanime.facebank'", "interp": "a frame interpolator"}


def _describe(data: Any) -> str:
    if isinstance(data, Mapping) and "format" in data:
        return f"a '{data['format']}' checkpoint"
    known = [(fmt, kind) for fmt, kind, test, _ in _PUBLIC if test(data)]
    if known:
        return f"a {known[0][0]} file (a {known[0][1]})"
    if isinstance(data, Mapping):
        keys = sorted(map(str, data))[:6]
        return f"an unknown layout (keys {keys})"
    return f"a {type(data).__name__}, not a checkpoint"


def load(name_or_path: str | os.PathLike, expect: str | None = None, device: Any = "cpu",
         format: str | None = None) -> Loaded:
    """Load a bundled model by name or any supported checkpoint by path, reading the file once; the model is on
    ``device`` in eval mode.  ``expect``: the kind wanted (:data:`KINDS`); ``format``: insist on one of our formats.

    Every problem (unknown name, damaged bundled file, foreign or wrong-kind checkpoint) is a one-line
    :class:`CheckpointError` naming the file and what was expected."""
    if expect is not None and expect not in KINDS:
        raise CheckpointError(f"expect={expect!r}: expected one of {', '.join(KINDS)}")
    path = resolve_path(name_or_path)
    entry = None if _is_path(name_or_path) else get_entry(str(name_or_path))
    data = read_torch_file(path, allow_namespaces=True)  # rosinality files pickle their argparse options
    if isinstance(data, Mapping) and "format" in data:
        ckpt = check_checkpoint(data, path, format=format)
        fmt = str(ckpt["format"])
        kind = _FORMAT_KINDS.get(fmt)
        if expect is not None and kind is not None and kind != expect and (kind, expect) not in _CONVERSIONS:
            raise CheckpointError(f"{path} is {_describe(data)}, expected {_EXPECT_FORMATS[expect]}")
        model = _builder(fmt)(ckpt)
        kind = kind or expect or "unknown"
        metadata = {k: v for k, v in ckpt.items() if k not in _WEIGHT_KEYS}
    else:
        if format is not None:
            raise CheckpointError(f"{path} is {_describe(data)}, expected a '{format}' checkpoint")
        # readers giving the expected kind directly first (an official StyleAnime file is also a pSp file)
        reader = next((r for r in sorted(_PUBLIC, key=lambda r: r[1] != expect) if r[2](data) and (
            expect is None or expect == r[1] or (r[1], expect) in _CONVERSIONS)), None)
        if reader is None:
            want = _EXPECT_FORMATS[expect] if expect else "a vidanime checkpoint or an official StyleAnime / pSp / " \
                                                          "rosinality .pt"
            raise CheckpointError(f"{path} is {_describe(data)}, expected {want}")
        fmt, kind, _, build = reader
        model = build(data, str(path))
        metadata = {k: v for k, v in data.items() if k not in ("state_dict", "g", "d", "g_ema", "g_optim", "d_optim")}
    if expect is not None and kind != expect:
        model, kind = _CONVERSIONS[(kind, expect)](model), expect
    del data
    if hasattr(model, "eval"):
        model = model.eval()
    if hasattr(model, "to"):
        model = model.to(device)
    logger.debug("loaded %s (%s, %s) from %s", type(model).__name__, kind, fmt, path)
    return Loaded(model=model, kind=kind, format=fmt, path=path, metadata=metadata, entry=entry)


def load_model(name_or_path: str | os.PathLike, device: Any = "cpu", format: str | None = None) -> Any:
    """The model of :func:`load` (a bundled name or a checkpoint path), in eval mode on ``device``."""
    return load(name_or_path, device=device, format=format).model


def load_styleanime(name_or_path: str | os.PathLike, device: Any = "cpu") -> Any:
    """A StyleAnime from our ``vidanime.styleanime`` checkpoint (a bundled name or a path) or an official StyleAnime
    ``.pt`` (detected by its keys), in eval mode on ``device``: ``load(..., expect="styleanime").model``."""
    return load(name_or_path, expect="styleanime", device=device).model


def load_generator(name_or_path: str | os.PathLike) -> Any:
    """A StyleGAN2 generator from our stylegan2/styleanime checkpoints (a StyleAnime gives its decoder) or an official
    StyleAnime / pSp / rosinality file: ``load(..., expect="generator").model``."""
    return load(name_or_path, expect="generator").model


def install_set(src: str | os.PathLike, force: bool = False, dest: Path | None = None) -> list[str]:
    """Copy a model set (a folder with ``registry.json`` + files, as ``vidanime train-all --out`` writes) into the
    package's weights folder and merge its registry entries.  Every file's sha256 is checked before anything is
    copied; an existing file that differs is replaced only with ``force``.  Returns the installed names."""
    import shutil

    from .fileio import atomic_path, atomic_write_text

    src = Path(src)
    dest = Path(dest) if dest is not None else WEIGHTS_DIR
    incoming = read_registry(src / "registry.json")
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

