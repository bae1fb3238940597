"""Importers for the official StyleAnime ``.pt`` and for the generator inside pSp / e4e checkpoints.

Official StyleAnime layout (DESIGN.md): ``{"state_dict": {encoder.encoder_1.* (parsing encoder E_p),
encoder.encoder_2.* (image encoder E_s), decoder.* (rosinality Generator)}, "latent_avg": ..., "opts": {...}}``.
Our :class:`~vidanime.models.styleanime.StyleAnime` uses the same parameter names, so after inferring the architecture
from the tensor shapes the import is a strict ``load_state_dict`` (plus ``latent_avg``, which the official file keeps
beside the state dict).  pSp / e4e files share the ``decoder.*`` + ``latent_avg`` layout; :func:`generator_from_psp`
takes their generator.

Everything is read with ``weights_only=True``; a file of another layout raises a one-line
:class:`~vidanime.errors.CheckpointError` saying what was found and what was expected.
"""
from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "infer_generator_config",
    "infer_encoder_config",
    "official_config",
    "styleanime_from_official",
    "generator_from_psp",
    "import_official_styleanime",
    "to_official_layout",
]

_P1, _P2, _PD = "encoder.encoder_1.", "encoder.encoder_2.", "decoder."
_EXPECTED = (
    "an official StyleAnime .pt: {'state_dict': {encoder.encoder_1.*, encoder.encoder_2.*, decoder.*}, "
    "'latent_avg', 'opts'}"
)


