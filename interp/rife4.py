"""RIFE v4 IFNet (Practical-RIFE 4.2x layout), pure PyTorch, with the key layout of its public ``flownet.pkl``.

Structure (Huang et al., "Real-Time Intermediate Flow Estimation", ECCV 2022, as developed in hzwer/Practical-RIFE):

* ``encode`` — a small shared encoder (``Head``): 3 stride-1 convs at half resolution and a transposed conv back, 4
  feature channels per frame at full resolution.
* ``block0`` … ``block4`` — five coarse-to-fine IFBlocks (widths 192/128/96/64/32 at 1/16 … 1/1 of the frame, each
  working a further 4x below that).  Block 0 sees both frames, both encoder features and the time map ``t``; later
  blocks see the frames and features backward-warped by the current flow, ``t``, the previous (pre-sigmoid) fusion
  mask and 8 free feature channels, and add a flow residual.  Each block emits 13 channels: bidirectional flow (4:
  t->0 and t->1, pixels), the fusion-mask logit (1) and the features handed to the next block (8).
* The middle frame is ``sigmoid(mask) * warp(img0, flow_t0) + (1 - sigmoid(mask)) * warp(img1, flow_t1)``; no
  refinement U-Net (unlike the ECCV model in :mod:`interp.ifnet`).
* ``teacher`` and ``caltime`` are training-only (privileged distillation block and a time-estimation head) and are
  never run here.  They exist so that a file that carries them loads with a strict ``load_state_dict``; a file without
  them is built with ``Rife4Config(training_heads=False)`` (:func:`interp.loaders.rife4_config_from_state_dict`).

Unlike the ECCV model, v4 takes the time ``t`` as an input map, so any 0 < t < 1 works, not only the midpoint.
Warping is :func:`interp.warp.backward_warp` (align_corners=True, border padding), the convention the weights were
trained with.  Inputs are padded to a multiple of :attr:`Rife4.stride` = 4 x the coarsest scale (64 for the public
scales 16/8/4/2/1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidanime.errors import ConfigError

from .base import Interpolator
from .warp import backward_warp

__all__ = ["Rife4Config", "Rife4", "Rife4Block", "Rife4Head", "ResConv"]

#: channels of the shared encoder's features (per frame)
ENC_CHANNELS = 4
#: channels a block hands to the next one besides flow and mask
FEAT_CHANNELS = 8
#: block output: flow (4) + mask logit (1) + features (8)
HEAD_CHANNELS = 4 + 1 + FEAT_CHANNELS


@dataclass
class Rife4Config:
    """Widths of the RIFE v4 IFNet; the defaults are the public file's (6.14M parameters, 5.74M without the
    training heads)."""

    widths: tuple[int, ...] = (192, 128, 96, 64, 32)  # block0 (coarsest) … blockN-1 (full resolution)
    scales: tuple[float, ...] | None = None  # downscale factor per block; None = 2^(N-1) … 1 (16, 8, 4, 2, 1)
    training_heads: bool = True  # build ``teacher`` + ``caltime`` (unused at inference) so the file loads strictly
    teacher_width: int = 64

    def __post_init__(self) -> None:
        self.widths = tuple(int(c) for c in self.widths)
        if not self.widths or any(c < 2 or c % 2 for c in self.widths):
            raise ConfigError(f"rife4 widths must be even numbers >= 2, got {self.widths}")
        if self.scales is None:
            self.scales = tuple(float(2 ** (len(self.widths) - 1 - i)) for i in range(len(self.widths)))
        self.scales = tuple(float(s) for s in self.scales)
        if len(self.scales) != len(self.widths) or any(s <= 0 for s in self.scales):
            raise ConfigError(f"rife4 needs one positive scale per block: widths {self.widths}, scales {self.scales}")


def _conv_lrelu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, True))


class Rife4Head(nn.Module):
    """The shared frame encoder: (B, 3, H, W) in [0, 1] -> (B, 4, H, W) features (H, W even)."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, ENC_CHANNELS, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.cnn0, self.cnn1, self.cnn2):
            x = F.leaky_relu(conv(x), 0.2)
        return self.cnn3(x)


