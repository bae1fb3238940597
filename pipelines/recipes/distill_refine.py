"""Refinement distillation of a StyleAnime checkpoint (an addition to the paper; :mod:`pipelines.distill`).

``python -m pipelines.recipes.distill_refine --out RUN_DIR [--model styleanime-p2a | --set DIR] [--refine 25]
[--steps 600] [--anime N --invert-steps 50] [--blend 1]``: the training-side shipped CelebAMask-HQ portraits (the
810 the parsers train on; the 90 they hold out are left out) are refined for ``--refine`` steps, optionally the
first N training anime crops inverted, and E_p/E_s fine-tuned to predict those codes; ``RUN_DIR/checkpoints/
styleanime-<steps>.pt`` is the result (same generator, FaceBank, discriminators and test-time defaults as the input
checkpoint, fp16).  ``vidanime train-all`` runs the same job as its ``distill`` stage.

Several processes can share the refinement (one core each): ``--offset A --limit N --steps 0`` per part, then the
full run with ``--parts DIR ...`` takes their codes.  Measure the result with ``python -m pipelines.recipes.report_demo
--model RUN_DIR/checkpoints/styleanime-<steps>.pt``.  Needs ../shared/assets.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pipelines.distill import DistillRunConfig, distill_refine
from pipelines.recipes.report_demo import ASSETS, set_models
from vidanime.errors import VidanimeError
from vidanime.log import setup_logging


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (targets cache, result).")
@click.option("--model", "model_name", default="styleanime-p2a", show_default=True, help="StyleAnime name or path.")
@click.option("--set", "model_set", default=None, type=click.Path(file_okay=False),
              help="A `train-all` output folder: distil its styleanime-p2a (or --model) with its own parsers.")
@click.option("--refine", default=25, show_default=True, type=click.IntRange(min=1), help="Refinement steps.")
@click.option("--steps", default=600, show_default=True, type=click.IntRange(min=0), help="Distillation steps.")
@click.option("--lr", default=5e-5, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Encoder learning rate.")
@click.option("--lambda-image", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the image term.")
@click.option("--lambda-adv", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the image discriminator D2 on the distilled encoders' drawings (keeps them anime).")
@click.option("--limit", default=0, show_default=True, type=click.IntRange(min=0),
              help="Only N training portraits (0 = all).")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0),
              help="Skip the first N training portraits.")
@click.option("--anime", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also teach the encoders the W+ inversions of the first N training anime crops (reconstruction).")
@click.option("--invert-steps", default=100, show_default=True, type=click.IntRange(min=1),
              help="Adam steps of each anime inversion.")
@click.option("--blend", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Keep this fraction of the distillation's change to the encoder weights (1 = all; lower trades "
                   "keeping the person back for anime look, by weight interpolation with the starting encoders).")
@click.option("--parts", multiple=True, type=click.Path(file_okay=False),
              help="Run folders whose refined codes tile this run's portraits (several processes, one core each).")
def main(out: str, model_name: str, model_set: str | None, refine: int, steps: int, lr: float, lambda_image: float,
         lambda_adv: float, limit: int, offset: int, anime: int, invert_steps: int, blend: float,
         parts: tuple[str, ...]) -> None:
    """Distil test-time refinement into the encoders of a StyleAnime checkpoint."""
    setup_logging(0)
    try:
        own = set_models(model_set) if model_set else {}
        cfg = DistillRunConfig(
            model=own.get(model_name, model_name), portrait_parser=own.get("parser-portrait", "parser-portrait"),
            anime_parser=own.get("parser-anime", "parser-anime"), faces=str(ASSETS / "faces"),
            anime=str(ASSETS / "anime"), refine=refine, limit=limit, offset=offset, anime_count=anime,
            invert_steps=invert_steps, steps=steps, lr=lr, lambda_image=lambda_image, lambda_adv=lambda_adv,
            blend=blend, dtype="float16")
        distill_refine(cfg, Path(out), parts=[Path(p) for p in parts])
    except VidanimeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
