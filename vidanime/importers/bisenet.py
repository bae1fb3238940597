"""Import face-parsing.PyTorch's public BiSeNet checkpoint (``79999_iter.pth``: a plain 19-class state dict).

The file holds ``cp.resnet.*`` (ResNet18), ``cp.arm16/arm32/conv_head16/conv_head32/conv_avg.*``, ``ffm.*``,
``conv_out.*``, ``conv_out16.*``, ``conv_out32.*`` — no spatial path — with BatchNorm ``num_batches_tracked`` buffers
and sometimes a DataParallel ``module.`` prefix.  Its classes are in BiSeNet order (19,
:data:`vidanime.labels.BISENET`); its inputs were 512² ImageNet-normalised RGB, which our model does internally.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = ["convert_bisenet_state_dict", "import_bisenet", "bisenet_config"]


def bisenet_config(image_size: int = 512) -> Any:
    """The :class:`~vidanime.models.parser.ParserConfig` of the public checkpoint."""
    from ..models.parser import ParserConfig

    return ParserConfig(arch="bisenet", label_set="bisenet", width=1.0, blocks=[2, 2, 2, 2], spatial_path=False,
                        image_size=image_size)


def convert_bisenet_state_dict(sd: Mapping[str, Any], source: str = "BiSeNet checkpoint") -> dict[str, Any]:
    """Strip ``module.`` prefixes and check it is the face-parsing layout; returns a state dict for our BiSeNet."""
    if not isinstance(sd, Mapping) or not sd:
        raise CheckpointError(f"{source}: expected a state dict (name → tensor), got {type(sd).__name__}")
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):  # some re-saves wrap it
        sd = sd["state_dict"]
    out = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    if not any(k.startswith("cp.resnet.") for k in out):
        raise CheckpointError(
            f"{source} is not a face-parsing.PyTorch BiSeNet state dict (no 'cp.resnet.*' keys; found e.g. "
            f"{', '.join(sorted(out)[:3])})"
        )
    w = out.get("conv_out.conv_out.weight")
    if w is None or getattr(w, "ndim", 0) != 4:
        raise CheckpointError(f"{source}: missing 'conv_out.conv_out.weight' (the classifier)")
    if w.shape[0] != 19:
        raise CheckpointError(f"{source}: classifier has {w.shape[0]} classes, expected 19 (BiSeNet face order)")
    return out


def import_bisenet(path: str | os.PathLike, image_size: int = 512) -> Any:
    """Read ``79999_iter.pth`` (weights_only) into our :class:`~vidanime.models.parser.BiSeNet`, eval mode.

    Save it in vidanime's format with ``save_checkpoint(out, format="vidanime.parser", config=config_of(model),
    state_dict=model.state_dict())``.
    """
    from ..checkpoint import check_state_dict, read_torch_file
    from ..models.parser import build_parser

    path = Path(path)
    sd = convert_bisenet_state_dict(read_torch_file(path), source=str(path))
    model = build_parser(bisenet_config(image_size))
    check_state_dict(model, sd, source=str(path))
    logger.info("imported BiSeNet face parser from %s (%d tensors)", path, len(sd))
    return model.eval()