class ResConv(nn.Module):
    """``leaky_relu(conv(x) * beta + x)``: a 3x3 residual conv with a learnt per-channel gain ``beta`` (1, C, 1, 1)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class Rife4Block(nn.Module):
    """One coarse-to-fine step at 1/``scale`` resolution.

    ``forward(x, flow, scale)``: ``x`` (B, in_planes - 4 or in_planes, H, W) stacked inputs, ``flow`` (B, 4, H, W)
    in pixels or None for the first block -> ``(flow, mask_logit, feat)`` of shapes (B, 4 | 1 | 8, H, W), flow in
    pixels at full resolution (the residual to add, for all but the first block).
    """

    def __init__(self, in_planes: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv_lrelu(in_planes, c // 2, 2), _conv_lrelu(c // 2, c, 2))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        # a stride-2 transposed conv to 4 x 13 channels, then PixelShuffle: back to the block's input resolution
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * HEAD_CHANNELS, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            if scale != 1:
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1:
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class Rife4(Interpolator):
    """RIFE v4 IFNet: ``Rife4()(img0, img1, t)`` -> the frame at time t, (B, 3, H, W) in [0, 1].

    H and W are padded (replicate) to a multiple of :attr:`stride` and cropped back by :class:`Interpolator`.
    """

    kind = "rife4"

    def __init__(self, config: Rife4Config | None = None) -> None:
        super().__init__()
        cfg = config or Rife4Config()
        self.config = cfg
        self.stride = max(1, int(round(4 * max(cfg.scales))))
        self.encode = Rife4Head()
        first = 3 + 3 + 2 * ENC_CHANNELS + 1  # img0, img1, f0, f1, t
        later = 3 + 3 + 2 * ENC_CHANNELS + 1 + 1 + FEAT_CHANNELS + 4  # warped imgs/feats, t, mask, feat, flow
        for i, c in enumerate(cfg.widths):
            self.add_module(f"block{i}", Rife4Block(first if i == 0 else later, c))
        if cfg.training_heads:
            self.teacher = Rife4Block(later + 3, cfg.teacher_width)  # + the ground-truth frame
            self.caltime = nn.Sequential(
                nn.Conv2d(3 + 3 + 3 + 2 * ENC_CHANNELS, 32, 3, 2, 1), nn.LeakyReLU(0.2, True),
                nn.Conv2d(32, 64, 3, 2, 1), nn.LeakyReLU(0.2, True),
                nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.2, True),
                nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.2, True),
                nn.Conv2d(64, 1, 3, 1, 1), nn.Sigmoid(),
            )

    @property
    def blocks(self) -> list[Rife4Block]:
        return [getattr(self, f"block{i}") for i in range(len(self.config.widths))]

    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        return self.run(img0, img1, t)["merged"]

    def run(self, img0: torch.Tensor, img1: torch.Tensor, t: float | torch.Tensor = 0.5) -> dict:
        """Full forward on padded inputs (B, 3, H, W) in [0, 1], H and W multiples of :attr:`stride`.

        ``t``: a float or a (B,) / (B, 1, 1, 1) tensor of times.  Returns ``flows`` (per block, (B, 4, H, W) pixels:
        channels 0-1 sample img0, 2-3 sample img1), ``mask`` (B, 1, H, W) in [0, 1] (weight of img0) and ``merged``
        (B, 3, H, W) in [0, 1].
        """
        b, _, h, w = img0.shape
        if torch.is_tensor(t):
            tmap = t.to(img0).reshape(-1, 1, 1, 1).expand(b, 1, h, w)
        else:
            tmap = img0.new_full((b, 1, h, w), float(t))
        f0, f1 = self.encode(img0), self.encode(img1)
        flow = mask = feat = None
        warped0, warped1 = img0, img1
        flows = []
        for block, scale in zip(self.blocks, self.config.scales):
            if flow is None:
                flow, mask, feat = block(torch.cat((img0, img1, f0, f1, tmap), 1), None, scale)
            else:
                wf0, wf1 = backward_warp(f0, flow[:, :2]), backward_warp(f1, flow[:, 2:4])
                fd, mask, feat = block(torch.cat((warped0, warped1, wf0, wf1, tmap, mask, feat), 1), flow, scale)
                flow = flow + fd
            flows.append(flow)
            warped0, warped1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        merged = (warped0 * m + warped1 * (1 - m)).clamp(0, 1)  # convex blend of in-range samples; clamp: rounding
        return {"flows": flows, "mask": m, "merged": merged}
