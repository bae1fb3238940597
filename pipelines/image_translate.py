"""Translate single images or folders with StyleAnime: image (+ parsing map) → anime image.

``ImageTranslatePipeline(model)(input, output, parsing=..., reference=..., alpha=...)``: ``input`` is an RGB image
or a folder (searched recursively; the output folder mirrors it), ``parsing`` a label PNG (one class id per pixel,
in the order named by ``parsing_labels``) or a folder of them with the same relative names.  Without ``parsing`` a
face parser module (``parser=``) labels the images.  ``reference``: one RGB image whose appearance codes replace the
input's (style mixing, e.g. manga-to-portrait); ``style_from`` + ``mix``: interpolate the appearance codes towards
another image's ((1 − mix)·own + mix·other; mix 1 = ``reference``).  ``alpha`` < 1 applies FaceBank aggregation (the
model's bank or ``facebank=``).  ``direction`` (p2a | a2p) refuses a checkpoint recorded for the other direction; for
a2p the generator is a portrait G and the parser an anime parser.  Outputs are written atomically, never over an input.

``faces`` says what an input image is.  ``detect``: any photo — its faces are found, aligned and translated as the video
path does, and pasted back into the image at its own size (several faces, background kept).  ``aligned``: the image is
one aligned face crop, translated whole at the model size (what ``--parsing``, ``--reference`` and ``--style-from``
need) and written at that size, or doubled by ``upscaler`` when one is set.  ``auto`` (the default): ``aligned`` when
one of those options is given, else ``detect``, falling back to ``aligned`` (with a warning naming the file) for an
image in which no face is found.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from pipelines.base import Pipeline
from vidanime import labels as label_sets
from vidanime.data.image_io import read_image_rgb, read_label_map, write_rgb
from vidanime.errors import CheckpointError, ConfigError, MediaError, VidanimeError
from vidanime.fileio import check_input_file, check_not_same_file, check_output_path
from vidanime.models.editing import edit_latents
from vidanime.models.face_translator import (
    StyleAnimeFaceTranslator,
    fill_background,
    labels_at,
    parser_probs,
    resolve_background_fill,
)
from vidanime.models.facebank import FaceBank
from vidanime.models.styleanime import StyleAnime
from vidanime.registry import load_styleanime
from vidanime.video.detect import default_detector
from vidanime.video.faces import FaceConfig, FaceProcessor
from vidanime.video.grey import grey_like
from vidanime.video.paste import SEAM_COLOR_MATCH, PasteItem, paste_faces

__all__ = ["ImageTranslatePipeline", "IMAGE_SUFFIXES", "DIRECTIONS", "FACE_MODES", "check_direction", "read_rgb",
           "read_labels", "write_rgb"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DIRECTIONS = ("p2a", "a2p")
FACE_MODES = ("auto", "detect", "aligned")  # see the module doc


def check_image_paths(input: str | os.PathLike, output: str | os.PathLike,
                      suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> None:
    """The path checks of the image commands that need no model, so they run before any is loaded: ``input`` is an
    image file or a folder; a folder goes to an output folder other than itself, a file to an image path (or into an
    existing folder) with an image suffix, and the output's place accepts new files.  One-line MediaError naming the
    bad path."""
    src, dst = Path(input), Path(output)
    if not src.exists():
        raise MediaError(f"input not found: {src}")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise MediaError(f"input {src} is a folder, so the output must be a folder too; {dst} is a file")
        if dst.resolve() == src.resolve():
            raise MediaError(f"output folder {dst} is the input folder; choose another output folder")
        check_output_path(dst, "output folder", folder=True)
        return
    check_input_file(src, "input")  # a FIFO or device: not "not found", not "not an image file"
    if src.suffix.lower() not in suffixes:
        raise MediaError(f"input {src} is not an image file: expected one of {', '.join(suffixes)}")
    if dst.is_dir():
        check_output_path(dst, "output folder", folder=True)
    out = dst / src.name if dst.is_dir() else dst
    if out.suffix.lower() not in suffixes:
        raise MediaError(f"output {out} has no image suffix: expected one of {', '.join(suffixes)}")
    check_not_same_file(src, out)
    check_output_path(out, "output image")


def check_direction(model: StyleAnime, direction: str | None, source: str = "the checkpoint") -> None:
    """Refuse a model whose config records the other translation direction (None on either side: no check)."""
    if direction is None:
        return
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction='{direction}' is not one of: {', '.join(DIRECTIONS)}")
    trained_for = getattr(model.config, "direction", None)
    if trained_for and trained_for != direction:
        raise CheckpointError(f"{source} translates {trained_for}, but direction={direction} was asked")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB.  Other modes are converted, as the README promises (grayscale as grey RGB, transparency
    composited on white, 16-bit scaled to 8).  A label map given as the photo is not caught here: it finds no face
    and falls back to the aligned mode with a warning."""
    return read_image_rgb(path, min_side=1)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int64 label ids from a label PNG (one id per pixel); a colour picture is an error."""
    return read_label_map(path, what="parsing map").astype(np.int64)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float in [-1, 1]."""
    return torch.tensor(image).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] → (H, W, 3) uint8."""
    return image.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()


@dataclass
class ImageTranslatePipeline(Pipeline):
    """StyleAnime image translation; ``parser`` (optional) is a face-parser module: (B, 3, H, W) in [0, 1] → logits,
    whose labels are in ``parser_labels`` order."""

    model: StyleAnime
    device: str = "cpu"
    parser: torch.nn.Module | None = None
    parser_labels: str = "bisenet"
    facebank: FaceBank | None = None
    batch_size: int = 8
    progress: bool = True
    direction: str | None = None
    refiner: Any = None  # a vidanime.train.refine.LatentRefiner, needed for refine > 0
    recolor: Any = None  # a vidanime.video.recolor.RegionRecolor: IN's hair/eye colours onto the drawing (no reference)
    upscaler: Any = None  # a vidanime.models.upscaler.Upscaler: drawings enlarged by it (pasted back, or written x2)
    face_config: Any = None  # a vidanime.video.faces.FaceConfig for faces="detect" (None: its defaults)
    #: how far IN's background is moved to anime white before the encoders (None: the checkpoint's default, else 0)
    background_fill: float | None = None
    _suffixes: tuple[str, ...] = field(default=IMAGE_SUFFIXES, repr=False)
    _detector: Any = field(default=None, repr=False)
    #: outputs of the last call whose faces were found and pasted back (the others: translated as aligned crops)
    pasted: list[Path] = field(default_factory=list, init=False)
    #: inputs of the last call (a folder) that could not be read, skipped with a warning
    failed: list[Path] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        check_direction(self.model, self.direction)
        self.background_fill = resolve_background_fill(self.model, self.background_fill)
        self.model = self.model.to(self.device).eval()
        if self.parser is not None:
            self.parser = self.parser.to(self.device).eval()

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike, device: str = "cpu",
                        **kwargs: Any) -> "ImageTranslatePipeline":
        """Load our ``vidanime.styleanime`` file or an official StyleAnime ``.pt``."""
        return cls(load_styleanime(checkpoint, device=device), device=device, **kwargs)

    # ---- inputs --------------------------------------------------------------------------------------------------
    def _list(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in self._suffixes)

    def check_inputs(
        self,
        input: str | os.PathLike,
        output: str | os.PathLike,
        parsing: str | os.PathLike | None = None,
        reference: str | os.PathLike | None = None,
        alpha: float | None = None,
        parsing_labels: str = "bisenet",
        style_from: str | os.PathLike | None = None,
        mix: float = 1.0,
        refine: int = 0,
        faces: str = "auto",
    ) -> list[tuple[Path, Path | None, Path]]:
        """Validate the arguments; return the jobs (image, parsing map or None, output path)."""
        src, dst = Path(input), Path(output)
        check_image_paths(src, dst, self._suffixes)
        self.face_mode(faces, parsing, reference, style_from)
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise VidanimeError(f"--refine {refine}: expected a whole number of steps >= 0 (0 = off)")
        if refine > 0:
            if self.refiner is None:
                raise VidanimeError(f"--refine {refine} needs an output-domain parser (refiner=LatentRefiner(...))")
            if reference is not None or style_from is not None:
                raise VidanimeError("--refine pulls the output towards IN's own colours: it cannot be combined with "
                                    "--reference or --style-from")
        if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0.0 <= float(mix) <= 1.0:
            raise VidanimeError(f"--mix {mix}: expected a number in [0, 1] (0 = own appearance, 1 = --style-from's)")
        if style_from is not None:
            if reference is not None:
                raise VidanimeError("--reference and --style-from both give appearance codes: pass only one")
            read_rgb(style_from)
        elif float(mix) != 1.0:
            raise VidanimeError(f"--mix {mix} needs --style-from IMG (the image whose appearance is mixed in)")
        label_sets.num_classes(parsing_labels)  # unknown set → one-line error listing the known ones
        if alpha is not None:
            if not 0.0 <= float(alpha) <= 1.0:
                raise VidanimeError(f"--alpha {alpha}: expected a number in [0, 1] (1 = no FaceBank)")
            if float(alpha) < 1.0 and self.facebank is None and self.model.facebank is None:
                raise VidanimeError(f"--alpha {alpha} needs a FaceBank: "
                                    "pass --facebank BANK or use a checkpoint with one")
        if parsing is None and self.parser is None:
            raise VidanimeError(
                "no parsing map given: pass --parsing MAP (a label PNG, or a folder of them) or --parser CKPT"
            )
        if reference is not None:
            read_rgb(reference)
        if src.is_dir():  # check_image_paths: the output is a folder other than the input
            if parsing is not None and not Path(parsing).is_dir():
                raise MediaError(f"input {src} is a folder, so --parsing must be a folder of label PNGs; got {parsing}")
            inside = dst.resolve()
            # an output folder inside the input folder is not input: a second run must not translate the first's files
            images = [p for p in self._list(src) if inside not in p.resolve().parents]
            if not images:
                raise MediaError(f"no images ({', '.join(self._suffixes)}) found in folder {src}")
            jobs = []
            for img in images:
                rel = img.relative_to(src)
                lab = None
                if parsing is not None:
                    lab = Path(parsing) / rel.with_suffix(".png")
                    if not lab.is_file():
                        raise MediaError(f"no parsing map for {img}: expected {lab}")
                jobs.append((img, lab, dst / rel))
            return jobs
        if parsing is not None and not Path(parsing).is_file():
            raise MediaError(f"parsing map not found: {parsing} (expected a label PNG for {src.name})")
        out = dst / src.name if dst.is_dir() else dst
        return [(src, Path(parsing) if parsing is not None else None, out)]

    @staticmethod
    def face_mode(faces: str, parsing: Any = None, reference: Any = None, style_from: Any = None) -> str:
        """``detect`` or ``aligned`` for the ``faces`` option (see the module doc); ``auto`` → ``detect`` unless an
        option that needs aligned crops is given.  ``--faces detect`` with such an option is a one-line error."""
        if faces not in FACE_MODES:
            raise VidanimeError(f"--faces {faces!r}: expected one of {', '.join(FACE_MODES)}")
        given = [name for name, v in (("--parsing", parsing), ("--reference", reference), ("--style-from", style_from))
                 if v is not None]
        if faces == "detect" and given:
            raise VidanimeError(f"{given[0]} works on aligned face crops: use --faces aligned (or auto), not detect")
        if faces == "auto":
            return "aligned" if given else "detect"
        return faces

    def _face_processor(self) -> Any:
        """A face stage for one still: every face kept from its first frame, no fading, the detector built once."""
        cfg = self.face_config or FaceConfig(device=self.device)
        cfg = dataclasses.replace(cfg, min_track_frames=1, fade_frames=0, detect_every=1,
                                  detector=cfg.detector or default_detector(self.direction or "p2a"))
        proc = FaceProcessor(cfg, detector=self._detector)
        self._detector = proc.detector
        return proc

    def _translate_photo(self, image: np.ndarray, alpha: float | None, k: int | None, refine: int) -> np.ndarray | None:
        """(H, W, 3) uint8 photo → the same photo with every detected face translated and pasted back, or None when
        no face is found."""
        found = next(iter(self._face_processor().process([image]))).faces
        if not found:
            return None
        translator = StyleAnimeFaceTranslator(self.model, self.parser, alpha=alpha, k=k, device=self.device,
                                              parsing_smooth=0, refiner=self.refiner, refine=refine, refine_every=1,
                                              refine_ease=1.0, facebank=self.facebank, recolor=self.recolor,
                                              upscaler=self.upscaler, background_fill=self.background_fill)
        translator.reset()  # every photo on its own (the recolouring's per-track state included)
        res = translator(np.stack([f.crop for f in found]), list(range(len(found))))
        items = [PasteItem(res.crops[i], f.matrix, res.masks[i], 1.0) for i, f in enumerate(found)]
        return paste_faces(image, items, color_match=SEAM_COLOR_MATCH[self.direction or "p2a"])

    def _load_pair(self, img_path: Path, lab_path: Path | None, parsing_labels: str, resize: bool,
                   parse: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(S, S, 3) uint8 image at the model size and its (S, S) labels in the model's set: read from ``lab_path``,
        else (``parse``) predicted by the parser from the image at its full resolution, else None."""
        s = self.model.image_size
        image = read_rgb(img_path)
        h, w = image.shape[:2]
        labels = None
        if lab_path is not None:
            labels = read_labels(lab_path)
            if labels.shape != (h, w):
                raise MediaError(
                    f"parsing map {lab_path} is {labels.shape[1]}x{labels.shape[0]}, image {img_path} is {w}x{h}: "
                    "expected the same size"
                )
            labels = label_sets.remap(labels, parsing_labels, self.model.config.label_set)
        if (h, w) != (s, s):
            if not resize:
                raise MediaError(
                    f"image {img_path} is {w}x{h}: the model expects {s}x{s} aligned crops (or pass --resize)"
                )
            if labels is not None:
                labels = label_sets.resize_labels(labels, (s, s))
        if labels is None and parse and self.parser is not None:
            labels = self._parse(image)  # before the resize: the parser works at its own size, not the model's
        if (h, w) != (s, s):
            image = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA if h > s else cv2.INTER_CUBIC)
        return image, labels

    @torch.no_grad()
    def _parse(self, image: np.ndarray) -> np.ndarray:
        """Label an (H, W, 3) uint8 image with the parser (at the parser's size, probabilities resized to the model
        size, as the video path does) → (S, S) ids in the model's label set."""
        probs = parser_probs(self.parser, (_to_tensor(image).to(self.device) + 1) / 2)
        return labels_at(probs, self.model.image_size, self.parser_labels, self.model.config.label_set)[0].cpu().numpy()

    # ---- run -----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        input: str | os.PathLike,
        output: str | os.PathLike,
        parsing: str | os.PathLike | None = None,
        reference: str | os.PathLike | None = None,
        alpha: float | None = None,
        parsing_labels: str = "bisenet",
        k: int | None = None,
        resize: bool = False,
        style_from: str | os.PathLike | None = None,
        mix: float = 1.0,
        refine: int = 0,
        faces: str = "auto",
    ) -> list[Path]:
        """Translate and write every job; returns the written paths.  ``refine`` > 0: that many test-time
        refinement steps on each W+ code (:class:`vidanime.train.refine.LatentRefiner`, an addition to the paper);
        ``faces``: what an input is (:data:`FACE_MODES`, module doc)."""
        jobs = self.check_inputs(input, output, parsing, reference, alpha, parsing_labels, style_from, mix, refine,
                                 faces)
        self.pasted, self.failed = [], []
        if self.face_mode(faces, parsing, reference, style_from) == "detect":
            return self._run_photos(jobs, alpha, k, refine, fallback=faces == "auto")
        return self._run_aligned(jobs, reference, alpha, parsing_labels, k, resize, style_from, mix, refine)

    def _run_photos(self, jobs: list[tuple[Path, Path | None, Path]], alpha: float | None, k: int | None, refine: int,
                    fallback: bool) -> list[Path]:
        """Photos: faces found, translated and pasted back at the photo's size; an image without a face falls back
        to the aligned path, resized to the model size (``fallback``), or is a one-line error (a single image) /
        skipped with a warning (a folder, whose other images go on)."""
        written, skipped = [], []
        bar = tqdm(total=len(jobs), desc="translate", unit="img", disable=not self.progress or len(jobs) < 2)
        for img, lab, dst in jobs:
            try:
                photo = read_rgb(img)
            except MediaError as exc:
                if len(jobs) == 1:
                    raise
                log.warning("skipping %s", exc)  # a folder goes on; the command reports the failures at the end
                self.failed.append(img)
                bar.update(1)
                continue
            picture = self._translate_photo(photo, alpha, k, refine)
            if picture is not None:
                write_rgb(dst, grey_like(photo, picture))
                written.append(dst)
                self.pasted.append(dst)
            elif fallback:
                log.warning("no face found in %s: translated the whole image as one aligned face crop, at the model "
                            "size (--faces aligned)", img)
                written += self._run_aligned([(img, lab, dst)], None, alpha, "bisenet", k, True, None, 1.0, refine)
            elif len(jobs) == 1:
                raise MediaError(f"no face found in {img}: nothing to translate (--faces aligned translates the whole "
                                 "image as one face crop)")
            else:
                skipped.append(img)
            bar.update(1)
        bar.close()
        if skipped:
            log.warning("no face found in %d of %d image(s), not written: %s", len(skipped), len(jobs),
                        ", ".join(str(p) for p in skipped[:5]) + (" …" if len(skipped) > 5 else ""))
        return written

    def _run_aligned(self, jobs: list[tuple[Path, Path | None, Path]], reference: str | os.PathLike | None,
                     alpha: float | None, parsing_labels: str, k: int | None, resize: bool,
                     style_from: str | os.PathLike | None, mix: float, refine: int) -> list[Path]:
        """Aligned face crops, translated whole at the model size in batches."""
        ref = style = None
        if reference is not None:
            ref_img, _ = self._load_pair(Path(reference), None, parsing_labels, resize, parse=False)
            ref = _to_tensor(ref_img).to(self.device)
        if style_from is not None:
            style_img, _ = self._load_pair(Path(style_from), None, parsing_labels, resize, parse=False)
            style = _to_tensor(style_img).to(self.device)
        written = []
        bar = tqdm(total=len(jobs), desc="translate", unit="img", disable=not self.progress or len(jobs) < 2)
        for b0 in range(0, len(jobs), self.batch_size):
            chunk = jobs[b0 : b0 + self.batch_size]
            pairs = [self._load_pair(img, lab, parsing_labels, resize) for img, lab, _ in chunk]
            images = torch.cat([_to_tensor(im) for im, _ in pairs]).to(self.device)
            labels = torch.from_numpy(np.stack([lab for _, lab in pairs]).astype(np.int64)).to(self.device)
            # what the encoders see, as on the photo and video paths (the recolouring reads the image as it is)
            seen = fill_background(images, labels, self.model.config.label_set, self.background_fill)
            if style is None:
                out, w = self.model.translate(seen, labels, alpha=alpha, reference=ref, k=k, facebank=self.facebank,
                                              return_latents=True)
            else:
                w = edit_latents(self.model, seen, labels, style_image=style, mix=float(mix))
                out = self.model.decode(self.model.aggregate(w, alpha, k=k, facebank=self.facebank))
            if refine > 0:
                out = self.model.decode(self.refiner(w, seen, labels, steps=refine))
            if self.recolor is not None and ref is None and style is None:  # IN's own hair and eye colours
                self.recolor.reset()
                inputs = np.stack([_to_uint8(im) for im in images])
                out = self.recolor(inputs, labels.cpu().numpy(), self.model.config.label_set, out,
                                   list(range(len(chunk))))
            if self.upscaler is not None:  # the drawing doubled by the learned upscaler (--upscaler)
                out = self.upscaler.to(out.device).enlarge(out)
            for (_, _, dst), (src, _), picture in zip(chunk, pairs, out):
                write_rgb(dst, grey_like(src, _to_uint8(picture)))
                written.append(dst)
            bar.update(len(chunk))
        bar.close()
        log.debug("translated %d aligned image(s)", len(written))
        return written
