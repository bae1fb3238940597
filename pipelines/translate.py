"""Video translation: decode → faces (detect, track, smooth, align) → model → paste back → encode with audio.

``TranslatePipeline`` composes library parts only.  The three stages run concurrently (see
:func:`vidanime.video.stages.run_stages`): the decode thread also runs face detection/tracking/alignment, the calling
thread runs the face model and paste-back, the encode thread writes the output (and the optional side-by-side
preview).  Frames without faces pass through unchanged; faces entering or leaving fade in/out.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from pipelines.base import Pipeline
from pipelines.finetune import finetune_for_translate
from vidanime.errors import CheckpointError, ConfigError, MediaError
from vidanime.fileio import (
    atomic_write_text,
    check_input_file,
    check_not_same_file,
    check_output_path,
    remove_stale_partials,
)
from vidanime.labels import colorize
from vidanime.metrics.temporal import (
    FramePair,
    flicker_terms,
    latent_roughness,
    prepare_frame,
    reduce_flicker,
    reduce_warp_error,
    warp_error_terms,
)
from vidanime.models.face_translator import (
    FaceTranslator,
    IdentityFaceTranslator,
    StyleAnimeFaceTranslator,
    TranslatedFaces,
    resolve_background_fill,
)
from vidanime.registry import available_models, load_model, load_styleanime, resolve_path
from vidanime.train.refine import LatentRefiner, RefineConfig
from vidanime.train.styleanime import model_discriminators
from vidanime.video.deflicker import CropFlowBlend
from vidanime.video.detect import MIN_FRAME_SIDE
from vidanime.video.faces import FaceConfig, FaceProcessor, FrameFaces
from vidanime.video.io import X264_PRESETS, Frame, VideoReader, VideoWriter, check_video_output
from vidanime.video.paste import SEAM_COLOR_MATCH, PasteItem, paste_faces
from vidanime.video.recolor import RecolorConfig, RegionRecolor
from vidanime.video.smooth import LatentFilter
from vidanime.video.stages import run_stages

logger = logging.getLogger(__name__)

__all__ = ["TranslateOptions", "TranslateResult", "TranslatePipeline", "DEFAULT_MODELS", "OUTPUT_PARSERS",
           "build_recolor", "build_refiner", "build_upscaler", "UPSCALERS"]

# Bundled registry names per direction: (StyleAnime checkpoint, parser for the input domain).
DEFAULT_MODELS = {"p2a": ("styleanime-p2a", "parser-portrait"), "a2p": ("styleanime-a2p", "parser-anime")}
# --temporal: "off" translates each frame alone; "filter" filters each track's W+ codes over time (causal One-Euro);
# "flow" also blends each track's translated crop with the previous one carried along the input's motion.
TEMPORAL_MODES = ("off", "filter", "flow")

# Parser of the output domain, for test-time refinement (--refine): it parses the translation G(w).
OUTPUT_PARSERS = {"p2a": "parser-anime", "a2p": "parser-portrait"}


# Learned upscaler of the drawings per direction (vidanime.models.upscaler; None: none made for that direction yet).
UPSCALERS: dict[str, str | None] = {"p2a": "upscaler-anime", "a2p": None}


def build_upscaler(direction: str = "p2a", upscaler: str | os.PathLike | None = "auto", model: Any = None,
                   device: Any = "cpu") -> Any:
    """The drawing upscaler for ``--upscaler``: ``"auto"`` (or None) = the bundled one of ``direction``
    (:data:`UPSCALERS`) when it is installed and ``model`` draws below the size it was trained to produce (a model
    that already draws at that size is not upscaled); ``"none"`` = off (bilinear); else a registry name or path."""
    name = "auto" if upscaler is None else str(upscaler)  # None: as auto (the still-image default)
    if name == "none":
        return None
    if name != "auto":
        return load_model(name, device=device, format="vidanime.upscaler")
    default = UPSCALERS.get(direction)
    if default is None or default not in {e.name for e in available_models()}:
        logger.debug("no bundled upscaler for %s: drawings are resized bilinearly", direction)
        return None
    net = load_model(default, device=device, format="vidanime.upscaler")
    if model is not None and int(model.image_size) >= int(net.config.train_size):
        return None
    return net


def build_refiner(model: Any, direction: str = "p2a", parser: str | os.PathLike | None = None,
                  device: Any = "cpu", **config: Any) -> Any:
    """A :class:`~vidanime.train.refine.LatentRefiner` for ``model`` with the output-domain parser (a name or path;
    default :data:`OUTPUT_PARSERS` of ``direction``) and the discriminators saved with the model (its anime terms;
    a model without them is refined without those terms, said once); ``config``:
    :class:`~vidanime.train.refine.RefineConfig` fields."""
    out_parser = load_model(parser or OUTPUT_PARSERS[direction], device=device, format="vidanime.parser")
    return LatentRefiner(model, out_parser, RefineConfig(**config), model_discriminators(model))


def build_recolor(direction: str = "p2a", strength: float = RecolorConfig.strength, device: Any = "cpu") -> Any:
    """A :class:`~vidanime.video.recolor.RegionRecolor` of ``strength`` with the output-domain parser of
    ``direction`` (:data:`OUTPUT_PARSERS`), or None for strength 0."""
    config = RecolorConfig(strength=float(strength)).check()
    if config.strength == 0:
        return None
    return RegionRecolor(load_model(OUTPUT_PARSERS[direction], device=device, format="vidanime.parser"), config)


def report_path(output: str | os.PathLike) -> Path:
    """Where ``--report`` writes its JSON for ``output``: ``OUTPUT`` with its extension replaced by ``.report.json``."""
    return Path(output).with_suffix(".report.json")


@dataclass
class TranslateOptions:
    """Per-run options: frame range (``start``/``end`` in seconds or ``"300f"`` frames), ``faces`` all|largest,
    ``crop`` (write the aligned face video of the largest track instead of pasting back), encoder ``crf``/``preset``,
    ``preview`` path for the side-by-side video (input | aligned crop + parsing | output), ``batch`` faces per model
    call, ``queue`` size between the stages, ``progress`` bar, ``report``: also measure the output's temporal
    stability (warp error and flicker index against the input, at most 320 px; costs ~0.1 s a frame) and write the
    result as JSON beside the output (``OUTPUT.report.json``, atomically)."""

    start: str | float | None = None
    end: str | float | None = None
    faces: str = "all"
    crop: bool = False
    crf: int = 18
    preset: str = "medium"
    preview: str | None = None
    batch: int = 8
    queue: int = 8
    progress: bool = True
    report: bool = False


@dataclass
class TranslateResult:
    """What a run did: output paths, frame and face counts, tracks seen, seconds, model name."""

    output: str
    preview: str | None
    frames: int
    frames_with_faces: int
    faces: int
    tracks: int
    seconds: float
    model: str
    latent_roughness: float | None = None
    temporal: dict[str, dict[str, float]] | None = None
    report: str | None = None  # with TranslateOptions.report: this result as JSON, beside the output
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class _Item:
    """What flows from the decode thread to the model: the source frame's pts and its faces."""

    pts: int
    faces: FrameFaces


