"""`vidanime edit IMAGE --parsing EDITED_MAP OUT`: re-render a face crop with an edited parsing map (paper §6.1)."""
from __future__ import annotations

import click

from .options import DEVICE, FINITE_FLOAT


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@click.command(name="edit")
@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--parsing", "-p", required=True, type=click.Path(dir_okay=False),
              help="The edited parsing map: a label PNG (one class id per pixel) giving the new structure.")
@click.option("--checkpoint", "-c", default="styleanime-p2a", show_default=True, metavar="NAME|PATH",
              help="StyleAnime checkpoint (registry name or path; ours or the official .pt).")
@click.option("--source-parsing", "-s", default=None, type=click.Path(dir_okay=False),
              help="The unedited parsing map of IMAGE (for --pti, --blend and the locality numbers).")
@click.option("--parser", default=None, metavar="NAME|PATH",
              help="Face parser that labels IMAGE when --source-parsing is not given.")
@click.option("--parsing-labels", default="bisenet", show_default=True,
              type=click.Choice(["celebamask", "bisenet", "danbooru"]), help="Class order of the label PNGs.")
@click.option("--style-from", default=None, type=click.Path(dir_okay=False),
              help="Second image whose appearance codes are mixed in (appearance editing).")
@click.option("--mix", default=1.0, show_default=True, type=FINITE_FLOAT,
              help="With --style-from: (1-mix)*own + mix*other appearance codes (1 = swap).")
@click.option("--pti", default=0, show_default=True, type=int,
              help="PTI steps: tune a copy of the generator on IMAGE first (real inputs of the generator's domain, "
                   "e.g. a real anime for a p2a model; PTI uses ~350). Needs --lpips-backbone.")
@click.option("--lpips-backbone", default=None, metavar="PATH",
              help="LPIPS backbone weights (torchvision alexnet-owt-7be5be79.pth) for --pti and LPIPS locality; "
                   "default $VIDANIME_LPIPS_BACKBONE.")
@click.option("--blend", default=None, type=click.IntRange(min=0), metavar="PX",
              help="Paste the edit over the unedited render with a mask feathered PX pixels around the changed labels.")
@click.option("--resize", is_flag=True, help="Resize inputs to the model size instead of refusing other sizes.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="torch device, e.g. cuda.")
def cli(image, output, parsing, checkpoint, source_parsing, parser, parsing_labels, style_from, mix, pti,
        lpips_backbone, blend, resize, device) -> None:
    """Re-render IMAGE with the structure of the edited map and IMAGE's appearance, write OUTPUT."""
    from pipelines.edit import EditPipeline

    EditPipeline.check_paths(image, parsing, output, source_parsing, style_from)  # before the model is loaded
    pipe = EditPipeline.from_pretrained(checkpoint, parser=parser, device=device, lpips_backbone=lpips_backbone)
    result = pipe(image, parsing, output, source_parsing=source_parsing, parsing_labels=parsing_labels,
                  style_from=style_from, mix=mix, pti=pti, blend=blend, resize=resize)
    click.echo(f"wrote {result.output}")
    if result.pti_losses:
        losses = result.pti_losses
        click.echo(f"PTI: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    for name, loc in (("edit", result.locality), ("blended", result.locality_blended)):
        if loc is not None:
            line = (f"{name} locality: changed labels {100 * loc['region_fraction']:.1f}% of pixels; L2 inside "
                    f"{_fmt(loc['l2_inside'])}, outside {_fmt(loc['l2_outside'])}, ratio {_fmt(loc['l2_ratio'])}")
            if "lpips_inside" in loc:
                line += (f"; LPIPS inside {_fmt(loc['lpips_inside'])}, outside {_fmt(loc['lpips_outside'])}, "
                         f"ratio {_fmt(loc['lpips_ratio'])}")
            click.echo(line)
