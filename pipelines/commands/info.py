"""`vidanime info in.mp4`: print what the video reader sees (streams, fps, frames, rotation, audio)."""
from __future__ import annotations

import json

import click


@click.command(name="info")
@click.argument("video", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
def cli(video: str, as_json: bool) -> None:
    """Show the video and audio streams of VIDEO as vidanime decodes them."""
    from vidanime.video.probe import probe

    info = probe(video)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        for line in info.describe():
            click.echo(line)
