"""Reconstruction losses of StyleAnime §4.2.1: pixel L2 (Eq. 2) and LPIPS (Eq. 3) between y and ŷ = G(E(y)).

Images are (B, 3, H, W) in [-1, 1].  L2 is the mean squared error (pSp's ``MSELoss``); LPIPS is averaged over the
batch.  AlexNet needs at least 64 px, so smaller images are bilinearly upsampled to 64 px before LPIPS (tiny test
models only); images above ``max_size`` are area-downsampled to it (pSp compares at 256 px).
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["l2_loss", "LPIPSLoss"]


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_rec (Eq. 2): mean over pixels and channels of (ŷ − y)²; (B, 3, H, W) each → scalar."""
    return F.mse_loss(pred.float(), target.float())


class LPIPSLoss(nn.Module):
    """L_lpips (Eq. 3): mean LPIPS distance between ``pred`` and ``target`` (B, 3, H, W) in [-1, 1] → scalar.

    ``backbone_path``: see :func:`vidanime.metrics.lpips_metrics.load_lpips` (torchvision's ImageNet file, None =
    ``$VIDANIME_LPIPS_BACKBONE``, or ``"random"`` for tests only).
    The LPIPS network is frozen and kept in eval mode; gradients flow to ``pred``.
    """

    def __init__(self, net: str = "alex", backbone_path: str | os.PathLike | None = None, device: Any = "cpu",
                 min_size: int = 64, max_size: int = 256):
        super().__init__()
        from ..metrics.lpips_metrics import load_lpips

        self.lpips = load_lpips(net, backbone_path, device)
        self.min_size = min_size
        self.max_size = max_size

    def train(self, mode: bool = True) -> "LPIPSLoss":
        super().train(mode)
        self.lpips.eval()  # its dropout must stay off
        return self

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[-1]
        if s < self.min_size:
            return F.interpolate(x, size=(self.min_size, self.min_size), mode="bilinear", align_corners=False)
        if s > self.max_size:
            return F.interpolate(x, size=(self.max_size, self.max_size), mode="area")
        return x

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.lpips(self._resize(pred.float()), self._resize(target.float())).mean()
