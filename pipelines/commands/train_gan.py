"""`vidanime train-gan`: parse arguments and run :class:`pipelines.train_gan.TrainGANPipeline`."""
from __future__ import annotations

import click


@click.command(name="train-gan", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config (configs/stylegan2_*.yaml). "
                   "Optional with --resume PATH: the checkpoint's config is used.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Root folder for numbered run folders NNNNN-<name>/ (default: the config's run_dir, 'runs').")
@click.option("--resume", default=None, metavar="PATH|auto",
              help="Continue bit-exactly from a training checkpoint, a run folder (its latest checkpoint), or 'auto' "
                   "(the latest run of this config's name under --run-dir; starts fresh if there is none).")
@click.option("--iterations", type=int, default=None, help="Total iterations of the run (overrides train.iterations).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Overrides train.device.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config value by dotted key, e.g. --set train.lr=0.001 --set data.limit=64 "
                   "(repeatable).")
def cli(config_path: str | None, run_dir: str | None, resume: str | None, iterations: int | None, device: str | None,
        sets: tuple[str, ...]) -> None:
    """Train or fine-tune a StyleGAN2 generator.

    Writes RUN_DIR/NNNNN-<name>/ with config.yaml, metrics.jsonl, sample grids (samples/*.png), training checkpoints
    (checkpoints/train-*.pt, for --resume) and exported generators (checkpoints/generator-*.pt, loadable with
    vidanime.registry.load_model). Set init_from in the config (or --set init_from=PATH) to fine-tune from a
    rosinality .pt or one of our checkpoints.

    \b
    Examples:
      vidanime train-gan --config configs/demo_stylegan2.yaml
      vidanime train-gan --config configs/stylegan2_tiny.yaml --iterations 50 --set train.batch=4
      vidanime train-gan --config configs/demo_stylegan2.yaml --resume auto
      vidanime train-gan --resume runs/00003-stylegan2_demo --iterations 20000
    """
    from pipelines.train_gan import TrainGANPipeline
    from vidanime.config import options_to_overrides
    from vidanime.errors import ConfigError

    overrides = options_to_overrides(sets, ("train.iterations", iterations), ("train.device", device))
    if config_path is not None:
        pipeline = TrainGANPipeline.from_config_file(config_path, overrides)
    elif resume is not None and resume != "auto":
        from vidanime.train.run_dir import resolve_resume

        ckpt = resolve_resume(resume, run_dir or "runs")
        pipeline = TrainGANPipeline(TrainGANPipeline.config_from_checkpoint(ckpt, overrides), source=str(ckpt))
        resume = str(ckpt)
    else:
        raise ConfigError("train-gan needs --config PATH (or --resume PATH of a checkpoint or run folder)")
    result = pipeline(run_dir=run_dir, resume=resume)
    click.echo(f"run folder: {result.run_dir} (step {result.step})")
    if result.generator_checkpoint is not None:
        click.echo(f"generator: {result.generator_checkpoint}")
