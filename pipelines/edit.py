"""Parsing-based editing (paper §6.1) and appearance editing: re-render an image with an edited parsing map (structure)
and its own appearance codes, optionally mixed with another image's; PTI generator tuning for real inputs from the
generator's own domain; how local the edit stayed.

``EditPipeline(model)(image, parsing, output, source_parsing=...)`` → :class:`EditResult`.  ``parsing`` is the edited
label PNG; ``source_parsing`` (a label PNG, or the ``parser`` module's labels of the image) is the unedited map: it
is needed for PTI (the pivot is E(image, source map)), for the locality numbers (L2 and, with an LPIPS backbone,
spatial LPIPS inside vs outside the changed labels) and for ``blend`` (paste the edit over the unedited render with a
feathered mask ``blend`` px wide, so nothing outside the edited region changes).  The loaded model is never modified:
PTI tunes a copy of the generator.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.base import Pipeline
from pipelines.parse import ParsePipeline
from vidanime import labels as label_sets
from vidanime.errors import MediaError, VidanimeError
from vidanime.fileio import check_input_file, check_not_same_file, check_output_path
from vidanime.losses.reconstruction import LPIPSLoss
from vidanime.metrics.lpips_metrics import LPIPS_BACKBONE_ENV
from vidanime.models.editing import changed_region, edit_latents, edit_locality, feather, pti_tune, render
from vidanime.models.styleanime import StyleAnime
from vidanime.registry import load_model, load_styleanime, resolve_path

from .image_translate import IMAGE_SUFFIXES, _to_tensor, _to_uint8, read_labels, read_rgb, write_rgb

__all__ = ["EditPipeline", "EditResult"]

_NEEDS_SOURCE = "--pti and --blend need the unedited parsing: pass --source-parsing MAP or --parser CKPT"

log = logging.getLogger(__name__)


@dataclass
class EditResult:
    """``image`` (S, S, 3) uint8 the edit as written; ``unedited`` the same render with the source map (None without
    one); ``locality`` of the model's edit (see :func:`vidanime.models.editing.edit_locality`), ``locality_blended``
    after ``blend``; ``pti_losses`` one value per PTI step."""

    output: Path | None
    image: np.ndarray
    unedited: np.ndarray | None = None
    locality: dict[str, Any] | None = None
    locality_blended: dict[str, Any] | None = None
    pti_losses: list[float] = field(default_factory=list)


@dataclass
class EditPipeline(Pipeline):
    """StyleAnime parsing/appearance editing.  ``parser`` (optional) labels the input when no source map is given;
    ``lpips_backbone``: LPIPS backbone weights for PTI and the LPIPS locality numbers (see
    :func:`vidanime.metrics.lpips_metrics.load_lpips`; None = ``$VIDANIME_LPIPS_BACKBONE`` if set)."""

    model: StyleAnime
    parser: torch.nn.Module | None = None
    device: str = "cpu"
    lpips_backbone: str | None = None
    lpips_net: str = "alex"
    pti_lr: float = 3e-4
    progress: bool = True

    def __post_init__(self) -> None:
        self.model = self.model.to(self.device).eval()
        self._lpips: torch.nn.Module | None = None

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike, parser: str | os.PathLike | None = None,
                        device: str = "cpu", **kwargs: Any) -> "EditPipeline":
        """Load a StyleAnime checkpoint (registry name or path; ours or the official .pt) and optionally a parser."""
        model = load_styleanime(resolve_path(checkpoint), device=device)
        net = load_model(parser, device=device, format="vidanime.parser") if parser is not None else None
        return cls(model, parser=net, device=device, **kwargs)

    def _lpips_loss(self, required: bool) -> torch.nn.Module | None:
        if self._lpips is None and (required or self.lpips_backbone or os.environ.get(LPIPS_BACKBONE_ENV)):
            self._lpips = LPIPSLoss(self.lpips_net, self.lpips_backbone, device=self.device)
        return self._lpips

    # ---- arrays --------------------------------------------------------------------------------------------------
    def _labels(self, labels: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
        s = self.model.image_size
        t = torch.as_tensor(np.asarray(labels)).long()
        if t.shape != (s, s):
            raise MediaError(f"{what} has shape {tuple(t.shape)}: expected ({s}, {s}) labels")
        return t[None].to(self.device)

    @torch.no_grad()
    def edit_array(self, image: np.ndarray, parsing: np.ndarray, source_parsing: np.ndarray | None = None,
                   style: np.ndarray | None = None, mix: float = 1.0, pti: int = 0,
                   blend: int | None = None) -> EditResult:
        """(S, S, 3) uint8 image, edited (S, S) labels and optionally the source labels / a style image (S, S, 3) →
        :class:`EditResult` (``output`` None).  Labels are in the model's label set."""
        if pti < 0 or blend is not None and blend < 0:
            raise VidanimeError(f"pti={pti}, blend={blend}: expected a number of steps >= 0 and a margin >= 0 px")
        if source_parsing is None and (pti > 0 or blend is not None):
            raise VidanimeError(_NEEDS_SOURCE)
        model = self.model
        if blend is not None and blend > model.image_size:  # the feathering kernel would outgrow memory, not the image
            raise VidanimeError(f"blend={blend} px: expected a margin of at most the image side, "
                                f"{model.image_size} px")
        x = _to_tensor(np.asarray(image)).to(self.device)
        edited = self._labels(parsing, "edited parsing")
        source = self._labels(source_parsing, "source parsing") if source_parsing is not None else None
        style_t = _to_tensor(np.asarray(style)).to(self.device) if style is not None else None

        generator, losses = model.decoder, []
        if pti > 0:
            w_pivot = model.encode(x, source)
            with torch.enable_grad():
                tuned = pti_tune(model, x, w_pivot, steps=int(pti), lr=self.pti_lr,
                                 lpips=self._lpips_loss(required=True), progress=self.progress)
            generator, losses = tuned.generator, tuned.losses
        out = render(generator, edit_latents(model, x, edited, style_t, mix))
        result = EditResult(None, _to_uint8(out[0]), pti_losses=losses)
        if source is not None:
            unedited = render(generator, edit_latents(model, x, source, style_t, mix))
            region = changed_region(source, edited)
            if tuple(region.shape[-2:]) != tuple(out.shape[-2:]):  # encoder size != generator size
                region = F.interpolate(region[:, None].float(), size=out.shape[-2:], mode="nearest")[:, 0].bool()
            lpips = self._lpips_loss(required=False)
            result.locality = edit_locality(unedited, out, region, lpips)
            result.unedited = _to_uint8(unedited[0])
            if blend is not None:
                m = feather(region, int(blend))[:, None]
                out = m * out + (1 - m) * unedited
                result.locality_blended = edit_locality(unedited, out, region, lpips)
                result.image = _to_uint8(out[0])
        return result

    # ---- files ---------------------------------------------------------------------------------------------------
    @staticmethod
    def check_paths(image: str | os.PathLike, parsing: str | os.PathLike, output: str | os.PathLike,
                    source_parsing: str | os.PathLike | None = None,
                    style_from: str | os.PathLike | None = None) -> None:
        """The path checks, which need no model (the CLI runs them before loading one): every input is a regular file,
        the output an image path other than any input, in a place that accepts new files."""
        inputs = (image, parsing, *(q for q in (source_parsing, style_from) if q is not None))
        for p in inputs:
            check_input_file(p, "file")
        out = Path(output)
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise MediaError(f"output {out} has no image suffix: expected one of {', '.join(IMAGE_SUFFIXES)}")
        for p in inputs:
            check_not_same_file(p, out)
        check_output_path(out, "output image")

    def check_inputs(self, image: str | os.PathLike, parsing: str | os.PathLike, output: str | os.PathLike,
                     source_parsing: str | os.PathLike | None = None, parsing_labels: str = "bisenet",
                     style_from: str | os.PathLike | None = None, mix: float = 1.0, pti: int = 0,
                     blend: int | None = None) -> None:
        """Validate the arguments before any work; one-line errors naming the bad value."""
        label_sets.num_classes(parsing_labels)
        self.check_paths(image, parsing, output, source_parsing, style_from)
        if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0.0 <= float(mix) <= 1.0:
            raise VidanimeError(f"--mix {mix}: expected a number in [0, 1] (0 = own appearance, 1 = --style-from's)")
        if style_from is None and float(mix) != 1.0:
            raise VidanimeError(f"--mix {mix} needs --style-from IMG (the image whose appearance is mixed in)")
        if not isinstance(pti, int) or pti < 0:
            raise VidanimeError(f"--pti {pti}: expected a number of tuning steps >= 0 (0 = off; PTI uses ~350)")
        if blend is not None and (not isinstance(blend, int) or blend < 0):
            raise VidanimeError(f"--blend {blend}: expected a margin in pixels >= 0")
        if (pti > 0 or blend is not None) and source_parsing is None and self.parser is None:
            raise VidanimeError(_NEEDS_SOURCE)

    def _load(self, path: Path, what: str, resize: bool, labels: str | None = None) -> np.ndarray:
        s = self.model.image_size
        data = read_rgb(path) if labels is None else label_sets.remap(read_labels(path), labels,
                                                                      self.model.config.label_set)
        if data.shape[:2] != (s, s):
            if not resize:
                raise MediaError(f"{what} {path} is {data.shape[1]}x{data.shape[0]}: the model expects {s}x{s} "
                                 "(aligned crops; or pass --resize)")
            data = (cv2.resize(data, (s, s), interpolation=cv2.INTER_AREA) if labels is None
                    else label_sets.resize_labels(data, (s, s)))
        return data

    def __call__(self, image: str | os.PathLike, parsing: str | os.PathLike, output: str | os.PathLike,
                 source_parsing: str | os.PathLike | None = None, parsing_labels: str = "bisenet",
                 style_from: str | os.PathLike | None = None, mix: float = 1.0, pti: int = 0,
                 blend: int | None = None, resize: bool = False) -> EditResult:
        """Edit ``image`` with the ``parsing`` map (label PNG, ``parsing_labels`` order) and write ``output``."""
        self.check_inputs(image, parsing, output, source_parsing, parsing_labels, style_from, mix, pti, blend)
        img = self._load(Path(image), "image", resize)
        edited = self._load(Path(parsing), "parsing map", resize, parsing_labels)
        source = None
        if source_parsing is not None:
            source = self._load(Path(source_parsing), "source parsing map", resize, parsing_labels)
        elif self.parser is not None:
            source = ParsePipeline(self.parser, device=self.device,
                                   output_labels=self.model.config.label_set)([img]).labels[0].astype(np.int64)
        style = self._load(Path(style_from), "style image", resize) if style_from is not None else None
        result = self.edit_array(img, edited, source, style, mix, pti, blend)
        write_rgb(output, result.image)
        result.output = Path(output)
        if result.locality is not None:
            log.debug("edit locality: %s", result.locality)
        return result
