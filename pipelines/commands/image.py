"""`vidanime image translate IN OUT` (photos or aligned face crops, a file or a folder) and `vidanime image manga`."""
from __future__ import annotations

import click

from .options import (
    BACKGROUND_FILL_HELP,
    DETECTORS,
    DEVICE,
    FINITE_FLOAT,
    RECOLOR_DEFAULT,
    UPSCALER_HELP,
    FiniteFloatRange,
    show_progress,
)


@click.group(name="image")
def cli() -> None:
    """Translate still images (photos or aligned face crops) with StyleAnime."""


@cli.command(name="translate")
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--checkpoint", "-c", default=None, metavar="NAME|PATH",
              help="StyleAnime checkpoint: a bundled name, ours (vidanime.styleanime) or the official .pt "
                   "[default: the bundled model of --direction, styleanime-p2a].")
@click.option("--parsing", "-p", default=None, type=click.Path(),
              help="Label PNG for IN (a folder of them for a folder IN).")
@click.option("--parsing-labels", default="bisenet", show_default=True,
              type=click.Choice(["celebamask", "bisenet", "danbooru"]), help="Class order of the parsing maps.")
@click.option("--parser", default=None, metavar="NAME|PATH",
              help="Face parser used when --parsing is not given [default: the bundled parser of the input domain, "
                   "parser-portrait for p2a].")
@click.option("--reference", "-r", default=None, type=click.Path(),
              help="Image giving the appearance codes (style mixing).")
@click.option("--style-from", default=None, type=click.Path(),
              help="Image whose appearance codes are mixed with IN's by --mix (appearance editing).")
@click.option("--mix", default=1.0, show_default=True, type=FINITE_FLOAT,
              help="With --style-from: (1-mix)*own + mix*other appearance codes (1 = same as --reference).")
@click.option("--direction", type=click.Choice(["p2a", "a2p"]), default="p2a", show_default=True,
              help="p2a: portrait to anime; a2p: anime to portrait (a2p checkpoint, anime --parser). A checkpoint "
                   "recorded for the other direction is refused.")
@click.option("--alpha", "-a", default=None, type=FINITE_FLOAT,
              help="FaceBank blend: w_agg = a*w + (1-a)*w_anchor (1 = off) [default: the checkpoint's; layers the "
                   "checkpoint pins to the bank take w_anchor at any a below 1].")
@click.option("--facebank", default=None, type=click.Path(), help="FaceBank file (else the checkpoint's own bank).")
@click.option("--k", default=None, type=click.IntRange(min=1),
              help="FaceBank neighbours [default: the checkpoint's, else 10].")
@click.option("--resize/--no-resize", default=True, show_default=True,
              help="Resize inputs to the model size (the parser still sees the full-size image); --no-resize refuses "
                   "images of another size.")
@click.option("--refine", default=None, type=click.IntRange(min=0), metavar="N",
              help="Test-time refinement: N Adam steps on each W+ code towards IN's layout and hair/skin/eye colours "
                   "(an addition to the paper; about 1 s per 10 steps per face on 2 CPU cores) [default: the "
                   "checkpoint's measured default, 0 (off) for the bundled model].")
@click.option("--refine-parser", default=None, metavar="NAME|PATH",
              help="Output-domain parser of --refine [default: parser-anime for p2a, parser-portrait for a2p].")
@click.option("--recolor", type=FiniteFloatRange(0, 1), default=RECOLOR_DEFAULT, show_default=True,
              help="Carry IN's hair and eye colours onto the drawing (an addition to the paper; its lines and shading "
                   "kept); 0 = the model's own colours. Not with --reference/--style-from (they give the colours).")
@click.option("--upscaler", default="auto", show_default=True, metavar="auto|none|NAME|PATH", help=UPSCALER_HELP)
@click.option("--background-fill", type=FiniteFloatRange(0, 1), default=None, help=BACKGROUND_FILL_HELP)
@click.option("--faces", type=click.Choice(["auto", "detect", "aligned"]), default="auto", show_default=True,
              help="detect: find every face in IN (any photo), translate it and paste it back at IN's size, "
                   "background kept; aligned: IN is one aligned face crop, translated whole at the model size and "
                   "written doubled by --upscaler (needed by --parsing/--reference/--style-from); auto: aligned "
                   "with those options, else detect, and aligned for an image where no face is found (with a "
                   "warning).")
@click.option("--detector", type=click.Choice(DETECTORS), default=None,
              help="Face detector of --faces detect (default: mtcnn for p2a, or haar when facenet-pytorch is missing; "
                   "the bundled anime parser for a2p).")
