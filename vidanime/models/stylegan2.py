"""StyleGAN2 generator and discriminator in pure PyTorch, parameter-compatible with rosinality stylegan2-pytorch.

Parameter and buffer names are rosinality's (``style.1``…``style.{n_mlp}``, ``input.input``, ``conv1.*``, ``to_rgb1.*``,
``convs.*``, ``to_rgbs.*``, ``noises.noise_*``; filter kernels as buffers ``*.blur.kernel`` / ``*.upsample.kernel``), so
a rosinality ``g_ema`` state dict loads with a plain ``load_state_dict(strict=True)``; the math is the same (equalised
learning rate, modulated/demodulated grouped convolutions, transposed-conv upsampling + blur, skip ToRGB).

Differences from rosinality, all deliberate:

* ``randomize_noise`` defaults to **False**: the fixed ``noises.noise_*`` buffers are used, so the same W+ always gives
  the same image (re-randomised noise makes video flicker).  Pass ``randomize_noise=True`` for rosinality's behaviour.
* Widths are ``min(rosinality_table[res], config.channel_max)`` (see :class:`StyleGAN2Config`), so tiny test models
  exist.
* The style-mixing index, when not given, is drawn with ``torch.randint`` (seeded by ``torch.manual_seed``).
* The generator carries an optional average latent ``latent_avg`` (1, style_dim) (a non-persistent buffer, ``None``
  until set, saved beside the state dict by :func:`save_generator`); ``truncation < 1`` without ``truncation_latent``
  uses it.
* The discriminator's minibatch-stddev group is the largest divisor of the batch that is <= 4 (rosinality fails on
  batches not divisible by min(batch, 4)).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from .ops import FusedLeakyReLU, fused_leaky_relu, upfirdn2d

logger = logging.getLogger(__name__)

FORMAT = "vidanime.stylegan2"
SIZES = tuple(2**i for i in range(5, 11))  # 32 … 1024

__all__ = [
    "FORMAT",
    "StyleGAN2Config",
    "channel_table",
    "Generator",
    "Discriminator",
    "generator_from_checkpoint",
    "generator_from_weights",
    "save_generator",
    "PixelNorm",
    "EqualLinear",
    "EqualConv2d",
    "ModulatedConv2d",
    "StyledConv",
    "ToRGB",
    "ConstantInput",
    "NoiseInjection",
    "Upsample",
    "Blur",
    "ConvLayer",
    "ResBlock",
]


@dataclass
class StyleGAN2Config:
    """Architecture of a StyleGAN2 generator/discriminator (rosinality's constructor arguments plus a width cap).

    Width at resolution ``res`` is ``min(table[res], channel_max)`` with rosinality's table
    {4..32: 512, 64: 256·cm, 128: 128·cm, 256: 64·cm, 512: 32·cm, 1024: 16·cm} (cm = ``channel_multiplier``).  With the
    defaults (cm 2, cap 512) this is rosinality's table exactly; for cm > 2 raise ``channel_max`` to 256·cm to keep
    rosinality's widths.  ``size`` is the output side in pixels, a power of two from 32 to 1024.
    """

    size: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    channel_max: int = 512
    lr_mlp: float = 0.01
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self) -> None:
        self.blur_kernel = tuple(int(k) for k in self.blur_kernel)
        if self.size not in SIZES:
            raise ConfigError(f"StyleGAN2 size {self.size!r}: expected a power of two from 32 to 1024 ({list(SIZES)})")
        for name in ("style_dim", "n_mlp", "channel_multiplier", "channel_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"StyleGAN2 {name} {value!r}: expected a positive integer")
        if not self.lr_mlp > 0:
            raise ConfigError(f"StyleGAN2 lr_mlp {self.lr_mlp!r}: expected a positive number")
        if len(self.blur_kernel) < 2:
            raise ConfigError(f"StyleGAN2 blur_kernel {self.blur_kernel!r}: "
                              "expected at least 2 taps, e.g. (1, 3, 3, 1)")

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        """Number of W+ entries: 2·log2(size) − 2 (14 at 256 px)."""
        return self.log_size * 2 - 2

    @property
    def num_layers(self) -> int:
        """Number of noise inputs (styled convolutions): 2·(log2(size) − 2) + 1 (13 at 256 px)."""
        return (self.log_size - 2) * 2 + 1

    def channels(self) -> dict[int, int]:
        return channel_table(self.channel_multiplier, self.channel_max)


def channel_table(channel_multiplier: int = 2, channel_max: int = 512) -> dict[int, int]:
    """Width per resolution: rosinality's table, capped at ``channel_max``."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    return {res: min(width, channel_max) for res, width in table.items()}


# --------------------------------------------------------------------------------------------------------- layers


class PixelNorm(nn.Module):
    """Normalise (B, D) vectors to unit root-mean-square along dim 1."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input * torch.rsqrt(torch.mean(input**2, dim=1, keepdim=True) + 1e-8)


def make_kernel(k: Sequence[int]) -> torch.Tensor:
    """A 1-D kernel as its normalised outer product (kh, kw) summing to 1 (a 2-D kernel is just normalised)."""
    kernel = torch.tensor(k, dtype=torch.float32)
    if kernel.ndim == 1:
        kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


class Upsample(nn.Module):
    """2× FIR upsampling (B, C, H, W) → (B, C, 2H, 2W) with buffer ``kernel`` (used on the ToRGB skip path)."""

    def __init__(self, kernel: Sequence[int], factor: int = 2):
        super().__init__()
        self.factor = factor
        kernel_t = make_kernel(kernel) * (factor**2)
        self.register_buffer("kernel", kernel_t)
        p = kernel_t.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(input, self.kernel, up=self.factor, down=1, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass filter with padding ``pad`` (kernel scaled by factor² after a transposed-conv upsample)."""

    def __init__(self, kernel: Sequence[int], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        kernel_t = make_kernel(kernel)
        if upsample_factor > 1:
            kernel_t = kernel_t * (upsample_factor**2)
        self.register_buffer("kernel", kernel_t)
        self.pad = pad

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(input, self.kernel, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate: weights ~ N(0, 1), scaled at run time by 1/sqrt(fan_in)."""

    def __init__(
        self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.conv2d(input, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        w = self.weight.shape
        return f"{w[1]}, {w[0]}, {w[2]}, stride={self.stride}, padding={self.padding}"


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and learning-rate multiplier ``lr_mul``; optional fused leaky ReLU."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(input, self.weight * self.scale), bias)
        return F.linear(input, self.weight * self.scale, bias=bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}"


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (B, in, H, W) × style (B, style_dim) → (B, out, H', W'), as one grouped conv.

    ``weight`` is (1, out, in, k, k) (rosinality's layout).  Upsampling is a stride-2 transposed convolution followed by
    a blur; downsampling is a blur followed by a stride-2 convolution.  ``demodulate`` rescales each output filter to
    unit norm per sample.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.upsample = upsample
        self.downsample = downsample

        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))

        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def extra_repr(self) -> str:
        return (
            f"{self.in_channel}, {self.out_channel}, {self.kernel_size}, "
            f"upsample={self.upsample}, downsample={self.downsample}, demodulate={self.demodulate}"
        )

    def forward(self, input: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channel, height, width = input.shape
        k = self.kernel_size
        style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
        weight = self.scale * self.weight * style  # (B, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)

        if self.upsample:
            input = input.reshape(1, batch * in_channel, height, width)
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, k, k)
            out = F.conv_transpose2d(input, weight, padding=0, stride=2, groups=batch)
            out = out.view(batch, self.out_channel, out.shape[2], out.shape[3])
            return self.blur(out)

        weight = weight.reshape(batch * self.out_channel, in_channel, k, k)
        if self.downsample:
            input = self.blur(input)
            input = input.reshape(1, batch * in_channel, input.shape[2], input.shape[3])
            out = F.conv2d(input, weight, padding=0, stride=2, groups=batch)
        else:
            input = input.reshape(1, batch * in_channel, height, width)
            out = F.conv2d(input, weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channel, out.shape[2], out.shape[3])


class NoiseInjection(nn.Module):
    """Adds ``weight`` × noise (B or 1, 1, H, W); with ``noise=None`` fresh N(0, 1) noise is drawn."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            batch, _, height, width = image.shape
            noise = image.new_empty(batch, 1, height, width).normal_()
        return image + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4×4 constant ``input`` (1, C, 4, 4), repeated over the batch of ``input``."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(input.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated 3×3 conv (optionally 2× upsampling) + noise + fused bias/leaky ReLU (rosinality names)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        demodulate: bool = True,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel,
            demodulate=demodulate,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, input: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(input, style), noise=noise))


class ToRGB(nn.Module):
    """Modulated 1×1 conv to RGB (no demodulation) + ``bias`` (1, 3, 1, 1), plus the upsampled previous RGB skip."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, input: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(input, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ------------------------------------------------------------------------------------------------------ generator


class Generator(nn.Module):
    """StyleGAN2 generator: z (B, style_dim) or W/W+ → image (B, 3, size, size), roughly in [-1, 1].

    Attributes: ``config``, ``size``, ``style_dim``, ``n_latent`` (W+ length, 14 at 256 px), ``num_layers`` (noise
    inputs), ``channels`` (width per resolution), ``latent_avg`` ((1, style_dim) or None).
    """

    def __init__(self, config: StyleGAN2Config | None = None):
        super().__init__()
        config = config if config is not None else StyleGAN2Config()
        if not isinstance(config, StyleGAN2Config):
            raise ConfigError(f"Generator config: expected a StyleGAN2Config, got {type(config).__name__}")
        self.config = config
        self.size = config.size
        self.style_dim = config.style_dim
        self.log_size = config.log_size
        self.num_layers = config.num_layers
        self.n_latent = config.n_latent
        self.channels = config.channels()
        style_dim, blur_kernel = config.style_dim, config.blur_kernel

        layers: list[nn.Module] = [PixelNorm()]
        for _ in range(config.n_mlp):
            layers.append(EqualLinear(style_dim, style_dim, lr_mul=config.lr_mlp, activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)

        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)

        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2**res, 2**res))

        in_channel = ch[4]
        for i in range(3, self.log_size + 1):
            out_channel = ch[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel

        self.register_buffer("latent_avg", None, persistent=False)

    @classmethod
    def from_kwargs(
        cls,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
        channel_max: int | None = None,
    ) -> "Generator":
        """Build with rosinality's constructor arguments; ``channel_max`` defaults to rosinality's widths (no cap)."""
        if channel_max is None:
            channel_max = max(512, 256 * channel_multiplier)
        return cls(
            StyleGAN2Config(
                size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier,
                channel_max=channel_max, lr_mlp=lr_mlp, blur_kernel=tuple(blur_kernel),
            )
        )

    # -- latents -------------------------------------------------------------------------------------------------

    def set_latent_avg(self, latent_avg: torch.Tensor | None) -> None:
        """Attach the average latent (style_dim,) or (1, style_dim) (stored as (1, style_dim)); None clears it."""
        if latent_avg is None:
            self.latent_avg = None
            return
        if not isinstance(latent_avg, torch.Tensor) or tuple(latent_avg.shape) not in (
            (self.style_dim,),
            (1, self.style_dim),
        ):
            shape = tuple(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
            raise ValueError(f"latent_avg of shape {shape}: expected ({self.style_dim},) or (1, {self.style_dim})")
        self.latent_avg = latent_avg.detach().reshape(1, self.style_dim).to(self.input.input)

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network: z (B, style_dim) → w (B, style_dim) (pixel norm + MLP)."""
        if z.ndim != 2 or z.shape[1] != self.style_dim:
            raise ValueError(f"mapping input of shape {tuple(z.shape)}: expected (B, {self.style_dim})")
        return self.style(z)

    get_latent = mapping  # rosinality name

    @torch.no_grad()
    def mean_latent(self, n_latent_samples: int) -> torch.Tensor:
        """Mean of ``n_latent_samples`` mapped random z: (1, style_dim) (the truncation centre)."""
        if n_latent_samples < 1:
            raise ValueError(f"mean_latent n_latent_samples={n_latent_samples}: expected >= 1")
        z = torch.randn(n_latent_samples, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def make_noise(self) -> list[torch.Tensor]:
        """Fresh random noise maps, one per layer: [(1, 1, 4, 4), (1, 1, 8, 8), (1, 1, 8, 8), …]."""
        device = self.input.input.device
        return [torch.randn_like(getattr(self.noises, f"noise_{i}"), device=device) for i in range(self.num_layers)]

    def fixed_noise(self) -> list[torch.Tensor]:
        """The registered noise buffers ``noises.noise_0`` … (used when noise is not randomised)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    # -- synthesis -----------------------------------------------------------------------------------------------

    def _resolve_noise(self, noise: Sequence[torch.Tensor | None] | None, randomize_noise: bool) -> list:
        if noise is None:
            return [None] * self.num_layers if randomize_noise else self.fixed_noise()
        noise = list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"noise list of length {len(noise)}: expected {self.num_layers} maps (one per layer)")
        return noise

    def synthesis(
        self,
        w_plus: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = False,
    ) -> torch.Tensor:
        """Synthesis network: W+ (B, n_latent, style_dim) → image (B, 3, size, size), roughly in [-1, 1].

        ``noise``: a list of ``num_layers`` maps (None entries are drawn fresh); by default the fixed buffers.
        """
        if w_plus.ndim != 3 or w_plus.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(
                f"W+ of shape {tuple(w_plus.shape)}: expected (B, {self.n_latent}, {self.style_dim})"
            )
        noise = self._resolve_noise(noise, randomize_noise)
        latent = w_plus
        out = self.input(latent)
        out = self.conv1(out, latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv_up, conv, noise1, noise2, to_rgb in zip(
            self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs
        ):
            out = conv_up(out, latent[:, i], noise=noise1)
            out = conv(out, latent[:, i + 1], noise=noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip

    def forward(
        self,
        styles: Sequence[torch.Tensor] | torch.Tensor,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rosinality's call: ``styles`` = [z] or [z1, z2] (mixing), or W / W+ with ``input_is_latent``.

        Returns (image (B, 3, size, size), W+ (B, n_latent, style_dim) if ``return_latents`` else None).  With two
        styles, W+ entries ``[inject_index:]`` come from the second (index drawn in [1, n_latent) when None).
        ``truncation`` ψ < 1 pulls every style towards ``truncation_latent`` (default: ``self.latent_avg``); ψ = 0 gives
        the image of ``truncation_latent``.  Noise: fixed buffers unless ``noise`` or ``randomize_noise`` say otherwise.
        """
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        styles = list(styles)
        if not 1 <= len(styles) <= 2:
            raise ValueError(f"{len(styles)} styles given: expected 1, or 2 for style mixing")
        if not input_is_latent:
            for s in styles:
                if s.ndim != 2:
                    raise ValueError(f"z of shape {tuple(s.shape)}: expected (B, {self.style_dim}) "
                                     "(pass input_is_latent=True for W / W+)")
            styles = [self.style(s) for s in styles]

        if truncation < 1:
            if truncation_latent is None:
                truncation_latent = self.latent_avg
            if truncation_latent is None:
                raise ValueError(
                    f"truncation={truncation} needs truncation_latent (e.g. generator.mean_latent(4096)) "
                    "or a generator with latent_avg set"
                )
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]

        if len(styles) == 1:
            latent = styles[0]
            if latent.ndim == 2:
                latent = latent.unsqueeze(1).repeat(1, self.n_latent, 1)
        else:
            if any(s.ndim != 2 for s in styles):
                raise ValueError("style mixing takes two (B, style_dim) styles, got W+ tensors")
            if inject_index is None:
                inject_index = int(torch.randint(1, self.n_latent, ()).item())
            if not 0 <= inject_index <= self.n_latent:
                raise ValueError(f"inject_index {inject_index}: expected 0 … {self.n_latent}")
            latent = torch.cat(
                [
                    styles[0].unsqueeze(1).repeat(1, inject_index, 1),
                    styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1),
                ],
                1,
            )

        image = self.synthesis(latent, noise=noise, randomize_noise=randomize_noise)
        return (image, latent) if return_latents else (image, None)


