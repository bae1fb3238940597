"""Offline evaluation: :class:`EvalImagesPipeline` (paper Tables 1–2 and appearance/structure kept) and
:class:`EvalVideoPipeline` (temporal stability), both running metrics from :mod:`vidanime.metrics.registry`.

Images: ``--pred`` outputs, ``--real`` target-domain images (FID/KID), ``--source`` inputs matched to outputs by file
name (LPIPS-s, structure/appearance kept); parsing maps come from label PNGs (``--source-masks``/``--pred-masks``, same
file names) or from parsers (registry names or checkpoints).  Video: an input clip and its translation, decoded
together frame by frame (memory is a few frames whatever the length), plus optional per-frame latent codes.
Every metric whose inputs are present runs; the others are listed as skipped with the option that would enable them.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from pipelines.base import Pipeline
from pipelines.parse import ParsePipeline
from vidanime import labels as L
from vidanime.checkpoint import read_torch_file
from vidanime.data.images import list_images
from vidanime.data.parsing import read_image_rgb, read_mask
from vidanime.errors import CheckpointError, ConfigError, MediaError
from vidanime.fileio import atomic_write_text, check_input_file
from vidanime.metrics.context import ImageEvalContext, Parsing
from vidanime.metrics.fid import FID_WEIGHTS_ENV, load_fid_inception
from vidanime.metrics.lpips_metrics import LPIPS_BACKBONE_ENV, load_lpips
from vidanime.metrics.registry import Metric, headline, select_metrics
from vidanime.metrics.temporal import frame_pairs
from vidanime.video.io import VideoReader

logger = logging.getLogger(__name__)

__all__ = ["EvalResult", "EvalImagesPipeline", "EvalVideoPipeline", "load_latents"]

# need → the option that provides it (shown when a metric is skipped or cannot run)
HINTS = {
    "real": "--real DIR",
    "pairs": "--source DIR (file names matching --pred)",
    "inception": "--inception PATH (pt_inception-2015-12-05-6726825d.pth)",
    "lpips": "--lpips-backbone PATH (torchvision ImageNet weights)",
    "source_parsing": "--source-masks DIR or --source-parser",
    "pred_parsing": "--pred-masks DIR or --pred-parser",
    "gt_masks": "--gt-masks DIR",
    "latents": "--latents PATH",
    "video": "--input and --output videos",
}


def _clean(v: Any) -> Any:
    """JSON-safe copy: NaN → None, numpy scalars → Python numbers."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


