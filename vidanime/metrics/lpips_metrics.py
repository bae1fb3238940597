"""LPIPS without downloads (:func:`load_lpips`, reused by the LPIPS loss) and the paper's LPIPS-s / LPIPS-d (§5.3).

The ``lpips`` wheel ships its linear layers (``lpips/weights/v0.1/<net>.pth``) but builds its backbone with
torchvision's ``alexnet(pretrained=True)``, which downloads ImageNet weights.  :func:`load_lpips` instead builds the
backbone empty (``pnet_rand=True``), loads the wheel's linear layers strictly, and loads the backbone from a file the
user brings: torchvision's ImageNet state dict (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``,
``squeezenet1_1-b8a52dc0.pth``; keys ``features.<i>.*``, the classifier is ignored) or one already in LPIPS layout
(``net.slice<k>.<i>.*`` / ``slice<k>.<i>.*``).  ``backbone_path="random"`` keeps random backbone weights — for tests
only; the numbers are then meaningless and a warning says so.

* LPIPS-s (lower = more semantically consistent): mean LPIPS between each source image and its translation.
* LPIPS-d (higher = more diverse): mean LPIPS between two different outputs drawn at random (seeded pairs).
Images are compared at ``size``² (256 by default, the paper's resolution), RGB scaled to [−1, 1].
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, VidanimeError

logger = logging.getLogger(__name__)

__all__ = ["LPIPS_BACKBONE_ENV", "LPIPS_LIN_ENV", "BACKBONE_FILES", "load_lpips", "lpips_pairs", "lpips_s", "lpips_d",
           "to_lpips_input"]

LPIPS_BACKBONE_ENV = "VIDANIME_LPIPS_BACKBONE"
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                  "squeeze": "squeezenet1_1-b8a52dc0.pth"}
_SLICE_KEY = re.compile(r"^slice\d+\.(\d+)\.(.+)$")


LPIPS_LIN_ENV = "VIDANIME_LPIPS_LIN"


def _lin_weights_path(net: str, version: str) -> Path:
    """The lpips package's linear-layer weights, or ``$VIDANIME_LPIPS_LIN`` where the package is not installed."""
    env = os.environ.get(LPIPS_LIN_ENV)
    if env:
        return Path(env)
    try:
        import lpips
    except ImportError:
        raise VidanimeError(f"LPIPS needs the lpips package's linear weights (weights/v{version}/{net}.pth): "
                            f"pip install lpips, or set {LPIPS_LIN_ENV} to that file") from None
    return Path(lpips.__file__).resolve().parent / "weights" / f"v{version}" / f"{net}.pth"


def _lpips_module(net: str, version: str) -> torch.nn.Module:
    """``lpips.LPIPS`` with random trunk and lin weights, or, without the package, the same network in pure PyTorch
    (:class:`vidanime.metrics.lpips_net.AlexLPIPS`; AlexNet v0.1 only)."""
    try:
        import lpips
    except ImportError:
        if net != "alex" or version != "0.1":
            raise VidanimeError(f"LPIPS '{net}' v{version} needs the lpips package: pip install lpips") from None
        from .lpips_net import AlexLPIPS

        return AlexLPIPS()
    with warnings.catch_warnings():  # torchvision's 'pretrained=False is deprecated' notice
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(pretrained=False, net=net, version=version, pnet_rand=True, verbose=False)


def _backbone_state(raw: Any, target_keys: Sequence[str], source: str) -> dict[str, torch.Tensor]:
    """Map a torchvision (``features.<i>.*``) or LPIPS-layout (``[net.]slice<k>.<i>.*``) state dict onto the
    backbone."""
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source} holds a {type(raw).__name__}, expected a backbone state dict")
    raw = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in raw.items()}
    if any(k.startswith("net.slice") for k in raw):
        raw = {k[len("net."):]: v for k, v in raw.items() if k.startswith("net.")}
    if any(k.startswith("slice") for k in raw):
        return {k: v for k, v in raw.items() if k.startswith("slice")}
    out = {}
    for key in target_keys:
        m = _SLICE_KEY.match(key)
        if m is None:
            continue
        src = f"features.{m.group(1)}.{m.group(2)}"
        if src in raw:
            out[key] = raw[src]
    if not out:
        raise CheckpointError(
            f"{source} has no backbone keys (expected torchvision 'features.<i>.*' or LPIPS 'slice<k>.<i>.*'; found "
            f"{sorted(raw)[:4]})"
        )
    return out