def _preview_frame(frame: np.ndarray, out: np.ndarray, faces: FrameFaces, result: TranslatedFaces | None,
                   index_in_result: list[int]) -> np.ndarray:
    """Side by side at the frame's height: input | aligned crop over its parsing (or paste mask) | output."""
    h = frame.shape[0]
    col_w = h // 2
    col = np.zeros((h, col_w, 3), np.uint8)
    if faces.faces and result is not None and index_in_result:
        i = index_in_result[0]
        crop = cv2.resize(faces.faces[0].crop, (col_w, col_w), interpolation=cv2.INTER_AREA)
        col[:col_w] = crop
        if result.parsing is not None and len(result.parsing) > i:
            lab = cv2.resize(result.parsing[i], (col_w, col_w), interpolation=cv2.INTER_NEAREST)
            col[col_w : 2 * col_w] = colorize(lab, result.label_set)
        else:  # no parser (identity model): show the paste mask instead
            mask = cv2.resize(result.masks[i], (col_w, col_w), interpolation=cv2.INTER_LINEAR)
            col[col_w : 2 * col_w] = (np.clip(mask, 0, 1) * 255).astype(np.uint8)[..., None]
    return np.concatenate([frame, col, out], axis=1)


class TranslatePipeline(Pipeline):
    """Translate the faces of a video: ``pipe(input, output, options)`` → :class:`TranslateResult`.

    ``translator`` maps aligned crops to translated crops (:class:`StyleAnimeFaceTranslator`, or the identity when no
    model is available); ``face_config`` configures detection/tracking/alignment; ``color_match`` in [0, 1]: the
    paste-back's seam colour matching (``from_pretrained`` takes it from the direction:
    :data:`vidanime.video.paste.SEAM_COLOR_MATCH`).
    """

    def __init__(self, translator: FaceTranslator | None = None, face_config: FaceConfig | None = None,
                 model_name: str = "identity", color_match: float = 1.0) -> None:
        if not 0.0 <= color_match <= 1.0:
            raise ConfigError(f"color_match={color_match}: expected a number in [0, 1]")
        self.translator = translator or IdentityFaceTranslator()
        self.face_config = (face_config or FaceConfig()).check()
        self.model_name = model_name
        self.color_match = float(color_match)
        self._detector = None  # built on first use, then reused by every call (batch runs call many times)

    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str | os.PathLike | None = None,
        parser: str | os.PathLike | None = None,
        direction: str = "p2a",
        alpha: float | None = None,
        device: str = "cpu",
        fp16: bool = False,
        face_config: FaceConfig | None = None,
        allow_identity: bool = False,
        refine: int = 0,
        refine_every: int = 8,
        refine_parser: str | os.PathLike | None = None,
        temporal: str = "flow",
        recolor: float = RecolorConfig.strength,
        upscaler: str | os.PathLike | None = "none",
        background_fill: float | None = None,
    ) -> "TranslatePipeline":
        """Load a StyleAnime checkpoint and a parser (registry names or paths; defaults: the bundled models of
        ``direction``).  With ``allow_identity`` and no bundled model, fall back to the identity face model (logged).
        ``refine`` > 0: test-time refinement of each track's keyframes (every ``refine_every``-th frame) with the
        output-domain parser ``refine_parser`` (default: :data:`OUTPUT_PARSERS`).  ``temporal``: ``filter`` filters
        each track's codes over time (:class:`~vidanime.video.smooth.LatentFilter`), ``flow`` also blends each track's
        crops along the input's motion (:class:`~vidanime.video.deflicker.CropFlowBlend`), ``off`` translates frames
        alone.  ``recolor``: strength in [0, 1] of carrying the input's hair and eye colours onto each drawing
        (:class:`~vidanime.video.recolor.RegionRecolor` with the output-domain parser; 0 = off).  ``upscaler``: the
        learned upscaler of the drawings (:func:`build_upscaler`: ``none``, ``auto``, a name or a path; videos default
        to none: sharper drawings re-drawn every frame measure more flicker, README "Sharper drawings").
        ``background_fill``: how far each crop's background is moved to anime white before the encoders (None: the
        checkpoint's default, :func:`~vidanime.models.face_translator.fill_background`)."""
        if direction not in DEFAULT_MODELS:
            raise ConfigError(f"direction='{direction}' is not one of: {', '.join(DEFAULT_MODELS)}")
        RecolorConfig(strength=float(recolor)).check()  # before any model is loaded
        if temporal not in TEMPORAL_MODES:
            raise ConfigError(f"temporal='{temporal}' is not one of: {', '.join(TEMPORAL_MODES)}")
        if background_fill is not None:  # a bad value fails before any model is loaded
            resolve_background_fill(None, background_fill)
        default_ckpt, default_parser = DEFAULT_MODELS[direction]
        face_config = face_config or FaceConfig(device=device)
        try:
            ckpt_path = resolve_path(checkpoint or default_ckpt)
            parser_path = resolve_path(parser or default_parser)
        except CheckpointError:
            if checkpoint is None and parser is None and allow_identity:
                logger.warning("no bundled %s model is installed yet: running the face pipeline with the identity "
                               "model (faces are detected, aligned and pasted back unchanged)", direction)
                return cls(IdentityFaceTranslator(), face_config, model_name="identity (no bundled model)")
            raise
        model = load_styleanime(ckpt_path, device=device)
        trained_for = getattr(model.config, "direction", None)
        if trained_for and trained_for != direction:
            raise CheckpointError(f"{ckpt_path} translates {trained_for}, but direction={direction} was asked")
        parser_model = load_model(parser_path, device=device, format="vidanime.parser")
        refiner = build_refiner(model, direction, refine_parser, device) if refine > 0 else None
        latent_filter = LatentFilter(model.n_structure_codes) if temporal in ("filter", "flow") else None
        crop_blend = None
        if temporal == "flow":
            crop_blend = CropFlowBlend()
        recolorer = build_recolor(direction, recolor, device)
        translator = StyleAnimeFaceTranslator(model, parser_model, alpha=alpha, device=device, fp16=fp16,
                                              refiner=refiner, refine=refine, refine_every=refine_every,
                                              latent_filter=latent_filter, crop_blend=crop_blend, recolor=recolorer,
                                              upscaler=build_upscaler(direction, upscaler, model, device),
                                              background_fill=background_fill)
        return cls(translator, face_config, model_name=str(checkpoint or default_ckpt),
                   color_match=SEAM_COLOR_MATCH[direction])

    @classmethod
    def finetuned_on(cls, input: str | os.PathLike, output: str | os.PathLike, iterations: int | str,
                     checkpoint: str | os.PathLike | None = None, parser: str | os.PathLike | None = None,
                     direction: str = "p2a", *, start: str | None = None, end: str | None = None,
                     run_dir: str | os.PathLike | None = None, progress: bool = True, device: str = "cpu",
                     face_config: FaceConfig | None = None, **kwargs: Any) -> "TranslatePipeline":
        """``translate --finetune N|auto``: fine-tune ``checkpoint`` (default: the bundled model of ``direction``) on
        the clip ``input`` (range ``start``–``end``; run folder ``run_dir``, default ``<output>.finetune``, resumed
        when it holds this clip's fine-tune), then load the result as :meth:`from_pretrained` does with ``kwargs``.
        The pipeline's ``model_name`` is the fine-tuned checkpoint's path."""
        if direction not in DEFAULT_MODELS:
            raise ConfigError(f"direction='{direction}' is not one of: {', '.join(DEFAULT_MODELS)}")
        default_ckpt, default_parser = DEFAULT_MODELS[direction]
        face_config = face_config or FaceConfig(device=device)
        fill = kwargs.get("background_fill")  # the fine-tune sees the crops as the translation will
        tuned = finetune_for_translate(input, output, str(checkpoint or default_ckpt), str(parser or default_parser),
                                       iterations, face_config=face_config, start=start, end=end, device=device,
                                       run_dir=run_dir, progress=progress,
                                       overrides=None if fill is None else {"background_fill": float(fill)})
        return cls.from_pretrained(str(tuned), parser, direction=direction, device=device, face_config=face_config,
                                   **kwargs)

    # ------------------------------------------------------------------------------------------------------- checks
    @staticmethod
    def check_options(options: TranslateOptions) -> None:
        """Validate the per-run options alone (no paths); raises a one-line error naming the bad value."""
        if options.faces not in ("all", "largest"):
            raise ConfigError(f"faces='{options.faces}' is not one of: all, largest")
        if options.batch < 1 or options.queue < 1:
            raise ConfigError(f"batch={options.batch} and queue={options.queue} must be >= 1")
        if isinstance(options.crf, bool) or not isinstance(options.crf, Integral) or not 0 <= options.crf <= 51:
            raise ConfigError(f"crf={options.crf!r}; expected an integer in 0..51 (18 is visually lossless)")
        if options.preset not in X264_PRESETS:
            raise ConfigError(f"preset={options.preset!r} is not an x264 preset; expected one of "
                              f"{', '.join(X264_PRESETS)}")
        if options.crop and options.preview:
            raise ConfigError("--preview shows the pasted-back video beside the input, which --crop does not make; "
                              "use one of them")

    @staticmethod
    def check_inputs(input: str | os.PathLike, output: str | os.PathLike, options: TranslateOptions) -> None:
        """Validate paths and options before any work (no model is needed, so the CLI calls it before loading any):
        the input is a readable video of at least 8x8 px with a non-empty ``start``/``end`` range, the output and
        preview are writable video paths other than the input, the options are sane.  Raises a one-line error naming
        the bad value."""
        src, dst = Path(input), Path(output)
        check_input_file(src, "input video")
        check_not_same_file(src, dst)
        if options.preview:
            check_not_same_file(src, options.preview)
            if Path(options.preview).resolve() == dst.resolve():
                raise MediaError(f"preview path {options.preview} is the output path; choose another name")
        TranslatePipeline.check_options(options)
        check_video_output(dst, "output video")
        if options.preview:
            check_video_output(options.preview, "preview video")
        if options.report:
            check_output_path(report_path(dst), "report")
        info = VideoReader(src, start=options.start, end=options.end).info  # reads the headers, checks the range
        if min(info.width, info.height) < MIN_FRAME_SIDE:
            raise MediaError(f"input video {src} is {info.width}x{info.height} px: too small to hold a face "
                             f"(expected at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE})")

    # --------------------------------------------------------------------------------------------------------- run
    def _items(self, reader: VideoReader, processor: FaceProcessor) -> Iterator[_Item]:
        """Decode and find faces (runs in the decode thread); pairs each FrameFaces with its frame's pts."""
        metas: deque[Frame] = deque()

        def images() -> Iterator[np.ndarray]:
            for frame in reader:
                metas.append(frame)
                yield frame.image

        for ff in processor.process(images()):
            yield _Item(pts=metas.popleft().pts, faces=ff)

    def __call__(self, input: str | os.PathLike, output: str | os.PathLike,
                 options: TranslateOptions | None = None) -> TranslateResult:
        """Translate ``input`` into ``output`` (written atomically; the input is never touched)."""
        options = options or TranslateOptions()
        self.check_inputs(input, output, options)
        for target in (output, options.preview):  # temporaries a killed earlier run of this output left behind
            if target:
                remove_stale_partials(target)
        t0 = time.perf_counter()
        stats = {"frames_with_faces": 0, "faces": 0, "tracks": set()}
        latents: dict[int, list[np.ndarray]] = {}
        temporal = _TemporalReport() if options.report and not options.crop else None

        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(VideoReader(input, start=options.start, end=options.end))
            self.translator.reset(fps=float(reader.info.fps))
            processor = FaceProcessor(self.face_config, detector=self._detector, fps=float(reader.info.fps))
            self._detector = processor.detector
            writer_kw = dict(like=reader, audio_from=input, crf=options.crf, preset=options.preset, inputs=(input,))
            writer = stack.enter_context(VideoWriter(output, **writer_kw))
            preview = stack.enter_context(VideoWriter(options.preview, **writer_kw)) if options.preview else None

            def process(batch: Sequence[_Item]) -> list[Any]:
                outs = self._process(batch, options, stats, latents)
                if temporal is not None:
                    for item, (out, _) in zip(batch, outs):
                        temporal.add(item.faces.frame, out)
                return outs

            sink = _Tee(writer, preview)
            run_stages(self._items(reader, processor), process, sink, queue_size=options.queue,
                       batch_size=max(1, options.batch // 2), progress=options.progress,
                       total=len(reader), desc="translate")
            n_frames = writer.frames_written
        seconds = time.perf_counter() - t0
        result = TranslateResult(
            output=str(output), preview=options.preview, frames=n_frames,
            frames_with_faces=stats["frames_with_faces"], faces=stats["faces"], tracks=len(stats["tracks"]),
            seconds=round(seconds, 2), model=self.model_name, latent_roughness=_roughness(latents),
            temporal=temporal.result() if temporal is not None else None,
        )
        if result.faces == 0:
            result.notes.append("no face was found: the output is the input re-encoded")
            logger.warning("no face found in %s: the output is the input re-encoded, unchanged", input)
        if options.report:
            result.report = str(report_path(output))
            atomic_write_text(result.report, result.to_json())
        return result

    def _select(self, ff: FrameFaces, options: TranslateOptions) -> list:
        faces = ff.faces
        if options.faces == "largest" or options.crop:
            faces = sorted(faces, key=lambda f: -float(np.prod(f.box[2:] - f.box[:2])))[:1]
        return faces

    def _process(self, batch: Sequence[_Item], options: TranslateOptions, stats: dict,
                 latents: dict[int, list[np.ndarray]]) -> list[Any]:
        """Model step for a batch of frames: all their faces go through the translator at once, then paste-back."""
        chosen = [self._select(item.faces, options) for item in batch]
        flat = [f for faces in chosen for f in faces]
        result = None
        if flat:
            result = self.translator(np.stack([f.crop for f in flat]), [f.track_id for f in flat])
            if result.latents is not None:
                for f, w in zip(flat, result.latents):
                    latents.setdefault(f.track_id, []).append(w.numpy())
        outputs: list[Any] = []
        k = 0
        for item, faces in zip(batch, chosen):
            frame = item.faces.frame
            idx = list(range(k, k + len(faces)))
            k += len(faces)
            if faces:
                stats["frames_with_faces"] += 1
                stats["faces"] += len(faces)
                stats["tracks"].update(f.track_id for f in faces)
            if options.crop:
                s = self.face_config.crop_size
                out = result.crops[idx[0]] if faces else np.zeros((s, s, 3), np.uint8)
            else:
                out = paste_faces(frame, [PasteItem(result.crops[i], f.matrix, result.masks[i], f.weight)
                                          for i, f in zip(idx, faces)], color_match=self.color_match)
            prev = _preview_frame(frame, out, item.faces, result, idx) if options.preview and not options.crop else None
            outputs.append((out, prev))
        return outputs


def _roughness(latents: dict[int, list[np.ndarray]]) -> float | None:
    """Latent roughness (see :func:`vidanime.metrics.temporal.latent_roughness`) averaged over tracks, weighted by
    their number of inner frames; None when no track has 3 codes."""
    vals = [(latent_roughness(np.stack(seq)), len(seq) - 2) for seq in latents.values() if len(seq) >= 3]
    return float(sum(v * n for v, n in vals) / sum(n for _, n in vals)) if vals else None


class _TemporalReport:
    """Accumulates warp error and flicker terms of consecutive (input, output) frames as they stream past."""

    def __init__(self, max_side: int = 320) -> None:
        self.max_side = max_side
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        self.warp: list[dict[str, float]] = []
        self.flicker: list[dict[str, float]] = []

    def add(self, frame: np.ndarray, out: np.ndarray) -> None:
        i = prepare_frame(frame, self.max_side)
        o = prepare_frame(out, size=i.shape[:2])
        if self.prev is not None:
            pair = FramePair(self.prev[0], i, self.prev[1], o)
            self.warp.append(warp_error_terms(pair))
            self.flicker.append(flicker_terms(pair))
        self.prev = (i, o)

    def result(self) -> dict[str, dict[str, float]] | None:
        if not self.warp:
            return None
        return {"warp_error": reduce_warp_error(self.warp), "flicker_index": reduce_flicker(self.flicker)}


class _Tee:
    """Writer that sends (output, preview) pairs to the output writer and the optional preview writer."""

    def __init__(self, writer: VideoWriter, preview: VideoWriter | None) -> None:
        self.writer, self.preview = writer, preview

    def write(self, item: tuple[np.ndarray, np.ndarray | None], pts: int | None = None) -> None:
        out, prev = item
        self.writer.write(out, pts=pts)
        if self.preview is not None and prev is not None:
            self.preview.write(prev, pts=pts)
