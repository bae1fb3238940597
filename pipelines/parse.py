"""Face parsing pipeline: images or folders → label PNGs (+ colour overlays), temporal smoothing, pseudo-labels.

``ParsePipeline`` wraps a trained parser (see :mod:`vidanime.models.parser`): it resizes any RGB image to the parser's
square size with antialiasing, predicts class probabilities, resizes the probabilities back (bilinear) and takes the
arg-max, so label maps come out at the input size without ever interpolating label ids.  :func:`smooth_probs` averages
per-pixel class probabilities over neighbouring frames of one face track (the video pipeline uses it against flicker).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from pipelines.base import Pipeline
from vidanime import labels as L
from vidanime.data.parsing import IGNORE_INDEX, IMAGE_EXTS, ParsingDataConfig, read_image_rgb, resize_image
from vidanime.data.pseudo_labels import colour_refine as refine
from vidanime.errors import ConfigError, MediaError, VidanimeError
from vidanime.fileio import atomic_path, check_input_file, check_not_same_file, check_output_path
from vidanime.metrics.segmentation import SegmentationScores, format_scores
from vidanime.models.parser import PARSER_FORMAT
from vidanime.registry import load
from vidanime.train.parser import eval_dataset_for, evaluate_parser

logger = logging.getLogger(__name__)

__all__ = ["ParsePipeline", "ParseResult", "smooth_probs", "overlay", "feature_presence", "DOMAIN_MODELS",
           "FEATURE_GROUPS"]

# Registry names of the bundled parsers per domain (``vidanime parse --domain``).
DOMAIN_MODELS = {"portrait": "parser-portrait", "anime": "parser-anime"}
# Small facial features, held to ``feature_confidence`` (not ``min_confidence``) when pseudo-labelling.
FEATURE_CLASSES = ("l_eye", "r_eye", "l_brow", "r_brow", "nose", "mouth", "u_lip", "l_lip")
# Facial features whose presence in a label map is counted (``feature_presence``); the mouth includes the lips.
FEATURE_GROUPS = {"eyes": ("l_eye", "r_eye"), "brows": ("l_brow", "r_brow"), "nose": ("nose",),
                  "mouth": ("mouth", "u_lip", "l_lip"), "hair": ("hair",), "skin": ("skin",)}


def label_names(files: Sequence[Path]) -> list[str]:
    """The PNG names the label maps of ``files`` (one folder's images) get: ``<stem>.png``, or ``<name>.png`` for
    files whose stem another file shares (``x.jpg`` and ``x.png`` → ``x.jpg.png`` and ``x.png.png``), so no
    output overwrites another."""
    stems = Counter(f.stem for f in files)
    return [f"{f.stem if stems[f.stem] == 1 else f.name}.png" for f in files]


def feature_presence(labels: np.ndarray, label_set: str, min_fraction: float = 0.002) -> dict[str, bool]:
    """Which of :data:`FEATURE_GROUPS` a (H, W) label map holds: at least ``min_fraction`` of its pixels (0.2 % of a
    256² map = 131 px, about a small drawn eye's highlight: less is noise).  Classes the set lacks count as absent."""
    names = L.class_names(label_set)
    total = max(1, labels.size)
    out = {}
    for group, members in FEATURE_GROUPS.items():
        ids = [names.index(n) for n in members if n in names]
        out[group] = bool(ids) and float(np.isin(labels, ids).sum()) / total >= min_fraction
    return out


def smooth_probs(prob_seq: torch.Tensor, radius: int = 1, sigma: float = 1.0, causal: bool = False) -> torch.Tensor:
    """Temporal smoothing of per-pixel class probabilities of one track, (T, C, H, W) → (T, C, H, W).

    Each frame becomes a Gaussian-weighted (``sigma`` in frames) average of frames t−radius..t+radius (only the past
    ones with ``causal=True``, for streaming); windows are cut at the sequence ends and their weights renormalised, so
    every output still sums to 1 over C.  The frames must be aligned crops of the same face (the track's warp).
    """
    if prob_seq.dim() != 4:
        raise ValueError(f"prob_seq must be (T, C, H, W), got shape {tuple(prob_seq.shape)}")
    if radius < 0 or sigma <= 0:
        raise ValueError(f"radius must be >= 0 and sigma > 0, got radius={radius}, sigma={sigma}")
    t = prob_seq.shape[0]
    if radius == 0 or t == 1:
        return prob_seq.clone()
    offsets = torch.arange(-radius, 1 if causal else radius + 1)
    w = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    out = torch.zeros_like(prob_seq, dtype=torch.float64 if prob_seq.dtype == torch.float64 else torch.float32)
    norm = torch.zeros(t, dtype=out.dtype, device=prob_seq.device)
    for off, wk in zip(offsets.tolist(), w.tolist()):
        lo, hi = max(0, -off), min(t, t - off)  # frames i with i+off inside [0, t)
        if lo >= hi:
            continue
        out[lo:hi] += wk * prob_seq[lo + off : hi + off].to(out.dtype)
        norm[lo:hi] += wk
    return (out / norm.view(t, 1, 1, 1)).to(prob_seq.dtype)


def overlay(image: np.ndarray, labels: np.ndarray, label_set: str, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 picture with the label colours blended in at ``alpha`` (background left as is)."""
    colours = L.colorize(labels, label_set).astype(np.float32)
    img = image.astype(np.float32)
    fg = (labels != 0)[..., None]
    out = np.where(fg, (1 - alpha) * img + alpha * colours, img)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass
class ParseResult:
    """Labels (H, W) uint8 in ``label_set`` order at the input size; probabilities only when asked for."""

    labels: list[np.ndarray]
    label_set: str
    probs: list[torch.Tensor] = field(default_factory=list)  # each (C, H, W) float, at the input size


@dataclass
class ParserScores:
    """What :meth:`ParsePipeline.evaluate` measured: Table-1 ``scores`` on ``images`` images of ``split``, with the
    class ``names`` of ``label_set``."""

    scores: SegmentationScores
    names: list[str]
    images: int
    split: str
    label_set: str

    def table(self) -> str:
        """Markdown table laid out like the paper's Table 1."""
        return format_scores(self.scores, self.names)

    def as_dict(self) -> dict[str, Any]:
        return self.scores.as_dict(self.names)


class ParsePipeline(Pipeline):
    """Face parser on RGB images of any size: ``pipe(images)`` → :class:`ParseResult`; ``pipe.parse_paths(in, out)``;
    ``pipe.evaluate()`` scores it on its held-out split or a labelled folder.  ``metadata``: the checkpoint's entries
    other than the weights (config, train_config, val_ids), as :func:`vidanime.registry.load` returns them."""

    def __init__(self, model: torch.nn.Module, device: Any = "cpu", batch_size: int = 8,
                 output_labels: str | None = None, metadata: dict[str, Any] | None = None):
        self.metadata = dict(metadata or {})
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model_labels = model.config.label_set
        self.label_set = output_labels or self.model_labels
        L.num_classes(self.label_set)
        if self.label_set != self.model_labels:
            L.remap_table(self.model_labels, self.label_set)  # raises early when the orders are incompatible
        self.size = model.config.image_size

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: Any = "cpu", **kwargs: Any) -> "ParsePipeline":
        """Load a ``vidanime.parser`` checkpoint (registry name or path) through :func:`vidanime.registry.load`."""
        loaded = load(name_or_path, expect="parser", format=PARSER_FORMAT)
        return cls(loaded.model, device=device, metadata=loaded.metadata, **kwargs)

    @classmethod
    def for_domain(cls, domain: str, model: str | None = None, **kwargs: Any) -> "ParsePipeline":
        """The bundled parser of ``domain`` (portrait | anime), or ``model`` (name or path) when given."""
        if domain not in DOMAIN_MODELS:
            raise ConfigError(f"unknown domain '{domain}' (expected one of: {', '.join(DOMAIN_MODELS)})")
        return cls.from_pretrained(model or DOMAIN_MODELS[domain], **kwargs)

    def evaluate(self, data_root: str | os.PathLike | None = None, mask_labels: str | None = None,
                 split: str | None = None, batch_size: int = 8) -> ParserScores:
        """Per-class accuracy, overall accuracy and mIoU (the paper's Table 1), in the model's own label set: on the
        held-out ids the checkpoint stores (``split`` "heldout", the default without ``data_root``; needs its data
        root) or on every image/mask pair under ``data_root`` (masks in ``mask_labels`` order; default split "all")."""
        data = None
        if data_root is not None:
            if mask_labels is None:
                raise ConfigError(f"labelled data {data_root} needs the masks' label order (mask_labels, "
                                  "--mask-labels on the command line): celebamask, bisenet or danbooru")
            data = ParsingDataConfig(root=str(data_root), mask_labels=mask_labels)
        if "config" not in self.metadata:
            raise ConfigError("this parser was not loaded from a checkpoint (ParsePipeline.from_pretrained), so its "
                              "training data is unknown")
        split = split or ("all" if data is not None else "heldout")
        ds = eval_dataset_for(self.metadata, data, split)
        scores = evaluate_parser(self.model, ds, batch_size=batch_size, device=self.device)
        return ParserScores(scores, list(L.LABEL_SETS[self.model_labels]), len(ds), split, self.model_labels)

    # ------------------------------------------------------------------------------------------------------ checks
    @staticmethod
    def check_inputs(images: Sequence[np.ndarray]) -> None:
        """Each image must be (H, W, 3) uint8 RGB with sides of at least 16 px."""
        if len(images) == 0:
            raise MediaError("no images given to parse")
        for i, im in enumerate(images):
            if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3:
                shape = getattr(im, "shape", type(im).__name__)
                raise MediaError(f"image {i} has shape {shape}; expected (H, W, 3) RGB (use read_image_rgb for files)")
            if im.dtype != np.uint8:
                raise MediaError(f"image {i} has dtype {im.dtype}; expected uint8 (0..255)")
            if min(im.shape[:2]) < 16:
                raise MediaError(f"image {i} is {im.shape[1]}x{im.shape[0]} px, too small (need at least 16 px a side)")

    # ---------------------------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict_probs(self, images: Sequence[np.ndarray], scales: Sequence[float] = (1.0,),
                      flip: bool = False) -> torch.Tensor:
        """Class probabilities (B, C, S, S) at the parser's size S, in the model's label order.

        Test-time augmentation: ``scales`` parse each image also at other resolutions (rounded to a multiple of 32 px)
        and ``flip`` also the mirror image (left/right classes swapped back); the probabilities are averaged at S.
        """
        self.check_inputs(images)
        if not scales or any(not 0.25 <= s <= 4.0 for s in scales):
            raise VidanimeError(f"test-time scales must be in [0.25, 4], got {list(scales)}")
        swap = torch.from_numpy(L.lr_swap_table(self.model_labels)).long()
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = [resize_image(im, self.size) for im in images[start : start + self.batch_size]]
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
            passes = []
            for s in scales:
                side = max(32, int(round(self.size * s / 32)) * 32)
                xs = x if side == self.size else F.interpolate(x, size=(side, side), mode="bilinear", antialias=True,
                                                               align_corners=False)
                for mirrored in ((False, True) if flip else (False,)):
                    p = torch.softmax(self.model(xs.flip(-1) if mirrored else xs).float(), dim=1)
                    if mirrored:
                        p = p.flip(-1)[:, swap.to(p.device)]
                    if side != self.size:
                        p = F.interpolate(p, size=(self.size, self.size), mode="bilinear", align_corners=False)
                    passes.append(p)
            out.append(torch.stack(passes).mean(0).cpu())
        return torch.cat(out)

    def probs_to_labels(self, probs: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(C, S, S) probabilities → (H, W) uint8 labels in the output order (bilinear resize of probs, then
        arg-max)."""
        if tuple(probs.shape[-2:]) != tuple(size):
            probs = F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0]
        lab = probs.argmax(0).numpy().astype(np.uint8)
        return L.remap(lab, self.model_labels, self.label_set)

    def __call__(self, images: Sequence[np.ndarray] | np.ndarray, return_probs: bool = False) -> ParseResult:
        """Parse RGB uint8 images ((H, W, 3) each, sizes may differ) → labels at each input's size."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        images = list(images)
        probs = self.predict_probs(images)
        labels, full = [], []
        for im, p in zip(images, probs):
            labels.append(self.probs_to_labels(p, im.shape[:2]))
            if return_probs:
                full.append(F.interpolate(p[None], size=im.shape[:2], mode="bilinear", align_corners=False)[0])
        return ParseResult(labels=labels, label_set=self.label_set, probs=full)

    # -------------------------------------------------------------------------------------------------------- files
    @staticmethod
    def check_paths(inp: str | os.PathLike, out: str | os.PathLike) -> None:
        """The path checks of :meth:`parse_paths`, which need no model (the CLI runs them before loading one): the
        input exists (a folder, or a regular file), a folder goes to a folder, and the output's place accepts new
        files.  One-line MediaError naming the bad path."""
        inp, out = Path(inp), Path(out)
        if not inp.exists():
            raise MediaError(f"input not found: {inp}")
        single = out.suffix.lower() == ".png"
        if not single and out.suffix.lower() in IMAGE_EXTS:
            raise MediaError(f"output {out}: label maps are written as PNG; name it .png, or give a folder")
        if inp.is_dir():
            if single:
                raise MediaError(f"input {inp} is a folder; the output {out} must be a folder too")
        else:
            check_input_file(inp, "image")
            if single:
                check_not_same_file(inp, out)
        check_output_path(out, "output labels" if single else "output folder", folder=not single)

    def parse_paths(self, inp: str | os.PathLike, out: str | os.PathLike, overlays: bool = False) -> dict[str, Any]:
        """Parse an image file or every image in a folder; write ``<stem>.png`` labels (+ ``<stem>_overlay.png``).

        A single file may go to ``out`` ending in ``.png`` (that exact name) or to a folder.  In folder mode unreadable
        files are skipped with a warning and listed in the returned summary ``{"written": [...], "failed": [...]}``;
        if none could be read the call raises :class:`MediaError`.
        """
        inp, out = Path(inp), Path(out)
        self.check_paths(inp, out)
        if inp.is_dir():
            files = sorted(p for p in inp.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise MediaError(f"no images ({', '.join(IMAGE_EXTS)}) in folder {inp}")
            targets = [(f, out / name) for f, name in zip(files, label_names(files))]
        else:
            target = out if out.suffix.lower() == ".png" else out / f"{inp.stem}.png"
            targets = [(inp, target)]
        written: list[str] = []
        failed: list[str] = []

        bar = tqdm(total=len(targets), desc="parse", disable=len(targets) < 2 or None)
        for start in range(0, len(targets), self.batch_size):  # batch_size images per parser call
            loaded = []
            for src, dst in targets[start : start + self.batch_size]:
                try:
                    loaded.append((src, dst, read_image_rgb(src)))
                except MediaError as exc:
                    if len(targets) == 1:
                        raise
                    logger.warning("skipping %s", exc)
                    failed.append(str(src))
                    bar.update(1)
            if not loaded:
                continue
            labels = self([img for _, _, img in loaded]).labels
            for (src, dst, img), lab in zip(loaded, labels):
                check_not_same_file(src, dst)
                with atomic_path(dst) as tmp:
                    Image.fromarray(lab).save(tmp, format="PNG")
                written.append(str(dst))
                if overlays:
                    odst = dst.with_name(f"{dst.stem}_overlay.png")
                    check_not_same_file(src, odst)
                    with atomic_path(odst) as tmp:
                        Image.fromarray(overlay(img, lab, self.label_set)).save(tmp, format="PNG")
                    written.append(str(odst))
                bar.update(1)
        bar.close()
        if not written:
            raise MediaError(f"none of the {len(targets)} images in {inp} could be read")
        return {"written": written, "failed": failed, "label_set": self.label_set}

    # ------------------------------------------------------------------------------------------------ pseudo-labels
    def pseudo_label(self, images_dir: str | os.PathLike, out_dir: str | os.PathLike, min_confidence: float = 0.7,
                     min_kept_fraction: float = 0.8, limit: int = 0,
                     feature_confidence: float | None = None, scales: Sequence[float] = (1.0,),
                     flip: bool = False, colour_refine: float = 0.0, budget: Any = None) -> dict[str, Any]:
        """Label a folder of (anime) faces with this parser for training another: writes ``out/images`` + ``out/masks``.

        Pixels whose top class probability is below ``min_confidence`` become 255 (ignored in training and metrics);
        ``feature_confidence`` (lower) applies instead to the small facial features (eyes, brows, nose, mouth, lips):
        across domains the teacher is rarely sure of them — a portrait parser on anime eyes — and a single threshold
        would leave the student with almost no eye or mouth pixels to learn from.
        images where fewer than ``min_kept_fraction`` of the pixels pass are dropped.  ``scales``/``flip`` average the
        teacher over resolutions and mirror images (:meth:`predict_probs`): steadier, better-calibrated labels;
        ``colour_refine`` > 0 then moves hair / skin / clothes / backdrop pixels towards the class whose colour fits
        (:func:`vidanime.data.pseudo_labels.colour_refine`, that weight), for flat-shaded drawings.  A ``budget``
        (:class:`vidanime.train.harness.Budget`) stops after the batch that spends it, keeping what was written.  Masks
        are in the parser's order; images are stored resized to the parser's size.  Returns counts, the mean kept
        fraction and the share of kept masks holding each facial feature (``feature_presence``).
        """
        src = Path(images_dir)
        if not src.is_dir():
            raise MediaError(f"pseudo-label input folder not found: {src}")
        if not 0.0 <= min_confidence <= 1.0 or not 0.0 <= min_kept_fraction <= 1.0:
            raise VidanimeError(f"min_confidence and min_kept_fraction must be in [0, 1], "
                                f"got {min_confidence}, {min_kept_fraction}")
        if feature_confidence is not None and not 0.0 <= feature_confidence <= 1.0:
            raise VidanimeError(f"feature_confidence must be in [0, 1], got {feature_confidence}")
        if colour_refine < 0:
            raise VidanimeError(f"colour_refine must be >= 0 (0 = off), got {colour_refine}")
        names = L.LABEL_SETS[self.model_labels]
        feature_ids = torch.tensor(L.class_ids(self.model_labels, *[n for n in FEATURE_CLASSES if n in names]))
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if limit > 0:
            files = files[:limit]
        if not files:
            raise MediaError(f"no images in {src}")
        names = dict(zip(files, label_names(files)))
        out = Path(out_dir)
        kept, dropped, fractions, present = 0, 0, [], []

        for start in tqdm(range(0, len(files), self.batch_size), desc="pseudo-label", disable=None):
            if budget is not None and budget.expired() and kept + dropped > 0:
                logger.info("pseudo-label: budget spent after %d of %d images", kept + dropped, len(files))
                break
            batch_files = files[start : start + self.batch_size]
            imgs = []
            for f in batch_files:
                try:
                    imgs.append((f, resize_image(read_image_rgb(f), self.size)))
                except MediaError as exc:
                    logger.warning("skipping %s", exc)
            if not imgs:
                continue
            probs = self.predict_probs([im for _, im in imgs], scales=scales, flip=flip)
            if colour_refine > 0:
                probs = torch.stack([refine(p, im, self.model_labels, weight=colour_refine)
                                     for p, (_, im) in zip(probs, imgs)])
            conf, lab = probs.max(1)
            for (f, im), c, lb in zip(imgs, conf, lab):
                ok = c >= min_confidence
                if feature_confidence is not None:
                    ok |= torch.isin(lb, feature_ids) & (c >= feature_confidence)
                ok = ok.numpy()
                frac = float(ok.mean())
                fractions.append(frac)
                if frac < min_kept_fraction:
                    dropped += 1
                    continue
                mask = np.where(ok, lb.numpy(), IGNORE_INDEX).astype(np.uint8)
                present.append(feature_presence(mask, self.model_labels))
                with atomic_path(out / "images" / names[f]) as tmp:
                    Image.fromarray(im).save(tmp, format="PNG")
                with atomic_path(out / "masks" / names[f]) as tmp:
                    Image.fromarray(mask).save(tmp, format="PNG")
                kept += 1
        presence = {k: float(np.mean([p[k] for p in present])) for k in FEATURE_GROUPS} if present else {}
        return {"kept": kept, "dropped": dropped,
                "mean_confident_fraction": float(np.mean(fractions)) if fractions else 0.0,
                "feature_presence": presence, "label_set": self.model_labels, "out": str(out)}
