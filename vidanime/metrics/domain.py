"""Anime-vs-portrait domain score: a small logistic-regression classifier on hand-made image features; and an
"anime look" distance: KID in the feature space of the bundled anime face parser.

Needed to check that a translation lands in the anime domain without a pretrained network (none can be downloaded
here).  Features of a face crop (any size, uint8 RGB, first resized to 64x64): the image at 16x16 (layout and
colour), a 16-bin saturation histogram and a 16-bin gradient-magnitude histogram (anime: flat colour areas and hard
lines; photos: smooth shading and texture).  :meth:`DomainClassifier.fit` trains on two sets of images in a second;
:meth:`score` gives P(anime) in [0, 1] per image.

The classifier cannot tell a clean anime face from a blotchy one with anime colours (both score about 0.8).
:func:`anime_look_kid` can: :func:`parser_features` are the globally pooled 1/16- and 1/32-scale backbone features of a
face parser trained on anime faces, which respond to drawn eyes, hair strands and line art; the KID of a set of
outputs against held-out anime faces in that space is near 0 for real anime faces and as large for off-manifold
renders as for photos (measured in the README).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch

from ..errors import VidanimeError

logger = logging.getLogger(__name__)

__all__ = ["domain_features", "DomainClassifier", "parser_features", "anime_look_kid", "anime_look_kids"]


def domain_features(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (16*16*3 + 32,) float32 feature vector (see the module doc)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise VidanimeError(f"domain_features needs an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    # Everything at 64 px first: images of different sharpness (a 64-px generator's output upscaled, 128-px crops,
    # 256-px photos) are compared at one resolution, so the score is about content, not about blur.
    mid = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
    small = cv2.resize(mid, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255.0
    sat = cv2.cvtColor(mid, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255.0
    h_sat = np.histogram(sat, bins=16, range=(0.0, 1.0))[0].astype(np.float32) / sat.size
    gray = cv2.cvtColor(mid, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    mag = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    h_mag = np.histogram(np.clip(mag, 0, 2.0), bins=16, range=(0.0, 2.0))[0].astype(np.float32) / mag.size
    return np.concatenate([small, 4.0 * h_sat, 4.0 * h_mag]).astype(np.float32)


@dataclass
class DomainClassifier:
    """Standardised features → logistic regression; ``weight`` (F,), ``bias``, feature ``mean``/``std`` (F,)."""

    weight: np.ndarray
    bias: float
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, anime: Sequence[np.ndarray], portrait: Sequence[np.ndarray], l2: float = 1e-2,
            steps: int = 300, seed: int = 0) -> "DomainClassifier":
        """Fit on lists of (H, W, 3) uint8 images of each domain (full-batch L-BFGS, L2-regularised, seeded)."""
        if len(anime) < 2 or len(portrait) < 2:
            raise VidanimeError(f"DomainClassifier.fit needs >= 2 images per domain, "
                                f"got {len(anime)} and {len(portrait)}")
        x = np.stack([domain_features(im) for im in (*anime, *portrait)])
        y = np.concatenate([np.ones(len(anime)), np.zeros(len(portrait))]).astype(np.float32)
        mean, std = x.mean(0), x.std(0) + 1e-3
        xt = torch.from_numpy((x - mean) / std)
        yt = torch.from_numpy(y)
        g = torch.Generator().manual_seed(seed)
        w = (torch.randn(x.shape[1], generator=g) * 1e-3).requires_grad_(True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
        # Balance the two classes so an uneven number of images does not shift the decision threshold.
        pos = torch.where(yt > 0, 0.5 / yt.sum(), 0.5 / (1 - yt).sum())

        def closure() -> torch.Tensor:
            opt.zero_grad()
            logits = xt @ w + b
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="none") * pos).sum()
            loss = loss + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        clf = cls(weight=w.detach().numpy().astype(np.float32), bias=float(b.detach()), mean=mean.astype(np.float32),
                  std=std.astype(np.float32))
        acc = float(((clf.score_features(x) > 0.5) == (y > 0.5)).mean())
        logger.info("domain classifier: %d anime / %d portrait images, training accuracy %.3f", len(anime),
                    len(portrait), acc)
        return clf

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        """P(anime) (N,) for precomputed :func:`domain_features` rows (N, F)."""
        z = ((np.asarray(feats, np.float32) - self.mean) / self.std) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(anime) in [0, 1] for each (H, W, 3) uint8 image; shape (N,)."""
        if len(images) == 0:
            return np.zeros(0, np.float32)
        return self.score_features(np.stack([domain_features(im) for im in images]))


@torch.no_grad()
def parser_features(parser: torch.nn.Module, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 16
                    ) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB images → (N, C16 + C32) float64: the parser's ResNet backbone outputs at 1/16 and 1/32
    scale, averaged over space, with the images resized to the parser's ``config.image_size`` (bilinear)."""
    from ..models.parser import ResNet

    backbone = next((m for m in parser.modules() if isinstance(m, ResNet)), None)
    if backbone is None:
        raise VidanimeError(f"parser_features needs a vidanime face parser with a ResNet backbone, "
                            f"got {type(parser).__name__}")
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
        raise VidanimeError(f"parser_features needs (N, H, W, 3) uint8 images, got {imgs.shape} {imgs.dtype}")
    size = int(parser.config.image_size)
    device = next(parser.parameters()).device
    caught: list[tuple[torch.Tensor, ...]] = []
    hook = backbone.register_forward_hook(lambda _m, _i, out: caught.append(out))
    rows = []
    try:
        for i in range(0, len(imgs), batch_size):
            x = torch.from_numpy(imgs[i : i + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            caught.clear()
            parser(x)
            _, f16, f32 = caught[0]
            rows.append(torch.cat([f16.float().mean((2, 3)), f32.float().mean((2, 3))], 1).cpu().double())
    finally:
        hook.remove()
    return torch.cat(rows).numpy()


def anime_look_kids(parser: torch.nn.Module, sets: Mapping[str, np.ndarray | Sequence[np.ndarray]],
                    reference: np.ndarray | Sequence[np.ndarray], n_subsets: int = 50, seed: int = 0
                    ) -> dict[str, float]:
    """:func:`anime_look_kid` of each named set of images against one ``reference``, whose features are computed
    once."""
    from .fid import kid

    ref = parser_features(parser, reference)
    res = {}
    for name, images in sets.items():
        feats = parser_features(parser, images)
        res[name] = float(kid(feats, ref, n_subsets=n_subsets, subset_size=min(len(feats), len(ref)), seed=seed)[0])
    return res


def anime_look_kid(parser: torch.nn.Module, images: np.ndarray | Sequence[np.ndarray],
                   reference: np.ndarray | Sequence[np.ndarray], n_subsets: int = 50, seed: int = 0) -> float:
    """KID (unbiased MMD², cubic kernel, :func:`vidanime.metrics.fid.kid`) between ``images`` and ``reference`` (both
    (N, H, W, 3) uint8) in :func:`parser_features` space; 0 = indistinguishable, lower is better."""
    return anime_look_kids(parser, {"images": images}, reference, n_subsets=n_subsets, seed=seed)["images"]