def load_lpips(net: str = "alex", backbone_path: str | os.PathLike | None = None, device: Any = "cpu",
               version: str = "0.1") -> torch.nn.Module:
    """An ``lpips.LPIPS`` module in eval mode, frozen, with nothing downloaded.

    ``backbone_path``: torchvision ImageNet weights of ``net`` (see the module doc), ``None`` to use
    ``$VIDANIME_LPIPS_BACKBONE``, or ``"random"`` (tests only).  Call it as ``model(x, y)`` with (B, 3, H, W) in
    [−1, 1] → (B, 1, 1, 1) distances; gradients flow to the inputs (the LPIPS loss uses that).
    """
    from ..checkpoint import check_state_dict, read_torch_file

    if net not in BACKBONE_FILES:
        raise VidanimeError(f"unknown LPIPS network '{net}' (expected one of: {', '.join(BACKBONE_FILES)})")
    backbone_path = backbone_path if backbone_path is not None else os.environ.get(LPIPS_BACKBONE_ENV)
    if not backbone_path:
        raise CheckpointError(
            f"LPIPS needs the ImageNet weights of its {net} backbone ({BACKBONE_FILES[net]}, torchvision's file), "
            f"which vidanime cannot download: pass its path (--lpips-backbone PATH) or set {LPIPS_BACKBONE_ENV}"
        )
    model = _lpips_module(net, version)
    lin_path = _lin_weights_path(net, version)
    lin_sd = read_torch_file(lin_path)
    lin_modules = torch.nn.ModuleDict({name: getattr(model, name) for name in dict(model.named_children())
                                       if name.startswith("lin") and name != "lins"})
    check_state_dict(lin_modules, lin_sd, source=str(lin_path))
    if str(backbone_path) == "random":
        # what the bundled models trained with (no ImageNet weights can be downloaded): fine as a training loss, but
        # as a metric its values are not comparable with published LPIPS numbers
        logger.warning("LPIPS with a RANDOM %s trunk (no ImageNet weights given): a usable training loss, but not "
                       "comparable with published LPIPS values; --lpips-backbone PATH gives the real one", net)
    else:
        path = Path(backbone_path)
        state = _backbone_state(read_torch_file(path), list(model.net.state_dict()), str(path))
        check_state_dict(model.net, state, source=str(path))
        logger.info("LPIPS %s backbone loaded from %s", net, path)
    model.requires_grad_(False)
    return model.to(device).eval()


def to_lpips_input(images: Any, size: int | None = 256) -> torch.Tensor:
    """(B, H, W, 3) uint8 (array/tensor) or (B, 3, H, W) float in [0, 1] → (B, 3, size, size) float in [−1, 1]."""
    t = images if torch.is_tensor(images) else torch.as_tensor(np.ascontiguousarray(images))
    if t.dtype == torch.uint8:
        if t.dim() != 4 or t.shape[-1] != 3:
            raise VidanimeError(f"uint8 image batches must be (B, H, W, 3), got shape {tuple(t.shape)}")
        t = t.permute(0, 3, 1, 2).float().div(255.0)
    elif t.dim() != 4 or t.shape[1] != 3:
        raise VidanimeError(f"float image batches must be (B, 3, H, W) in [0, 1], got shape {tuple(t.shape)}")
    t = t.float()
    if size is not None and tuple(t.shape[-2:]) != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t * 2 - 1


@torch.no_grad()
def lpips_pairs(model: torch.nn.Module, a: Any, b: Any, size: int | None = 256, batch_size: int = 16) -> np.ndarray:
    """LPIPS distance of each pair (a[i], b[i]) of two equally long image batches → (N,) float64."""
    if len(a) != len(b):
        raise VidanimeError(f"LPIPS pairs need equally many images, got {len(a)} and {len(b)}")
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(a), batch_size):
        x = to_lpips_input(a[s : s + batch_size], size).to(device)
        y = to_lpips_input(b[s : s + batch_size], size).to(device)
        out.append(model(x, y).flatten().double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def lpips_s(model: torch.nn.Module, pairs: Iterable[tuple[Any, Any]], size: int | None = 256) -> float:
    """LPIPS-s: mean LPIPS over (source batch, output batch) pairs of (B, H, W, 3) uint8 arrays (lower = better)."""
    values = [lpips_pairs(model, src, out, size) for src, out in pairs]
    if not values:
        raise VidanimeError("LPIPS-s needs at least one (source, output) pair")
    return float(np.concatenate(values).mean())


def random_pairs(n: int, n_pairs: int, seed: int = 0) -> np.ndarray:
    """(n_pairs, 2) index pairs (i, j), i ≠ j, drawn uniformly from range(n) with a seeded generator."""
    if n < 2:
        raise VidanimeError(f"LPIPS-d needs at least 2 outputs, got {n}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # uniform over the other n − 1 images
    return np.stack([i, j], 1)


def lpips_d(model: torch.nn.Module, load: Callable[[Sequence[int]], Any], n: int, n_pairs: int = 1000,
            seed: int = 0, size: int | None = 256, batch_size: int = 16) -> float:
    """LPIPS-d: mean LPIPS between two different outputs picked at random, ``n_pairs`` seeded pairs (higher = better).

    ``load(indices)`` returns the outputs with those indices as a (B, H, W, 3) uint8 batch, so large sets need not
    be held in memory.
    """
    pairs = random_pairs(n, n_pairs, seed)
    values = []
    for s in range(0, len(pairs), batch_size):
        chunk = pairs[s : s + batch_size]
        values.append(lpips_pairs(model, load(chunk[:, 0].tolist()), load(chunk[:, 1].tolist()), size, batch_size))
    return float(np.concatenate(values).mean())
