"""Export trained checkpoints as an installable model set: one file per model + ``registry.json`` with sha256.

Used by ``make train-demo`` (into the package's ``vidanime/weights``) and ``vidanime train-all`` (into ``--out``, a
folder that ``vidanime weights install`` copies into the package).  A StyleAnime export carries its FaceBank (float16),
the test-time defaults (``inference``) and the discriminators the per-clip fine-tune's L_base needs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Mapping

from ..fileio import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["ExportItem", "export_models", "package_styleanime", "half_precision_copy", "rename_parsers",
           "discriminators_of_run", "REGISTRY_NAME"]

REGISTRY_NAME = "registry.json"
_META_KEYS = ("format", "config", "state_dict", "facebank", "version", "vidanime_version")


@dataclass
class ExportItem:
    """One model of a set: its registry ``name``, the checkpoint ``src``, the ``format`` and a description."""

    name: str
    src: Path
    format: str
    description: str
    facebank: Path | None = None  # StyleAnime only: the bank to embed
    # StyleAnime only: test-time defaults (alpha, k[, anchor_layers], refine[, background_fill])
    inference: Mapping[str, Any] | None = None
    parser_names: Mapping[str, str] | None = None  # glob of a parser path -> the bundled name to record instead
    # other formats: "float16" stores the floating-point weights in half precision (they load back into float32
    # modules); None copies the file as trained.  StyleAnime exports are always float16.
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in (None, "float32", "float16"):
            raise ValueError(f"export {self.name}: dtype={self.dtype!r}, expected 'float16', 'float32' or None")


def discriminators_of_run(export: Path) -> dict | None:
    """D1/D2 of the training checkpoint at the same step as an exported StyleAnime (same run folder), in the layout
    :func:`vidanime.train.styleanime.discriminator_record` writes; None when there is none."""
    from ..checkpoint import load_checkpoint
    from .run_dir import RunDir, checkpoint_step
    from .styleanime import TRAIN_FORMAT, discriminator_record

    try:
        step = checkpoint_step(export)
    except ValueError:
        logger.info("export: %s is not a run checkpoint, so no discriminators for the fine-tune's L_base", export)
        return None
    train = RunDir(export.parent.parent).checkpoint_path(step, "train")
    if not train.is_file():
        logger.info("export: no training checkpoint %s, so no discriminators for the fine-tune's L_base", train)
        return None
    ckpt = load_checkpoint(train, format=TRAIN_FORMAT)
    cfg = ckpt.get("config") or {}
    loss, opts = cfg.get("loss") or {}, cfg.get("train") or {}
    return discriminator_record(ckpt["state_dict"]["d1"], ckpt["state_dict"]["d2"], loss.get("d1_layers", 4),
                                opts.get("mbstd_group", 4))


def rename_parsers(train_config: dict[str, Any], parser_names: Mapping[str, str]) -> dict[str, Any]:
    """In a StyleAnime training config (in place), replace each section's ``parser`` path that matches a glob of
    ``parser_names`` (glob → bundled name) by that name; other paths are kept.  Returns the config."""
    for section in ("target", "source", "warmup", "consistency"):
        sec = train_config.get(section) or {}
        for pattern, name in parser_names.items():
            if sec.get("parser") and fnmatch(Path(sec["parser"]).as_posix(), pattern):
                sec["parser"] = name
                break
    return train_config


def package_styleanime(src: Path, dst: Path, facebank: Path | None = None, inference: Mapping[str, Any] | None = None,
                       parser_names: Mapping[str, str] | None = None) -> Path:
    """Write the StyleAnime checkpoint ``src`` to ``dst`` in float16 with its FaceBank, test-time defaults and
    discriminators; parser paths recorded in the training config are replaced by bundled names (``parser_names``:
    glob → name), so the fine-tune finds them on any machine."""
    import torch

    from ..models.facebank import FaceBank
    from ..models.styleanime import FORMAT, save_styleanime
    from ..registry import load

    loaded = load(src, expect="styleanime", format=FORMAT)  # one read: the model and its provenance
    extras = {k: v for k, v in loaded.metadata.items() if k not in _META_KEYS}
    rename_parsers(extras.get("train_config") or {}, parser_names or {})
    fb = None
    if facebank is not None and Path(facebank).is_file():
        bank = FaceBank.load(facebank)
        fb = FaceBank(bank.codes.to(torch.float16), dataclasses.replace(bank.config, dtype="float16"))
    if inference is not None:
        extras["inference"] = dict(inference)
    if "discriminators" not in extras:  # exports from before D1/D2 were saved: take them from the run
        extras["discriminators"] = discriminators_of_run(src)
    return save_styleanime(dst, loaded.model, facebank=fb, dtype="float16", **extras)


def half_precision_copy(src: Path, dst: Path) -> Path:
    """Write the vidanime checkpoint ``src`` to ``dst`` with its state dict's floating-point tensors in float16 (half
    the file; the loaders copy them into float32 modules); everything else is kept as it is."""
    from ..checkpoint import RESERVED_KEYS, half_floats, load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(src)
    extras = {k: v for k, v in ckpt.items() if k not in RESERVED_KEYS}
    return save_checkpoint(dst, format=ckpt["format"], config=ckpt["config"],
                           state_dict=half_floats(ckpt["state_dict"]), **extras)


def export_models(items: list[ExportItem], dest: str | Path, merge: bool = True) -> dict[str, Any]:
    """Copy/package each item into ``dest/<name>.pt`` and write ``dest/registry.json`` (sha256, format, description).

    ``merge`` keeps entries of an existing registry.json that this export does not replace.  Returns the registry.
    """
    from ..checkpoint import sha256_file

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    reg_file = dest / REGISTRY_NAME
    registry = json.loads(reg_file.read_text()) if merge and reg_file.is_file() else {"models": {}}
    for item in items:
        dst = dest / f"{item.name}.pt"
        if item.format == "vidanime.styleanime":
            package_styleanime(item.src, dst, item.facebank, item.inference, item.parser_names)
        elif item.dtype == "float16":
            half_precision_copy(item.src, dst)
        else:
            with atomic_path(dst) as tmp:
                shutil.copyfile(item.src, tmp)
        registry["models"][item.name] = {"file": dst.name, "sha256": sha256_file(dst), "format": item.format,
                                         "description": item.description}
        logger.info("exported %s (%.1f MiB)", dst, dst.stat().st_size / 2**20)
    atomic_write_text(reg_file, json.dumps(registry, indent=2) + "\n")
    return registry
