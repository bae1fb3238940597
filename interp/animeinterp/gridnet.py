"""GridNet synthesis network of AnimeInterp (3 rows: full, 1/2, 1/4 resolution; 32/64/96 channels).

Takes the forward-warped frames (6 ch) and the warped feature pyramids of both frames (64, 128, 192 ch) and returns
the middle frame (B, 3, H, W).  Key names follow AnimeInterp's ``models/GridNet.py`` (``residual_model_*``,
``downsample_model_*``, ``upsample_model_*``; Sequential indices 0..3 / 1..4 for the upsample blocks).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["GridNet"]


def _residual(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, 1, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, 2, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.PReLU(), nn.Conv2d(cin, cout, 3, 1, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1),
    )


class GridNet(nn.Module):
    """``GridNet(6, 64, 128, 192, 3)(x, x1, x2, x3)``: x at H×W, x1 at H×W, x2 at H/2, x3 at H/4 -> (B, 3, H, W)."""

    def __init__(self, in_channels: int = 6, in_channels1: int = 64, in_channels2: int = 128,
                 in_channels3: int = 192, out_channels: int = 3):
        super().__init__()
        self.residual_model_head = _residual(in_channels, 32)
        self.residual_model_head1 = _residual(in_channels1, 32)
        self.residual_model_head2 = _residual(in_channels2, 64)
        self.residual_model_head3 = _residual(in_channels3, 96)
        self.residual_model_01 = _residual(32, 32)
        self.residual_model_04 = _residual(32, 32)
        self.residual_model_05 = _residual(32, 32)
        self.residual_model_tail = _residual(32, out_channels)
        self.residual_model_11 = _residual(64, 64)
        self.residual_model_14 = _residual(64, 64)
        self.residual_model_15 = _residual(64, 64)
        self.residual_model_21 = _residual(96, 96)
        self.residual_model_24 = _residual(96, 96)
        self.residual_model_25 = _residual(96, 96)
        self.downsample_model_10 = _down(32, 64)
        self.downsample_model_20 = _down(64, 96)
        self.downsample_model_11 = _down(32, 64)
        self.downsample_model_21 = _down(64, 96)
        self.upsample_model_04 = _up(64, 32)
        self.upsample_model_14 = _up(96, 64)
        self.upsample_model_05 = _up(64, 32)
        self.upsample_model_15 = _up(96, 64)

    def forward(self, x: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> torch.Tensor:
        x00 = self.residual_model_head(x) + self.residual_model_head1(x1)
        x01 = self.residual_model_01(x00) + x00
        x10 = self.downsample_model_10(x00) + self.residual_model_head2(x2)
        x20 = self.downsample_model_20(x10) + self.residual_model_head3(x3)
        x11 = self.residual_model_11(x10) + x10 + self.downsample_model_11(x01)
        x21 = self.residual_model_21(x20) + x20 + self.downsample_model_21(x11)
        x24 = self.residual_model_24(x21) + x21
        x25 = self.residual_model_25(x24) + x24
        x14 = self.upsample_model_14(x24) + self.residual_model_14(x11) + x11
        x04 = self.upsample_model_04(x14) + self.residual_model_04(x01) + x01
        x15 = self.upsample_model_15(x25) + self.residual_model_15(x14) + x14
        x05 = self.upsample_model_05(x15) + self.residual_model_05(x04) + x04
        return self.residual_model_tail(x05)
