"""Classical-flow interpolator: OpenCV optical flow (DIS or Farneback) + softmax forward splatting.

Needs no weights, so it is the fallback M.  The flows are computed by OpenCV on detached uint8 frames (no gradient
through the flow); the images are then forward-splatted to time t with a softmax weight from the photometric
consistency error (occluded pixels lose), holes are filled from the other frame, and where neither frame lands the
linear blend is used.  Every step after the flow is differentiable with respect to both input images.
"""
from __future__ import annotations

import numpy as np
import torch

from vidanime.errors import ConfigError

from .base import Interpolator
from .softsplat import softsplat
from .warp import backward_warp

__all__ = ["ClassicalInterpolator", "opencv_flow", "FLOW_METHODS"]

FLOW_METHODS = ("dis", "farneback")


def _to_gray_u8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W) uint8 luma."""
    rgb = img.detach().float().clamp(0, 1).cpu().numpy()
    gray = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return np.ascontiguousarray((gray * 255.0 + 0.5).astype(np.uint8))


def opencv_flow(img0: torch.Tensor, img1: torch.Tensor, method: str = "dis") -> torch.Tensor:
    """Optical flow img0 -> img1 (B, 2, H, W) in pixels from OpenCV; inputs (B, 3, H, W) in [0, 1]; no gradient."""
    import cv2

    if method not in FLOW_METHODS:
        raise ConfigError(f"unknown flow method {method!r}, expected one of {FLOW_METHODS}")
    flows = []
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None
    for a, b in zip(img0, img1):
        g0, g1 = _to_gray_u8(a), _to_gray_u8(b)
        if dis is not None:
            f = dis.calc(g0, g1, None)
        else:
            f = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 9, 5, 7, 1.5, 0)
        flows.append(torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))))
    return torch.stack(flows).to(device=img0.device, dtype=img0.dtype)


class ClassicalInterpolator(Interpolator):
    """M from OpenCV flow + softmax splatting; ``method`` is "dis" (default) or "farneback"."""

    kind = "classical"

    def __init__(self, method: str = "dis", alpha: float = 20.0):
        super().__init__()
        if method not in FLOW_METHODS:
            raise ConfigError(f"unknown flow method {method!r}, expected one of {FLOW_METHODS}")
        self.method = method
        self.alpha = float(alpha)
        self.kind = f"classical-{method}"

    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        f01 = opencv_flow(img0, img1, self.method)
        f10 = opencv_flow(img1, img0, self.method)
        # softmax-splatting importance: pixels whose flow is photometrically consistent win at collisions
        m0 = -self.alpha * (img0 - backward_warp(img1, f01)).abs().mean(1, keepdim=True).detach()
        m1 = -self.alpha * (img1 - backward_warp(img0, f10)).abs().mean(1, keepdim=True).detach()
        i0t, n0 = softsplat(img0, f01 * t, m0, mode="softmax", return_norm=True)
        i1t, n1 = softsplat(img1, f10 * (1 - t), m1, mode="softmax", return_norm=True)
        w0 = (1 - t) * (n0 > 1e-3).to(img0.dtype)
        w1 = t * (n1 > 1e-3).to(img0.dtype)
        total = w0 + w1
        blend = (1 - t) * img0 + t * img1
        out = (w0 * i0t + w1 * i1t) / total.clamp_min(1e-6)
        return torch.where(total > 0, out, blend).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, alpha={self.alpha}"
