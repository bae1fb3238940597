"""Forward warping (splatting) in pure PyTorch, after Niklaus & Liu's softmax splatting (CVPR 2020).

Each source pixel p with value v moves to q = p + flow(p) and is spread bilinearly over the 4 pixels around q
(``index_add``, so it is differentiable in the values, the flow and the metric).  Modes:
``summation`` (plain sum, AnimeInterp's ``ForwardWarp('summation')``), ``average`` (sum / coverage),
``linear`` (weighted by a metric), ``softmax`` (weighted by exp(metric): the most "important" pixel wins at
occlusions).  :func:`forward_splat_reference` is a slow per-pixel loop kept as the reference for tests.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["forward_splat", "softsplat", "forward_splat_reference", "SPLAT_MODES"]

SPLAT_MODES = ("summation", "average", "linear", "softmax")


def forward_splat(src: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear forward splatting by summation: (B, C, H, W) values moved by flow (B, 2, H, W) px -> (B, C, H, W)."""
    if flow.shape[0] != src.shape[0] or flow.shape[1] != 2 or flow.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"flow must be (B, 2, H, W) matching {tuple(src.shape)}, got {tuple(flow.shape)}")
    b, c, h, w = src.shape
    dtype = src.dtype if src.is_floating_point() else torch.float32
    ys, xs = torch.meshgrid(
        torch.arange(h, device=src.device, dtype=dtype), torch.arange(w, device=src.device, dtype=dtype), indexing="ij"
    )
    tx = xs.unsqueeze(0) + flow[:, 0].to(dtype)  # (B, H, W) target positions
    ty = ys.unsqueeze(0) + flow[:, 1].to(dtype)
    x0 = torch.floor(tx)
    y0 = torch.floor(ty)
    fx, fy = tx - x0, ty - y0
    x0l, y0l = x0.long(), y0.long()
    # (B*H*W, C) layout so one index_add per corner moves all channels at once
    values = src.to(dtype).permute(0, 2, 3, 1).reshape(b * h * w, c)
    batch_off = (torch.arange(b, device=src.device) * (h * w)).view(b, 1, 1)
    out = torch.zeros(b * h * w, c, device=src.device, dtype=dtype)
    corners = (
        (x0l, y0l, (1 - fx) * (1 - fy)),
        (x0l + 1, y0l, fx * (1 - fy)),
        (x0l, y0l + 1, (1 - fx) * fy),
        (x0l + 1, y0l + 1, fx * fy),
    )
    for cx, cy, wgt in corners:
        valid = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h) & torch.isfinite(wgt)
        idx = (batch_off + cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).reshape(-1)
        wv = torch.where(valid, wgt, torch.zeros_like(wgt)).reshape(-1, 1)
        out = out.index_add(0, idx, values * wv)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


def softsplat(
    src: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor | None = None,
    mode: str = "average",
    eps: float = 1e-7,
    return_norm: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Forward-warp ``src`` (B, C, H, W) by ``flow`` (B, 2, H, W) with one of :data:`SPLAT_MODES`.

    ``metric`` (B, 1, H, W) weighs pixels for ``linear``/``softmax``.  Pixels nothing lands on are 0.  With
    ``return_norm`` also returns the splatted weight (B, 1, H, W) (0 = hole), which callers use to fill holes.
    """
    if mode not in SPLAT_MODES:
        raise ValueError(f"unknown splat mode {mode!r}, expected one of {SPLAT_MODES}")
    if mode == "summation":
        out = forward_splat(src, flow)
        norm = forward_splat(torch.ones_like(src[:, :1]), flow)
        return (out, norm) if return_norm else out
    if mode == "average":
        weight = torch.ones_like(src[:, :1])
    else:
        if metric is None or metric.shape != (src.shape[0], 1, *src.shape[-2:]):
            got = None if metric is None else tuple(metric.shape)
            raise ValueError(f"mode {mode!r} needs a metric of shape (B, 1, H, W), got {got}")
        if mode == "linear":
            weight = metric
        else:  # softmax: subtract the per-image max for stability (the ratio below is unchanged)
            weight = torch.exp(metric - metric.amax(dim=(1, 2, 3), keepdim=True).detach())
    both = forward_splat(torch.cat([src * weight, weight], 1), flow)
    num, norm = both[:, :-1], both[:, -1:]
    out = num / (norm + eps) * (norm > eps).to(num.dtype)
    return (out, norm) if return_norm else out


def forward_splat_reference(src: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Slow reference of :func:`forward_splat` (summation) for (C, H, W) ``src`` and (2, H, W) ``flow``: one loop
    per pixel."""
    c, h, w = src.shape
    out = np.zeros((c, h, w), dtype=np.float64)
    for y in range(h):
        for x in range(w):
            tx, ty = x + float(flow[0, y, x]), y + float(flow[1, y, x])
            x0, y0 = int(np.floor(tx)), int(np.floor(ty))
            ax, ay = tx - x0, ty - y0
            for cx, cy, wgt in ((x0, y0, (1 - ax) * (1 - ay)), (x0 + 1, y0, ax * (1 - ay)),
                                (x0, y0 + 1, (1 - ax) * ay), (x0 + 1, y0 + 1, ax * ay)):
                if 0 <= cx < w and 0 <= cy < h:
                    out[:, cy, cx] += src[:, y, x] * wgt
    return out
