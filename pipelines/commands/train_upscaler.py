"""`vidanime train-upscaler`: train the learned upscaler of the generator's drawings."""
from __future__ import annotations

import click

from vidanime.config import parse_overrides


@click.command(name="train-upscaler")
@click.option("--config", "config", required=True, type=click.Path(path_type=str), help="configs/demo_upscaler.yaml")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--resume", default=None, help="'auto', a run folder or a train-*.pt checkpoint to continue.")
@click.option("--budget", default=None, metavar="DURATION", help="Stop (saved, resumable) after e.g. 30m or 1h.")
def cli(config: str, sets: tuple[str, ...], resume: str | None, budget: str | None) -> None:
    """Train the x2 drawing upscaler on anime faces (an addition to the paper: sharper pasted drawings from the
    64-px demo generator); writes a numbered run folder under runs_root."""
    from vidanime.train.harness import Budget
    from vidanime.train.upscaler import load_train_config, train_upscaler

    cfg = load_train_config(config, parse_overrides(sets))
    run = train_upscaler(cfg, resume=resume, budget=Budget.parse(budget) if budget else None)
    click.echo(f"run folder: {run.path}")
