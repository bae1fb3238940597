"""`vidanime train-all`: parse arguments and run :class:`pipelines.train_all.TrainAllPipeline`."""
from __future__ import annotations

import click


@click.command(name="train-all", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default="configs/train_all.yaml",
              show_default=True,
              help="The recipe: stages, budget shares and exports (configs/train_all_gpu.yaml for one GPU).")
@click.option("--budget", default=None, metavar="DURATION",
              help="Wall-clock budget for the whole run, e.g. 9m, 150m, 1h30m (default: no limit, each stage runs "
                   "its configured steps). Each stage stops cleanly when its share is spent and is still exported.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder: runs/ (resumable), the exported <model>.pt files + registry.json, train-all.json "
                   "and train-all.log.")
@click.option("--data", default=None, metavar="PACK.pt|DIR",
              help="Training data: a data pack from `python -m pipelines.pack_data` (unpacked into OUT/data) or an "
                   "assets folder [default: $VIDANIME_ASSETS or ../shared/assets].")
@click.option("--stages", default=None, metavar="A,B",
              help="Run only these stages (others' earlier outputs are reused).")
@click.option("--smoke/--no-smoke", default=True, show_default=True,
              help="First run every stage for one step on tiny data on the same device (fails fast, in seconds).")
@click.option("--smoke-only", is_flag=True, help="Only the smoke pass: check the recipe on this device in seconds.")
@click.option("--keep-going", is_flag=True,
              help="When stages fail the smoke pass, train the others (stages needing a failed one's output are "
                   "left out too) instead of stopping: for one-shot runs on a borrowed machine.")
@click.option("--resume", is_flag=True,
              help="Continue each stage's latest run under OUT/runs instead of starting anew.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a recipe value by dotted key.")
def cli(config_path: str, budget: str | None, device: str, out: str, data: str | None, stages: str | None,
        smoke: bool, smoke_only: bool, keep_going: bool, resume: bool, sets: tuple[str, ...]) -> None:
    """Train every model of the bundled set in order (anime StyleGAN2, portrait parser, anime parser, FaceBank,
    StyleAnime encoders, interpolator; the a2p pair in the GPU recipe) within one wall-clock budget, then export
    them with sha256 into OUT, ready for `vidanime weights install OUT`.

    \b
    Examples:
      vidanime train-all --budget 150m --out runs/set-cpu                      # 2 CPU cores, 64 px
      vidanime train-all --config configs/train_all_gpu.yaml --budget 9m --device cuda --data pack.pt --out set
      vidanime train-all --stages encoders --resume --budget 30m --out runs/set-cpu  # continue one stage
    """
    from pipelines.train_all import TrainAllPipeline
    from vidanime.config import parse_overrides
    from vidanime.train.harness import Budget

    wanted = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    pipe = TrainAllPipeline.from_config_file(config_path, parse_overrides(sets))
    summary = pipe(out, budget=Budget.parse(budget), device=device, data=data, stages=wanted,
                   smoke=smoke or smoke_only, resume=resume, smoke_only=smoke_only, keep_going=keep_going)
    if smoke_only:
        for r in summary["smoke"]:
            click.echo(f"{r['name']:14s} {r['status']:8s} {r['seconds']:7.1f} s  {r['error']}")
        click.echo(f"smoke pass passed in {summary['seconds']:.0f} s")
        return
    for r in summary.get("smoke", []):
        if r["status"] != "ok" or r.get("fallback"):
            note = "passed with its fallback" if r["status"] == "ok" else "left out"
            click.echo(f"{r['name']:14s} smoke {r['status']}: {note}  {r['error']}")
    for r in summary.get("stages", []):
        speed = f", {r['img_per_s']:.1f} img/s" if r.get("img_per_s") else ""
        step = f", step {r['step']}" if r.get("step") is not None else ""
        click.echo(f"{r['name']:14s} {r['status']:8s} {r['seconds']:7.1f} s{step}{speed}  {r['error']}")
    click.echo(f"exported {', '.join(summary.get('exported', [])) or 'nothing'} into {out} "
               f"in {summary['seconds']:.0f} s")
    failed = summary.get("left_out", []) + [r["name"] for r in summary.get("stages", []) if r["status"] != "ok"]
    if failed:
        raise click.ClickException(f"stage(s) {', '.join(failed)} did not finish; see {out}/train-all.log")
