"""The interface every frame-interpolation model M shares: ``M(img0, img1, t) -> middle frame``.

Inputs are float tensors (B, 3, H, W) in [0, 1] of the same size; the output is (B, 3, H, W) in [0, 1].  Sizes
that are not multiples of the network stride are padded (replicate) and cropped back.  ``freeze`` makes M a fixed,
differentiable function for losses such as L_fic: eval mode, ``requires_grad=False`` on parameters, gradients still
flow to the inputs.
"""
from __future__ import annotations

import torch
from torch import nn

from .warp import check_frame_pair, crop_to, pad_to_multiple

__all__ = ["Interpolator", "freeze"]


class Interpolator(nn.Module):
    """Base class: subclasses implement :meth:`interpolate` on padded inputs; ``forward`` checks, pads and crops."""

    #: H and W are padded up to a multiple of this before :meth:`interpolate`.
    stride: int = 1
    #: frames smaller than this (H or W) are padded up to it (e.g. RFR's 4-level correlation pyramid needs 64 px)
    min_size: int = 0
    #: a short name used in logs and benchmark tables
    kind: str = "interp"

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        """The frame at time ``t`` between ``img0`` (t=0) and ``img1`` (t=1): (B, 3, H, W) in [0, 1]."""
        check_frame_pair(img0, img1, t)
        size = tuple(img0.shape[-2:])
        x0, x1 = img0, img1
        if self.min_size and min(size) < self.min_size:
            ph, pw = max(0, self.min_size - size[0]), max(0, self.min_size - size[1])
            x0, x1 = (torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") for x in (x0, x1))
        x0, _ = pad_to_multiple(x0, self.stride)
        x1, _ = pad_to_multiple(x1, self.stride)
        return crop_to(self.interpolate(x0, x1, float(t)), size)

    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` on every parameter (inputs still receive gradients); returns ``model``."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
