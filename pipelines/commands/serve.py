"""`vidanime serve`: the browser app (Gradio, optional extra `pip install '.[web]'`) on localhost."""
from __future__ import annotations

import click

from .options import DETECTOR_OPTIONS, DEVICE, FiniteFloatRange


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default serves this machine only (0.0.0.0 = every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option("--max-upload-mb", type=FiniteFloatRange(min=0, min_open=True), default=200.0, show_default=True,
              help="Refuse larger uploads.")
@click.option("--max-seconds", type=FiniteFloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Refuse longer videos.")
@click.option("--cleanup-after-min", type=FiniteFloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Delete uploads and results older than this.")
@click.option("--workdir", default=None, metavar="DIR", help="Where job folders go (default: <tmp>/vidanime-web).")
@click.option("--checkpoint", default=None, metavar="NAME|PATH",
              help="StyleAnime checkpoint. Default: the bundled model of the chosen direction (videos fall back to "
                   "the identity face model when none is installed).")
@click.option("--parser", "parser_ckpt", default=None, metavar="NAME|PATH", help="Face parser for the input domain.")
@DETECTOR_OPTIONS
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="cpu, cuda or cuda:N (jobs run one at a time).")
def cli(host, port, max_upload_mb, max_seconds, cleanup_after_min, workdir, checkpoint, parser_ckpt, detector,
        detector_weights, device) -> None:
    """Serve the vidanime web app: upload a video or photo, translate it, watch and download the result."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise click.ClickException("the web app needs Gradio: pip install '.[web]'")
    from pipelines.web import WebConfig, launch

    config = WebConfig(max_upload_mb=max_upload_mb, max_seconds=max_seconds, cleanup_after_min=cleanup_after_min,
                       device=device, workdir=workdir, checkpoint=checkpoint, parser=parser_ckpt, detector=detector,
                       detector_weights=detector_weights).check()
    click.echo(f"vidanime web app on http://{host}:{port} (Ctrl+C to stop)")
    launch(config, host=host, port=port, block=True)