@dataclass
class EvalResult:
    """Metric results (a number or a dict with ``"value"``), metadata, skipped metrics and what was evaluated."""

    kind: str
    metrics: dict[str, Any]
    meta: dict[str, dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return _clean({"kind": self.kind, "metrics": self.metrics, "meta": self.meta, "skipped": self.skipped,
                       "inputs": self.inputs, "seconds": round(self.seconds, 2)})

    def table(self) -> str:
        """Markdown table: metric, value, direction, details; skipped metrics below it."""
        lines = ["| metric | value | better | details |", "|---|---|---|---|"]
        for name, res in self.metrics.items():
            v = headline(res)
            extra = ""
            if isinstance(res, dict):
                extra = ", ".join(f"{k}={x:.4g}" if isinstance(x, float) else f"{k}={x}"
                                  for k, x in res.items() if k != "value")
            arrow = "higher" if self.meta[name]["higher_is_better"] else "lower"
            lines.append(f"| {name} | {'–' if math.isnan(v) else f'{v:.4g}'} | {arrow} | {extra} |")
        for name, why in self.skipped.items():
            lines.append(f"| {name} | skipped | | {why} |")
        return "\n".join(lines)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`as_dict` to ``path`` atomically."""
        atomic_write_text(path, json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n")
        return Path(path)


def _meta(metrics: Sequence[Metric]) -> dict[str, dict[str, Any]]:
    return {m.name: {"higher_is_better": m.higher_is_better, "description": m.description} for m in metrics}


def _by_stem(paths: Sequence[Path], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        if p.stem in out:
            raise MediaError(f"two files named '{p.stem}' in {what} ({out[p.stem]}, {p}); file names must be unique")
        out[p.stem] = p
    return out


def _mask_dir(root: str | os.PathLike, what: str) -> dict[str, Path]:
    root = Path(root)
    if not root.is_dir():
        raise MediaError(f"{what} folder not found: {root}")
    return _by_stem(sorted(p for p in root.rglob("*.png") if p.is_file()), what)


def _check_weights(path: str | os.PathLike | None, what: str) -> None:
    if path is not None and str(path) != "random" and not Path(path).is_file():
        raise CheckpointError(f"{what} weights not found: {path}")


class EvalImagesPipeline(Pipeline):
    """Image-set metrics: ``EvalImagesPipeline(...)(pred=DIR, real=DIR, source=DIR, ...)`` → :class:`EvalResult`."""

    def __init__(self, inception: str | os.PathLike | None = None, lpips_backbone: str | os.PathLike | None = None,
                 lpips_net: str = "alex", source_parser: str | None = None, pred_parser: str | None = None,
                 mask_labels: str = "bisenet", metrics: Sequence[str] | None = None, device: Any = "cpu",
                 batch_size: int = 16, seed: int = 0, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 lpips_d_pairs: int = 1000, color_distance: str = "emd"):
        L.num_classes(mask_labels)
        if color_distance not in ("emd", "chi2"):
            raise ConfigError(f"color_distance must be 'emd' or 'chi2', got '{color_distance}'")
        for name, v in (("batch_size", batch_size), ("kid_subsets", kid_subsets), ("kid_subset_size", kid_subset_size),
                        ("lpips_d_pairs", lpips_d_pairs)):
            if v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        self.inception = inception or os.environ.get(FID_WEIGHTS_ENV)
        self.lpips_backbone = lpips_backbone or os.environ.get(LPIPS_BACKBONE_ENV)
        _check_weights(self.inception, "Inception (FID)")
        _check_weights(self.lpips_backbone, "LPIPS backbone")
        self.lpips_net = lpips_net
        self.source_parser, self.pred_parser = source_parser, pred_parser
        self.mask_labels = mask_labels
        self.metrics = list(metrics) if metrics else None
        self.device = device
        self.options = dict(batch_size=batch_size, seed=seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                            lpips_d_pairs=lpips_d_pairs, color_distance=color_distance)

    def _parsing(self, masks: str | os.PathLike | None, parser: str | None, what: str):
        if masks is not None:
            table = _mask_dir(masks, f"{what} masks")

            def from_masks(paths: Sequence[Path]) -> list[np.ndarray]:
                missing = [p.name for p in paths if p.stem not in table]
                if missing:
                    raise MediaError(f"no mask for {missing[0]} in {masks} (masks are matched by file name, .png)")
                return [read_mask(table[p.stem]) for p in paths]

            return Parsing(from_masks, self.mask_labels)
        if parser is not None:
            pipe = ParsePipeline.from_pretrained(parser, device=self.device)

            def from_parser(paths: Sequence[Path]) -> list[np.ndarray]:
                return pipe([read_image_rgb(p) for p in paths]).labels

            return Parsing(from_parser, pipe.label_set)
        return None

    def __call__(self, pred: str | os.PathLike, real: str | os.PathLike | None = None,
                 source: str | os.PathLike | None = None, source_masks: str | os.PathLike | None = None,
                 pred_masks: str | os.PathLike | None = None, gt_masks: str | os.PathLike | None = None,
                 max_images: int | None = None) -> EvalResult:
        t0 = time.perf_counter()
        cap = (lambda xs: xs[:max_images]) if max_images else (lambda xs: xs)
        pred_paths = cap(list_images(pred))
        real_paths = cap(list_images(real)) if real is not None else None
        pairs = None
        if source is not None:
            src = _by_stem(list_images(source), "--source")
            pairs = [(src[p.stem], p) for p in pred_paths if p.stem in src]
            if not pairs:
                raise MediaError(f"no output in {pred} has the file name of an image in {source} (e.g. "
                                 f"'{pred_paths[0].stem}'); outputs are matched to sources by name")
            if len(pairs) < len(pred_paths):
                logger.warning("%d of %d outputs have a source image of the same name", len(pairs), len(pred_paths))
        gt = None
        if gt_masks is not None:
            table = _mask_dir(gt_masks, "--gt-masks")
            gt = {p: table[p.stem] for p in pred_paths if p.stem in table}
            if not gt:
                raise MediaError(f"no mask in {gt_masks} has the file name of an image in {pred}")
        device = self.device
        ctx = ImageEvalContext(
            pred_paths=pred_paths, real_paths=real_paths, pairs=pairs, gt_masks=gt, gt_label_set=self.mask_labels,
            inception_loader=self._inception_loader() if self.inception else None,
            lpips_loader=self._lpips_loader() if self.lpips_backbone else None,
            source_parsing=self._parsing(source_masks, self.source_parser, "--source") if pairs else None,
            pred_parsing=self._parsing(pred_masks, self.pred_parser, "--pred"),
            device=device, **self.options,
        )
        chosen, skipped = select_metrics(("images",), ctx.available(), self.metrics, HINTS)
        results = {}
        for m in chosen:
            t = time.perf_counter()
            results[m.name] = m.fn(ctx)
            logger.info("%s = %.4g (%.1f s)", m.name, headline(results[m.name]), time.perf_counter() - t)
        inputs = {"pred": str(pred), "real": str(real) if real else None, "source": str(source) if source else None,
                  "n_pred": len(pred_paths), "n_real": len(real_paths or []), "n_pairs": len(pairs or []),
                  "inception": str(self.inception) if self.inception else None,
                  "lpips": f"{self.lpips_net}:{self.lpips_backbone}" if self.lpips_backbone else None, **self.options}
        return EvalResult("images", results, _meta(chosen), skipped, inputs, time.perf_counter() - t0)

    def _inception_loader(self):
        return lambda: load_fid_inception(self.inception, self.device)

    def _lpips_loader(self):
        return lambda: load_lpips(self.lpips_net, self.lpips_backbone, self.device)


def load_latents(path: str | os.PathLike) -> list[np.ndarray]:
    """Per-track latent sequences from ``.npy`` (array) or ``.pt`` (tensor, ``{"w"|"latents": tensor}``, or
    ``{track: tensor}``); each (T, ..., D)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"latents file not found: {path}")
    if path.suffix == ".npy":
        try:
            data: Any = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise MediaError(f"cannot read latents {path}: {str(exc).splitlines()[0]}") from None
    else:
        data = read_torch_file(path)
    if isinstance(data, dict):
        for key in ("w", "latents"):
            if key in data:
                data = data[key]
                break
    seqs = list(data.values()) if isinstance(data, dict) else [data]
    out = [np.asarray(s.detach().cpu().numpy() if hasattr(s, "detach") else s, dtype=np.float64) for s in seqs]
    if not out or any(s.ndim < 2 for s in out):
        raise MediaError(f"{path}: expected latent codes (T, D) or (T, L, D) (or a dict of them per track)")
    return out


