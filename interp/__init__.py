"""Frame interpolation models M for the frame-interpolation loss L_fic (paper Eq. 16) and for frame-rate doubling.

``interp.load(name_or_path)`` returns a frozen, differentiable module ``M(img0, img1, t=0.5) -> (B, 3, H, W)``:
``"classical"`` / ``"classical-dis"`` / ``"classical-farneback"`` need no weights; a path loads a RIFE IFNet
(public ``flownet.pkl`` or ours) or an AnimeInterp checkpoint, detected from its keys; a bundled model name goes
through :mod:`vidanime.registry`.  Parameters have ``requires_grad=False``; gradients flow to the inputs.
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["load", "freeze", "CLASSICAL_NAMES"]

CLASSICAL_NAMES = {"classical": "dis", "classical-dis": "dis", "classical-farneback": "farneback"}


def freeze(model: Any) -> Any:
    """Eval mode, ``requires_grad=False`` on all parameters; returns the model."""
    from .base import freeze as _freeze

    return _freeze(model)


def load(name_or_path: str | os.PathLike, device: Any = "cpu", kind: str | None = None,
         vgg19: str | os.PathLike | None = None, use_sgm: bool = True) -> Any:
    """A frozen interpolator on ``device`` from a name (``classical*`` or a bundled model) or a checkpoint path.

    ``kind`` ("ifnet" / "animeinterp") insists on one model: a checkpoint of the other raises CheckpointError.
    """
    from vidanime.errors import CheckpointError

    from .base import freeze as _freeze

    name = str(name_or_path)
    if name in CLASSICAL_NAMES:
        from .classical import ClassicalInterpolator

        return _freeze(ClassicalInterpolator(CLASSICAL_NAMES[name]).to(device))
    if kind not in (None, "ifnet", "animeinterp"):
        raise CheckpointError(f"unknown interpolator kind {kind!r}, expected 'ifnet' or 'animeinterp'")
    from vidanime.registry import resolve_path

    from .loaders import load_animeinterp, load_ifnet, read_interp_checkpoint

    try:
        path = resolve_path(name_or_path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; interpolators without weights: {', '.join(CLASSICAL_NAMES)}") from None
    layout = kind or read_interp_checkpoint(path)[0]
    model = load_ifnet(path) if layout == "ifnet" else load_animeinterp(path, use_sgm=use_sgm, vgg19=vgg19)
    return _freeze(model.to(device))
