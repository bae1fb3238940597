"""Appearance kept: per-region colour-histogram distance between a source face and its translation (no weights).

The paper's colour preservation (Eq. 4–5) concerns hair, skin and eyes; this metric measures it on the outputs.  For
each region the pixels of that region in each image (found with each image's own parsing map, any label set whose
names include ``hair``, ``skin``, ``l_eye``, ``r_eye``) give one normalised 256-bin histogram per RGB channel.  Two
distances are available:

* ``"emd"`` (default): the 1-D earth mover's distance per channel, Σ|CDF₁ − CDF₂| / 255, i.e. how far (as a fraction
  of the 0..255 range) the colour mass must move; averaged over the 3 channels.  A region recoloured by +d code
  values everywhere scores d / 255; 0 = same colour distribution, 1 = black vs white.
* ``"chi2"``: ½ Σ (h₁ − h₂)² / (h₁ + h₂) on ``bins`` coarser bins per channel (0 = same, 1 = disjoint), averaged
  over channels.  Insensitive to how far colours moved, only whether they overlap.

A region with fewer than ``min_pixels`` pixels in either image is undefined (NaN) and left out of the mean.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .. import labels as L
from ..errors import VidanimeError

__all__ = ["REGIONS", "region_histogram", "histogram_distance", "color_distance", "region_mean_lab",
           "colour_specificity"]

# Region name → class names (looked up by name in each map's own label set).
REGIONS: dict[str, tuple[str, ...]] = {"hair": ("hair",), "skin": ("skin",), "eyes": ("l_eye", "r_eye")}


def region_histogram(image: np.ndarray, labels: np.ndarray, ids: Sequence[int], bins: int = 256,
                     min_pixels: int = 16) -> np.ndarray | None:
    """(3, bins) per-channel histograms (each row sums to 1) of the pixels whose label is in ``ids``; None if too few.

    ``image`` (H, W, 3) uint8 RGB and ``labels`` (H, W) integers must have the same size.
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise VidanimeError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if labels.shape != image.shape[:2]:
        raise VidanimeError(f"parsing map {labels.shape} does not match image {image.shape[:2]}")
    mask = np.isin(labels, list(ids))
    n = int(mask.sum())
    if n < min_pixels:
        return None
    px = image[mask]  # (n, 3)
    idx = (px.astype(np.int64) * bins) // 256
    hist = np.stack([np.bincount(idx[:, c], minlength=bins) for c in range(3)]).astype(np.float64)
    return hist / n


def histogram_distance(h1: np.ndarray, h2: np.ndarray, distance: str = "emd") -> float:
    """Distance of two (3, bins) normalised histograms, averaged over channels (see the module doc)."""
    if h1.shape != h2.shape:
        raise VidanimeError(f"histograms differ in shape: {h1.shape} vs {h2.shape}")
    if distance == "emd":
        bins = h1.shape[1]
        cdf = np.abs(np.cumsum(h1, 1) - np.cumsum(h2, 1))[:, :-1]
        return float((cdf.sum(1) * (256.0 / bins) / 255.0).mean())
    if distance == "chi2":
        s = h1 + h2
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where(s > 0, (h1 - h2) ** 2 / s, 0.0)
        return float((0.5 * terms.sum(1)).mean())
    raise VidanimeError(f"unknown histogram distance '{distance}' (expected 'emd' or 'chi2')")


def color_distance(
    src_image: np.ndarray,
    src_labels: np.ndarray,
    out_image: np.ndarray,
    out_labels: np.ndarray,
    src_label_set: str = "bisenet",
    out_label_set: str = "bisenet",
    regions: Mapping[str, Sequence[str]] = REGIONS,
    distance: str = "emd",
    bins: int | None = None,
    min_pixels: int = 16,
) -> dict[str, float]:
    """Per-region colour distance ``{"hair": d, "skin": d, "eyes": d}`` (NaN where a region is missing) of one pair.

    The two images may differ in size (histograms are normalised); each needs its own parsing map at its size.
    ``bins`` defaults to 256 for EMD and 32 for chi-square.
    """
    bins = bins or (256 if distance == "emd" else 32)
    out = {}
    for name, classes in regions.items():
        h1 = region_histogram(src_image, src_labels, L.class_ids(src_label_set, *classes), bins, min_pixels)
        h2 = region_histogram(out_image, out_labels, L.class_ids(out_label_set, *classes), bins, min_pixels)
        out[name] = math.nan if h1 is None or h2 is None else histogram_distance(h1, h2, distance)
    return out


def region_mean_lab(image: np.ndarray, labels: np.ndarray, ids: Sequence[int],
                    min_pixels: int = 16) -> np.ndarray | None:
    """Mean CIE Lab colour (3,) of the pixels of ``image`` (H, W, 3) uint8 RGB whose label is in ``ids``; None if
    fewer than ``min_pixels`` (OpenCV's 8-bit Lab scaled back to L in [0, 100], a/b in [-128, 127])."""
    import cv2

    mask = np.isin(np.asarray(labels), list(ids))
    if int(mask.sum()) < min_pixels:
        return None
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).astype(np.float64)[mask]
    return np.array([lab[:, 0].mean() * 100 / 255, lab[:, 1].mean() - 128, lab[:, 2].mean() - 128])


def colour_specificity(src_images: Sequence[np.ndarray], src_labels: Sequence[np.ndarray],
                       out_images: Sequence[np.ndarray], out_labels: Sequence[np.ndarray], region: str = "hair",
                       src_label_set: str = "bisenet", out_label_set: str = "bisenet") -> float:
    """How much an output's region colour depends on its own input: mean Lab distance input → own output over mean
    Lab distance input → the other outputs (pairs where the region is missing are left out).  1.0 means the outputs
    ignore the input's colour (as likely from any other input), 0 means each output has exactly its input's colour."""
    classes = REGIONS[region]
    a = [region_mean_lab(im, lab, L.class_ids(src_label_set, *classes)) for im, lab in zip(src_images, src_labels)]
    b = [region_mean_lab(im, lab, L.class_ids(out_label_set, *classes)) for im, lab in zip(out_images, out_labels)]
    own, other = [], []
    for i, ai in enumerate(a):
        for j, bj in enumerate(b):
            if ai is None or bj is None:
                continue
            (own if i == j else other).append(float(np.linalg.norm(ai - bj)))
    if not own or not other:
        return math.nan
    return float(np.mean(own) / max(np.mean(other), 1e-9))
