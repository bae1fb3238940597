"""StyleGAN2 custom ops in pure PyTorch: ``upfirdn2d`` (upsample, FIR filter, downsample) and fused bias + leaky ReLU.

Same semantics as rosinality's ``upfirdn2d_native`` / ``fused_leaky_relu`` (no CUDA extension, nothing compiled at
import).  Two implementations of ``upfirdn2d`` sit behind one interface:

* ``"reference"``: zero-insertion, pad/crop and a true 2-D convolution of every channel as a separate image,
  the rosinality native formulation (what ``"fast"`` is tested against);
* ``"fast"`` (default): a depthwise formulation (``conv_transpose2d`` with stride ``up`` for the upsampling case, a
  strided depthwise ``conv2d`` otherwise) that avoids the reshape to (B*C, 1, H, W) and keeps channels_last inputs as
  they are.  On 2 CPU cores it makes a 64-px StyleAnime training step (G forward/backward, D2 + R1) 5.3× faster.

Choose with ``set_upfirdn2d_impl("fast")``, the ``impl=`` argument, or the environment variable
``VIDANIME_UPFIRDN2D=fast`` (read when this module is imported).  ``tests/models/test_ops.py`` checks both against a
numpy reference.  Both are differentiable twice (R1 / path-length regularisation).
"""
from __future__ import annotations

import os
from collections import abc
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "upfirdn2d",
    "upfirdn2d_reference",
    "upfirdn2d_fast",
    "set_upfirdn2d_impl",
    "get_upfirdn2d_impl",
    "fused_leaky_relu",
    "FusedLeakyReLU",
    "UPFIRDN2D_IMPLS",
]

UPFIRDN2D_IMPLS = ("reference", "fast")
_ENV_VAR = "VIDANIME_UPFIRDN2D"


def _impl_from_env() -> str:
    value = os.environ.get(_ENV_VAR, "fast").strip().lower() or "fast"
    if value not in UPFIRDN2D_IMPLS:
        raise ValueError(f"{_ENV_VAR}={value!r}: expected one of {list(UPFIRDN2D_IMPLS)}")
    return value


_IMPL = _impl_from_env()


def set_upfirdn2d_impl(impl: str) -> None:
    """Select the default ``upfirdn2d`` implementation for this process: ``"reference"`` or ``"fast"``."""
    global _IMPL
    if impl not in UPFIRDN2D_IMPLS:
        raise ValueError(f"upfirdn2d impl {impl!r}: expected one of {list(UPFIRDN2D_IMPLS)}")
    _IMPL = impl


def get_upfirdn2d_impl() -> str:
    """The current default ``upfirdn2d`` implementation name."""
    return _IMPL


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, abc.Iterable):
        items = tuple(int(v) for v in value)
        if len(items) != 2:
            raise ValueError(f"upfirdn2d {name}={value!r}: expected an int or a pair (x, y)")
        return items  # type: ignore[return-value]
    return int(value), int(value)


def _norm_args(
    up: int | Sequence[int], down: int | Sequence[int], pad: Sequence[int]
) -> tuple[int, int, int, int, tuple[int, int, int, int]]:
    up_x, up_y = _pair(up, "up")
    down_x, down_y = _pair(down, "down")
    if min(up_x, up_y, down_x, down_y) < 1:
        raise ValueError(f"upfirdn2d up={up!r}, down={down!r}: factors must be >= 1")
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        pad = (pad[0], pad[1], pad[0], pad[1])
    if len(pad) != 4:
        raise ValueError(f"upfirdn2d pad={pad!r}: expected (p0, p1) or (x0, x1, y0, y1)")
    return up_x, up_y, down_x, down_y, pad  # type: ignore[return-value]


def _check_kernel(input: torch.Tensor, kernel: torch.Tensor) -> None:
    if input.ndim != 4:
        raise ValueError(f"upfirdn2d input shape {tuple(input.shape)}: expected (B, C, H, W)")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d kernel shape {tuple(kernel.shape)}: expected (kh, kw)")


