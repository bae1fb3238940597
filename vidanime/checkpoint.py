"""Self-describing checkpoints of our own, saved atomically and loaded with ``weights_only=True``.

A checkpoint is a dict::

    {"format": "vidanime.stylegan2", "version": 1, "vidanime_version": "0.1.0",
     "config": {...plain data...}, "state_dict": {...tensors...}, **extras}

Nothing in it is pickled code, so it loads with ``torch.load(..., weights_only=True)``.  Files written by other
projects (rosinality, official StyleAnime) are read by :func:`read_torch_file` and converted by the importers.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

from .errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1

# What torch's weights-only unpickler says when a file is a real pickle that needs a class or a function (pickled code
# or objects); any other unpickling error means the bytes are no pickle at all.
_PICKLED_CODE = re.compile(r"GLOBAL [A-Za-z_][\w.]* (was|whose)|call reduce for|create new object|"
                           r"must be imported to load")

__all__ = [
    "CHECKPOINT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "read_torch_file",
    "sha256_file",
    "check_state_dict",
]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_torch_file(path: str | os.PathLike, map_location: Any = "cpu", allow_namespaces: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True`` and one-line errors for missing, truncated or foreign files;
    ``allow_namespaces`` also lets ``argparse.Namespace`` through (a plain attribute container, in which rosinality
    StyleGAN2 files keep their training options)."""
    import argparse
    import contextlib
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a folder, expected a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    not_torch = f"{path} is not a readable torch checkpoint (corrupt, or not a torch file)"
    pickled = (f"{path} holds pickled objects, which vidanime does not execute (weights_only=True); "
               "re-save it as plain tensors")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        # torch files are zip archives (local header "PK\x03\x04") or, from old torch versions, pickles (PROTO opcode
        # 0x80, protocol 2-5): anything else is no checkpoint at all, not "pickled objects" (torch's own message for
        # random bytes)
        if head != b"PK\x03\x04" and not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise CheckpointError(f"{path} is not a torch checkpoint (neither a torch zip archive nor a pickle)")
        allowed = torch.serialization.safe_globals([argparse.Namespace]) if allow_namespaces else \
            contextlib.nullcontext()
        with warnings.catch_warnings(), allowed:
            # old-torch pickles (protocol 5) load fine or fail with the one-line errors below; torch's two-line note
            # about the protocol is no use to a user
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except PermissionError:
        raise CheckpointError(f"cannot read checkpoint {path}: permission denied") from None
    except pickle.UnpicklingError as exc:
        # "Unsupported operand", "String is too long", ...: bytes that only start like a pickle
        raise CheckpointError(pickled if _PICKLED_CODE.search(str(exc)) else not_torch) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Weights only load failed" in str(exc):  # older torch versions raise the weights-only refusal like this
            raise CheckpointError(pickled if _PICKLED_CODE.search(str(exc)) else not_torch) from None
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file): {msg}") from None
    except (IndexError, KeyError, ValueError, TypeError, AttributeError, OverflowError, struct.error) as exc:
        # the weights-only unpickler fed bytes that are not a pickle (an empty stack, a memo key never stored, text
        # that is not UTF-8, ...)
        logger.debug("reading %s failed", path, exc_info=exc)
        raise CheckpointError(not_torch) from None


RESERVED_KEYS = ("format", "version", "vidanime_version", "config", "state_dict")
"""Top-level keys every checkpoint has; ``extras`` may not use them."""


def half_floats(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with its floating-point tensors in float16 (half the file; loaders copy them into float32 modules);
    other values are kept as they are."""
    return {k: (v.half() if hasattr(v, "is_floating_point") and v.is_floating_point() else v) for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    format: str,
    config: Any,
    state_dict: Mapping[str, Any],
    **extras: Any,
) -> Path:
    """Save a self-describing checkpoint atomically (temporary file + rename); returns the path.

    ``config`` may be a dataclass or plain data; it is stored as plain data.  ``extras`` (e.g. ``latent_avg``,
    ``facebank``, ``step``, optimizer states) are stored beside the state dict and must be tensors or plain data.
    """
    import torch

    from . import __version__
    from .config import config_to_dict
    from .fileio import atomic_path

    clash = set(RESERVED_KEYS) & set(extras)
    if clash:
        raise ValueError(f"extras may not use reserved keys: {sorted(clash)}")
    payload = {
        "format": format,
        "version": CHECKPOINT_VERSION,
        "vidanime_version": __version__,
        "config": config_to_dict(config),
        # contiguous: a channels-last model's weights are stored in the one layout every loader expects
        "state_dict": {k: v.detach().cpu().contiguous() if hasattr(v, "detach") else v for k, v in state_dict.items()},
        **extras,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, format: str | None = None, map_location: Any = "cpu") -> dict:
    """Load one of our checkpoints; with ``format`` given, a checkpoint of another format is a
    :class:`CheckpointError`."""
    return check_checkpoint(read_torch_file(path, map_location=map_location), path, format=format)


def check_checkpoint(data: Any, path: str | os.PathLike, *, format: str | None = None) -> dict:
    """``data`` (a file's contents, from :func:`read_torch_file`) if it is one of our checkpoints of ``format`` and of a
    version this vidanime reads; else a :class:`CheckpointError` naming ``path``.  For callers that read a file once
    and then decide between our format and an imported one."""
    if not isinstance(data, dict) or "format" not in data or "state_dict" not in data:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path} is not a vidanime checkpoint (expected keys 'format', 'state_dict'; found {keys}); "
            "use the importers for rosinality / official StyleAnime files"
        )
    if format is not None and data["format"] != format:
        raise CheckpointError(f"{path} is a '{data['format']}' checkpoint, expected '{format}'")
    if int(data.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {data['version']}, newer than this vidanime supports ({CHECKPOINT_VERSION})"
        )
    return data


def check_state_dict(model: Any, state_dict: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Load ``state_dict`` strictly into ``model``; on mismatch raise one line naming missing/unexpected/misshaped
    keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:

        def short(items: list[str]) -> str:
            return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {short(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch (file vs model): {short(shapes)}")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)