# -------------------------------------------------------------------------------------------------- discriminator


class ConvLayer(nn.Sequential):
    """[Blur] + EqualConv2d + [FusedLeakyReLU] as a Sequential (rosinality's indices: ``0``, ``1``, ``2``)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(in_channel, out_channel, kernel_size, padding=padding, stride=stride,
                        bias=bias and not activate)
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual downsampling block: two 3×3 convs (the second 2× down) + 1×1 skip, summed and divided by sqrt(2)."""

    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False,
                              blur_kernel=blur_kernel)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(input)) + self.skip(input)) / math.sqrt(2)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: image (B, 3, size, size) in [-1, 1] → logits (B, 1) (rosinality names)."""

    def __init__(self, config: StyleGAN2Config | None = None):
        super().__init__()
        config = config if config is not None else StyleGAN2Config()
        if not isinstance(config, StyleGAN2Config):
            raise ConfigError(f"Discriminator config: expected a StyleGAN2Config, got {type(config).__name__}")
        self.config = config
        self.size = config.size
        ch = config.channels()
        blur_kernel = config.blur_kernel

        convs: list[nn.Module] = [ConvLayer(3, ch[config.size], 1)]
        in_channel = ch[config.size]
        for i in range(config.log_size, 2, -1):
            out_channel = ch[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)

        self.stddev_group = 4
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )

    @classmethod
    def from_kwargs(
        cls, size: int, channel_multiplier: int = 2, blur_kernel: Sequence[int] = (1, 3, 3, 1),
        channel_max: int | None = None,
    ) -> "Discriminator":
        """Build with rosinality's constructor arguments; ``channel_max`` defaults to rosinality's widths."""
        if channel_max is None:
            channel_max = max(512, 256 * channel_multiplier)
        return cls(StyleGAN2Config(size=size, channel_multiplier=channel_multiplier, channel_max=channel_max,
                                   blur_kernel=tuple(blur_kernel)))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.ndim != 4 or input.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"discriminator input of shape {tuple(input.shape)}: "
                             f"expected (B, 3, {self.size}, {self.size})")
        out = self.convs(input)
        batch, channel, height, width = out.shape
        group = max(g for g in range(1, min(batch, self.stddev_group) + 1) if batch % g == 0)
        stddev = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)
        stddev = stddev.repeat(group, 1, height, width)
        out = torch.cat([out, stddev], 1)
        out = self.final_conv(out)
        return self.final_linear(out.reshape(batch, -1))


# ---------------------------------------------------------------------------------------------------- checkpoints


def generator_from_checkpoint(ckpt: Mapping[str, Any]) -> Generator:
    """Build a :class:`Generator` from a loaded ``"vidanime.stylegan2"`` checkpoint dict (config, state_dict,
    latent_avg)."""
    from ..config import config_from_dict

    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint format {ckpt.get('format')!r}: expected '{FORMAT}'")
    try:
        config = config_from_dict(ckpt.get("config") or {}, StyleGAN2Config, source=f"{FORMAT} checkpoint config")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    return generator_from_weights(config, ckpt["state_dict"], ckpt.get("latent_avg"), f"{FORMAT} checkpoint")


def generator_from_weights(config: StyleGAN2Config, state_dict: Mapping[str, Any], latent_avg: Any = None,
                           source: str = "checkpoint") -> "Generator":
    """A :class:`Generator` of ``config`` with ``state_dict`` loaded strictly and ``latent_avg`` ((D,), (1, D) or
    None) set; every mismatch is a one-line :class:`CheckpointError` naming ``source``."""
    from ..checkpoint import check_state_dict

    generator = Generator(config)
    check_state_dict(generator, state_dict, source=source)
    if latent_avg is not None:
        try:
            generator.set_latent_avg(latent_avg)
        except ValueError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
    return generator


def save_generator(
    path: str | os.PathLike, generator: Generator, latent_avg: torch.Tensor | None = None, **extras: Any
) -> None:
    """Save ``generator`` as a ``"vidanime.stylegan2"`` checkpoint (atomic); ``latent_avg`` defaults to its own."""
    from ..checkpoint import save_checkpoint

    if latent_avg is None:
        latent_avg = generator.latent_avg
    if latent_avg is not None:
        extras["latent_avg"] = latent_avg.detach().cpu().reshape(1, generator.style_dim)
    save_checkpoint(path, format=FORMAT, config=generator.config, state_dict=generator.state_dict(), **extras)
    logger.debug("saved StyleGAN2 generator (%d px) to %s", generator.size, path)
