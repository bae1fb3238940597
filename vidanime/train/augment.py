"""Differentiable augmentation (DiffAugment-style: colour, translation, cutout) for data-efficient GAN training.

Applied with the same policy to real and generated images before the discriminator, so D never sees un-augmented
images and G still receives gradients through the augmentation (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training").  All randomness comes from an explicit ``torch.Generator`` so runs resume bit-exactly.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "DiffAugment", "color", "translation", "cutout"]

POLICIES = ("color", "translation", "cutout")


def _rand(shape: tuple[int, ...], x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, moved to ``x``'s device and dtype."""
    device = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=device).to(device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness (±0.5), saturation (×[0, 2]) and contrast (×[0.5, 1.5]) per image; x (B, 3, H, W) in
    [-1, 1]."""
    b = x.shape[0]
    x = x + (_rand((b, 1, 1, 1), x, generator) - 0.5)
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_rand((b, 1, 1, 1), x, generator) * 2.0) + mean_c
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean_all) * (_rand((b, 1, 1, 1), x, generator) + 0.5) + mean_all
    return x


def translation(x: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by a random integer offset up to ``ratio``·size in x and y, filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    ty = (_rand((b,), x, generator) * (2 * sy + 1)).floor().long().clamp(max=2 * sy) - sy
    tx = (_rand((b,), x, generator) * (2 * sx + 1)).floor().long().clamp(max=2 * sx) - sx
    padded = F.pad(x, [sx, sx, sy, sy])
    rows = torch.arange(h, device=x.device)[None, :] + sy - ty[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + sx - tx[:, None]  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one random square of side ``ratio``·size per image (it may hang over the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if ch == 0 or cw == 0:
        return x
    cy = (_rand((b,), x, generator) * (h + 1 - ch % 2)).floor().long()
    cx = (_rand((b,), x, generator) * (w + 1 - cw % 2)).floor().long()
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= (cy - ch // 2)[:, None]) & (ys < (cy - ch // 2 + ch)[:, None])  # (B, H)
    in_x = (xs >= (cx - cw // 2)[:, None]) & (xs < (cx - cw // 2 + cw)[:, None])  # (B, W)
    keep = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * keep[:, None].to(x.dtype)


class DiffAugment(torch.nn.Module):
    """Apply the ``policy`` ops in order (subset of "color", "translation", "cutout"); an empty policy is identity."""

    def __init__(self, policy: Sequence[str] = POLICIES, translation_ratio: float = 0.125, cutout_ratio: float = 0.5):
        super().__init__()
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown augment policy '{unknown[0]}' (expected some of: {', '.join(POLICIES)})")
        self.policy = tuple(policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x (B, 3, H, W) → augmented images, same shape; differentiable w.r.t. x."""
        for op in self.policy:
            if op == "color":
                x = color(x, generator)
            elif op == "translation":
                x = translation(x, self.translation_ratio, generator)
            else:
                x = cutout(x, self.cutout_ratio, generator)
        return x

    def extra_repr(self) -> str:
        return (f"policy={list(self.policy)}, translation_ratio={self.translation_ratio}, "
                f"cutout_ratio={self.cutout_ratio}")
