"""Backward warping with ``grid_sample`` and the pad-to-stride helpers shared by every interpolator.

Flows are in pixels, (B, 2, H, W), channel 0 = x (right), channel 1 = y (down).  ``backward_warp(img, flow)`` samples
``img`` at ``x + flow(x)`` (bilinear, border padding), so ``out[y, x] = img[y + fy, x + fx]``.  It is differentiable
with respect to both the image and the flow.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vidanime.errors import VidanimeError

__all__ = ["backward_warp", "base_grid", "resize_flow", "pad_to_multiple", "crop_to", "check_frame_pair"]


def base_grid(b: int, h: int, w: int, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised sampling grid (B, 2, H, W) in [-1, 1] (align_corners=True convention), x first."""
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([xs, ys], 1)


def backward_warp(img: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Sample ``img`` (B, C, H, W) at ``x + flow(x)`` with ``flow`` (B, 2, H, W) in pixels; returns (B, C, H, W).

    Uses the RIFE convention (align_corners=True, pixel centres at -1..1), so the IFNet weights see the same warp.
    """
    if flow.shape[1] != 2 or flow.shape[-2:] != img.shape[-2:] or flow.shape[0] != img.shape[0]:
        raise ValueError(f"flow must be (B, 2, H, W) matching image {tuple(img.shape)}, got {tuple(flow.shape)}")
    b, _, h, w = img.shape
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device, dtype=flow.dtype)
    grid = base_grid(b, h, w, flow.device, flow.dtype) + flow * scale.view(1, 2, 1, 1)
    return F.grid_sample(img, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def resize_flow(flow: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a pixel flow (B, 2, h, w) to ``size`` = (H, W), scaling x by W/w and y by H/h."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(flow, size=size, mode=mode, **kw)
    scale = torch.tensor([size[1] / w, size[0] / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return out * scale


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the right/bottom up to a multiple of ``multiple``; returns the padded tensor and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop (…, H', W') back to the top-left ``size`` = (H, W) (undoes :func:`pad_to_multiple`)."""
    return x[..., : size[0], : size[1]]


def check_frame_pair(img0: object, img1: object, t: float = 0.5) -> None:
    """Raise :class:`VidanimeError` unless both frames are float tensors (B, 3, H, W) of the same shape and
    0 < t < 1."""
    for name, img in (("img0", img0), ("img1", img1)):
        if not isinstance(img, torch.Tensor):
            raise VidanimeError(f"{name} must be a torch.Tensor (B, 3, H, W) in [0, 1], got {type(img).__name__}")
        if img.ndim != 4 or img.shape[1] != 3:
            raise VidanimeError(f"{name} must have shape (B, 3, H, W), got {tuple(img.shape)}")
        if not img.is_floating_point():
            raise VidanimeError(f"{name} must be a float tensor in [0, 1], got dtype {img.dtype}")
    if img0.shape != img1.shape:  # type: ignore[union-attr]
        raise VidanimeError(
            f"frames differ in size: img0 {tuple(img0.shape)} vs img1 {tuple(img1.shape)}; "  # type: ignore[union-attr]
            "resize them to the same (H, W) first"
        )
    if img0.shape[-1] < 2 or img0.shape[-2] < 2:  # type: ignore[union-attr]
        raise VidanimeError(f"frames are too small: {tuple(img0.shape)}, expected at least 2x2")  # type: ignore[union-attr]
    if not (0.0 < float(t) < 1.0):
        raise VidanimeError(f"t must lie strictly between 0 and 1, got {t}")
