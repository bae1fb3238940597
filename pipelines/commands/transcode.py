"""`vidanime transcode in.mp4 out.mp4`: re-encode (and trim) a clip with H.264, keeping timing and audio."""
from __future__ import annotations

import click

from vidanime.video.io import X264_PRESETS


@click.command(name="transcode")
@click.argument("input", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--start", default=None, help="Range start: seconds (12.5, 1:02.5) or frames (300f).")
@click.option("--end", default=None, help="Range end (exclusive): seconds or frames (300f).")
@click.option("--crf", default=18, show_default=True, type=int, help="x264 quality, 0-51 (lower is better).")
@click.option("--preset", type=click.Choice(X264_PRESETS), default="medium", show_default=True,
              metavar="PRESET", help="x264 preset (ultrafast ... veryslow).")
@click.option("--no-audio", is_flag=True, help="Drop the audio.")
@click.option("--serial", is_flag=True, help="Decode, process and encode in one thread (for comparison).")
def cli(input: str, output: str, start: str | None, end: str | None, crf: int, preset: str, no_audio: bool,
        serial: bool) -> None:
    """Re-encode INPUT to OUTPUT (.mp4/.mkv/.mov/.webm), optionally trimmed to [--start, --end)."""
    from pipelines.transcode import TranscodePipeline

    stats = TranscodePipeline(crf=crf, preset=preset, concurrent=not serial, audio=not no_audio)(
        input, output, start=start, end=end)
    click.echo(f"wrote {output}: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps)")
