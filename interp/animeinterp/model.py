"""AnimeInterp (Siyao et al., CVPR 2021): SGM initial flow -> RFR flow -> forward warping -> GridNet synthesis.

``AnimeInterpNet`` holds exactly the public checkpoint's modules (``flownet`` = RFR, ``feat_ext``, ``synnet``; the
``fwarp`` softsplat has no weights), so ``model_state_dict`` (``module.`` prefix stripped) loads strictly.
``AnimeInterp`` wraps it as an :class:`~interp.base.Interpolator` together with the optional SGM stage.

Gradients: the output is differentiable with respect to both frames through the feature extractor, the RFR flow
(features, correlation, last update step), the forward splatting (values and flow) and GridNet.  No gradient flows
through SGM (segmentation and matching run on detached uint8 copies) nor between RFR iterations (coordinates are
detached per iteration, as in RAFT/AnimeInterp).
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import Interpolator
from ..softsplat import softsplat
from ..warp import resize_flow
from .gridnet import GridNet
from .rfr import RFR
from .sgm import SegmentGuidedMatching

__all__ = ["FeatureExtractor", "AnimeInterpNet", "AnimeInterp"]


class FeatureExtractor(nn.Module):
    """Three-level pyramid (32 ch at H, 64 at H/2, 96 at H/4) of a frame in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3, padding=1), nn.PReLU()
        self.conv2, self.prelu2 = nn.Conv2d(32, 32, 3, padding=1), nn.PReLU()
        self.conv3, self.prelu3 = nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.PReLU()
        self.conv4, self.prelu4 = nn.Conv2d(64, 64, 3, padding=1), nn.PReLU()
        self.conv5, self.prelu5 = nn.Conv2d(64, 96, 3, stride=2, padding=1), nn.PReLU()
        self.conv6, self.prelu6 = nn.Conv2d(96, 96, 3, padding=1), nn.PReLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x1 = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x1))
        x2 = self.prelu4(self.conv4(x))
        x = self.prelu5(self.conv5(x2))
        return x1, x2, self.prelu6(self.conv6(x))


class AnimeInterpNet(nn.Module):
    """The weighted part of AnimeInterp; ``forward(I1, I2, F12i, F21i, t)`` as the public model, images in [0, 1]."""

    def __init__(self, rfr_iters: int = 12):
        super().__init__()
        self.flownet = RFR(iters=rfr_iters)
        self.feat_ext = FeatureExtractor()
        self.synnet = GridNet(6, 64, 128, 96 * 2, 3)

    def forward(self, i1: torch.Tensor, i2: torch.Tensor, f12i: torch.Tensor | None = None,
                f21i: torch.Tensor | None = None, t: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (frame at t (B, 3, H, W), flow 1->2, flow 2->1)."""
        i1o, i2o = (i1 - 0.5) / 0.5, (i2 - 0.5) / 0.5
        feats1 = self.feat_ext(i1o)
        feats2 = self.feat_ext(i2o)
        f12 = self.flownet(i1o, i2o, flow_init=f12i)
        f21 = self.flownet(i2o, i1o, flow_init=f21i)
        f1t, f2t = t * f12, (1 - t) * f21
        warped = []
        for img_or_feats, flow in ((i1, f1t), (i2, f2t)):
            warped.append(softsplat(img_or_feats, flow, mode="average"))
        w1 = [softsplat(f, resize_flow(f1t, f.shape[-2:], "nearest"), mode="average") for f in feats1]
        w2 = [softsplat(f, resize_flow(f2t, f.shape[-2:], "nearest"), mode="average") for f in feats2]
        out = self.synnet(torch.cat(warped, 1), *(torch.cat([a, b], 1) for a, b in zip(w1, w2)))
        return out, f12, f21


class AnimeInterp(Interpolator):
    """AnimeInterp as an interpolator: ``net`` (checkpoint weights) + ``sgm`` (optional, weight-free but VGG19)."""

    stride = 8
    min_size = 64
    kind = "animeinterp"

    def __init__(self, rfr_iters: int = 12, use_sgm: bool = True):
        super().__init__()
        self.net = AnimeInterpNet(rfr_iters)
        self.use_sgm = use_sgm
        # kept out of the state dict on purpose: the public checkpoint has no VGG19 weights
        object.__setattr__(self, "_sgm", SegmentGuidedMatching() if use_sgm else None)

    @property
    def sgm(self) -> SegmentGuidedMatching | None:
        return self._sgm

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - keep the SGM's VGG on the model's device
        if self._sgm is not None:
            self._sgm._apply(fn)
        return super()._apply(fn)

    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        f01 = f10 = None
        if self._sgm is not None:
            f01, f10 = self._sgm(img0, img1)
        out, _, _ = self.net(img0, img1, f01, f10, t)
        return out.clamp(0, 1)
