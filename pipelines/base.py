"""The small base of the public inference pipelines (diffusers' ``DiffusionPipeline``, cut down).

Every pipeline is built by ``from_pretrained(name_or_path, ..., device=)`` from registry names or files, checks its
inputs with ``check_inputs`` (a one-line :class:`~vidanime.errors.VidanimeError` naming the bad value, raised before any
work), and is called on files.  The base adds what they share: :attr:`Pipeline.components` (the torch modules it runs,
found through its parts) and :meth:`Pipeline.to`, which moves every part and every device its parts record, so
``pipe.to("cuda")`` works on a pipeline however deep its models sit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, TypeVar

import torch

__all__ = ["Pipeline"]

P = TypeVar("P", bound="Pipeline")
_OURS = ("vidanime.", "pipelines.", "interp.")  # objects whose attributes are walked (others are left alone)


def _is_ours(obj: Any) -> bool:
    return type(obj).__module__.startswith(_OURS) and hasattr(obj, "__dict__")


def _modules(obj: Any, prefix: str, seen: set[int]) -> Iterator[tuple[str, torch.nn.Module]]:
    """(dotted name, module) for every torch module reachable through ``obj``'s attributes, each once."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module):
        yield prefix, obj
    elif _is_ours(obj):  # the pipeline itself, its translator, face config, ...
        for key, value in vars(obj).items():
            yield from _modules(value, f"{prefix}.{key}" if prefix else key, seen)


def _move(obj: Any, device: torch.device, seen: set[int]) -> Any:
    """Move ``obj`` (a module, tensor, or one of our objects, in place where it can) to ``device``; → the moved
    object.  A ``device`` attribute of our objects is set to the new device, in the type it had (str or device)."""
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, (torch.nn.Module, torch.Tensor)):
        return obj.to(device)
    if _is_ours(obj) and callable(getattr(obj, "to", None)):  # e.g. FaceBank: its own move
        return obj.to(device)
    if isinstance(obj, list):
        obj[:] = [_move(v, device, seen) for v in obj]
        return obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _move(value, device, seen)
        return obj
    if _is_ours(obj):
        _move_attrs(obj, device, seen)
    return obj


def _move_attrs(obj: Any, device: torch.device, seen: set[int]) -> None:
    """Move every attribute of ``obj`` (one of our objects) to ``device``; a ``device`` attribute is set to the new
    device in the type it had (str or torch.device)."""
    frozen = dataclasses.is_dataclass(obj) and type(obj).__dataclass_params__.frozen
    for key, value in list(vars(obj).items()):
        if key == "device" and isinstance(value, (str, torch.device)):
            new: Any = str(device) if isinstance(value, str) else device
        else:
            new = _move(value, device, seen)
        if new is not value:
            if frozen:
                object.__setattr__(obj, key, new)
            else:
                vars(obj)[key] = new


class Pipeline:
    """Shared base: ``from_pretrained`` (each pipeline's own loader), ``check_inputs`` (each pipeline's own checks),
    ``components`` and ``to(device)``."""

    @classmethod
    def from_pretrained(cls: type[P], *args: Any, **kwargs: Any) -> P:
        """Build the pipeline from registry names or checkpoint paths (each pipeline documents its arguments)."""
        raise NotImplementedError(f"{cls.__name__} is built from its parts, not from a checkpoint")

    def check_inputs(self, *args: Any, **kwargs: Any) -> None:
        """Raise a one-line :class:`~vidanime.errors.VidanimeError` naming the first bad input (no work done)."""
        return None

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        """The torch modules this pipeline runs, by dotted attribute path (e.g. ``translator.model``), each once."""
        return dict(_modules(self, "", set()))

    def to(self: P, device: Any) -> P:
        """Move every model part, and every device its parts record, to ``device``; → self."""
        _move_attrs(self, torch.device(device), {id(self)})
        return self

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={type(m).__name__}" for name, m in self.components.items())
        return f"{type(self).__name__}({parts})"

