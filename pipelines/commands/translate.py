"""`vidanime translate IN OUT`: translate the faces of a video (parses options, calls TranslatePipeline)."""
from __future__ import annotations

import click


@click.command(name="translate")
@click.argument("input", type=click.Path(dir_okay=False, path_type=str))
@click.argument("output", type=click.Path(dir_okay=False, path_type=str))
@click.option("--checkpoint", default=None, metavar="NAME|PATH",
              help="StyleAnime checkpoint (registry name or path). Default: the bundled model of --direction.")
@click.option("--parser", "parser_ckpt", default=None, metavar="NAME|PATH",
              help="Face parser for the input domain. Default: the bundled parser of --direction.")
@click.option("--direction", type=click.Choice(["p2a", "a2p"]), default="p2a", show_default=True,
              help="p2a: real faces to anime; a2p: anime faces to real.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None,
              help="FaceBank blend α of Eq. 14 (1 = off, lower = closer to the bank's in-domain codes). "
                   "Default: the checkpoint's.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--fp16", is_flag=True, help="Half precision for the model (CUDA only).")
@click.option("--start", default=None, help="Start of the range: seconds (12.5, 1:02.5) or a frame ('300f').")
@click.option("--end", default=None, help="End of the range (exclusive), same forms as --start.")
@click.option("--faces", type=click.Choice(["all", "largest"]), default="all", show_default=True,
              help="Translate every face, or only the largest one in each frame.")
@click.option("--crop", is_flag=True, help="Write the aligned face video of the largest face instead of pasting back.")
@click.option("--preview", default=None, metavar="PATH",
              help="Also write a side-by-side video: input | aligned crop + parsing | output.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="H.264 quality (lower is better; 18 is visually lossless).")
@click.option("--preset", default="medium", show_default=True, help="x264 speed preset (ultrafast ... veryslow).")
@click.option("--detector", type=click.Choice(["mtcnn", "retinaface", "yunet", "animecascade"]), default=None,
              help="Face detector (default: mtcnn for p2a, animecascade for a2p).")
@click.option("--detector-weights", default=None, metavar="PATH", help="Weights file for retinaface/yunet/animecascade.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Faces per model call.")
@click.option("--report", "report", is_flag=True,
              help="Measure temporal stability (warp error, flicker index vs the input) and save a JSON report "
                   "beside the output (OUTPUT.report.json) with faces, tracks, timing and latent roughness.")
@click.option("--finetune", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="First fine-tune the model on this clip for N iterations (paper §6.3.3; paper: 5000), then "
                   "translate with the result. 0 = off.")
@click.option("--finetune-dir", default=None, metavar="DIR",
              help="Run folder of the fine-tune (default: OUTPUT.finetune beside the output; resumed if present).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def cli(input, output, checkpoint, parser_ckpt, direction, alpha, device, fp16, start, end, faces, crop, preview, crf,
        preset, detector, detector_weights, batch, report, finetune, finetune_dir, no_progress) -> None:
    """Translate the faces in INPUT (a video) and write OUTPUT, keeping timing and audio.

    Every face of every frame is detected, tracked, aligned, translated and pasted back; frames without a face pass
    through unchanged. The output is written under a temporary name and renamed when complete.
    """
    from pathlib import Path

    from pipelines.translate import TranslateOptions, TranslatePipeline
    from vidanime.video.faces import FaceConfig

    face_cfg = FaceConfig(device=device, detector=detector or ("mtcnn" if direction == "p2a" else "animecascade"),
                          detector_weights=detector_weights)
    options = TranslateOptions(start=start, end=end, faces=faces, crop=crop, crf=crf, preset=preset, preview=preview,
                               batch=batch, progress=not no_progress, report=report)
    TranslatePipeline.check_inputs(input, output, options)
    if finetune > 0:
        from pipelines.finetune import finetune_for_translate
        from pipelines.translate import DEFAULT_MODELS

        default_ckpt, default_parser = DEFAULT_MODELS[direction]
        checkpoint = str(finetune_for_translate(input, output, checkpoint or default_ckpt,
                                                parser_ckpt or default_parser, finetune, face_config=face_cfg,
                                                start=start, end=end, device=device, run_dir=finetune_dir,
                                                progress=not no_progress))
        click.echo(f"fine-tuned on the clip: {checkpoint}")
    pipe = TranslatePipeline.from_pretrained(checkpoint, parser_ckpt, direction=direction, alpha=alpha, device=device,
                                             fp16=fp16, face_config=face_cfg)
    result = pipe(input, output, options)
    click.echo(f"wrote {result.output}: {result.frames} frames, {result.faces} faces in {result.tracks} tracks, "
               f"{result.seconds:.1f} s")
    if result.preview:
        click.echo(f"preview: {result.preview}")
    if result.temporal:
        we, fl = result.temporal["warp_error"], result.temporal["flicker_index"]
        click.echo(f"temporal: warp error {we['value']:.5f} (input {we['input']:.5f}), flicker index {fl['value']:.3f}")
    if report:
        from vidanime.fileio import atomic_write_text

        path = Path(output).with_suffix(".report.json")
        atomic_write_text(path, result.to_json())
        click.echo(f"report: {path}")
