"""RIFE's IFNet (Huang et al., ECCV 2022), pure PyTorch, with the key layout of the public ``flownet.pkl``.

We match ``hzwer/ECCV2022-RIFE`` ``model/IFNet.py`` + ``model/refine.py`` (the paper model: three student IFBlocks
``block0/1/2`` with widths 240/150/90, a privileged teacher ``block_tea``, a ``contextnet`` and a refining ``unet``;
9.8M parameters at full size).  Its ``flownet.pkl`` is the DistributedDataParallel state dict, so every key starts
with ``module.`` (stripped by :mod:`interp.loaders`).  Widths are configurable for small models trained here; the key
names do not depend on them.  The model is trained for the midpoint: ``t`` must be 0.5 (the paper model ignores t).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidanime.errors import VidanimeError

from .base import Interpolator
from .warp import backward_warp

__all__ = ["IFNetConfig", "IFNet", "IFBlock"]


@dataclass
class IFNetConfig:
    """Widths of IFNet; the defaults are the public RIFE (ECCV 2022) model."""

    c0: int = 240  # block0 width (coarsest)
    c1: int = 150
    c2: int = 90
    c_tea: int = 90  # teacher block (training only, kept so the public file loads strictly)
    ctx: int = 16  # contextnet/unet base width (refine.py's global ``c``)
    scales: tuple[int, int, int] = (4, 2, 1)


def _conv_prelu(cin: int, cout: int, k: int = 3, s: int = 1, p: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=True), nn.PReLU(cout))


def _conv_lrelu(cin: int, cout: int, k: int = 3, s: int = 1, p: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=True), nn.LeakyReLU(0.2, True))


def _deconv_lrelu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, True))


class IFBlock(nn.Module):
    """One coarse-to-fine step: at 1/scale resolution predict (residual) bidirectional flow (4 ch) and a fusion mask."""

    def __init__(self, in_planes: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv_prelu(in_planes, c // 2, 3, 2, 1), _conv_prelu(c // 2, c, 3, 2, 1))
        self.convblock = nn.Sequential(*[_conv_prelu(c, c) for _ in range(8)])
        self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        x = self.conv0(x)
        x = self.convblock(x) + x
        tmp = F.interpolate(self.lastconv(x), scale_factor=scale * 2, mode="bilinear", align_corners=False)
        return tmp[:, :4] * scale * 2, tmp[:, 4:5]


class _Conv2(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.conv1 = _conv_lrelu(cin, cout, 3, stride, 1)
        self.conv2 = _conv_lrelu(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class ContextNet(nn.Module):
    """Four stride-2 feature levels of one frame, each backward-warped to time t by the (downscaled) flow."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = _Conv2(3, c)
        self.conv2 = _Conv2(c, 2 * c)
        self.conv3 = _Conv2(2 * c, 4 * c)
        self.conv4 = _Conv2(4 * c, 8 * c)

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x)
            flow = F.interpolate(flow, scale_factor=0.5, mode="bilinear", align_corners=False) * 0.5
            feats.append(backward_warp(x, flow))
        return feats


