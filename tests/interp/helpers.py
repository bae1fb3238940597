"""Synthetic frames for the interpolation tests."""
from __future__ import annotations

import torch


def moving_square(h: int = 48, w: int = 64, size: int = 12, start: tuple[int, int] = (10, 14),
                  step: tuple[int, int] = (8, 4)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (1, 3, H, W) at t = 0, 0.5, 1 of a textured square moving by ``step`` (dx, dy) on a smooth background."""
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    bg = torch.stack([0.3 + 0.2 * xs / w, 0.4 + 0.2 * ys / h, 0.5 + 0.0 * xs])
    frames = []
    for k in (0.0, 0.5, 1.0):
        x0, y0 = start[0] + k * step[0], start[1] + k * step[1]
        img = bg.clone()
        inside = (xs >= x0) & (xs < x0 + size) & (ys >= y0) & (ys < y0 + size)
        tex = 0.5 + 0.4 * torch.sin((xs - x0) * 0.9) * torch.cos((ys - y0) * 0.7)
        img[0][inside] = tex[inside]
        img[1][inside] = 0.9
        img[2][inside] = 0.1
        frames.append(img[None])
    return frames[0], frames[1], frames[2]
