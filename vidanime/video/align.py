"""Face alignment: 5-point similarity transform to the FFHQ-style template, warp to an S x S crop and back.

The template is the FFHQ-style 5-point layout used by FFHQ-aligned face restoration tools (eyes at y = 0.469,
mouth at y = 0.725 of the crop side), scaled to any crop size.  Transforms are 2 x 3 affine matrices mapping frame
pixel coordinates to crop pixel coordinates (``M``) and back (``M_inv``), estimated by Umeyama least squares.

Faces cut by the frame border: the warp pads outside the frame by reflection (``border="reflect"``, OpenCV's
BORDER_REFLECT_101, default — the model sees plausible skin/background rather than a black wedge) or with a constant
(``border="constant"``, black); :func:`valid_mask` tells which crop pixels came from inside the frame, so paste-back
never writes padding into the frame.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, VidanimeError

__all__ = [
    "FFHQ_TEMPLATE_512",
    "template",
    "umeyama",
    "estimate_similarity",
    "invert_affine",
    "apply_affine",
    "warp_face",
    "unwarp_face",
    "valid_mask",
    "similarity_params",
    "transform_jitter",
    "BORDERS",
]

# FFHQ-style template at 512 px: image-left eye, image-right eye, nose, image-left / image-right mouth corner.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043],
     [313.08905, 371.15118]],
    dtype=np.float64,
)
BORDERS = ("reflect", "constant", "replicate")


def template(size: int = 256, zoom: float = 1.0) -> np.ndarray:
    """Template points (5, 2) for an ``size`` x ``size`` crop; ``zoom`` > 1 makes the face larger in the crop."""
    if size < 16:
        raise ConfigError(f"crop size {size} is too small (expected >= 16)")
    if zoom <= 0:
        raise ConfigError(f"zoom={zoom} must be > 0")
    c = 256.0
    return ((FFHQ_TEMPLATE_512 - c) * zoom + c) * (size / 512.0)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src (N, 2) → dst (N, 2); returns 2 x 3.

    Umeyama (1991), with an optional per-point weight; reflections are excluded.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise VidanimeError(f"umeyama: expected two (N>=2, 2) point sets of equal shape, "
                            f"got {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s = (w[:, None] * src).sum(0)
    mu_d = (w[:, None] * dst).sum(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (w * (s0 ** 2).sum(1)).sum()
    if var_s < 1e-12:
        raise VidanimeError("umeyama: source points are all at the same place (degenerate landmarks)")
    cov = (w[:, None] * d0).T @ s0
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * r @ mu_s
    return np.concatenate([scale * r, t[:, None]], axis=1)


def estimate_similarity(landmarks: np.ndarray, size: int = 256, zoom: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Frame→crop matrix ``M`` (2, 3) and its inverse for 5 frame landmarks (5, 2) and the template at ``size``."""
    m = umeyama(np.asarray(landmarks).reshape(5, 2), template(size, zoom))
    return m, invert_affine(m)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine matrix."""
    full = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map points (..., 2) through a 2 x 3 matrix."""
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def _border(border: str) -> int:
    import cv2

    table = {"reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
    if border not in table:
        raise ConfigError(f"border='{border}' is not one of {', '.join(BORDERS)}")
    return table[border]


def warp_face(frame: np.ndarray, m: np.ndarray, size: int = 256, border: str = "reflect",
              interpolation: str = "linear") -> np.ndarray:
    """Aligned crop (size, size, C) of ``frame`` under the frame→crop matrix ``m``; outside the frame is padded."""
    import cv2

    flags = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}
    if interpolation not in flags:
        raise ConfigError(f"interpolation='{interpolation}' is not one of {', '.join(flags)}")
    return cv2.warpAffine(frame, np.asarray(m, np.float64), (size, size), flags=flags[interpolation],
                          borderMode=_border(border), borderValue=0)


def unwarp_face(crop: np.ndarray, m: np.ndarray, frame_size: tuple[int, int],
                interpolation: str = "linear") -> np.ndarray:
    """Crop back into frame coordinates, (H, W, C) for ``frame_size`` = (H, W); outside the crop is 0.

    Uses ``m`` (frame→crop) with WARP_INVERSE_MAP, so each frame pixel samples the crop exactly at ``m @ p``.
    """
    import cv2

    h, w = frame_size
    flags = cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR
    return cv2.warpAffine(crop, np.asarray(m, np.float64), (w, h), flags=flags | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def valid_mask(m: np.ndarray, frame_size: tuple[int, int], size: int = 256) -> np.ndarray:
    """(size, size) float32 in {0, 1}: 1 where the crop pixel maps inside the frame (not padding)."""
    import cv2

    h, w = frame_size
    ones = np.ones((h, w), np.float32)
    return cv2.warpAffine(ones, np.asarray(m, np.float64), (size, size), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def similarity_params(m: np.ndarray, size: int = 256) -> np.ndarray:
    """(tx, ty, angle_deg, log_scale) of the crop→frame transform ``m_inv``-style parameters of a frame→crop ``m``.

    tx, ty: where the crop centre lands in the frame (pixels); angle and scale of the crop in the frame.
    """
    inv = invert_affine(m)
    c = apply_affine(inv, np.array([size / 2, size / 2]))
    a, b = inv[0, 0], inv[1, 0]
    return np.array([c[0], c[1], np.degrees(np.arctan2(b, a)), np.log(np.hypot(a, b))])


def transform_jitter(matrices: list[np.ndarray] | np.ndarray, size: int = 256) -> dict[str, float]:
    """Frame-to-frame jitter of a sequence of frame→crop matrices (T, 2, 3) on a clip.

    Returns the std over frames of the frame-to-frame change of: crop centre (``translation_px``, in crop pixels,
    i.e. divided by the crop's scale in the frame), ``rotation_deg``, ``scale_pct``, and ``corner_px``: the RMS
    frame-to-frame displacement of the crop's four corners in crop pixels (one number for before/after ratios).
    Slow real motion contributes to all of them; on a static-head clip they measure jitter.
    """
    ms = np.asarray(matrices, np.float64)
    if ms.ndim != 3 or ms.shape[1:] != (2, 3) or len(ms) < 3:
        raise VidanimeError(f"transform_jitter: expected (T>=3, 2, 3) matrices, got shape {ms.shape}")
    p = np.stack([similarity_params(m, size) for m in ms])
    scale = np.exp(p[:, 3])
    dp = np.diff(p, axis=0)
    trans = np.hypot(dp[:, 0], dp[:, 1]) / scale[1:]
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
    pts = np.stack([apply_affine(invert_affine(m), corners) for m in ms])  # (T, 4, 2) in frame pixels
    disp = np.linalg.norm(np.diff(pts, axis=0), axis=-1) / scale[1:, None]
    return {
        "translation_px": float(np.std(np.diff(p[:, :2], axis=0) / scale[1:, None], axis=0).mean()),
        "translation_step_px": float(trans.mean()),
        "rotation_deg": float(np.std(dp[:, 2])),
        "scale_pct": float(np.std(dp[:, 3]) * 100),
        "corner_px": float(np.sqrt((disp ** 2).mean())),
    }
