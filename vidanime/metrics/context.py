"""What image metrics read: the image sets (as paths, loaded in batches), lazily loaded models, cached results.

An :class:`ImageEvalContext` is built by the evaluation pipeline and handed to every ``"images"`` metric of the
registry.  Models and parsers come in as callables so that nothing is loaded unless a selected metric asks for it,
and so this library module does not depend on the pipelines that wrap the parsers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..data.images import load_image
from ..errors import VidanimeError

logger = logging.getLogger(__name__)

__all__ = ["Parsing", "ImageEvalContext"]

# A parser: paths → (H, W) label maps at each image's own size.
ParseFn = Callable[[Sequence[Path]], list[np.ndarray]]


@dataclass
class Parsing:
    """Where parsing maps of one side come from: ``fn(paths)`` → label maps in ``label_set``."""

    fn: ParseFn
    label_set: str


@dataclass
class ImageEvalContext:
    """Inputs of image metrics.  ``pairs`` = (source, output) paths matched by file name."""

    pred_paths: list[Path]
    real_paths: list[Path] | None = None
    pairs: list[tuple[Path, Path]] | None = None
    gt_masks: dict[Path, Path] | None = None  # output path → ground-truth mask path (in ``gt_label_set``)
    gt_label_set: str = "bisenet"
    inception_loader: Callable[[], Any] | None = None
    lpips_loader: Callable[[], Any] | None = None
    source_parsing: Parsing | None = None
    pred_parsing: Parsing | None = None
    batch_size: int = 16
    fid_size: int = 299
    lpips_size: int = 256
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    lpips_d_pairs: int = 1000
    color_distance: str = "emd"
    seed: int = 0
    device: Any = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------------------------------------ availability
    def available(self) -> set[str]:
        """Names of the needs (see :mod:`vidanime.metrics.registry`) this context can meet."""
        have = {"pred"} if self.pred_paths else set()
        for name, value in (("real", self.real_paths), ("pairs", self.pairs), ("gt_masks", self.gt_masks),
                            ("inception", self.inception_loader), ("lpips", self.lpips_loader),
                            ("source_parsing", self.source_parsing), ("pred_parsing", self.pred_parsing)):
            if value:
                have.add(name)
        return have

    # ------------------------------------------------------------------------------------------------------ images
    def batches(self, paths: Sequence[Path], size: int | None = None) -> Iterator[np.ndarray]:
        """(B, S, S, 3) uint8 batches of the images at ``paths`` (centre-cropped square, resized to ``size``)."""
        size = size or self.lpips_size
        for s in range(0, len(paths), self.batch_size):
            yield np.stack([load_image(p, size) for p in paths[s : s + self.batch_size]])

    def load(self, paths: Sequence[Path], size: int | None = None) -> np.ndarray:
        """All images at ``paths`` as one (N, S, S, 3) uint8 array."""
        return np.concatenate(list(self.batches(paths, size)))

    # ------------------------------------------------------------------------------------------------------ models
    @cached_property
    def inception(self) -> Any:
        if self.inception_loader is None:
            raise VidanimeError("no Inception weights given (needed for FID/KID)")
        return self.inception_loader()

    @cached_property
    def lpips(self) -> Any:
        if self.lpips_loader is None:
            raise VidanimeError("no LPIPS backbone given (needed for LPIPS-s/-d)")
        return self.lpips_loader()

    def features(self, which: str) -> np.ndarray:
        """Inception pool3 features (N, 2048) of the outputs (``"pred"``) or the real target images (``"real"``)."""
        key = f"features:{which}"
        if key not in self._cache:
            from .fid import inception_features

            paths = self.pred_paths if which == "pred" else self.real_paths
            if not paths:
                raise VidanimeError(f"no '{which}' images to compute Inception features of")
            from tqdm import tqdm

            batches = tqdm(self.batches(paths, self.fid_size), total=-(-len(paths) // self.batch_size),
                           desc=f"inception {which}", disable=None, leave=False)
            self._cache[key] = inception_features(self.inception, batches)
        return self._cache[key]

    def parsing(self, side: str, paths: Sequence[Path]) -> list[np.ndarray]:
        """Label maps of ``paths`` from the ``"source"`` or ``"pred"`` parsing, cached per path."""
        src = self.source_parsing if side == "source" else self.pred_parsing
        if src is None:
            raise VidanimeError(f"no {side} parsing given")
        cache = self._cache.setdefault(f"parsing:{side}", {})
        todo = [p for p in paths if p not in cache]
        if todo:
            for p, lab in zip(todo, src.fn(todo)):
                cache[p] = lab
        return [cache[p] for p in paths]
