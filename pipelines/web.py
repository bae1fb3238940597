"""A browser app over the same pipelines as the CLI: ``build_app(WebConfig()) -> gr.Blocks`` (``vidanime serve``).

The page only collects inputs and shows results; the work is done by :func:`translate_video` and
:func:`translate_image`, plain functions that check the upload (size, duration, readable), run
:class:`~pipelines.translate.TranslatePipeline` (``finetuned_on`` for a fine-tune) /
:class:`~pipelines.image_translate.ImageTranslatePipeline` into a per-job folder under ``WebConfig.workdir``, and return
what the page shows.  User errors (:class:`~vidanime.errors.VidanimeError`) become a message in the page; the server
keeps serving.  Jobs run one at a time (Gradio queue, concurrency 1); job folders older than ``cleanup_after_min`` are
deleted when the next job starts.  Gradio is an optional extra (``pip install '.[web]'``) imported by
:func:`build_app` only, so the functions run without it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.image_translate import ImageTranslatePipeline
from pipelines.translate import (
    DEFAULT_MODELS,
    TranslateOptions,
    TranslatePipeline,
    build_recolor,
    build_refiner,
    build_upscaler,
)
from vidanime.checkpoint import read_torch_file
from vidanime.errors import CheckpointError, ConfigError, MediaError, VidanimeError
from vidanime.models.parser import config_of
from vidanime.registry import load_model, resolve_path
from vidanime.video.detect import check_detector, default_detector
from vidanime.video.faces import FaceConfig
from vidanime.video.probe import probe
from vidanime.video.recolor import RecolorConfig

logger = logging.getLogger(__name__)

__all__ = ["WebConfig", "VideoOutcome", "ImageOutcome", "translate_video", "translate_image", "check_upload",
           "cleanup_jobs", "build_app", "public_message", "INSTALL_HINT"]

INSTALL_HINT = "the web app needs Gradio: pip install '.[web]'"
IDENTITY_NOTE = ("No bundled StyleAnime model is installed: faces are detected, aligned and pasted back unchanged "
                 "(identity model). Start the server with --checkpoint and --parser to translate.")


@dataclass
class WebConfig:
    """Server limits and models.  ``max_upload_mb``/``max_seconds``: larger or longer uploads are refused;
    ``cleanup_after_min``: job folders (and Gradio's upload cache) older than this are deleted; ``workdir``: where
    job folders go (default: ``<tmp>/vidanime-web``); ``checkpoint``/``parser``: StyleAnime checkpoint and face parser
    (registry names or paths; default: the bundled models of the chosen direction, else the identity face model for
    videos); ``detector``/``detector_weights``: face detector for videos (default: mtcnn for p2a, or haar
    without facenet-pytorch; animeparser for a2p); ``max_finetune``: the largest fine-tune offered in the page."""

    max_upload_mb: float = 200.0
    max_seconds: float = 60.0
    cleanup_after_min: float = 60.0
    device: str = "cpu"
    workdir: str | None = None
    checkpoint: str | None = None
    parser: str | None = None
    detector: str | None = None
    detector_weights: str | None = None
    max_finetune: int = 2000

    def check(self) -> "WebConfig":
        """Refuse non-positive limits and a detector that cannot run (unknown, package or weights missing) with a
        one-line error naming the value."""
        for name in ("max_upload_mb", "max_seconds", "cleanup_after_min"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name}={value!r}: expected a number > 0")
        if self.max_finetune < 0:
            raise ConfigError(f"max_finetune={self.max_finetune}: expected >= 0")

        check_detector(self.detector, self.detector_weights)  # at start-up, not at the first job
        return self

    @property
    def root(self) -> Path:
        return Path(self.workdir) if self.workdir else Path(tempfile.gettempdir()) / "vidanime-web"


@dataclass
class VideoOutcome:
    """A video job's results: translated video, side-by-side preview, report JSON, temporal report, page message."""

    output: str
    preview: str
    report: str
    temporal: dict[str, dict[str, float]] | None
    message: str
    result: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        """The downloads offered in the page."""
        return [self.output, self.preview, self.report]


@dataclass
class ImageOutcome:
    """An image job's result: the translated image and the page message."""

    output: str
    message: str


# ------------------------------------------------------------------------------------------------------- helpers
def cleanup_jobs(root: str | os.PathLike, older_than_s: float) -> int:
    """Delete job folders (``job-*``) under ``root`` last modified more than ``older_than_s`` ago; → how many."""
    root = Path(root)
    if not root.is_dir():
        return 0
    now, removed = time.time(), 0
    for job in root.glob("job-*"):
        if job.is_dir() and now - job.stat().st_mtime > older_than_s:
            shutil.rmtree(job, ignore_errors=False)
            removed += 1
    if removed:
        logger.info("removed %d job folder(s) older than %.0f s from %s", removed, older_than_s, root)
    return removed


def _new_job(config: WebConfig) -> Path:
    """Clean old job folders, then make a fresh one: ``<workdir>/job-<time>-<id>``."""
    root = config.root
    root.mkdir(parents=True, exist_ok=True)
    cleanup_jobs(root, config.cleanup_after_min * 60.0)
    job = root / f"job-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    job.mkdir()
    return job


@contextlib.contextmanager
def _job_folder(config: WebConfig):
    """A fresh job folder (see :func:`_new_job`) that is deleted again when the job fails, so a refused or failed
    job leaves nothing behind."""
    job = _new_job(config)
    try:
        yield job
    except BaseException:
        shutil.rmtree(job, ignore_errors=True)
        raise


def public_message(exc: BaseException, config: WebConfig, uploads: tuple[Any, ...] = ()) -> str:
    """``exc``'s message on one line, as the page shows it: the server's paths (Gradio's upload cache, the job
    folders, the temporary folder) are cut down to the file's name, so the page names the uploaded file and never
    says where the server keeps it."""
    text = " ".join(str(exc).split())
    for up in sorted((str(u) for u in uploads if u), key=len, reverse=True):
        for variant in {up, str(Path(up).resolve())}:
            text = text.replace(variant, Path(up).name)
    tmp = tempfile.gettempdir()
    roots = {str(config.root), str(config.root.resolve()), tmp, os.path.realpath(tmp)}
    for root in sorted((r.rstrip(os.sep) for r in roots if r.rstrip(os.sep)), key=len, reverse=True):
        text = re.sub(r"(?<![^\s'\"(=])" + re.escape(root) + r"(?:/[^\s'\":;,()]*)?",
                      lambda m: Path(m.group(0)).name, text)
    return text


def check_upload(path: str | os.PathLike | None, config: WebConfig, kind: str = "video") -> Path:
    """Refuse a missing, oversized, unreadable or (videos) too long upload with a one-line MediaError; → the path."""
    if path is None or str(path) == "":
        raise MediaError(f"no {kind} uploaded: choose a file first")
    src = Path(path)
    if not src.is_file():
        raise MediaError(f"uploaded {kind} not found: {src}")
    mb = src.stat().st_size / 2**20
    if mb > config.max_upload_mb:
        raise MediaError(f"{src.name} is {mb:.1f} MB: uploads are limited to {config.max_upload_mb:g} MB")
    if kind == "video":
        info = probe(src)  # a non-video file raises a one-line MediaError
        if info.duration > config.max_seconds:
            raise MediaError(f"{src.name} lasts {info.duration:.1f} s: videos are limited to {config.max_seconds:g} s "
                             "(trim it, e.g. with vidanime transcode --end)")
    return src


def _blank(value: Any) -> Any:
    """'' / whitespace from a text box → None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value.strip() if isinstance(value, str) else value


_PIPELINES: dict[tuple, Any] = {}
_PIPELINES_LOCK = threading.Lock()


def _face_config(config: WebConfig, direction: str):
    detector = config.detector or default_detector(direction)
    return FaceConfig(device=config.device, detector=detector, detector_weights=config.detector_weights)


def _video_pipeline(config: WebConfig, direction: str, alpha: float | None, checkpoint: str | None = None,
                    recolor: float = RecolorConfig.strength):
    """TranslatePipeline for these settings, kept between jobs (the models load once)."""
    ckpt = checkpoint or config.checkpoint
    key = (ckpt, config.parser, direction, alpha, recolor, config.device, config.detector, config.detector_weights)
    with _PIPELINES_LOCK:
        if key not in _PIPELINES:
            _PIPELINES.clear()  # one model set in memory at a time
            _PIPELINES[key] = TranslatePipeline.from_pretrained(
                ckpt, config.parser, direction=direction, alpha=alpha, device=config.device,
                face_config=_face_config(config, direction), allow_identity=True, recolor=recolor)
        return _PIPELINES[key]


def _temporal_line(temporal: dict[str, dict[str, float]] | None) -> str:
    if not temporal:
        return "Temporal stability: not measured (fewer than two frames)."
    we, fl = temporal["warp_error"], temporal["flicker_index"]
    return (f"Temporal stability: warp error {we['value']:.5f} (input {we['input']:.5f}), "
            f"flicker index {fl['value']:.3f} (1 = as steady as the input).")


# ---------------------------------------------------------------------------------------------------- the jobs
def translate_video(video: str | os.PathLike | None, config: WebConfig, *, direction: str = "p2a",
                    alpha: float | None = None, finetune: int = 0, faces: str = "all", start: str | None = None,
                    end: str | None = None, progress: bool = True,
                    recolor: float = RecolorConfig.strength) -> VideoOutcome:
    """Translate an uploaded video like ``vidanime translate IN OUT --preview --report [--finetune N] [--recolor S]``
    into a new job folder (deleted again if the job fails); → :class:`VideoOutcome`.  Raises a one-line
    VidanimeError for bad input (the page shows it)."""
    config.check()
    RecolorConfig(strength=float(recolor)).check()
    src = check_upload(video, config, "video")
    if direction not in DEFAULT_MODELS:
        raise ConfigError(f"direction='{direction}' is not one of: {', '.join(DEFAULT_MODELS)}")
    finetune = int(finetune or 0)
    if not 0 <= finetune <= config.max_finetune:
        raise ConfigError(f"fine-tune iterations {finetune}: expected 0 to {config.max_finetune}")
    start, end = _blank(start), _blank(end)
    options = TranslateOptions(start=start, end=end, faces=faces, preset="veryfast", progress=progress, report=True)
    with _job_folder(config) as job:
        out = job / f"{src.stem}_{direction}.mp4"
        options.preview = str(job / f"{src.stem}_{direction}_preview.mp4")
        TranslatePipeline.check_inputs(src, out, options)
        notes: list[str] = []
        pipe = _video_pipeline(config, direction, alpha, recolor=recolor)
        if finetune > 0:
            if pipe.model_name.startswith("identity"):
                raise ConfigError(f"fine-tuning ({finetune} iterations) needs a StyleAnime checkpoint, and none is "
                                  "installed: start the server with --checkpoint and --parser")
            pipe = TranslatePipeline.finetuned_on(src, out, finetune, config.checkpoint, config.parser,
                                                  direction=direction, start=start, end=end, run_dir=job / "finetune",
                                                  progress=progress, device=config.device, alpha=alpha,
                                                  face_config=_face_config(config, direction), recolor=recolor)
            notes.append(f"Fine-tuned on this clip for {finetune} iterations.")
        result = pipe(src, out, options)
        report = result.report
    if pipe.model_name.startswith("identity"):
        notes.append(IDENTITY_NOTE)
    notes += [n[0].upper() + n[1:] + "." for n in result.notes]
    model = Path(result.model).name if Path(result.model).is_file() else result.model
    lines = [f"Done: {result.frames} frames, {result.faces} faces in {result.tracks} tracks, {result.seconds:.1f} s "
             f"(model: {model}).", _temporal_line(result.temporal), *notes]
    return VideoOutcome(output=str(out), preview=options.preview, report=str(report), temporal=result.temporal,
                        message="\n\n".join(lines), result=result, notes=notes)


def translate_image(image: str | os.PathLike | None, config: WebConfig, *, parsing: str | os.PathLike | None = None,
                    reference: str | os.PathLike | None = None, direction: str = "p2a",
                    alpha: float | None = None, refine: int | None = None, faces: str = "auto",
                    recolor: float = RecolorConfig.strength) -> ImageOutcome:
    """Translate an uploaded image like ``vidanime image translate``: a photo's faces are found and pasted back
    (``faces``, see :mod:`pipelines.image_translate`), an aligned crop is resized to the model's size (and its
    drawing doubled by the bundled upscaler, as the command line's), with an optional edited parsing map (label PNG,
    BiSeNet order) and a style reference; ``refine``: test-time refinement steps (None = the checkpoint's default;
    off with a reference); → :class:`ImageOutcome`."""
    config.check()
    src = check_upload(image, config, "image")
    if parsing is not None:
        check_upload(parsing, config, "parsing map")
    if reference is not None:
        check_upload(reference, config, "reference image")
    if direction not in DEFAULT_MODELS:
        raise ConfigError(f"direction='{direction}' is not one of: {', '.join(DEFAULT_MODELS)}")
    default_ckpt, default_parser = DEFAULT_MODELS[direction]
    try:
        ckpt = resolve_path(config.checkpoint or default_ckpt)
    except CheckpointError as exc:
        raise CheckpointError(f"no StyleAnime model to translate images with ({exc}): start the server with "
                              "--checkpoint PATH") from exc
    key = ("image", str(ckpt), config.parser, direction, config.device)
    with _PIPELINES_LOCK:
        if key not in _PIPELINES:
            kwargs: dict[str, Any] = {}
            try:
                net = load_model(resolve_path(config.parser or default_parser), device=config.device,
                                 format="vidanime.parser")
                kwargs.update(parser=net, parser_labels=config_of(net).label_set)
            except CheckpointError as exc:  # no parser: the page then needs an edited parsing map
                logger.warning("no face parser for image jobs (%s): a parsing map must be uploaded", exc)
            _PIPELINES.clear()
            pipe = ImageTranslatePipeline.from_pretrained(ckpt, device=config.device, direction=direction,
                                                          progress=False, **kwargs)
            # the bundled drawing upscaler, as `image translate`'s default (--upscaler auto); built once per pipeline
            pipe.upscaler = build_upscaler(direction, "auto", pipe.model, config.device)
            _PIPELINES[key] = pipe
        pipe = _PIPELINES[key]
        if refine is None:
            refine = 0 if reference is not None else int(pipe.model.inference.get("refine", 0))
        refine = int(refine)
        if refine > 0 and pipe.refiner is None:
            pipe.refiner = build_refiner(pipe.model, direction, device=config.device)
        if pipe.recolor is None:  # the hair/eye recolouring, as the command line's (not with a reference)
            pipe.recolor = build_recolor(direction, RecolorConfig.strength, device=config.device)
        pipe.recolor.config = RecolorConfig(strength=float(recolor)).check()  # 0 = the model's own colours
    with _job_folder(config) as job:
        out = job / f"{src.stem}_{direction}.png"
        pipe(src, out, parsing=parsing, reference=reference, alpha=alpha, resize=True, refine=refine, faces=faces)
        pasted = out in pipe.pasted
    notes = ["Faces found and pasted back into the picture." if pasted else "Translated as one aligned face crop.",
             "Used your parsing map." if parsing is not None else "Parsed by the face parser.",
             "Appearance from the reference image." if reference is not None else "",
             f"Refined for {refine} steps." if refine else ""]
    return ImageOutcome(output=str(out), message=" ".join(n for n in ["Done.", *notes] if n))


# ---------------------------------------------------------------------------------------------------------- UI
def _inference_defaults(config: WebConfig) -> dict[str, Any]:
    """The p2a checkpoint's saved test-time defaults (``inference``: alpha, k, anchor_layers, refine; {} when it records
    none or cannot be read), so the page starts from the values measured for the model, as the CLI does."""
    try:
        data = read_torch_file(resolve_path(config.checkpoint or DEFAULT_MODELS["p2a"][0]))
    except VidanimeError:
        return {}
    return dict((data.get("inference") if isinstance(data, dict) else None) or {})


def _default_refine(config: WebConfig, inference: dict[str, Any] | None = None) -> int:
    """The p2a checkpoint's saved --refine default (0 when it records none or cannot be read); ``inference``: its
    :func:`_inference_defaults`, when already read."""
    return int((_inference_defaults(config) if inference is None else inference).get("refine", 0))


def _default_alpha(config: WebConfig, inference: dict[str, Any] | None = None) -> float:
    """The p2a checkpoint's saved FaceBank alpha (1 = off when it records none or cannot be read); ``inference``: as
    :func:`_default_refine`."""
    alpha = (_inference_defaults(config) if inference is None else inference).get("alpha")
    return 1.0 if alpha is None else float(alpha)


def _error_message(exc: VidanimeError, config: WebConfig, uploads: tuple[Any, ...] = ()) -> str:
    return "**Error:** " + public_message(exc, config, uploads)


def build_app(config: WebConfig):
    """The Gradio page: a Video tab and an Image tab, each calling the function above through the queue."""
    try:
        import gradio as gr  # here, not at the top: optional extra [web]
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc

    config.check()
    config.root.mkdir(parents=True, exist_ok=True)
    cleanup_jobs(config.root, config.cleanup_after_min * 60.0)
    age = int(config.cleanup_after_min * 60)

    def run_video(video, direction, alpha, recolor, finetune, faces, start, end,
                  progress=gr.Progress(track_tqdm=True)):
        try:
            o = translate_video(video, config, direction=direction, alpha=float(alpha), finetune=int(finetune),
                                faces=faces, start=start, end=end, recolor=float(recolor))
        except VidanimeError as exc:
            logger.info("video job refused: %s", exc)
            return None, None, None, None, _error_message(exc, config, (video,))
        return o.output, o.preview, o.temporal, o.files, o.message

    def run_image(image, parsing, reference, direction, alpha, recolor, refine,
                  progress=gr.Progress(track_tqdm=True)):
        try:
            o = translate_image(image, config, parsing=parsing, reference=reference, direction=direction,
                                alpha=float(alpha), refine=int(refine) if reference is None else 0,
                                recolor=float(recolor))
        except VidanimeError as exc:
            logger.info("image job refused: %s", exc)
            return None, None, _error_message(exc, config, (image, parsing, reference))
        return o.output, o.output, o.message

    inference = _inference_defaults(config)  # the model's measured defaults, as the CLI uses (one read)
    alpha0 = _default_alpha(config, inference)
    alpha_label = "FaceBank α (1 = off; starts at the model's measured default)"
    recolor_label = "Keep hair and eye colours (0 = the model's own, 1 = the input's)"
    limits = (f"Uploads up to {config.max_upload_mb:g} MB; videos up to {config.max_seconds:g} s. "
              f"Results are deleted after {config.cleanup_after_min:g} min. One job runs at a time.")
    with gr.Blocks(title="vidanime", analytics_enabled=False, delete_cache=(max(60, age // 2), age)) as app:
        gr.Markdown("# vidanime\nTurn the faces in a video or photo into anime characters (StyleAnime).\n\n" + limits)
        with gr.Tab("Video"):
            with gr.Row():
                v_in = gr.Video(label="Input video", sources=["upload"], elem_id="video-input")
                v_out = gr.Video(label="Translated", interactive=False, elem_id="video-output")
            with gr.Row():
                v_dir = gr.Radio(["p2a", "a2p"], value="p2a", label="Direction (p2a: real → anime)")
                v_alpha = gr.Slider(0.0, 1.0, value=alpha0, step=0.05, label=alpha_label)
                v_recolor = gr.Slider(0.0, 1.0, value=RecolorConfig.strength, step=0.05, label=recolor_label)
                v_ft = gr.Slider(0, config.max_finetune, value=0, step=50, label="Fine-tune iterations (0 = off)")
            with gr.Row():
                v_faces = gr.Radio(["all", "largest"], value="all", label="Faces")
                v_start = gr.Textbox(label="Start (s or '30f')", placeholder="beginning", elem_id="video-start")
                v_end = gr.Textbox(label="End (s or '90f')", placeholder="end", elem_id="video-end")
            v_go = gr.Button("Translate video", variant="primary", elem_id="video-run")
            v_msg = gr.Markdown(elem_id="video-status")
            with gr.Row():
                v_prev = gr.Video(label="Side by side: input | crop + parsing | output", interactive=False)
                v_temporal = gr.JSON(label="Temporal stability")
            v_files = gr.File(label="Downloads", file_count="multiple", interactive=False)
            v_go.click(run_video, [v_in, v_dir, v_alpha, v_recolor, v_ft, v_faces, v_start, v_end],
                       [v_out, v_prev, v_temporal, v_files, v_msg], concurrency_id="device",
                       concurrency_limit=1)
        with gr.Tab("Image"):
            with gr.Row():
                i_in = gr.Image(label="Face photo (upload or webcam)", sources=["upload", "webcam"], type="filepath",
                                format="png", elem_id="image-input")
                i_out = gr.Image(label="Translated", type="filepath", interactive=False, height=320,
                                 elem_id="image-output")
            with gr.Row():
                i_parse = gr.File(label="Edited parsing map (optional label PNG, BiSeNet ids)", file_types=[".png"])
                i_ref = gr.Image(label="Style reference (optional)", sources=["upload"], type="filepath", format="png")
            with gr.Row():
                i_dir = gr.Radio(["p2a", "a2p"], value="p2a", label="Direction")
                i_alpha = gr.Slider(0.0, 1.0, value=alpha0, step=0.05, label=alpha_label)
                i_recolor = gr.Slider(0.0, 1.0, value=RecolorConfig.strength, step=0.05, label=recolor_label)
                i_refine = gr.Slider(0, 100, value=_default_refine(config, inference), step=5,
                                     label="Refine steps: follow the photo's layout and colours more (0 = off; "
                                           "about 0.1 s a step on CPU)")
            i_go = gr.Button("Translate image", variant="primary", elem_id="image-run")
            i_msg = gr.Markdown(elem_id="image-status")
            i_file = gr.File(label="Download", interactive=False)
            i_go.click(run_image, [i_in, i_parse, i_ref, i_dir, i_alpha, i_recolor, i_refine], [i_out, i_file, i_msg],
                       concurrency_id="device", concurrency_limit=1)
    app.queue(default_concurrency_limit=1, max_size=32)
    return app


def launch(config: WebConfig, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Build and serve the app on ``host:port`` (uploads over ``max_upload_mb`` are refused by Gradio too)."""
    app = build_app(config)
    app.launch(server_name=host, server_port=port, share=False, max_file_size=f"{config.max_upload_mb:g}mb",
               allowed_paths=[str(config.root)], prevent_thread_lock=not block, quiet=True)
    return app
