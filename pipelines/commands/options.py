"""Click options shared by the commands that translate videos (translate, batch, finetune): one definition each."""
from __future__ import annotations

import math
from typing import Any, Callable

import click

from vidanime.video.io import X264_PRESETS

__all__ = ["FiniteFloatRange", "FINITE_FLOAT", "DEVICE", "MODEL_OPTIONS", "BACKGROUND_FILL_HELP", "UPSCALER_HELP",
           "VIDEO_UPSCALER_HELP", "REFINE_OPTIONS", "RENDER_OPTIONS", "DETECTOR_OPTIONS", "TEMPORAL_OPTION",
           "checkpoint_option", "parser_option", "direction_option", "finetune_option"]

class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and ±inf, which click lets through (nan compares false with any
    bound, so ``--lr nan`` passed ``min=0``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv

    def _describe_range(self) -> str:
        """No range in ``--help`` for an unbounded float (click would print ``x<=None``)."""
        return "" if self.min is None and self.max is None else super()._describe_range()


FINITE_FLOAT = FiniteFloatRange()  # any finite float (for options without a range)

DETECTORS = ["mtcnn", "retinaface", "yunet", "animecascade", "animeparser", "haar"]  # vidanime.video.detect.DETECTORS


def _stack(*decorators: Callable) -> Callable:
    """Apply option decorators so that they appear in ``--help`` in the order given."""

    def apply(f: Callable) -> Callable:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def show_progress(no_progress: bool = False) -> bool:
    """Whether a command draws progress bars: not with its ``--no-progress`` nor under the group's ``-q/--quiet``
    (which promises only warnings and errors)."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    quiet = isinstance(root.obj, dict) and bool(root.obj.get("quiet")) if root is not None else False
    return not (no_progress or quiet)


def checkpoint_option(what: str = "StyleAnime checkpoint") -> Callable:
    return click.option("--checkpoint", default=None, metavar="NAME|PATH",
                        help=f"{what} (registry name or path). Default: the bundled model of --direction.")


def parser_option() -> Callable:
    return click.option("--parser", "parser_ckpt", default=None, metavar="NAME|PATH",
                        help="Face parser for the input domain. Default: the bundled parser of --direction.")


def direction_option(help: str = "p2a: real faces to anime; a2p: anime faces to real.") -> Callable:
    return click.option("--direction", type=click.Choice(["p2a", "a2p"]), default="p2a", show_default=True, help=help)


FINETUNE_AUTO = "auto"  # pipelines.finetune.FINETUNE_AUTO (not imported here, so that `--help` stays light)


class FinetuneType(click.ParamType):
    """``--finetune``: a number of iterations >= 0 (an int) or ``auto`` (the string)."""

    name = "N|auto"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        text = str(value).strip().lower()
        if text == FINETUNE_AUTO:
            return FINETUNE_AUTO
        if text.isdigit():
            return int(text)
        self.fail(f"{value!r} is not a number of iterations >= 0 or 'auto'", param, ctx)


def finetune_option(what: str) -> Callable:
    return click.option("--finetune", type=FinetuneType(), default=0, show_default=True, metavar="N|auto",
                        help=f"First fine-tune the model on {what} for N iterations (paper §6.3.3; paper: 5000), "
                             "then translate with the result. auto: up to 300 iterations, stopping after 10 s of "
                             "training per second of clip (on 2 CPU cores 24-36 iterations for 3 s of video). "
                             "0 = off.")


class DeviceType(click.ParamType):
    """A torch device name (auto, cpu, cuda, cuda:N), checked when the options are parsed: an unknown name or CUDA on
    a machine without a GPU is a one-line usage error before any model is loaded."""

    name = "device"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if value is None:
            return None
        from vidanime.errors import ConfigError
        from vidanime.train.parser import resolve_device

        try:
            resolve_device(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


DEVICE = DeviceType()


DETECTOR_OPTIONS = _stack(
    click.option("--detector", type=click.Choice(DETECTORS), default=None,
                 help="Face detector (default: mtcnn for p2a, or haar when facenet-pytorch is missing: OpenCV's "
                      "cascade + the bundled portrait parser; animeparser for a2p: the bundled anime parser; "
                      "no file needed)."),
    click.option("--detector-weights", default=None, metavar="PATH",
                 help="Weights file for retinaface/yunet/animecascade (parser checkpoint for animeparser/haar)."),
)

RECOLOR_DEFAULT = 0.85  # vidanime.video.recolor.RecolorConfig.strength (not imported here: `--help` stays light)

UPSCALER_HELP = ("Learned x2 upscaler of the drawings (an addition to the paper: sharper lines from the 64-px demo "
                 "generator): found faces are doubled before they are resized and pasted back, --faces aligned "
                 "outputs are written at twice the model size. auto = the bundled one where the model draws below "
                 "its size, none = bilinear resize only (aligned outputs at the model size).")
VIDEO_UPSCALER_HELP = ("Learned x2 upscaler of the drawings (an addition to the paper): auto or upscaler-anime = "
                       "sharper lines, but each frame's re-drawn detail then measures ~25-40 % more warp error "
                       "(README, 'Sharper drawings'), so videos default to none (bilinear); stills (image translate) "
                       "to auto.")

BACKGROUND_FILL_HELP = ("Move each face crop's background (what the parser calls background) this far towards the "
                        "near-white paper of anime drawings before the encoders read it (an addition to the paper: "
                        "a dark room behind a person can otherwise turn into a muddy face). 0 = off, 1 = replaced. "
                        "Default: the checkpoint's (0 for the bundled model, where it measured neutral).")

MODEL_OPTIONS = _stack(
    checkpoint_option(),
    parser_option(),
    direction_option(),
    click.option("--alpha", type=FiniteFloatRange(0, 1), default=None,
                 help="FaceBank blend α of Eq. 14 (1 = off, lower = closer to the bank's in-domain codes). "
                      "Default: the checkpoint's. Layers the checkpoint pins to the bank (the bundled model: its "
                      "finest code) take the bank's code at any α below 1."),
    click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu, cuda or cuda:N."),
    click.option("--fp16", is_flag=True, help="Half precision for the model (CUDA only)."),
    click.option("--recolor", type=FiniteFloatRange(0, 1), default=RECOLOR_DEFAULT, show_default=True,
                 help="Carry the input's hair and eye colours onto each drawing (an addition to the paper: the "
                      "drawing's colours are matched to the input's per region, its lines and shading kept). "
                      "0 = the model's own colours, 1 = the input's."),
    click.option("--upscaler", default="none", show_default=True, metavar="none|auto|NAME|PATH",
                 help=VIDEO_UPSCALER_HELP),
    click.option("--background-fill", type=FiniteFloatRange(0, 1), default=None, help=BACKGROUND_FILL_HELP),
)

# choices: pipelines.translate.TEMPORAL_MODES (not imported here, so that `--help` stays light)
TEMPORAL_OPTION = click.option(
    "--temporal", type=click.Choice(["off", "filter", "flow"]), default="flow", show_default=True,
    help="flow: filter, and blend each face's drawing with the previous one carried along the input's own motion "
         "where that motion is reliable (about half the flicker of filter on turning heads, slightly softer). "
         "filter: steady the video by filtering each face track's W+ codes over time (causal One-Euro, 4 Hz for "
         "structure codes so expressions still move, 0.5 Hz for appearance codes). Both are additions to the paper "
         "at no measurable cost in speed. off: every frame alone. For the paper's per-clip fine-tune, see "
         "--finetune.")

REFINE_OPTIONS = _stack(
    click.option("--refine", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
                 help="Test-time refinement (an addition to the paper): N Adam steps per keyframe on each track's W+ "
                      "code towards the input's layout and hair/skin/eye colours; frames between keyframes reuse the "
                      "eased correction. A few seconds per keyframe and face on CPU. 0 = off."),
    click.option("--refine-every", type=click.IntRange(min=1), default=8, show_default=True, metavar="K",
                 help="With --refine: refine every K-th frame of each track (and its first)."),
)

RENDER_OPTIONS = _stack(
    click.option("--faces", type=click.Choice(["all", "largest"]), default="all", show_default=True,
                 help="Translate every face, or only the largest one in each frame."),
    click.option("--crop", is_flag=True,
                 help="Write the aligned face video of the largest face instead of pasting back."),
    click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
                 help="H.264 quality (lower is better; 18 is visually lossless)."),
    click.option("--preset", type=click.Choice(X264_PRESETS), default="medium", show_default=True,
                 metavar="PRESET", help="x264 speed preset (ultrafast ... veryslow)."),
    DETECTOR_OPTIONS,
    click.option("--detect-every", type=click.IntRange(min=1), default=3, show_default=True, metavar="K",
                 help="Run the face detector on every K-th frame; between, faces follow their tracked motion (a lost "
                      "face or a scene cut is detected at once). 1: detect on every frame (new faces appear "
                      "without delay)."),
    click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Faces per model call."),
    click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
)