def upfirdn2d_reference(
    input: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: Sequence[int] = (0, 0),
) -> torch.Tensor:
    """Reference upfirdn2d: (B, C, H, W) → (B, C, H', W'), every channel filtered as its own image.

    Steps: insert ``up - 1`` zeros after each sample, pad by ``pad`` = (x0, x1, y0, y1) (negative values crop; a pair
    is used for both axes), convolve with ``kernel`` (a true convolution: the kernel is flipped), keep every
    ``down``-th sample.  H' = (H * up_y + y0 + y1 - kh) // down_y + 1.
    """
    _check_kernel(input, kernel)
    up_x, up_y, down_x, down_y, (pad_x0, pad_x1, pad_y0, pad_y1) = _norm_args(up, down, pad)
    batch, channel, in_h, in_w = input.shape
    kernel_h, kernel_w = kernel.shape

    out = input.reshape(batch * channel, in_h, 1, in_w, 1)
    out = F.pad(out, [0, up_x - 1, 0, 0, 0, up_y - 1])
    out = out.reshape(batch * channel, 1, in_h * up_y, in_w * up_x)
    out = F.pad(out, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    out = out[
        :,
        :,
        max(-pad_y0, 0) : out.shape[2] - max(-pad_y1, 0),
        max(-pad_x0, 0) : out.shape[3] - max(-pad_x1, 0),
    ]
    weight = torch.flip(kernel, [0, 1]).reshape(1, 1, kernel_h, kernel_w).to(out.dtype)
    out = F.conv2d(out, weight)
    out = out[:, :, ::down_y, ::down_x]
    return out.reshape(batch, channel, out.shape[2], out.shape[3])


def upfirdn2d_fast(
    input: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: Sequence[int] = (0, 0),
) -> torch.Tensor:
    """Depthwise upfirdn2d with the semantics of :func:`upfirdn2d_reference` (groups=C convolutions, no reshapes).

    With ``up > 1`` a stride-``up`` ``conv_transpose2d`` does zero insertion and filtering at once (its full output is
    the convolution of the zero-inserted signal); the requested padding is then a crop/pad of that output.
    """
    _check_kernel(input, kernel)
    up_x, up_y, down_x, down_y, (pad_x0, pad_x1, pad_y0, pad_y1) = _norm_args(up, down, pad)
    channel = input.shape[1]
    kernel_h, kernel_w = kernel.shape
    kernel = kernel.to(input.dtype)

    if up_x > 1 or up_y > 1:
        weight = kernel.reshape(1, 1, kernel_h, kernel_w).expand(channel, 1, kernel_h, kernel_w)
        out = F.conv_transpose2d(input, weight, stride=(up_y, up_x), groups=channel)
        # Output j of the reference is index j + k - 1 - p0 of the full transposed convolution.
        out = F.pad(
            out,
            [
                pad_x0 - (kernel_w - 1),
                up_x + pad_x1 - kernel_w,
                pad_y0 - (kernel_h - 1),
                up_y + pad_y1 - kernel_h,
            ],
        )
        if down_x > 1 or down_y > 1:
            out = out[:, :, ::down_y, ::down_x]
        return out

    out = F.pad(input, [pad_x0, pad_x1, pad_y0, pad_y1])
    weight = torch.flip(kernel, [0, 1]).reshape(1, 1, kernel_h, kernel_w).expand(channel, 1, kernel_h, kernel_w)
    return F.conv2d(out, weight, stride=(down_y, down_x), groups=channel)


def upfirdn2d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: Sequence[int] = (0, 0),
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample, FIR-filter, downsample (B, C, H, W); ``impl`` overrides the process default (see module doc)."""
    impl = impl or _IMPL
    if impl == "fast":
        return upfirdn2d_fast(input, kernel, up=up, down=down, pad=pad)
    if impl == "reference":
        return upfirdn2d_reference(input, kernel, up=up, down=down, pad=pad)
    raise ValueError(f"upfirdn2d impl {impl!r}: expected one of {list(UPFIRDN2D_IMPLS)}")


def fused_leaky_relu(
    input: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = 0.2,
    scale: float = 2**0.5,
) -> torch.Tensor:
    """``leaky_relu(input + bias, negative_slope) * scale``; ``bias`` (C,) is added along dim 1 of (B, C, ...)."""
    if bias is not None:
        rest = [1] * (input.ndim - 2)
        input = input + bias.reshape(1, bias.shape[0], *rest).to(input.dtype)
    return F.leaky_relu(input, negative_slope=negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU (slope 0.2) + gain sqrt(2), with a learnable per-channel ``bias`` (rosinality name)."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = 2**0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)