def _read(src: str | os.PathLike | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    if isinstance(src, Mapping):
        return src, "checkpoint"
    from ..checkpoint import read_torch_file

    return read_torch_file(src), str(src)


def _describe(data: Any) -> str:
    """A few words naming the layout of a foreign checkpoint, for error messages."""
    if not isinstance(data, Mapping):
        return f"a {type(data).__name__}"
    if "format" in data:
        return f"a vidanime '{data['format']}' checkpoint"
    if "g_ema" in data:
        return "a rosinality StyleGAN2 checkpoint (g_ema)"
    sd = data.get("state_dict")
    if isinstance(sd, Mapping):
        if any(k.startswith(_P1) for k in sd):
            return "an official StyleAnime checkpoint"
        if any(k.startswith("encoder.") for k in sd) and any(k.startswith(_PD) for k in sd):
            return "a pSp/e4e checkpoint (encoder.* + decoder.*)"
        return f"a state_dict with keys like {sorted(sd)[:3]}"
    if "model_state_dict" in data:
        return "a checkpoint with 'model_state_dict' (an AnimeInterp/other model?)"
    return f"a dict with keys {sorted(map(str, data))[:6]}"


def _sub(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def infer_generator_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """StyleGAN2Config from a rosinality generator state dict (no prefix): size, style_dim, n_mlp, widths."""
    from ..models.stylegan2 import StyleGAN2Config, channel_table

    try:
        style_dim = int(sd["style.1.weight"].shape[1])
        n_mlp = _count(sd, r"style\.(\d+)\.weight")
        n_convs = _count(sd, r"convs\.(\d+)\.conv\.weight")
        widths = {4: int(sd["conv1.conv.weight"].shape[1])}
        for i in range(0, n_convs, 2):
            widths[2 ** (i // 2 + 3)] = int(sd[f"convs.{i}.conv.weight"].shape[1])
        blur = len(sd["convs.0.conv.blur.kernel"]) if "convs.0.conv.blur.kernel" in sd else 4
    except KeyError as exc:
        raise CheckpointError(f"{source}: generator weights lack {exc.args[0]!r} "
                              "(expected rosinality key names)") from None
    size = 2 ** (n_convs // 2 + 2)
    for cm in (2, 1, 4, 8):
        for cmax in sorted({max(512, 256 * cm), max(widths.values())}, reverse=True):
            table = channel_table(cm, cmax)
            if all(table[r] == w for r, w in widths.items()):
                kernel = (1, 3, 3, 1) if blur == 4 else (1,) * blur
                return StyleGAN2Config(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm,
                                       channel_max=cmax, blur_kernel=kernel)
    raise CheckpointError(f"{source}: generator widths {widths} match no StyleGAN2 channel table")


def infer_encoder_config(sd: Mapping[str, torch.Tensor], source: str = "encoder"):
    """(EncoderConfig, in_channels, head conv counts) from a pSp GradualStyleEncoder state dict (no prefix)."""
    from ..models.encoders import EncoderConfig

    n_units = _count(sd, r"body\.(\d+)\.res_layer\.1\.weight")
    if n_units == 0 or "input_layer.0.weight" not in sd:
        raise CheckpointError(f"{source}: no pSp encoder weights (expected input_layer.0.weight, body.N.res_layer.*)")
    depths = [int(sd[f"body.{i}.res_layer.1.weight"].shape[0]) for i in range(n_units)]
    units, widths = [], []
    for d in depths:
        if widths and widths[-1] == d:
            units[-1] += 1
        else:
            widths.append(d)
            units.append(1)
    if len(units) != 4:
        raise CheckpointError(f"{source}: backbone widths {depths} do not form 4 blocks of increasing width")
    se = "body.0.res_layer.5.fc1.weight" in sd
    reduction = depths[0] // int(sd["body.0.res_layer.5.fc1.weight"].shape[0]) if se else 16
    n_styles = _count(sd, r"styles\.(\d+)\.linear\.weight")
    heads = [_count(sd, rf"styles\.{j}\.convs\.(\d+)\.weight") for j in range(n_styles)]
    head_width = None  # pSp: the heads' convs are as wide as the style dimension
    if n_styles and "styles.0.convs.0.weight" in sd:
        conv_w, out_c = int(sd["styles.0.convs.0.weight"].shape[0]), int(sd["styles.0.linear.weight"].shape[0])
        head_width = None if conv_w == out_c else conv_w
    config = EncoderConfig(units=tuple(units), widths=tuple(widths), mode="ir_se" if se else "ir",
                           se_reduction=reduction, head_width=head_width)
    return config, int(sd["input_layer.0.weight"].shape[1]), heads


def official_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """StyleAnimeConfig matching an official-layout state dict (label set from E_p's input channels: 19 → bisenet)."""
    from ..models.styleanime import StyleAnimeConfig

    gen = infer_generator_config(_sub(sd, _PD), source)
    enc1, c_in, heads1 = infer_encoder_config(_sub(sd, _P1), f"{source} (encoder.encoder_1)")
    enc2, rgb, heads2 = infer_encoder_config(_sub(sd, _P2), f"{source} (encoder.encoder_2)")
    label_set = {19: "bisenet", 17: "danbooru"}.get(c_in)
    if label_set is None:
        raise CheckpointError(
            f"{source}: parsing encoder takes {c_in} channels, expected 19 (BiSeNet order) or 17 (Danbooru)"
        )
    if rgb != 3:
        raise CheckpointError(f"{source}: image encoder takes {rgb} channels, expected 3 (RGB)")
    if enc1 != enc2:
        raise CheckpointError(f"{source}: parsing and image encoders have different backbones ({enc1} vs {enc2})")
    image_size = 4 * 2 ** heads2[0] if heads2 else gen.size  # fine heads: log2(S/4) convs
    coarse_convs = max(1, int(math.log2(max(image_size // 16, 1))))
    medium_convs = max(1, int(math.log2(image_size // 8)))
    n_coarse = sum(1 for h in heads1 if h == coarse_convs) if coarse_convs != medium_convs else None
    n_latent = gen.n_latent
    if len(heads1) + len(heads2) != n_latent:
        raise CheckpointError(
            f"{source}: encoders predict {len(heads1)} + {len(heads2)} codes, "
            f"expected {n_latent} W+ codes for a {gen.size}-px generator"
        )
    return StyleAnimeConfig(generator=gen, encoder=enc1, label_set=label_set, image_size=image_size,
                            n_structure_codes=len(heads1), n_coarse_codes=n_coarse)


def styleanime_from_official(
    src: str | os.PathLike | Mapping[str, Any],
    source: str | None = None,
    latent_avg: torch.Tensor | None = None,
):
    """Official StyleAnime ``.pt`` (path or loaded dict) → :class:`StyleAnime` in eval mode, via a strict load."""
    from ..checkpoint import check_state_dict
    from ..models.styleanime import StyleAnime

    data, name = _read(src)
    source = source or name
    sd = data.get("state_dict") if isinstance(data, Mapping) else None
    if not isinstance(sd, Mapping) or not any(k.startswith(_P1) for k in sd):
        raise CheckpointError(f"{source} is {_describe(data)}, expected {_EXPECTED}")
    for prefix in (_P2, _PD):
        if not any(k.startswith(prefix) for k in sd):
            raise CheckpointError(f"{source}: state_dict has no '{prefix}*' keys, expected {_EXPECTED}")
    model = StyleAnime(official_config(sd, source))
    la = latent_avg if latent_avg is not None else data.get("latent_avg")
    if la is None:
        raise CheckpointError(
            f"{source} has no 'latent_avg' (the official code reads it from latent_avg.pt); pass latent_avg="
        )
    model.set_latent_avg(la)
    state = dict(sd)
    state["latent_avg"] = model.latent_avg.clone()
    check_state_dict(model, state, source=f"{source} (official StyleAnime)")
    logger.info("imported official StyleAnime from %s (%d-px generator, %s labels)", source,
                model.config.generator.size, model.config.label_set)
    return model.eval()


def to_official_layout(model, opts: Mapping[str, Any] | None = None, latent_avg_shape: str = "w") -> dict:
    """Our StyleAnime → a dict in the official file layout (for exchange and for tests of the importer).

    ``latent_avg_shape`` "w" stores (style_dim,) (the official/pSp habit; valid when all layers share one code),
    "w+" stores (1, n_latent, style_dim).
    """
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items() if k != "latent_avg"}
    la = model.latent_avg.detach().cpu()
    la = la[0].clone() if latent_avg_shape == "w" else la[None].clone()
    return {"state_dict": sd, "latent_avg": la, "opts": dict(opts or {"label_nc": model.config.n_classes})}


def generator_from_psp(src: str | os.PathLike | Mapping[str, Any], source: str | None = None):
    """The generator of a pSp / e4e / official StyleAnime checkpoint → (Generator, latent_avg or None).

    ``latent_avg`` is returned as stored; when it is one W code ((D,) or (1, D)) it is also set on the generator.
    """
    from ..checkpoint import check_state_dict
    from ..models.stylegan2 import Generator

    data, name = _read(src)
    source = source or name
    sd = data.get("state_dict") if isinstance(data, Mapping) else None
    if not isinstance(sd, Mapping) or not any(k.startswith(_PD) for k in sd):
        raise CheckpointError(
            f"{source} is {_describe(data)}, expected a pSp/e4e checkpoint: "
            "{'state_dict': {encoder.*, decoder.*}, 'latent_avg', 'opts'}"
        )
    gsd = _sub(sd, _PD)
    generator = Generator(infer_generator_config(gsd, source))
    check_state_dict(generator, gsd, source=f"{source} (decoder)")
    la = data.get("latent_avg")
    if isinstance(la, torch.Tensor) and la.numel() == generator.style_dim:
        generator.set_latent_avg(la.reshape(-1))
    return generator.eval(), la


def import_official_styleanime(
    src: str | os.PathLike, dst: str | os.PathLike, facebank: str | os.PathLike | None = None
) -> Path:
    """Convert an official StyleAnime ``.pt`` (and optionally a FaceBank file) into our ``vidanime.styleanime`` file."""
    from ..fileio import check_not_same_file
    from ..models.facebank import FaceBank
    from ..models.styleanime import save_styleanime

    check_not_same_file(src, dst)
    model = styleanime_from_official(src)
    bank = FaceBank.load(facebank) if facebank is not None else None
    return save_styleanime(dst, model, facebank=bank, imported_from=Path(src).name)
