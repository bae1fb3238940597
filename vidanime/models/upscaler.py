"""A small learned upscaler for the generator's drawings: (B, 3, S, S) in [-1, 1] → (B, 3, rS, rS), r = 2.

The demo generator draws at 64 px while a face in a 720p frame is pasted at ~250 px; a bilinear resize makes the
drawing's lines soft and its edges stepped.  This net (an addition to the paper; ESPCN-style sub-pixel convolution
after Shi et al. 2016, with residual blocks and a global bicubic skip as in EDSR/RCAN) is trained on the shipped anime
faces to undo exactly the downscale the generator was trained on (area filter 128 → 64 px), so it restores line art
the way anime faces look at twice the size.  Pure PyTorch, fully convolutional: 0.12 M parameters at the default
width, 0.34 M for the bundled ``upscaler-anime`` (48 channels, 8 blocks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = ["UpscalerConfig", "Upscaler", "build_upscaler", "upscaler_from_checkpoint", "UPSCALER_FORMAT"]

UPSCALER_FORMAT = "vidanime.upscaler"


@dataclass
class UpscalerConfig:
    """Architecture of :class:`Upscaler`: ``channels`` wide, ``blocks`` residual blocks, one ×``scale`` sub-pixel
    step; ``train_size`` is the high-resolution size it was trained at (metadata: the input size it suits is
    ``train_size // scale``)."""

    channels: int = 32
    blocks: int = 6
    scale: int = 2
    train_size: int = 128

    def check(self) -> "UpscalerConfig":
        if not 4 <= self.channels <= 256 or not 0 <= self.blocks <= 32:
            raise ConfigError(f"upscaler channels={self.channels}, blocks={self.blocks}: expected 4-256 channels "
                              "and 0-32 blocks")
        if self.scale not in (2, 3, 4):
            raise ConfigError(f"upscaler scale={self.scale}: expected 2, 3 or 4")
        return self


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class Upscaler(nn.Module):
    """(B, 3, H, W) images in [-1, 1] → (B, 3, rH, rW) in [-1, 1] (not clamped): bicubic upscale plus a learned
    residual (head conv, residual blocks, a conv to 3·r² channels, pixel shuffle)."""

    def __init__(self, config: UpscalerConfig | None = None) -> None:
        super().__init__()
        self.config = (config or UpscalerConfig()).check()
        c, r = self.config.channels, self.config.scale
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.Sequential(*[_ResBlock(c) for _ in range(self.config.blocks)])
        self.tail = nn.Conv2d(c, 3 * r * r, 3, padding=1)
        self.shuffle = nn.PixelShuffle(r)
        nn.init.zeros_(self.tail.weight)  # starts as exactly the bicubic upscale
        nn.init.zeros_(self.tail.bias)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = self.head(x)
        return base + self.shuffle(self.tail(F.relu(h + self.body(h), inplace=True)))

    @torch.no_grad()
    def enlarge(self, x: torch.Tensor) -> torch.Tensor:
        """Drawings (B, 3, H, W) in [-1, 1], any float dtype, on this module's device → (B, 3, rH, rW) float32,
        clamped to [-1, 1], without gradients: what the translators paste or write."""
        return self(x.float()).clamp(-1, 1)


def build_upscaler(config: UpscalerConfig | dict[str, Any] | None = None) -> Upscaler:
    """A freshly initialised :class:`Upscaler` (config as a dataclass or its plain-data form)."""
    if config is not None and not isinstance(config, UpscalerConfig):
        from ..config import config_from_dict

        config = config_from_dict(config, UpscalerConfig, source="upscaler config")
    return Upscaler(config)


def upscaler_from_checkpoint(ckpt: dict[str, Any]) -> Upscaler:
    """Registry builder for format ``vidanime.upscaler``: the checkpoint dict → upscaler in eval mode."""
    from ..checkpoint import check_state_dict

    if ckpt.get("format") != UPSCALER_FORMAT:
        raise CheckpointError(f"expected a '{UPSCALER_FORMAT}' checkpoint, got '{ckpt.get('format')}'")
    try:
        model = build_upscaler(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"upscaler checkpoint has an invalid config: {exc}") from None
    check_state_dict(model, {k: v.float() for k, v in ckpt["state_dict"].items()}, source="upscaler checkpoint")
    return model.eval()
