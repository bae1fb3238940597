"""RFR: AnimeInterp's recurrent flow refinement, a RAFT variant (Teed & Deng 2020), pure PyTorch.

Key names follow AnimeInterp's ``models/rfr_model`` (``fnet`` BasicEncoder without normalisation, used for both the
features and the context; ``update_block`` = RAFT's BasicUpdateBlock; ``attention2`` = the error attention that damps
an unreliable SGM initial flow).  Everything here is differentiable; AnimeInterp detaches the coordinates between
iterations (as RAFT does), so gradients reach the frames through the features, not through earlier iterations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..warp import resize_flow

__all__ = ["RFR", "BasicEncoder", "CorrBlock", "BasicUpdateBlock"]


class ResidualBlock(nn.Module):
    """RAFT residual block with ``norm_fn='none'`` (the norms are empty Sequentials, no parameters)."""

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = nn.Sequential()
        self.norm2 = nn.Sequential()
        self.downsample = None
        if stride != 1:
            self.norm3 = nn.Sequential()
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class BasicEncoder(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, output_dim, H/8, W/8)."""

    def __init__(self, output_dim: int = 256, dims: tuple[int, int, int, int] = (64, 64, 96, 128)):
        super().__init__()
        self.norm1 = nn.Sequential()
        self.conv1 = nn.Conv2d(3, dims[0], 7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(ResidualBlock(dims[0], dims[1], 1), ResidualBlock(dims[1], dims[1], 1))
        self.layer2 = nn.Sequential(ResidualBlock(dims[1], dims[2], 2), ResidualBlock(dims[2], dims[2], 1))
        self.layer3 = nn.Sequential(ResidualBlock(dims[2], dims[3], 2), ResidualBlock(dims[3], dims[3], 1))
        self.conv2 = nn.Conv2d(dims[3], output_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


def coords_grid(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates (B, 2, H, W), x first."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([xs, ys], 0).float().unsqueeze(0).expand(b, -1, -1, -1)


def bilinear_sampler(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sample (N, C, H, W) at pixel ``coords`` (N, h, w, 2) (align_corners=True, zero padding), as RAFT."""
    h, w = img.shape[-2:]
    xg, yg = coords.split([1, 1], dim=-1)
    xg = 2 * xg / max(w - 1, 1) - 1
    yg = 2 * yg / max(h - 1, 1) - 1
    return F.grid_sample(img, torch.cat([xg, yg], dim=-1), align_corners=True)


class CorrBlock:
    """All-pairs correlation pyramid (4 levels) looked up in a (2r+1)² window around the current coordinates."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4, radius: int = 4):
        self.num_levels, self.radius = num_levels, radius
        b, d, h, w = fmap1.shape
        corr = torch.matmul(fmap1.view(b, d, h * w).transpose(1, 2), fmap2.view(b, d, h * w)) / d**0.5
        corr = corr.reshape(b * h * w, 1, h, w)
        self.pyramid = [corr]
        for _ in range(num_levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        r = self.radius
        coords = coords.permute(0, 2, 3, 1)
        b, h, w, _ = coords.shape
        d = torch.linspace(-r, r, 2 * r + 1, device=coords.device)
        # RAFT stacks meshgrid(dy, dx): the window's first component is added to x.  Kept for weight compatibility.
        delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        out = []
        for i, corr in enumerate(self.pyramid):
            centroid = coords.reshape(b * h * w, 1, 1, 2) / 2**i
            out.append(bilinear_sampler(corr, centroid + delta).view(b, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous().float()


class BasicMotionEncoder(nn.Module):
    def __init__(self, cor_planes: int):
        super().__init__()
        self.convc1 = nn.Conv2d(cor_planes, 256, 1, padding=0)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([cor, flo], 1))), flow], 1)


class SepConvGRU(nn.Module):
    def __init__(self, hidden_dim: int = 128, input_dim: int = 256):
        super().__init__()
        c = hidden_dim + input_dim
        self.convz1 = nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for cz, cr, cq in ((self.convz1, self.convr1, self.convq1), (self.convz2, self.convr2, self.convq2)):
            hx = torch.cat([h, x], 1)
            z, r = torch.sigmoid(cz(hx)), torch.sigmoid(cr(hx))
            q = torch.tanh(cq(torch.cat([r * h, x], 1)))
            h = (1 - z) * h + z * q
        return h


class FlowHead(nn.Module):
    def __init__(self, input_dim: int = 128, hidden_dim: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class BasicUpdateBlock(nn.Module):
    def __init__(self, cor_planes: int = 4 * 81, hidden_dim: int = 128):
        super().__init__()
        self.encoder = BasicMotionEncoder(cor_planes)
        self.gru = SepConvGRU(hidden_dim=hidden_dim, input_dim=128 + hidden_dim)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1))

    def forward(self, net, inp, corr, flow):  # noqa: ANN001 - internal
        inp = torch.cat([inp, self.encoder(flow, corr)], 1)
        net = self.gru(net, inp)
        return net, 0.25 * self.mask(net), self.flow_head(net)


class ErrorAttention(nn.Module):
    """Predicts, from image, warping error and flow at 1/8 size, how much of the SGM initial flow to keep."""

    def __init__(self, cin: int = 6, cout: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32 + cin, cout, 3, padding=1)
        self.prelu1 = nn.PReLU()
        self.prelu2 = nn.PReLU()

    def forward(self, x1: torch.Tensor) -> torch.Tensor:
        x = self.prelu1(self.conv1(x1))
        return self.conv3(self.prelu2(torch.cat([self.conv2(x), x1], 1)))


class RFR(nn.Module):
    """Flow img1 -> img2 at full size (B, 2, H, W) px, optionally initialised by a (non-differentiable) SGM flow."""

    def __init__(self, iters: int = 12, radius: int = 4, levels: int = 4, encoder_dims: tuple = (64, 64, 96, 128)):
        super().__init__()
        self.iters, self.radius, self.levels = iters, radius, levels
        self.hidden_dim = self.context_dim = 128
        self.attention2 = ErrorAttention(6, 1)
        self.fnet = BasicEncoder(256, tuple(encoder_dims))
        self.update_block = BasicUpdateBlock(levels * (2 * radius + 1) ** 2, self.hidden_dim)

    @staticmethod
    def upsample_flow(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Convex upsampling (B, 2, h, w) -> (B, 2, 8h, 8w) with the learned mask (B, 576, h, w)."""
        n, _, h, w = flow.shape
        mask = torch.softmax(mask.view(n, 1, 9, 8, 8, h, w), dim=2)
        up = F.unfold(8 * flow, [3, 3], padding=1).view(n, 2, 9, 1, 1, h, w)
        up = torch.sum(mask * up, dim=2).permute(0, 1, 4, 2, 5, 3)
        return up.reshape(n, 2, 8 * h, 8 * w)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, flow_init: torch.Tensor | None = None,
                iters: int | None = None) -> torch.Tensor:
        """``image1``, ``image2`` (B, 3, H, W) in [-1, 1]; returns the flow image1 -> image2 (B, 2, H, W) in pixels."""
        h, w = image1.shape[-2:]
        h8, w8 = max(8, h // 8 * 8), max(8, w // 8 * 8)
        init = None
        if flow_init is not None:
            # As in the public code: the SGM flow is resized (nearest) to 1/8 and added to the coordinates twice
            # (once before the loop, once in its first iteration); ``attention2``'s damped flow is computed there but
            # never used, so it is skipped here (its weights are kept so the checkpoint loads strictly).
            init = resize_flow(flow_init, (h8 // 8, w8 // 8), mode="nearest")
        if (h8, w8) != (h, w):
            image1 = F.interpolate(image1, size=(h8, w8), mode="bilinear", align_corners=False)
            image2 = F.interpolate(image2, size=(h8, w8), mode="bilinear", align_corners=False)
        fmap1, fmap2 = self.fnet(torch.cat([image1, image2], 0)).float().chunk(2, 0)
        corr_fn = CorrBlock(fmap1, fmap2, self.levels, self.radius)
        net, inp = torch.split(self.fnet(image1), [self.hidden_dim, self.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        b = image1.shape[0]
        coords0 = coords_grid(b, h8 // 8, w8 // 8, image1.device)
        coords1 = coords0.clone()
        if init is not None:
            coords1 = coords1 + init
        flow_up = None
        for it in range(iters or self.iters):
            coords1 = coords1.detach()
            if it == 0 and init is not None:
                coords1 = coords1 + init
            corr = corr_fn(coords1)
            net, up_mask, delta = self.update_block(net, inp, corr, coords1 - coords0)
            coords1 = coords1 + delta
            flow_up = self.upsample_flow(coords1 - coords0, up_mask)
        return resize_flow(flow_up, (h, w), mode="bilinear")
