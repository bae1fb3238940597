"""The metrics ``vidanime eval`` computes, each one registered function (see :mod:`vidanime.metrics.registry`).

Images (paper Table 2 and §5.3, plus two weight-free measures): ``fid``, ``kid``, ``lpips_s``, ``lpips_d``,
``structure_kept``, ``appearance_kept``, ``parser`` (Table 1).  Video: ``warp_error``, ``flicker_index``
(per frame pair, reduced over the clip) and ``latent_roughness``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import labels as L
from ..data.images import load_image
from .registry import register_metric
from .temporal import flicker_terms, latent_roughness, reduce_flicker, reduce_warp_error, warp_error_terms

__all__: list[str] = []


@register_metric("fid", kind="images", higher_is_better=False, needs=("pred", "real", "inception"),
                 description="Fréchet Inception distance, outputs vs real target images (pool3, 2048-d)")
def _fid(ctx: Any) -> dict[str, float]:
    from .fid import fid_from_features

    pred, real = ctx.features("pred"), ctx.features("real")
    return {"value": fid_from_features(pred, real), "n_pred": len(pred), "n_real": len(real)}


@register_metric("kid", kind="images", higher_is_better=False, needs=("pred", "real", "inception"),
                 description="kernel Inception distance (unbiased MMD², cubic kernel, mean over subsets)")
def _kid(ctx: Any) -> dict[str, float]:
    from .fid import kid

    mean, std = kid(ctx.features("pred"), ctx.features("real"), ctx.kid_subsets, ctx.kid_subset_size, ctx.seed)
    return {"value": mean, "std": std}


@register_metric("lpips_s", kind="images", higher_is_better=False, needs=("pairs", "lpips"),
                 description="LPIPS between each source and its output (semantic consistency)")
def _lpips_s(ctx: Any) -> dict[str, float]:
    from .lpips_metrics import lpips_s

    src = [s for s, _ in ctx.pairs]
    out = [o for _, o in ctx.pairs]
    batches = zip(ctx.batches(src, ctx.lpips_size), ctx.batches(out, ctx.lpips_size))
    return {"value": lpips_s(ctx.lpips, batches, ctx.lpips_size), "pairs": len(ctx.pairs)}


@register_metric("lpips_d", kind="images", higher_is_better=True, needs=("pred", "lpips"),
                 description="LPIPS between two random different outputs (diversity)")
def _lpips_d(ctx: Any) -> dict[str, float]:
    from .lpips_metrics import lpips_d

    paths = ctx.pred_paths
    n_pairs = ctx.lpips_d_pairs
    value = lpips_d(ctx.lpips, lambda idx: ctx.load([paths[i] for i in idx], ctx.lpips_size), len(paths), n_pairs,
                    ctx.seed, ctx.lpips_size, ctx.batch_size)
    return {"value": value, "pairs": n_pairs}


def _image_and_labels(ctx: Any, side: str, path: Any) -> tuple[np.ndarray, np.ndarray, str]:
    parsing = ctx.source_parsing if side == "source" else ctx.pred_parsing
    img = load_image(path)
    lab = ctx.parsing(side, [path])[0]
    if lab.shape[:2] != img.shape[:2]:
        lab = L.resize_labels(np.asarray(lab), img.shape[:2])
    return img, lab, parsing.label_set


@register_metric("structure_kept", kind="images", higher_is_better=True,
                 needs=("pairs", "source_parsing", "pred_parsing"),
                 description="parsing mIoU between each source and its output (17 Danbooru classes)")
def _structure(ctx: Any) -> dict[str, float]:
    from .structure import StructureMeter

    meter = StructureMeter()
    for src, out in ctx.pairs:
        s_lab = ctx.parsing("source", [src])[0]
        o_lab = ctx.parsing("pred", [out])[0]
        meter.update(s_lab, ctx.source_parsing.label_set, o_lab, ctx.pred_parsing.label_set)
    sc = meter.scores()
    return {"value": sc.miou, "pixel_agreement": sc.overall_accuracy}


@register_metric("appearance_kept", kind="images", higher_is_better=False,
                 needs=("pairs", "source_parsing", "pred_parsing"),
                 description="colour-histogram distance of hair/skin/eyes, source vs output (EMD, 0..1)")
def _appearance(ctx: Any) -> dict[str, float]:
    from .color import REGIONS, color_distance

    per_region: dict[str, list[float]] = {r: [] for r in REGIONS}
    for src, out in ctx.pairs:
        s_img, s_lab, s_set = _image_and_labels(ctx, "source", src)
        o_img, o_lab, o_set = _image_and_labels(ctx, "pred", out)
        d = color_distance(s_img, s_lab, o_img, o_lab, s_set, o_set, distance=ctx.color_distance)
        for r, v in d.items():
            if not math.isnan(v):
                per_region[r].append(v)
    res = {r: float(np.mean(v)) if v else math.nan for r, v in per_region.items()}
    defined = [v for v in res.values() if not math.isnan(v)]
    return {"value": float(np.mean(defined)) if defined else math.nan, **res}


@register_metric("parser", kind="images", higher_is_better=True, needs=("pred", "pred_parsing", "gt_masks"),
                 description="parser mIoU on the --pred images against --gt-masks (Table 1); also pixel accuracy")
def _parser(ctx: Any) -> dict[str, float]:
    from ..data.parsing import read_mask
    from .segmentation import ConfusionMeter

    gt_set, pred_set = ctx.gt_label_set, ctx.pred_parsing.label_set
    meter = ConfusionMeter(L.num_classes(gt_set))
    paths = [p for p in ctx.pred_paths if p in ctx.gt_masks]
    for p in paths:
        gt = read_mask(ctx.gt_masks[p])
        pred = np.asarray(ctx.parsing("pred", [p])[0])
        if pred_set != gt_set:
            pred = L.remap(pred, pred_set, gt_set)
        if pred.shape != gt.shape:
            pred = L.resize_labels(pred, gt.shape[:2])
        meter.update(gt, pred)
    sc = meter.scores()
    return {"value": sc.miou, "pixel_accuracy": sc.overall_accuracy, "images": len(paths)}


register_metric("warp_error", kind="video_pair", higher_is_better=False, needs=("video",), reduce=reduce_warp_error,
                description="occlusion-masked squared error of output t vs output t+1 warped by the input's flow")(
    warp_error_terms)
register_metric("flicker_index", kind="video_pair", higher_is_better=False, needs=("video",), reduce=reduce_flicker,
                description="output frame difference in static regions / input's (1 = no added flicker)")(
    flicker_terms)
register_metric("latent_roughness", kind="latents", higher_is_better=False, needs=("latents",),
                description="mean ||(w[i+1]+w[i-1])/2 - w[i]|| of the per-frame codes")(latent_roughness)