class EvalVideoPipeline(Pipeline):
    """Temporal metrics of a translated clip against its input: ``pipe(input, output, latents=None)``."""

    def __init__(self, metrics: Sequence[str] | None = None, max_side: int | None = 512, max_frames: int | None = None):
        if max_side is not None and max_side < 16:
            raise ConfigError(f"max_side must be >= 16 (or None for full size), got {max_side}")
        if max_frames is not None and max_frames < 2:
            raise ConfigError(f"max_frames must be >= 2, got {max_frames}")
        self.metrics = list(metrics) if metrics else None
        self.max_side, self.max_frames = max_side, max_frames

    def __call__(self, input: str | os.PathLike, output: str | os.PathLike,
                 latents: str | os.PathLike | None = None) -> EvalResult:
        t0 = time.perf_counter()
        for p in (input, output):
            check_input_file(p, "video")  # missing, a folder or a device: each its own one-line error
        available = {"video"} | ({"latents"} if latents is not None else set())
        chosen, skipped = select_metrics(("video_pair", "latents"), available, self.metrics, HINTS)
        pair_metrics = [m for m in chosen if m.kind == "video_pair"]
        results: dict[str, Any] = {}
        counts = {"in": 0, "out": 0}
        with VideoReader(input) as ri, VideoReader(output) as ro:
            total = len(ri)
            (wi, hi), (wo, ho) = (ri.info.width, ri.info.height), (ro.info.width, ro.info.height)
            if wi * ho != wo * hi:  # frames are resized to a common size; another aspect ratio is another picture
                logger.warning("input is %dx%d and output %dx%d: different shapes, so the warp error compares "
                               "misaligned pictures", wi, hi, wo, ho)

            def frames(reader: Any, key: str):
                for f in islice(reader, self.max_frames):
                    counts[key] += 1
                    yield f.image

            terms: dict[str, list] = {m.name: [] for m in pair_metrics}
            if pair_metrics:
                pairs = frame_pairs(frames(ri, "in"), frames(ro, "out"), self.max_side)
                for pair in tqdm(pairs, total=max(0, min(total, self.max_frames or total) - 1), desc="eval video",
                                 disable=None, leave=False):
                    for m in pair_metrics:
                        terms[m.name].append(m.fn(pair))
                for m in pair_metrics:
                    if not terms[m.name]:
                        raise MediaError(f"{input} and {output} share fewer than 2 frames; nothing to compare")
                    results[m.name] = m.reduce(terms[m.name])
                # count what the zip did not reach, to warn about length mismatches
                rest_in = sum(1 for _ in islice(ri, 1)) if not self.max_frames else 0
                rest_out = sum(1 for _ in islice(ro, 1)) if not self.max_frames else 0
                if rest_in or rest_out:
                    logger.warning("input and output differ in length; compared the first %d frames",
                                   min(counts["in"], counts["out"]))
        for m in chosen:
            if m.kind == "latents":
                rough = [m.fn(s) for s in load_latents(latents) if s.shape[0] >= 3]
                if not rough:
                    raise MediaError(f"{latents}: no latent sequence has 3 or more frames")
                results[m.name] = {"value": float(np.mean(rough)), "tracks": len(rough)}
        inputs = {"input": str(input), "output": str(output), "latents": str(latents) if latents else None,
                  "frames": min(counts["in"], counts["out"]), "max_side": self.max_side}
        return EvalResult("video", results, _meta(chosen), skipped, inputs, time.perf_counter() - t0)
