"""`vidanime image translate IN OUT`: translate aligned face crops (a file or a folder) with StyleAnime."""
from __future__ import annotations

import click


@click.group(name="image")
def cli() -> None:
    """Translate still images (aligned face crops) with StyleAnime."""


@cli.command(name="translate")
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--checkpoint", "-c", required=True,
              help="StyleAnime checkpoint: ours (vidanime.styleanime) or the official .pt.")
@click.option("--parsing", "-p", default=None, type=click.Path(),
              help="Label PNG for IN (a folder of them for a folder IN).")
@click.option("--parsing-labels", default="bisenet", show_default=True,
              type=click.Choice(["celebamask", "bisenet", "danbooru"]), help="Class order of the parsing maps.")
@click.option("--parser", default=None, type=click.Path(), help="Face-parser checkpoint used when --parsing is not given.")
@click.option("--reference", "-r", default=None, type=click.Path(), help="Image giving the appearance codes (style mixing).")
@click.option("--alpha", "-a", default=None, type=float, help="FaceBank blend: w_agg = a*w + (1-a)*w_anchor (1 = off).")
@click.option("--facebank", default=None, type=click.Path(), help="FaceBank file (else the checkpoint's own bank).")
@click.option("--k", default=10, show_default=True, type=int, help="FaceBank neighbours.")
@click.option("--resize", is_flag=True, help="Resize inputs to the model size instead of refusing other sizes.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
def translate(input: str, output: str, checkpoint: str, parsing: str | None, parsing_labels: str, parser: str | None,
              reference: str | None, alpha: float | None, facebank: str | None, k: int, resize: bool, device: str) -> None:
    """Translate IN (an RGB image or a folder, mirrored into OUT) with StyleAnime."""
    from pipelines.image_translate import ImageTranslatePipeline

    kwargs = {}
    if facebank is not None:
        from vidanime.models.facebank import FaceBank

        kwargs["facebank"] = FaceBank.load(facebank)
    if parser is not None:
        from vidanime.checkpoint import load_checkpoint
        from vidanime.models.parser import config_of, parser_from_checkpoint

        net = parser_from_checkpoint(load_checkpoint(parser, format="vidanime.parser"))
        kwargs.update(parser=net, parser_labels=config_of(net).label_set)
    pipe = ImageTranslatePipeline.from_checkpoint(checkpoint, device=device, **kwargs)
    written = pipe(input, output, parsing=parsing, reference=reference, alpha=alpha, parsing_labels=parsing_labels,
                   k=k, resize=resize)
    click.echo(f"wrote {len(written)} image(s) to {output}")
