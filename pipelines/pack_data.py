"""``python -m pipelines.pack_data OUT.pt``: all training images of the bundled model set as one file (≤ 50 MiB).

A bare GPU machine then trains from the source tree plus this file (see :mod:`vidanime.data.pack`, which does the
work; this command only parses the arguments and prints a one-line summary).
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from vidanime.data.pack import DEFAULT_CLIPS, build_pack, default_assets_root
from vidanime.errors import VidanimeError
from vidanime.log import setup_logging

logger = logging.getLogger("vidanime.pack_data")

REPO = Path(__file__).resolve().parents[1]


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--assets", type=click.Path(path_type=Path), default=None,
              help="Shared assets folder [default: $VIDANIME_ASSETS, else ../shared/assets beside the repository].")
@click.option("--anime-size", type=int, default=128, show_default=True, help="Side of the stored anime crops (px).")
@click.option("--anime-quality", type=click.IntRange(1, 100), default=75, show_default=True,
              help="WebP quality of the anime crops (the largest section).")
@click.option("--clips", default=None,
              help="Comma-separated clips under video/ to store as frames [default: the interpolator config's five].")
@click.option("--max-mib", type=float, default=50.0, show_default=True, help="Size cap of the pack file (MiB).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress log, only the summary.")
def main(out: Path, assets: Path | None, anime_size: int, anime_quality: int, clips: str | None, max_mib: float,
         force: bool, quiet: bool) -> None:
    """Pack the anime crops, the CelebAMask-HQ faces and masks, and the interpolator's clip frames into OUT."""
    setup_logging(-1 if quiet else 0)
    if out.is_dir():
        raise click.ClickException(f"{out} is a folder; expected a file name like vidanime-data.pt")
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; pass --force to replace it")
    clip_list = DEFAULT_CLIPS if clips is None else tuple(c.strip() for c in clips.split(",") if c.strip())
    if REPO in out.resolve().parents:
        logger.warning("writing the pack inside the repository (%s): its images must never be committed", REPO)
    try:
        info = build_pack(assets or default_assets_root(), out, anime_size=anime_size, anime_quality=anime_quality,
                          clips=clip_list, max_bytes=int(max_mib * 2**20), progress=not quiet)
    except VidanimeError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # e.g. no space or no permission where OUT goes
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(info.summary())


if __name__ == "__main__":
    main()
