"""Face parsers: a BiSeNet (face-parsing.PyTorch parameter names) and a DANet-style attention head on a ResNet.

Both take RGB images (B, 3, H, W) in [0, 1] (ImageNet normalisation happens inside, in non-persistent buffers, so the
state dict matches the public layout) and return class logits (B, C, H, W) at the input size.  C and the meaning of
each class follow ``ParserConfig.label_set``: ``"bisenet"`` (19 classes, face-parsing.PyTorch order) or
``"danbooru"`` (17 classes, Danbooru-Parsing / paper Table 1 order), see :mod:`vidanime.labels`.

``width`` scales every channel count (1.0 = the public ResNet18 BiSeNet, 0.25 = a CPU-trainable toy); at width 1.0
with ``arch="bisenet"`` and ``spatial_path=False`` the module's state dict has exactly the keys of the public
``79999_iter.pth`` (``cp.resnet.*``, ``cp.arm16.*``, ``ffm.*``, ``conv_out.*``, ``conv_out16.*``, ``conv_out32.*``).
``spatial_path=True`` adds the BiSeNet paper's spatial path (``sp.*``); the public checkpoint has none (its author
replaced it by the ResNet 1/8 feature).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["ParserConfig", "BiSeNet", "DANetParser", "build_parser", "parser_from_checkpoint", "PARSER_FORMAT"]

PARSER_FORMAT = "vidanime.parser"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ParserConfig:
    """Architecture of a face parser; stored in its checkpoints as plain data."""

    arch: Literal["bisenet", "danet"] = "bisenet"
    label_set: Literal["bisenet", "danbooru"] = "bisenet"
    width: float = 1.0  # channel multiplier: 1.0 = public ResNet18 BiSeNet
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # BasicBlocks per stage: ResNet18; [3,4,6,3] = 34
    spatial_path: bool = False  # BiSeNet only: add the paper's 3-conv spatial path (sp.*) instead of the 1/8 feature
    output_stride: int = 8  # DANet only: 8 (dilated stages 3-4, as in DANet) or 16
    aux_heads: bool = True  # auxiliary deep-supervision outputs used in training (their weights are always present)
    image_size: int = 256  # the square input size the parser was trained at

    def __post_init__(self) -> None:
        if not 0.0 < self.width <= 4.0:
            raise ConfigError(f"parser width must be in (0, 4], got {self.width}")
        if len(self.blocks) != 4 or any(b < 1 for b in self.blocks):
            raise ConfigError(f"parser blocks must be 4 positive counts (ResNet stages), got {self.blocks}")
        if self.output_stride not in (8, 16):
            raise ConfigError(f"parser output_stride must be 8 or 16, got {self.output_stride}")
        if self.image_size < 32:
            raise ConfigError(f"parser image_size must be at least 32, got {self.image_size}")

    @property
    def num_classes(self) -> int:
        from ..labels import num_classes

        return num_classes(self.label_set)


def _ch(c: int, width: float) -> int:
    """Channel count ``c`` scaled by ``width``, a multiple of 4 (so FFM's c//4 squeeze stays whole), at least 8."""
    return max(8, int(round(c * width / 4.0)) * 4)


# --------------------------------------------------------------------------------------------------- building blocks
class ConvBNReLU(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU; keys ``conv.weight``, ``bn.*`` as in face-parsing.PyTorch."""

    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs), optional dilation for output-stride-8 backbones."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = F.relu(self.bn1(self.conv1(x)))
        r = self.bn2(self.conv2(r))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(s + r)


class ResNet(nn.Module):
    """ResNet18/34-style backbone; returns the 1/8, 1/16, 1/32 features (or dilated 1/8, 1/8, 1/8 with ``dilate``)."""

    def __init__(self, width: float = 1.0, blocks: list[int] | tuple[int, ...] = (2, 2, 2, 2), dilate: bool = False):
        super().__init__()
        c = [_ch(64, width), _ch(64, width), _ch(128, width), _ch(256, width), _ch(512, width)]
        self.channels = c[2:]
        self.conv1 = nn.Conv2d(3, c[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(c[0], c[1], blocks[0], 1, 1)
        self.layer2 = self._layer(c[1], c[2], blocks[1], 2, 1)
        self.layer3 = self._layer(c[2], c[3], blocks[2], 1 if dilate else 2, 2 if dilate else 1)
        self.layer4 = self._layer(c[3], c[4], blocks[3], 1 if dilate else 2, 4 if dilate else 1)

    @staticmethod
    def _layer(cin: int, cout: int, n: int, stride: int, dilation: int) -> nn.Sequential:
        return nn.Sequential(
            BasicBlock(cin, cout, stride, dilation), *[BasicBlock(cout, cout, 1, dilation) for _ in range(n - 1)]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f8 = self.layer2(self.layer1(x))
        f16 = self.layer3(f8)
        f32 = self.layer4(f16)
        return f8, f16, f32


class _Normalize(nn.Module):
    """[0, 1] RGB → ImageNet-normalised input; buffers are not persistent (not in the state dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _check_image(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"parser input must be RGB images (B, 3, H, W), got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < 32:
        raise ValueError(f"parser input must be at least 32x32, got {tuple(x.shape[-2:])}")


# ------------------------------------------------------------------------------------------------------------- BiSeNet
class AttentionRefinementModule(nn.Module):
    """BiSeNet ARM: conv, then channel gating by a global-pooled 1×1 conv + BN + sigmoid."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        att = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * att


class ContextPath(nn.Module):
    """ResNet + two ARMs + global context; returns (res 1/8, context 1/8, context 1/16)."""

    def __init__(self, width: float, blocks: list[int]):
        super().__init__()
        self.resnet = ResNet(width, blocks)
        c8, c16, c32 = self.resnet.channels
        m = _ch(128, width)
        self.arm16 = AttentionRefinementModule(c16, m)
        self.arm32 = AttentionRefinementModule(c32, m)
        self.conv_head32 = ConvBNReLU(m, m)
        self.conv_head16 = ConvBNReLU(m, m)
        self.conv_avg = ConvBNReLU(c32, m, ks=1, padding=0)
        self.out_channels = m

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f8, f16, f32 = self.resnet(x)
        avg = self.conv_avg(F.adaptive_avg_pool2d(f32, 1))
        f32_sum = self.arm32(f32) + avg  # broadcast = nearest upsampling of a 1×1 map
        f32_up = self.conv_head32(F.interpolate(f32_sum, f16.shape[-2:], mode="nearest"))
        f16_sum = self.arm16(f16) + f32_up
        f16_up = self.conv_head16(F.interpolate(f16_sum, f8.shape[-2:], mode="nearest"))
        return f8, f16_up, f32_up


class SpatialPath(nn.Module):
    """BiSeNet paper's spatial path: three stride-2 convs to a 1/8 feature rich in detail."""

    def __init__(self, width: float, cout: int):
        super().__init__()
        c = _ch(64, width)
        self.conv1 = ConvBNReLU(3, c, ks=7, stride=2, padding=3)
        self.conv2 = ConvBNReLU(c, c, stride=2)
        self.conv3 = ConvBNReLU(c, c, stride=2)
        self.conv_out = ConvBNReLU(c, cout, ks=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))


class FeatureFusionModule(nn.Module):
    """BiSeNet FFM: concat spatial + context features, 1×1 conv, squeeze-excite style residual gating."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, ks=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp: torch.Tensor, fcp: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        att = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat * att + feat


class BiSeNetOutput(nn.Module):
    """3×3 ConvBNReLU then a 1×1 classifier (no bias)."""

    def __init__(self, cin: int, cmid: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cmid)
        self.conv_out = nn.Conv2d(cmid, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """BiSeNet face parser with face-parsing.PyTorch parameter names; logits at 1/8 upsampled bilinearly."""

    def __init__(self, config: ParserConfig):
        super().__init__()
        self.config = config
        w, n = config.width, config.num_classes
        self.norm = _Normalize()
        self.cp = ContextPath(w, config.blocks)
        c8, m = self.cp.resnet.channels[0], self.cp.out_channels
        if config.spatial_path:
            self.sp = SpatialPath(w, c8)
        f = _ch(256, w)
        self.ffm = FeatureFusionModule(c8 + m, f)
        self.conv_out = BiSeNetOutput(f, f, n)
        self.conv_out16 = BiSeNetOutput(m, _ch(64, w), n)
        self.conv_out32 = BiSeNetOutput(m, _ch(64, w), n)
        _init_weights(self)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(main logits, [aux logits 1/8 context, aux logits 1/16 context]), all (B, C, H, W) at the input size."""
        _check_image(x)
        size = x.shape[-2:]
        x = self.norm(x)
        f8, cp8, cp16 = self.cp(x)
        fsp = self.sp(x) if self.config.spatial_path else f8
        out = self.conv_out(self.ffm(fsp, cp8))
        up = lambda t: F.interpolate(t, size, mode="bilinear", align_corners=True)  # noqa: E731
        aux = [up(self.conv_out16(cp8)), up(self.conv_out32(cp16))] if self.training and self.config.aux_heads else []
        return up(out), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB (B, 3, H, W) in [0, 1] → logits (B, C, H, W)."""
        return self.forward_with_aux(x)[0]


# --------------------------------------------------------------------------------------------------------------- DANet
class PositionAttention(nn.Module):
    """DANet position attention: every position attends to every other (N×N, N = H·W); residual scaled by ``gamma``."""

    def __init__(self, c: int):
        super().__init__()
        self.query_conv = nn.Conv2d(c, max(1, c // 8), 1)
        self.key_conv = nn.Conv2d(c, max(1, c // 8), 1)
        self.value_conv = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query_conv(x).flatten(2).transpose(1, 2)  # (B, N, C')
        k = self.key_conv(x).flatten(2)  # (B, C', N)
        att = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, N, N)
        v = self.value_conv(x).flatten(2)  # (B, C, N)
        out = torch.bmm(v, att.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    """DANet channel attention: channels attend to channels (C×C) via their Gram matrix; residual scaled by
    ``gamma``."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = x.flatten(2)  # (B, C, N)
        energy = torch.bmm(q, q.transpose(1, 2))  # (B, C, C)
        energy = energy.amax(dim=-1, keepdim=True) - energy  # DANet's "max minus energy" for stability
        att = torch.softmax(energy, dim=-1)
        out = torch.bmm(att, q).view(b, c, h, w)
        return self.gamma * out + x


class DANetHead(nn.Module):
    """Two branches (position, channel attention) on a reduced feature, summed, then a 1×1 classifier."""

    def __init__(self, cin: int, n_classes: int):
        super().__init__()
        inter = max(8, cin // 4)
        self.conv5a = ConvBNReLU(cin, inter)
        self.conv5c = ConvBNReLU(cin, inter)
        self.pam = PositionAttention(inter)
        self.cam = ChannelAttention()
        self.conv51 = ConvBNReLU(inter, inter)
        self.conv52 = ConvBNReLU(inter, inter)
        self.dropout = nn.Dropout2d(0.1)
        self.conv8 = nn.Conv2d(inter, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sa = self.conv51(self.pam(self.conv5a(x)))
        sc = self.conv52(self.cam(self.conv5c(x)))
        return self.conv8(self.dropout(sa + sc))


class DANetParser(nn.Module):
    """DANet-style parser: dilated ResNet (output stride 8 or 16) + dual attention head + a 1/8 detail refinement.

    The refinement (a 1×1 projection of the 1/8 backbone feature added to the upsampled head feature before a small
    classifier) keeps thin parts such as brows and lips when the head runs at 1/16; at output stride 8 it is cheap.
    """

    def __init__(self, config: ParserConfig):
        super().__init__()
        self.config = config
        n = config.num_classes
        self.norm = _Normalize()
        self.backbone = ResNet(config.width, config.blocks, dilate=config.output_stride == 8)
        c8, _, c32 = self.backbone.channels
        self.head = DANetHead(c32, n)
        self.detail = ConvBNReLU(c8, _ch(64, config.width), ks=1, padding=0)
        self.refine = BiSeNetOutput(_ch(64, config.width) + n, _ch(64, config.width), n)
        self.aux = BiSeNetOutput(self.backbone.channels[1], _ch(64, config.width), n)
        _init_weights(self)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(main logits, [head logits, stage-3 aux logits]), all (B, C, H, W) at the input size."""
        _check_image(x)
        size = x.shape[-2:]
        f8, f16, f32 = self.backbone(self.norm(x))
        coarse = self.head(f32)
        coarse8 = F.interpolate(coarse, f8.shape[-2:], mode="bilinear", align_corners=False)
        out = self.refine(torch.cat([self.detail(f8), coarse8], dim=1)) + coarse8
        up = lambda t: F.interpolate(t, size, mode="bilinear", align_corners=False)  # noqa: E731
        aux = [up(coarse), up(self.aux(f16))] if self.training and self.config.aux_heads else []
        return up(out), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB (B, 3, H, W) in [0, 1] → logits (B, C, H, W)."""
        return self.forward_with_aux(x)[0]


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------------------------------ builders
def build_parser(config: ParserConfig | dict[str, Any]) -> nn.Module:
    """A freshly initialised parser for ``config`` (a :class:`ParserConfig` or its plain-data form)."""
    if not isinstance(config, ParserConfig):
        from ..config import config_from_dict

        config = config_from_dict(config, ParserConfig, source="parser config")
    return BiSeNet(config) if config.arch == "bisenet" else DANetParser(config)


def parser_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Registry builder for format ``vidanime.parser``: the checkpoint dict → parser in eval mode."""
    from ..checkpoint import check_state_dict

    if ckpt.get("format") != PARSER_FORMAT:
        raise CheckpointError(f"expected a '{PARSER_FORMAT}' checkpoint, got '{ckpt.get('format')}'")
    try:
        model = build_parser(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"parser checkpoint has an invalid config: {exc}") from None
    check_state_dict(model, ckpt["state_dict"], source="parser checkpoint")
    return model.eval()


def config_of(model: nn.Module) -> ParserConfig:
    """The :class:`ParserConfig` a parser was built from (a copy)."""
    return dataclasses.replace(model.config)
