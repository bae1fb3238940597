"""Manga-to-portrait (paper §6.2): manga crop → screen-tone-normalised grey image → anime parser → structure
codes; appearance codes (W+ codes n_s…, 10–13 at 256 px) from a colour reference image (style mixing) → generator.

``MangaPipeline(model, parser)(input, output, reference=REF)``: ``input`` is a manga face crop (grey or RGB; any
mode PIL reads) or a folder of them (mirrored into ``output``); ``reference`` one RGB image, an aligned crop of the
generator's domain (a portrait for an a2p model).  ``save_parsing`` also writes the label PNG used for each input
(``<name>.parsing.png``, in the model's label set) so it can be edited and fed to ``vidanime edit``.
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
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipelines.base import Pipeline
from pipelines.parse import ParsePipeline
from vidanime.data.manga import MangaConfig, manga_to_rgb
from vidanime.errors import MediaError, VidanimeError
from vidanime.fileio import atomic_path
from vidanime.models.styleanime import StyleAnime
from vidanime.registry import load_model, load_styleanime

from .image_translate import IMAGE_SUFFIXES, _to_tensor, _to_uint8, check_image_paths, read_rgb, write_rgb

__all__ = ["MangaPipeline", "MangaResult", "read_any"]

log = logging.getLogger(__name__)


def read_any(path: str | os.PathLike) -> np.ndarray:
    """Any image PIL reads (grey, palette, RGB, RGBA…) → (H, W) uint8 grey or (H, W, 3) uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.array(im.convert("L") if im.mode in ("L", "1", "I", "I;16", "LA") else im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None


@dataclass
class MangaResult:
    """One translated manga crop: the output (S, S, 3) uint8, the parsing used (S, S) in the model's label set, the
    preprocessed parser input (S, S, 3) uint8 and the W+ code (1, L, D)."""

    image: np.ndarray
    parsing: np.ndarray
    preprocessed: np.ndarray
    latents: torch.Tensor


@dataclass
class MangaPipeline(Pipeline):
    """Manga-to-portrait with style mixing; ``parser`` is an anime face parser (a :mod:`vidanime.models.parser`
    module, its ``config.label_set`` and ``config.image_size`` are used)."""

    model: StyleAnime
    parser: torch.nn.Module
    device: str = "cpu"
    manga: MangaConfig = field(default_factory=MangaConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        self.model = self.model.to(self.device).eval()
        self._parse = ParsePipeline(self.parser, device=self.device, output_labels=self.model.config.label_set)

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike, parser: str | os.PathLike, device: str = "cpu",
                        **kwargs: Any) -> "MangaPipeline":
        """Load a StyleAnime checkpoint (ours or official) and a ``vidanime.parser`` checkpoint (name or path)."""
        return cls(load_styleanime(checkpoint, device=device),
                   load_model(parser, device=device, format="vidanime.parser"), device=device, **kwargs)

    # ---- arrays --------------------------------------------------------------------------------------------------
    def _fit(self, image: np.ndarray, what: str, resize: bool) -> np.ndarray:
        s = self.model.image_size
        h, w = image.shape[:2]
        if (h, w) == (s, s):
            return image
        if not resize:
            raise MediaError(f"{what} is {w}x{h}: the model expects {s}x{s} aligned crops (or pass --resize)")
        return cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA if h > s else cv2.INTER_CUBIC)

    @torch.no_grad()
    def translate_array(self, manga: np.ndarray, reference: np.ndarray, resize: bool = False) -> MangaResult:
        """``manga`` (H, W) or (H, W, 3) uint8 and ``reference`` (H, W, 3) uint8 RGB → :class:`MangaResult`."""
        reference = np.asarray(reference)
        if reference.ndim != 3 or reference.shape[2] != 3 or reference.dtype != np.uint8:
            raise MediaError(f"reference has shape {reference.shape} {reference.dtype}: expected (H, W, 3) uint8 RGB")
        pre = self._fit(manga_to_rgb(manga, self.manga), "manga image", resize)
        labels = self._parse([pre]).labels[0].astype(np.int64)  # (S, S) in the model's label set
        ref = _to_tensor(self._fit(reference, "reference", resize)).to(self.device)
        parsing = torch.from_numpy(labels)[None].to(self.device)
        out, w = self.model.translate(None, parsing, reference=ref, return_latents=True)
        return MangaResult(_to_uint8(out[0]), labels.astype(np.uint8), pre, w.cpu())

    # ---- files ---------------------------------------------------------------------------------------------------
    def check_inputs(self, input: str | os.PathLike, output: str | os.PathLike,
                     reference: str | os.PathLike | None) -> list[tuple[Path, Path]]:
        """Validate the paths; return the jobs (manga image, output path)."""
        src, dst = Path(input), Path(output)
        if reference is None:
            raise VidanimeError("manga-to-portrait needs --reference IMG (an RGB crop giving the appearance codes)")
        read_rgb(reference)
        check_image_paths(src, dst)
        if src.is_dir():  # check_image_paths: the output is a folder other than the input
            images = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not p.name.endswith(".parsing.png"))
            if not images:
                raise MediaError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in folder {src}")
            return [(p, dst / p.relative_to(src)) for p in images]
        return [(src, dst / src.name if dst.is_dir() else dst)]

    def __call__(self, input: str | os.PathLike, output: str | os.PathLike, reference: str | os.PathLike | None = None,
                 resize: bool = False, save_parsing: bool = False) -> list[Path]:
        """Translate every manga crop with the reference's appearance; returns the written image paths."""
        jobs = self.check_inputs(input, output, reference)
        ref = read_rgb(reference)
        written = []
        for src, dst in tqdm(jobs, desc="manga", unit="img", disable=not self.progress or len(jobs) < 2):
            result = self.translate_array(read_any(src), ref, resize=resize)
            write_rgb(dst, result.image)
            if save_parsing:
                lab_path = dst.with_name(dst.stem + ".parsing.png")
                with atomic_path(lab_path) as tmp:
                    Image.fromarray(result.parsing, mode="L").save(tmp, format="PNG")
            written.append(dst)
        log.debug("translated %d manga image(s) into %s", len(written), output)
        return written
