"""Metric registry: name → function + metadata, so a new metric is one decorated function.

Three kinds of metric, told apart by what the function receives:

* ``"images"``: ``fn(ctx: ImageEvalContext) -> float | dict`` (see :mod:`vidanime.metrics.context`);
* ``"video_pair"``: ``fn(pair: FramePair) -> dict`` per consecutive frame pair, and ``reduce(list_of_dicts) ->
  float | dict`` for the clip (the pipeline decodes both videos once and shares the flow between metrics);
* ``"latents"``: ``fn(w) -> float | dict`` on a code sequence (T, ..., D).

A dict result holds its headline number under ``"value"`` and anything else beside it.  ``needs`` names the inputs
the metric reads (``pred``, ``real``, ``pairs``, ``inception``, ``lpips``, ``source_parsing``, ``pred_parsing``,
``gt_masks``, ``video``, ``latents``); a pipeline runs the metrics whose needs it can meet and reports the others as
skipped with the reason.  Example::

    @register_metric("mean_brightness", kind="images", higher_is_better=True, needs=("pred",),
                     description="mean pixel value of the outputs (0..255)")
    def mean_brightness(ctx):
        return float(np.mean([b.mean() for b in ctx.batches(ctx.pred_paths)]))
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..errors import ConfigError

__all__ = ["KINDS", "Metric", "register_metric", "get_metric", "list_metrics", "select_metrics", "headline"]

KINDS = ("images", "video_pair", "latents")
_METRICS: dict[str, "Metric"] = {}
_BUILTIN = "vidanime.metrics.builtin"


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function, kind, direction (``higher_is_better``), inputs needed and a one-line doc."""

    name: str
    fn: Callable[..., Any]
    kind: str
    higher_is_better: bool
    needs: tuple[str, ...]
    description: str
    reduce: Callable[[Sequence[Any]], Any] | None = None

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


def register_metric(name: str, *, kind: str, higher_is_better: bool, needs: Iterable[str] = (), description: str = "",
                    reduce: Callable[[Sequence[Any]], Any] | None = None, replace: bool = False
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` under ``name``; registering a taken name is an error unless ``replace``."""
    if kind not in KINDS:
        raise ValueError(f"unknown metric kind '{kind}' (expected one of: {', '.join(KINDS)})")
    if kind == "video_pair" and reduce is None:
        raise ValueError(f"video_pair metric '{name}' needs a reduce function")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _METRICS and not replace:
            raise ValueError(f"metric '{name}' is already registered")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _METRICS[name] = Metric(name, fn, kind, higher_is_better, tuple(needs), doc, reduce)
        return fn

    return deco


def _ensure_builtin() -> None:
    importlib.import_module(_BUILTIN)


def list_metrics(kind: str | None = None) -> list[Metric]:
    """Registered metrics (built-ins included), optionally of one kind, in registration order."""
    _ensure_builtin()
    return [m for m in _METRICS.values() if kind is None or m.kind == kind]


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    _ensure_builtin()
    if name not in _METRICS:
        raise ConfigError(f"unknown metric '{name}' (known: {', '.join(_METRICS)})")
    return _METRICS[name]


def select_metrics(kinds: Sequence[str], available: set[str], requested: Sequence[str] | None = None,
                   hints: dict[str, str] | None = None) -> tuple[list[Metric], dict[str, str]]:
    """(metrics to run, {name: why skipped}) for the given kinds and available inputs.

    Without ``requested`` every metric of those kinds whose needs are met runs and the rest are skipped; a requested
    metric whose needs are not met is a :class:`ConfigError` naming what is missing (with ``hints[need]``).
    """
    hints = hints or {}

    def missing(m: Metric) -> list[str]:
        return [hints.get(n, n) for n in m.needs if n not in available]

    if requested:
        chosen = []
        for name in requested:
            m = get_metric(name)
            if m.kind not in kinds:
                raise ConfigError(f"metric '{name}' is a {m.kind} metric; here only {', '.join(kinds)} metrics apply")
            if missing(m):
                raise ConfigError(f"metric '{name}' needs {', '.join(missing(m))}")
            chosen.append(m)
        return chosen, {}
    run, skipped = [], {}
    for m in list_metrics():
        if m.kind not in kinds:
            continue
        if missing(m):
            skipped[m.name] = "needs " + ", ".join(missing(m))
        else:
            run.append(m)
    return run, skipped


def headline(result: Any) -> float:
    """The headline number of a metric result (a float, or a dict's ``"value"``); NaN if there is none."""
    if isinstance(result, dict):
        result = result.get("value", math.nan)
    try:
        return float(result)
    except (TypeError, ValueError):
        return math.nan
