"""RetinaFace with a MobileNet-0.25 backbone (face boxes + 5 landmarks), compatible with the public checkpoint.

Our own PyTorch port of the architecture of biubug6/Pytorch_Retinaface (``cfg_mnet``): module names follow that
layout, so its ``mobilenet0.25_Final.pth`` state_dict (300 tensors, 433,343 parameters, no ``module.`` prefix) loads
with ``strict=True``.  Input: BGR float image minus (104, 117, 123), not rescaled.  Output per anchor: box offsets,
2-class scores, 5 landmark offsets; :func:`prior_boxes` and :func:`decode` turn them into image coordinates.
"""
from __future__ import annotations

import math
from itertools import product

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RetinaFace", "CFG_MNET", "prior_boxes", "decode", "decode_landmarks", "MEAN_BGR", "load_retinaface"]

CFG_MNET = {
    "min_sizes": [[16, 32], [64, 128], [256, 512]],
    "steps": [8, 16, 32],
    "variance": [0.1, 0.2],
    "in_channel": 32,
    "out_channel": 64,
}
MEAN_BGR = (104.0, 117.0, 123.0)


def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(leaky, inplace=True))


def _conv_bn_no_relu(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, 1, 1, bias=False), nn.BatchNorm2d(oup))


def _conv_bn1x1(inp: int, oup: int, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(leaky, inplace=True))


def _conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(leaky, inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNet-0.25 trunk; returns the stride-8, 16 and 32 feature maps (32, 64... x4 channels: 64, 128, 256)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1), _conv_dw(8, 16, 1), _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1), _conv_dw(32, 64, 2), _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class FPN(nn.Module):
    """Top-down feature pyramid over the three trunk outputs (nearest upsampling + 3x3 merge)."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = _conv_bn1x1(in_channels[0], out_channels, leaky)
        self.output2 = _conv_bn1x1(in_channels[1], out_channels, leaky)
        self.output3 = _conv_bn1x1(in_channels[2], out_channels, leaky)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields concatenated."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channel <= 64 else 0.0
        self.conv3X3 = _conv_bn_no_relu(in_channel, out_channel // 2)
        self.conv5X5_1 = _conv_bn(in_channel, out_channel // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn_no_relu(out_channel // 4, out_channel // 4)
        self.conv7X7_2 = _conv_bn(out_channel // 4, out_channel // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn_no_relu(out_channel // 4, out_channel // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))], dim=1)
        return F.relu(out)


class _Head(nn.Module):
    """1x1 conv predicting ``per_anchor`` values for each of ``num_anchors`` anchors per location."""

    def __init__(self, inchannels: int, num_anchors: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(inchannels, num_anchors * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.per_anchor)


class _Body(nn.Module):
    """Holds the trunk under the key prefix ``body.stage*`` (the public layout of IntermediateLayerGetter)."""

    def __init__(self) -> None:
        super().__init__()
        trunk = MobileNetV1()
        self.stage1, self.stage2, self.stage3 = trunk.stage1, trunk.stage2, trunk.stage3

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class RetinaFace(nn.Module):
    """RetinaFace-MobileNet0.25: (B, 3, H, W) BGR-minus-mean → (loc (B, A, 4), conf (B, A, 2) softmaxed,
    landm (B, A, 10))."""

    def __init__(self, cfg: dict | None = None) -> None:
        super().__init__()
        cfg = dict(CFG_MNET if cfg is None else cfg)
        self.cfg = cfg
        c = cfg["in_channel"]
        out = cfg["out_channel"]
        self.body = _Body()
        self.fpn = FPN([c * 2, c * 4, c * 8], out)
        self.ssh1, self.ssh2, self.ssh3 = SSH(out, out), SSH(out, out), SSH(out, out)
        self.ClassHead = nn.ModuleList([_Head(out, 2, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(out, 2, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(out, 2, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(self.body(x))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, F.softmax(conf, dim=-1), landm


def prior_boxes(height: int, width: int, cfg: dict | None = None) -> torch.Tensor:
    """Anchors (A, 4) as (cx, cy, w, h) normalised to [0, 1], in the order the heads emit them (level, row, col,
    size)."""
    cfg = CFG_MNET if cfg is None else cfg
    anchors: list[float] = []
    for step, sizes in zip(cfg["steps"], cfg["min_sizes"]):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        for i, j in product(range(fh), range(fw)):
            for s in sizes:
                anchors += [(j + 0.5) * step / width, (i + 0.5) * step / height, s / width, s / height]
    return torch.tensor(anchors, dtype=torch.float32).view(-1, 4)


def decode(loc: torch.Tensor, priors: torch.Tensor, variances: list[float]) -> torch.Tensor:
    """Box offsets (A, 4) → boxes (A, 4) as normalised (x0, y0, x1, y1)."""
    centre = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * variances[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)


def decode_landmarks(pre: torch.Tensor, priors: torch.Tensor, variances: list[float]) -> torch.Tensor:
    """Landmark offsets (A, 10) → normalised points (A, 5, 2)."""
    pts = pre.view(-1, 5, 2)
    return priors[:, None, :2] + pts * variances[0] * priors[:, None, 2:]


def load_retinaface(path: str, device: str | torch.device = "cpu") -> RetinaFace:
    """Build RetinaFace-MobileNet0.25 and load a public-layout state_dict strictly (weights_only, one-line errors)."""
    from ..checkpoint import check_state_dict, read_torch_file
    from ..errors import CheckpointError

    sd = read_torch_file(path)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a RetinaFace state_dict, got {type(sd).__name__}")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    model = RetinaFace()
    check_state_dict(model, sd, source=str(path))
    return model.to(device).eval()
