"""Import rosinality stylegan2-pytorch checkpoints (``.pt``) into our StyleGAN2 modules.

Two layouts are read: a training checkpoint ``{g, d, g_ema, g_optim, d_optim, args}`` and a converted/exported one
``{g_ema, latent_avg}``.  The generator comes from ``g_ema`` (the EMA weights; ``g`` is ignored), the discriminator from
``d`` when present.  The architecture (size, style_dim, n_mlp, channel widths) is inferred from the key names and
shapes; because our parameter names are rosinality's, the weights then load with a plain strict ``load_state_dict``.
The file is read with ``weights_only=True``; the only non-tensor object allowed is ``argparse.Namespace`` (``args``).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoint import check_state_dict, read_torch_file
from ..errors import CheckpointError, ConfigError
from ..models.stylegan2 import (
    SIZES,
    Discriminator,
    Generator,
    StyleGAN2Config,
    channel_table,
    generator_from_weights,
    save_generator,
)

logger = logging.getLogger(__name__)

__all__ = ["RosinalityImport", "import_rosinality", "rosinality_from_data", "infer_config", "convert_rosinality"]

_LAYOUT_KEYS = ("g", "d", "g_ema", "g_optim", "d_optim", "args", "latent_avg")
_CM_CANDIDATES = (2, 1, 4, 3) + tuple(range(5, 33))


@dataclass
class RosinalityImport:
    """What a rosinality checkpoint holds, as our modules: the EMA generator, optional discriminator and latent_avg."""

    generator: Generator
    discriminator: Discriminator | None
    latent_avg: torch.Tensor | None  # (1, style_dim) or None
    config: StyleGAN2Config
    args: dict[str, Any] | None = None  # the training ``args`` Namespace as a dict, when present


def _shape(sd: Mapping[str, Any], key: str, source: str) -> tuple[int, ...]:
    value = sd.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{source}: missing tensor '{key}', expected a rosinality StyleGAN2 generator")
    return tuple(value.shape)


def infer_config(g_state: Mapping[str, Any], source: str = "g_ema",
                 channel_multiplier: int | None = None) -> StyleGAN2Config:
    """Infer a :class:`StyleGAN2Config` from a rosinality generator state dict (keys and shapes only).

    size from the number of ``noises.noise_*`` buffers, style_dim and n_mlp from ``style.*.weight``, widths from
    ``input.input`` and ``convs.*.conv.weight``; channel_multiplier/channel_max are the first pair that reproduces
    every width (``channel_multiplier`` hint first, then 2), lr_mlp and blur kernel are rosinality's defaults.
    """
    style_ids = sorted(int(m.group(1)) for k in g_state if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not style_ids:
        found = sorted(g_state)[:6]
        raise CheckpointError(f"{source}: no mapping weights 'style.1.weight'…, "
                              f"not a rosinality generator (found {found})")
    if style_ids != list(range(1, len(style_ids) + 1)):
        raise CheckpointError(f"{source}: mapping layers style.{style_ids} are not numbered 1…n")
    n_mlp = len(style_ids)
    w_shape = _shape(g_state, "style.1.weight", source)
    if len(w_shape) != 2 or w_shape[0] != w_shape[1]:
        raise CheckpointError(f"{source}: style.1.weight has shape {list(w_shape)}, expected [style_dim, style_dim]")
    style_dim = w_shape[0]

    num_layers = sum(1 for k in g_state if re.fullmatch(r"noises\.noise_\d+", k))
    log_size = (num_layers - 1) // 2 + 2
    size = 2**log_size
    if num_layers < 1 or num_layers % 2 == 0 or size not in SIZES:
        raise CheckpointError(
            f"{source}: {num_layers} noise buffers (noises.noise_*) give no supported size; expected 2·log2(size)−3 "
            f"buffers for size in {list(SIZES)} (7 at 32 px, 13 at 256 px)"
        )

    widths = {4: _shape(g_state, "input.input", source)[1]}
    for i in range(3, log_size + 1):
        widths[2**i] = _shape(g_state, f"convs.{2 * (i - 3)}.conv.weight", source)[1]
    channel_max = max(widths.values())
    candidates = ((channel_multiplier,) if channel_multiplier else ()) + _CM_CANDIDATES
    for cm in candidates:
        table = channel_table(cm, channel_max)
        if all(table[res] == width for res, width in widths.items()):
            break
    else:
        raise CheckpointError(f"{source}: channel widths {widths} match no channel_multiplier of rosinality's table")
    try:
        return StyleGAN2Config(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm,
                               channel_max=channel_max)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def _namespace_dict(args: Any) -> dict[str, Any] | None:
    if args is None:
        return None
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if isinstance(args, Mapping):
        return dict(args)
    return None


def import_rosinality(
    path: str | os.PathLike,
    size: int | None = None,
    load_discriminator: bool = True,
) -> RosinalityImport:
    """Read a rosinality ``.pt`` file: generator from ``g_ema``, discriminator from ``d`` (if present), latent_avg.

    ``size``: when given, a checkpoint of another resolution is a :class:`CheckpointError`.  Every problem (missing,
    truncated or foreign file, missing/unexpected/misshaped keys) is a one-line :class:`CheckpointError`.
    """
    path = Path(path)
    data = read_torch_file(path, allow_namespaces=True)
    return rosinality_from_data(data, str(path), size=size, load_discriminator=load_discriminator)


def rosinality_from_data(data: Any, source: str = "checkpoint", size: int | None = None,
                         load_discriminator: bool = True) -> RosinalityImport:
    """:func:`import_rosinality` on a file's contents already read (``source`` names it in errors)."""
    if not isinstance(data, Mapping) or "g_ema" not in data:
        found = sorted(map(str, data))[:8] if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(
            f"{source} is not a rosinality StyleGAN2 checkpoint: expected keys {{g, d, g_ema, g_optim, d_optim, args}} "
            f"or {{g_ema, latent_avg}}, found {found}"
        )
    g_state = data["g_ema"]
    if not isinstance(g_state, Mapping):
        raise CheckpointError(f"{source}: 'g_ema' is a {type(g_state).__name__}, expected a state dict of tensors")
    args = _namespace_dict(data.get("args"))
    cm_hint = args.get("channel_multiplier") if args else None
    config = infer_config(g_state, source=f"{source} g_ema",
                          channel_multiplier=cm_hint if isinstance(cm_hint, int) else None)
    if size is not None and config.size != size:
        raise CheckpointError(f"{source} holds a {config.size} px generator, expected {size} px")

    generator = generator_from_weights(config, g_state, data.get("latent_avg"), source=f"{source} g_ema")
    latent_avg = generator.latent_avg if data.get("latent_avg") is not None else None

    discriminator = None
    if load_discriminator and data.get("d") is not None:
        d_state = data["d"]
        if not isinstance(d_state, Mapping):
            raise CheckpointError(f"{source}: 'd' is a {type(d_state).__name__}, expected a state dict of tensors")
        discriminator = Discriminator(config)
        check_state_dict(discriminator, d_state, source=f"{source} d")
        discriminator.eval()

    logger.info(
        "imported rosinality StyleGAN2 %d px (style_dim %d, n_mlp %d, cm %d) from %s%s",
        config.size, config.style_dim, config.n_mlp, config.channel_multiplier, source,
        " with discriminator" if discriminator is not None else "",
    )
    return RosinalityImport(
        generator=generator.eval(), discriminator=discriminator, latent_avg=latent_avg, config=config, args=args
    )


def convert_rosinality(path: str | os.PathLike, out_path: str | os.PathLike, size: int | None = None) -> Path:
    """Convert a rosinality checkpoint to our ``"vidanime.stylegan2"`` generator checkpoint (atomic write)."""
    path, out_path = Path(path), Path(out_path)
    if out_path.exists() and path.exists() and out_path.resolve() == path.resolve():
        raise CheckpointError(f"output {out_path} is the input checkpoint; choose another output path")
    imported = import_rosinality(path, size=size, load_discriminator=False)
    save_generator(out_path, imported.generator, source=str(path.name))
    return out_path
