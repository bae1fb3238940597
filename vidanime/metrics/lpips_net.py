"""A pure-PyTorch LPIPS (AlexNet, v0.1) with the ``lpips`` package's module and state-dict layout.

:func:`vidanime.metrics.lpips_metrics.load_lpips` uses it when the ``lpips`` package (which also needs torchvision) is
not installed, e.g. on a bare GPU machine that trains from the source tree; where the package exists, a test checks
that both give the same distances for the same weights.  Layout: ``scaling_layer.{shift,scale}``,
``net.slice{1..5}.<i>.{weight,bias}`` (torchvision's ``alexnet().features`` indices), ``lin{0..4}.model.1.weight``
(also reachable as ``lins.<k>``).  The linear-layer weights come from the lpips package's ``weights/v0.1/alex.pth``.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["AlexLPIPS", "ALEX_CHANNELS"]

ALEX_CHANNELS = (64, 192, 384, 256, 256)


class _ScalingLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class _AlexFeatures(nn.Module):
    """torchvision's AlexNet ``features`` cut after each ReLU into ``slice1..slice5`` (indices kept)."""

    def __init__(self) -> None:
        super().__init__()
        layers = [nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                  nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                  nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
                  nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
                  nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True)]
        for k, (a, b) in enumerate(((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), start=1):
            s = nn.Sequential()
            for i in range(a, b):
                s.add_module(str(i), layers[i])
            setattr(self, f"slice{k}", s)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            out.append(x)
        return out


class _NetLinLayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class AlexLPIPS(nn.Module):
    """LPIPS distance ``model(x, y)``: (B, 3, H, W) in [-1, 1] twice → (B, 1, 1, 1), differentiable in the inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = _ScalingLayer()
        self.net = _AlexFeatures()
        for k, c in enumerate(ALEX_CHANNELS):
            setattr(self, f"lin{k}", _NetLinLayer(c))
        self.lins = nn.ModuleList([getattr(self, f"lin{k}") for k in range(len(ALEX_CHANNELS))])

    @staticmethod
    def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + eps)

    def forward(self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if normalize:  # inputs in [0, 1]
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        f0, f1 = self.net(self.scaling_layer(in0)), self.net(self.scaling_layer(in1))
        val = 0
        for lin, a, b in zip(self.lins, f0, f1):
            val = val + lin((self._unit(a) - self._unit(b)) ** 2).mean(dim=(2, 3), keepdim=True)
        return val
