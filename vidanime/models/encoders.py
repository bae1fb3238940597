"""pSp-style encoders for StyleAnime: an IR-SE backbone, an FPN and GradualStyleBlock ("map2style") heads.

Parameter names follow pSp / the official StyleAnime code (``input_layer``, ``body.N``, ``styles.N.convs``,
``styles.N.linear``, ``latlayer1``, ``latlayer2``) so public checkpoints load with a plain ``load_state_dict``.

The backbone has four blocks of ``units`` bottleneck units (IR-SE50: 3/4/14/3); the FPN taps the outputs of the last
unit of blocks 2, 3 and 4 (body indices 6, 20, 23 for IR-SE50), at input/4, /8 and /16 (the stem keeps the
resolution, every block halves it).  Feature levels:

* ``coarse`` = c3 (deepest tap, input/16),
* ``medium`` = upsample(c3) + latlayer1(c2) (input/8),
* ``fine``   = upsample(medium) + latlayer2(c1) (input/4).

A :class:`GradualStyleEncoder` owns one head per W+ code it predicts, each reading one level; StyleAnime's parsing
encoder E_p reads coarse/medium (codes 0–9 at 256 px), its style encoder E_s reads fine (codes 10–13).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, VidanimeError

__all__ = [
    "EncoderConfig",
    "EqualLinear",
    "SEModule",
    "BottleneckIR",
    "GradualStyleBlock",
    "GradualStyleEncoder",
    "LEVELS",
    "split_levels",
]

LEVELS = ("coarse", "medium", "fine")


@dataclass
class EncoderConfig:
    """Backbone shape: units per block (IR-SE50 = 3/4/14/3), block widths, IR or IR-SE units, SE reduction.

    ``head_width``: channels of the map2style heads' convs; None (pSp, the official files) makes them as wide as the
    style dimension.  The heads hold most of a small encoder's weights (log2(S) 3x3 convs each, one head per W+ code),
    so a narrower head is what keeps a 128-px model set within the 16 MiB per file of a bundled model.
    """

    units: tuple[int, int, int, int] = (3, 4, 14, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    mode: Literal["ir", "ir_se"] = "ir_se"
    se_reduction: int = 16
    head_width: int | None = None

    def __post_init__(self) -> None:
        if len(self.units) != 4 or min(self.units) < 1:
            raise ConfigError(f"encoder.units={list(self.units)}: expected 4 positive unit counts, e.g. [3, 4, 14, 3]")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ConfigError(f"encoder.widths={list(self.widths)}: "
                              "expected 4 positive widths, e.g. [64, 128, 256, 512]")
        if self.mode not in ("ir", "ir_se"):
            raise ConfigError(f"encoder.mode={self.mode!r}: expected 'ir' or 'ir_se'")
        if self.head_width is not None and (isinstance(self.head_width, bool) or not isinstance(self.head_width, int)
                                            or self.head_width < 1):
            raise ConfigError(f"encoder.head_width={self.head_width!r}: expected a positive integer or null "
                              "(as wide as the style dimension)")

    @property
    def taps(self) -> tuple[int, int, int]:
        """Body indices whose outputs feed the FPN (c1, c2, c3): the last unit of blocks 2, 3, 4 (6, 20, 23 for
        IR-SE50)."""
        ends = [sum(self.units[: i + 1]) - 1 for i in range(4)]
        return ends[1], ends[2], ends[3]


def split_levels(n_latent: int, n_structure: int | None = None, n_coarse: int | None = None) -> list[str]:
    """FPN level of each W+ code: ``n_coarse`` coarse, then medium up to ``n_structure``, then fine.

    Defaults scale the paper's 256-px split (3 coarse + 7 medium = 10 structure codes, 4 fine of 14) to ``n_latent``.
    """
    if n_structure is None:
        n_structure = max(1, min(n_latent - 1, round(n_latent * 10 / 14)))
    if n_coarse is None:
        n_coarse = max(1, min(n_structure, round(n_latent * 3 / 14)))
    if not 0 < n_structure < n_latent:
        raise ConfigError(f"n_structure_codes={n_structure}: expected 1..{n_latent - 1} for {n_latent} W+ codes")
    if not 0 <= n_coarse <= n_structure:
        raise ConfigError(f"n_coarse_codes={n_coarse}: expected 0..{n_structure} (n_structure_codes)")
    return ["coarse"] * n_coarse + ["medium"] * (n_structure - n_coarse) + ["fine"] * (n_latent - n_structure)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (StyleGAN2): ``x @ (W * lr_mul / sqrt(in)).T + b * lr_mul``."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)


class SEModule(nn.Module):
    """Squeeze-and-excitation gate: x * sigmoid(fc2(relu(fc1(avgpool(x))))), 1x1 convs without bias."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIR(nn.Module):
    """ArcFace IR(-SE) unit: BN-conv3x3-PReLU-conv3x3(stride)-BN(-SE) plus a (projected) shortcut."""

    def __init__(self, in_channel: int, depth: int, stride: int, se_reduction: int | None):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se_reduction is not None:
            layers.append(SEModule(depth, se_reduction))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class GradualStyleBlock(nn.Module):
    """map2style head: log2(spatial) stride-2 conv + LeakyReLU steps down to 1x1, then an EqualLinear → (B, out_c).

    ``width`` is the convs' channel count (default ``out_c``, as pSp); the linear maps it to ``out_c``."""

    def __init__(self, in_c: int, out_c: int, spatial: int, width: int | None = None):
        super().__init__()
        self.out_c = out_c
        self.width = width = width or out_c
        num_pools = max(1, int(math.log2(spatial)))
        modules: list[nn.Module] = [nn.Conv2d(in_c, width, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(width, width, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(width, out_c, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        return self.linear(x.reshape(-1, self.width))


class GradualStyleEncoder(nn.Module):
    """IR-SE backbone + FPN + one GradualStyleBlock per predicted W+ code: (B, in_channels, S, S) → (B, n, style_dim).

    ``levels`` lists the FPN level ("coarse", "medium", "fine") each head reads, in output order; ``image_size`` S
    fixes the heads' depth (the official encoders at S = 256 use 16/32/64-pixel heads).  Codes are residuals: the
    caller adds ``latent_avg`` (pSp's ``start_from_latent_avg``).
    """

    def __init__(
        self,
        in_channels: int,
        levels: Sequence[str],
        config: EncoderConfig | None = None,
        style_dim: int = 512,
        image_size: int = 256,
    ):
        super().__init__()
        config = config or EncoderConfig()
        bad = [lv for lv in levels if lv not in LEVELS]
        if bad or not levels:
            raise ConfigError(f"encoder levels {list(levels)}: expected a non-empty list of {list(LEVELS)}")
        if image_size < 16 or image_size & (image_size - 1):
            raise ConfigError(f"encoder image_size={image_size}: expected a power of two >= 16")
        self.config = config
        self.in_channels = in_channels
        self.levels = tuple(levels)
        self.image_size = image_size
        self.style_dim = style_dim
        w = config.widths
        se = config.se_reduction if config.mode == "ir_se" else None
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_channels, w[0], (3, 3), 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.PReLU(w[0])
        )
        units: list[nn.Module] = []
        for block, (n, depth) in enumerate(zip(config.units, w)):
            in_c = w[max(block - 1, 0)]
            units.append(BottleneckIR(in_c, depth, 2, se))
            units += [BottleneckIR(depth, depth, 1, se) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        spatial = {"coarse": image_size // 16, "medium": image_size // 8, "fine": image_size // 4}
        self.styles = nn.ModuleList(GradualStyleBlock(w[3], style_dim, spatial[lv], config.head_width)
                                    for lv in self.levels)
        self.latlayer1 = nn.Conv2d(w[2], w[3], kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(w[1], w[3], kernel_size=1, stride=1, padding=0)
        self._taps = config.taps

    @property
    def n_styles(self) -> int:
        return len(self.levels)

    @staticmethod
    def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def check_input(self, x: torch.Tensor, what: str = "input") -> None:
        """Raise a one-line :class:`VidanimeError` unless x is (B, in_channels, image_size, image_size)."""
        s = self.image_size
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise VidanimeError(
                f"{what} has shape {tuple(x.shape)}: expected (B, {self.in_channels}, {s}, {s})"
            )
        if tuple(x.shape[-2:]) != (s, s):
            raise VidanimeError(f"{what} size {x.shape[-1]}x{x.shape[-2]} does not match the model: expected {s}x{s}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, S, S) → (B, n_styles, style_dim) residual codes."""
        self.check_input(x)
        x = self.input_layer(x)
        t1, t2, t3 = self._taps
        feats = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in (t1, t2, t3):
                feats[i] = x
        c1, c2, c3 = feats[t1], feats[t2], feats[t3]
        levels = {"coarse": c3}
        if "medium" in self.levels or "fine" in self.levels:
            levels["medium"] = self._upsample_add(c3, self.latlayer1(c2))
        if "fine" in self.levels:
            levels["fine"] = self._upsample_add(levels["medium"], self.latlayer2(c1))
        return torch.stack([head(levels[lv]) for head, lv in zip(self.styles, self.levels)], dim=1)