class UNet(nn.Module):
    """Refinement U-Net: predicts a residual (B, 3, H, W) in [-1, 1] for the fused frame."""

    def __init__(self, c: int):
        super().__init__()
        self.down0 = _Conv2(17, 2 * c)
        self.down1 = _Conv2(4 * c, 4 * c)
        self.down2 = _Conv2(8 * c, 8 * c)
        self.down3 = _Conv2(16 * c, 16 * c)
        self.up0 = _deconv_lrelu(32 * c, 8 * c)
        self.up1 = _deconv_lrelu(16 * c, 4 * c)
        self.up2 = _deconv_lrelu(8 * c, 2 * c)
        self.up3 = _deconv_lrelu(4 * c, c)
        self.conv = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, img0, img1, warped0, warped1, mask, flow, c0, c1):  # noqa: ANN001 - internal
        s0 = self.down0(torch.cat((img0, img1, warped0, warped1, mask, flow), 1))
        s1 = self.down1(torch.cat((s0, c0[0], c1[0]), 1))
        s2 = self.down2(torch.cat((s1, c0[1], c1[1]), 1))
        s3 = self.down3(torch.cat((s2, c0[2], c1[2]), 1))
        x = self.up0(torch.cat((s3, c0[3], c1[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        x = self.up3(torch.cat((x, s0), 1))
        return torch.sigmoid(self.conv(x))


class IFNet(Interpolator):
    """RIFE IFNet: ``IFNet()(img0, img1)`` -> middle frame (B, 3, H, W) in [0, 1]; H, W padded to a multiple of 32."""

    stride = 32
    kind = "ifnet"

    def __init__(self, config: IFNetConfig | None = None):
        super().__init__()
        cfg = config or IFNetConfig()
        self.config = cfg
        self.block0 = IFBlock(6, c=cfg.c0)
        self.block1 = IFBlock(13 + 4, c=cfg.c1)
        self.block2 = IFBlock(13 + 4, c=cfg.c2)
        self.block_tea = IFBlock(16 + 4, c=cfg.c_tea)
        self.contextnet = ContextNet(cfg.ctx)
        self.unet = UNet(cfg.ctx)

    @torch.no_grad()
    def zero_heads_(self) -> "IFNet":
        """Zero the flow/mask heads of every IFBlock and the U-Net's residual head, so the network outputs the average
        of its two inputs (flow 0, mask sigmoid(0) = 0.5, residual 0): training then starts at the averaging
        baseline instead of below it.  Returns self."""
        for head in (self.block0.lastconv, self.block1.lastconv, self.block2.lastconv, self.block_tea.lastconv,
                     self.unet.conv):
            head.weight.zero_()
            head.bias.zero_()
        return self

    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        if abs(t - 0.5) > 1e-6:
            raise VidanimeError(f"IFNet (RIFE paper model) only predicts the midpoint t=0.5, got t={t}")
        return self.run(img0, img1)["merged"][-1]

    def run(self, img0: torch.Tensor, img1: torch.Tensor, gt: torch.Tensor | None = None) -> dict:
        """Full forward on padded inputs.  Returns ``flows``, ``masks``, ``merged`` (per level, last one refined),
        and with ``gt`` also the teacher's ``merged_teacher`` and the ``loss_distill`` term used in training."""
        scales = self.config.scales
        flow = mask = None
        warped0, warped1 = img0, img1
        flows, masks, merged_pairs = [], [], []
        for i, block in enumerate((self.block0, self.block1, self.block2)):
            if flow is None:
                flow, mask = block(torch.cat((img0, img1), 1), None, scale=scales[i])
            else:
                fd, md = block(torch.cat((img0, img1, warped0, warped1, mask), 1), flow, scale=scales[i])
                flow, mask = flow + fd, mask + md
            masks.append(torch.sigmoid(mask))
            flows.append(flow)
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:4])
            merged_pairs.append((warped0, warped1))
        out: dict = {"flows": flows, "masks": masks}
        merged_teacher = flow_teacher = None
        if gt is not None:
            fd, md = self.block_tea(torch.cat((img0, img1, warped0, warped1, mask, gt), 1), flow, scale=1)
            flow_teacher = flow + fd
            mask_t = torch.sigmoid(mask + md)
            merged_teacher = backward_warp(img0, flow_teacher[:, :2]) * mask_t + backward_warp(
                img1, flow_teacher[:, 2:4]
            ) * (1 - mask_t)
        merged = [w0 * m + w1 * (1 - m) for (w0, w1), m in zip(merged_pairs, masks)]
        loss_distill = img0.new_zeros(())
        if gt is not None:
            for i in range(3):
                worse = ((merged[i] - gt).abs().mean(1, True)
                         > (merged_teacher - gt).abs().mean(1, True) + 0.01).float()
                err = ((flow_teacher.detach() - flows[i]) ** 2).mean(1, True).clamp_min(1e-12) ** 0.5
                loss_distill = loss_distill + (err * worse.detach()).mean()
        c0 = self.contextnet(img0, flow[:, :2])
        c1 = self.contextnet(img1, flow[:, 2:4])
        res = self.unet(img0, img1, warped0, warped1, mask, flow, c0, c1)[:, :3] * 2 - 1
        merged[-1] = torch.clamp(merged[-1] + res, 0, 1)
        out.update(merged=merged, merged_teacher=merged_teacher, flow_teacher=flow_teacher, loss_distill=loss_distill)
        return out
