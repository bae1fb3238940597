"""`vidanime parse IN OUT`: face parsing maps (label PNGs, optional colour overlays) for an image or a folder."""
from __future__ import annotations

import click

from .options import DEVICE


@click.command(name="parse")
@click.argument("inp", metavar="IN", type=click.Path(path_type=str))
@click.argument("out", metavar="OUT", type=click.Path(path_type=str))
@click.option("--domain", type=click.Choice(["portrait", "anime"]), default="portrait", show_default=True,
              help="Which bundled parser to use.")
@click.option("--model", "model", default=None, help="A vidanime.parser checkpoint (path or registry name) instead.")
@click.option("--labels", "labels", type=click.Choice(["model", "bisenet", "danbooru", "celebamask"]), default="model",
              show_default=True, help="Label order of the written PNGs (default: the parser's own).")
@click.option("--overlay", is_flag=True, help="Also write <stem>_overlay.png: the image with label colours blended in.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1),
              help="Images per parser call (more is faster on a GPU, uses more memory).")
def cli(inp: str, out: str, domain: str, model: str | None, labels: str, overlay: bool, device: str,
        batch_size: int) -> None:
    """Write a label PNG (one class id per pixel) per image of IN (a file or a folder) into OUT.

    \b
    Examples:
      vidanime parse face.jpg parsed/ --overlay
      vidanime parse crops/ parsed/ --model runs/00000-parser_demo/checkpoints/parser-0001800.pt
    """
    from pipelines.parse import ParsePipeline
    from vidanime.train.parser import resolve_device

    ParsePipeline.check_paths(inp, out)  # before the model is loaded
    pipe = ParsePipeline.for_domain(domain, model=model, device=resolve_device(device), batch_size=batch_size,
                                    output_labels=None if labels == "model" else labels)
    summary = pipe.parse_paths(inp, out, overlays=overlay)
    n = sum(1 for p in summary["written"] if not p.endswith("_overlay.png"))
    click.echo(f"wrote {n} label maps ({summary['label_set']} order) to {out}"
               + (f"; skipped {len(summary['failed'])} unreadable files" if summary["failed"] else ""))
