"""The README's held-out montage: uncurated held-out portraits beside their translations under several settings.

``python -m pipelines.recipes.heldout_montage docs/heldout_montage.png`` writes, for the first 8 of the 90 portraits
every demo model leaves out (CelebAMask-HQ, non-commercial research use), one row each: the input, then the bundled
``styleanime-p2a`` through the video path's face translator at each ``--settings`` entry ``ALPHA:RECOLOR[:UP]``
(default: α 1 without recolouring, α 0.7 without, α 0.7 with the default recolouring 0.85; ``UP`` 1 draws through the
bundled drawing upscaler, as still images are by default).  ``--set DIR`` (repeatable) adds the same columns for a
model set from ``vidanime train-all --out`` (its own encoders and portrait parser), to compare sets by eye.  Two
portraits per row of the image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import click
import numpy as np
from PIL import Image

from pipelines.recipes.report_demo import (
    ASSETS,
    at_size,
    heldout_portraits,
    portrait_translator,
    set_models,
    translate_portraits,
)
from pipelines.translate import DEFAULT_MODELS, build_recolor, build_upscaler
from vidanime.errors import VidanimeError
from vidanime.fileio import atomic_path
from vidanime.log import setup_logging
from vidanime.registry import load, load_model


def montage(settings: list[tuple[float, ...]], count: int = 8, size: int = 128,
            sets: Sequence[str] = (), bundled: bool = True) -> np.ndarray:
    """(rows·size, 2·(1 + columns)·size, 3) uint8: each portrait, then its translation per (α, recolour[,
    upscaler 0/1]) by the bundled models (``bundled``) and then by each set folder in ``sets``."""
    ckpt, parser_name = DEFAULT_MODELS["p2a"]
    pairs = [(ckpt, parser_name)] if bundled else []
    for folder in sets:
        own = set_models(folder)
        pairs.append((own["styleanime-p2a"], own["parser-portrait"]))
    _, images, _ = heldout_portraits(ASSETS / "faces", limit=count)
    columns = [at_size(images, size)]
    for model_name, parser in pairs:
        model = load(model_name, expect="styleanime").model
        parser = load_model(parser, format="vidanime.parser")
        for alpha, recolor, *up in settings:
            translator = portrait_translator(model, parser, alpha=alpha, recolor=build_recolor("p2a", recolor))
            translator.upscaler = build_upscaler("p2a", "auto" if up and up[0] else "none", model)
            columns.append(at_size(translate_portraits(translator, images)[0], size))
    rows = [np.concatenate([c[i] for c in columns], axis=1) for i in range(len(images))]
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:] + [np.zeros_like(rows[0])] * (half - len(rows[half:]))
    return np.concatenate([np.concatenate(left, axis=0), np.concatenate(right, axis=0)], axis=1)


def _settings(ctx: click.Context, param: click.Parameter, value: str) -> list[tuple[float, ...]]:
    try:
        out = [tuple(float(x) for x in v.split(":")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected ALPHA:RECOLOR[:UP] entries such as 1:0,0.7:0.85:1, got '{value}'") from None
    if not out or any(len(v) not in (2, 3) or not all(0 <= x <= 1 for x in v) or (len(v) == 3 and v[2] not in (0, 1))
                      for v in out):
        raise click.BadParameter(f"expected ALPHA:RECOLOR[:UP] entries: numbers in [0, 1], UP 0 or 1; got '{value}'")
    return out


@click.command()
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--settings", default="1:0,0.7:0,0.7:0.85", show_default=True, callback=_settings,
              help="Comma-separated ALPHA:RECOLOR[:UP] columns (FaceBank α, recolouring strength, 1 = through the "
                   "bundled drawing upscaler).")
@click.option("--count", default=8, show_default=True, type=click.IntRange(1, 90), help="Held-out portraits.")
@click.option("--set", "sets", multiple=True, type=click.Path(file_okay=False),
              help="Also a model set folder from `vidanime train-all --out` (repeatable): the same columns with its "
                   "encoders and portrait parser.")
@click.option("--no-bundled", is_flag=True, help="Leave out the bundled model's columns (with --set).")
def main(output: str, settings: list[tuple[float, float]], count: int, sets: tuple[str, ...],
         no_bundled: bool) -> None:
    """Write the held-out montage PNG to OUTPUT."""
    setup_logging(0)
    if no_bundled and not sets:
        raise click.UsageError("--no-bundled leaves nothing to draw without --set")
    try:
        picture = montage(settings, count, sets=sets, bundled=not no_bundled)
    except VidanimeError as exc:
        raise click.ClickException(str(exc)) from None
    with atomic_path(output) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    click.echo(f"wrote {Path(output)} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    main()
