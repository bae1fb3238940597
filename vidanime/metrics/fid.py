"""FID and KID on Inception-v3 pool3 features (2048-d), with the FID variant of Inception that the TF reference uses.

* :class:`FIDInceptionV3` is torchvision's Inception-v3 with the three patches pytorch-fid applies to match the
  TensorFlow graph of the original FID code: average pools that ignore padded zeros (``count_include_pad=False``) in
  the A, C and first E blocks, and a **max** pool in the branch pool of the last E block (Mixed_7c); 1008 logits.
  Its parameter names are torchvision's, which is the key layout of pytorch-fid's public weight file
  ``pt_inception-2015-12-05-6726825d.pth``; :func:`load_fid_inception` reads that file from a user path (nothing
  is downloaded).  Inputs are RGB in [0, 1], resized to 299² (bilinear) and scaled to [−1, 1] inside.
* :func:`frechet_distance` is ‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) with scipy's ``sqrtm`` and the usual guards
  (ε·I added when the product is singular, a negligible imaginary part dropped).
* :func:`kid` is the unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over random
  subsets (Bińkowski et al. 2018); it is unbiased, so values near 0 can be slightly negative.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.inception import (
    BasicConv2d,
    Inception3,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)

from ..errors import CheckpointError, VidanimeError

logger = logging.getLogger(__name__)

__all__ = [
    "FID_WEIGHTS_NAME",
    "FID_WEIGHTS_ENV",
    "FIDInceptionV3",
    "load_fid_inception",
    "inception_features",
    "feature_stats",
    "frechet_distance",
    "fid_from_features",
    "kid",
]

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_ENV = "VIDANIME_FID_INCEPTION"


class _FIDInceptionA(InceptionA):
    """InceptionA whose branch pool averages without the padded zeros (as TF does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class _FIDInceptionC(InceptionC):
    """InceptionC whose branch pool averages without the padded zeros."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, d, bp], 1)


class _FIDInceptionE(InceptionE):
    """InceptionE with the TF pooling: average without padding (Mixed_7b) or max pooling (Mixed_7c)."""

    def __init__(self, in_channels: int, pool: str = "avg"):
        super().__init__(in_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, d, self.branch_pool(p)], 1)


class FIDInceptionV3(Inception3):
    """FID Inception-v3: ``forward(x)`` with x (B, 3, H, W) RGB in [0, 1] → pool3 features (B, 2048).

    Built without weights (no download); load the public file with :func:`load_fid_inception`.
    """

    def __init__(self) -> None:
        super().__init__(
            num_classes=1008,
            aux_logits=False,
            transform_input=False,
            init_weights=False,
            inception_blocks=[BasicConv2d, _FIDInceptionA, InceptionB, _FIDInceptionC, InceptionD, _FIDInceptionE,
                              InceptionAux],
        )
        self.Mixed_7c = _FIDInceptionE(2048, pool="max")
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W) in [0, 1], got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                     "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_fid_inception(path: str | os.PathLike | None = None, device: Any = "cpu") -> FIDInceptionV3:
    """The FID Inception with pytorch-fid's public weights read from ``path`` (or ``$VIDANIME_FID_INCEPTION``).

    Accepts a plain state dict in torchvision's inception_v3 names (the public file) or one wrapped in
    ``{"state_dict": ...}``; ``module.`` prefixes are stripped and missing BatchNorm ``num_batches_tracked``
    counters (files from old torch) are filled.  Anything else raises a one-line :class:`CheckpointError`.
    """
    from ..checkpoint import check_state_dict, read_torch_file

    path = path or os.environ.get(FID_WEIGHTS_ENV)
    if not path:
        raise CheckpointError(
            f"FID/KID need the Inception weights {FID_WEIGHTS_NAME} (pytorch-fid's release file), which vidanime "
            f"cannot download: pass its path (--inception PATH) or set {FID_WEIGHTS_ENV}"
        )
    data = read_torch_file(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected an Inception-v3 state dict")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in data.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}
    model = FIDInceptionV3()
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    check_state_dict(model, sd, source=str(path))
    logger.info("loaded FID Inception weights from %s", path)
    return model.to(device).eval()


def _to_tensor_batch(batch: Any) -> torch.Tensor:
    """(B, H, W, 3) uint8 array/tensor or (B, 3, H, W) float in [0, 1] → float (B, 3, H, W) in [0, 1]."""
    t = batch if torch.is_tensor(batch) else torch.as_tensor(np.ascontiguousarray(batch))
    if t.dtype == torch.uint8:
        if t.dim() != 4 or t.shape[-1] != 3:
            raise VidanimeError(f"uint8 image batches must be (B, H, W, 3), got shape {tuple(t.shape)}")
        return t.permute(0, 3, 1, 2).float().div(255.0)
    if t.dim() != 4 or t.shape[1] != 3:
        raise VidanimeError(f"float image batches must be (B, 3, H, W) in [0, 1], got shape {tuple(t.shape)}")
    return t.float()


@torch.no_grad()
def inception_features(model: torch.nn.Module, batches: Iterable[Any], device: Any = None) -> np.ndarray:
    """Pool3 features (N, 2048) float64 of image batches ((B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1])."""
    device = device or next(model.parameters()).device
    feats = [model(_to_tensor_batch(b).to(device)).double().cpu().numpy() for b in batches]
    if not feats:
        raise VidanimeError("no images to compute Inception features of")
    return np.concatenate(feats, 0)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), float64; needs N ≥ 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise VidanimeError(f"FID needs at least 2 feature vectors (N, D), got shape {f.shape}")
    if f.shape[0] < f.shape[1]:
        logger.warning("FID from %d samples of %d-d features: the covariance is rank-deficient and FID biased upwards; "
                       "compare only numbers computed with the same N", f.shape[0], f.shape[1])
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet (Wasserstein-2) distance between N(μ₁, Σ₁) and N(μ₂, Σ₂); ≥ 0."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise VidanimeError(f"mismatched statistics: means {mu1.shape} {mu2.shape}, covariances {s1.shape} {s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(s1 @ s2)
        except linalg.LinAlgWarning:  # singular product: retry below with a ridge
            covmean = np.full_like(s1, np.nan)
    if not np.isfinite(covmean).all():
        logger.warning("FID: product of covariances is singular; adding %g to the diagonals", eps)
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(covmean.imag)))
        if imag > 1e-3 * max(1.0, float(np.max(np.abs(covmean.real)))):
            logger.warning("FID: matrix square root has a large imaginary part (%.3g); result is approximate", imag)
        covmean = covmean.real
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID between two feature sets (N₁, D) and (N₂, D)."""
    return frechet_distance(*feature_stats(f1), *feature_stats(f2))


def kid(f1: np.ndarray, f2: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0
        ) -> tuple[float, float]:
    """KID (mean, std over subsets) of feature sets (N₁, D), (N₂, D): unbiased MMD², kernel (xᵀy/d + 1)³.

    Each subset draws m = min(N₁, N₂, subset_size) rows of each set without replacement (seeded).
    """
    x_all, y_all = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise VidanimeError(f"KID needs feature sets (N, D) of equal D, got {x_all.shape} and {y_all.shape}")
    m = min(len(x_all), len(y_all), subset_size)
    if m < 2:
        raise VidanimeError(f"KID needs at least 2 samples per set, got {len(x_all)} and {len(y_all)}")
    if n_subsets < 1:
        raise VidanimeError(f"n_subsets must be >= 1, got {n_subsets}")
    d = x_all.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))