@click.option("--detector-weights", default=None, metavar="PATH",
              help="Weights file of --detector (retinaface, yunet, animecascade).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="torch device, e.g. cuda.")
def translate(input: str, output: str, checkpoint: str, parsing: str | None, parsing_labels: str, parser: str | None,
              reference: str | None, style_from: str | None, mix: float, direction: str, alpha: float | None,
              facebank: str | None, k: int, resize: bool, refine: int | None, refine_parser: str | None,
              recolor: float, upscaler: str, background_fill: float | None, faces: str, detector: str | None,
              detector_weights: str | None, device: str) -> None:
    """Translate IN (a photo, an aligned face crop or a folder of them, mirrored into OUT) with StyleAnime.

    With no option, the bundled model and parser of --direction are used, and the faces of IN are found and pasted
    back: `vidanime image translate photo.jpg out.png`.
    """
    from pipelines.image_translate import ImageTranslatePipeline, check_image_paths
    from pipelines.translate import DEFAULT_MODELS, build_recolor, build_refiner, build_upscaler
    from vidanime.registry import load_model, resolve_path
    from vidanime.video.detect import check_detector
    from vidanime.video.faces import FaceConfig

    check_image_paths(input, output)  # before any model is loaded
    given = click.get_current_context().get_parameter_source("recolor") == click.core.ParameterSource.COMMANDLINE
    if given and (reference is not None or style_from is not None):
        raise click.UsageError("--recolor does not apply with --reference or --style-from: their appearance codes "
                               "set the colours")
    mode = ImageTranslatePipeline.face_mode(faces, parsing, reference, style_from)
    if mode == "detect":
        check_detector(detector, detector_weights)
    default_ckpt, default_parser = DEFAULT_MODELS[direction]
    kwargs = {"face_config": FaceConfig(detector=detector, detector_weights=detector_weights, device=device),
              "background_fill": background_fill}
    if facebank is not None:
        from vidanime.models.facebank import FaceBank

        kwargs["facebank"] = FaceBank.load(facebank)
    if parsing is None:  # the parser is only needed (and loaded) when no parsing map is given
        net = load_model(parser or default_parser, device=device, format="vidanime.parser")
        kwargs.update(parser=net, parser_labels=net.config.label_set)
    pipe = ImageTranslatePipeline.from_pretrained(resolve_path(checkpoint or default_ckpt), device=device,
                                                  direction=direction, progress=show_progress(), **kwargs)
    if refine is None:  # the checkpoint's measured default (README, "Test-time refinement"); none recorded: off
        refine = 0 if reference is not None or style_from is not None else int(pipe.model.inference.get("refine", 0))
    if refine > 0:
        pipe.refiner = build_refiner(pipe.model, direction, refine_parser, device)
    if reference is None and style_from is None:
        pipe.recolor = build_recolor(direction, recolor, device)
    pipe.upscaler = build_upscaler(direction, upscaler, pipe.model, device)
    written = pipe(input, output, parsing=parsing, reference=reference, alpha=alpha, parsing_labels=parsing_labels,
                   k=k, resize=resize, style_from=style_from, mix=mix, refine=refine, faces=faces)
    click.echo(f"wrote {len(written)} image(s) to {output}")
    if pipe.failed:
        names = ", ".join(str(p) for p in pipe.failed[:5]) + (" …" if len(pipe.failed) > 5 else "")
        raise click.ClickException(f"{len(pipe.failed)} image(s) could not be read and were skipped: {names}")


@cli.command(name="manga")
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--reference", "-r", required=True, type=click.Path(dir_okay=False),
              help="RGB crop of the generator's domain giving the appearance (style codes n_s.., 10-13 at 256 px).")
@click.option("--checkpoint", "-c", default="styleanime-a2p", show_default=True, metavar="NAME|PATH",
              help="StyleAnime checkpoint (a2p: manga to portrait; a p2a one gives manga to anime).")
@click.option("--parser", default="parser-anime", show_default=True, metavar="NAME|PATH",
              help="Anime face parser applied to the screen-tone-normalised manga.")
@click.option("--tone-sigma", default=1.5, show_default=True, type=FINITE_FLOAT,
              help="Gaussian sigma (px) flattening screen tones, about half their dot period (0 = off).")
@click.option("--median", default=3, show_default=True, type=int, help="Median filter size after it (0 = off).")
@click.option("--save-parsing", is_flag=True, help="Also write OUT's parsing as NAME.parsing.png (editable).")
@click.option("--resize", is_flag=True, help="Resize inputs to the model size instead of refusing other sizes.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="torch device, e.g. cuda.")
def manga(input: str, output: str, reference: str, checkpoint: str, parser: str, tone_sigma: float, median: int,
          save_parsing: bool, resize: bool, device: str) -> None:
    """Translate manga face crops IN (grey line art; a file or a folder) with REFERENCE's appearance into OUT."""
    from pipelines.image_translate import check_image_paths
    from pipelines.manga import MangaPipeline
    from vidanime.data.manga import MangaConfig
    from vidanime.registry import resolve_path

    check_image_paths(input, output)  # before any model is loaded
    pipe = MangaPipeline.from_pretrained(resolve_path(checkpoint), parser, device=device,
                                         manga=MangaConfig(tone_sigma=tone_sigma, median=median),
                                         progress=show_progress())
    written = pipe(input, output, reference=reference, resize=resize, save_parsing=save_parsing)
    click.echo(f"wrote {len(written)} image(s) to {output}")
