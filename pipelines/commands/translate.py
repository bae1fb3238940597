"""`vidanime translate IN OUT`: translate the faces of a video (parses options, calls TranslatePipeline)."""
from __future__ import annotations

import click

from .options import MODEL_OPTIONS, REFINE_OPTIONS, RENDER_OPTIONS, TEMPORAL_OPTION, finetune_option, show_progress


@click.command(name="translate")
@click.argument("input", type=click.Path(dir_okay=False, path_type=str))
@click.argument("output", type=click.Path(dir_okay=False, path_type=str))
@MODEL_OPTIONS
@REFINE_OPTIONS
@TEMPORAL_OPTION
@click.option("--start", default=None, help="Start of the range: seconds (12.5, 1:02.5) or a frame ('300f').")
@click.option("--end", default=None, help="End of the range (exclusive), same forms as --start.")
@click.option("--preview", default=None, metavar="PATH",
              help="Also write a side-by-side video: input | aligned crop + parsing | output.")
@RENDER_OPTIONS
@click.option("--report", "report", is_flag=True,
              help="Measure temporal stability (warp error, flicker index vs the input) and save a JSON report "
                   "beside the output (OUTPUT.report.json) with faces, tracks, timing and latent roughness.")
@finetune_option("this clip")
@click.option("--finetune-dir", default=None, metavar="DIR",
              help="Run folder of the fine-tune (default: the output's name with .finetune for its extension, "
                   "beside it; a fine-tune already there is continued).")
def cli(input, output, checkpoint, parser_ckpt, direction, alpha, device, fp16, recolor, upscaler, background_fill,
        refine, refine_every,
        temporal, start, end, faces, crop, preview, crf, preset, detector, detector_weights, detect_every, batch,
        report, finetune, finetune_dir, no_progress) -> None:
    """Translate the faces in INPUT (a video) and write OUTPUT, keeping timing and audio.

    Every face of every frame is detected, tracked, aligned, translated and pasted back; frames without a face pass
    through unchanged. The output is written under a temporary name and renamed when complete.
    """
    from pipelines.translate import TranslateOptions, TranslatePipeline
    from vidanime.video.detect import check_detector, default_detector
    from vidanime.video.faces import FaceConfig

    check_detector(detector, detector_weights)  # before any model loads
    progress = show_progress(no_progress)
    face_cfg = FaceConfig(device=device, detector=detector or default_detector(direction),
                          detector_weights=detector_weights, detect_every=detect_every)
    options = TranslateOptions(start=start, end=end, faces=faces, crop=crop, crf=crf, preset=preset, preview=preview,
                               batch=batch, progress=progress, report=report)
    TranslatePipeline.check_inputs(input, output, options)
    model = dict(direction=direction, alpha=alpha, device=device, fp16=fp16, face_config=face_cfg, refine=refine,
                 refine_every=refine_every, temporal=temporal, recolor=recolor, upscaler=upscaler,
                 background_fill=background_fill)
    if finetune:  # N >= 1 or 'auto'
        pipe = TranslatePipeline.finetuned_on(input, output, finetune, checkpoint, parser_ckpt, start=start, end=end,
                                              run_dir=finetune_dir, progress=progress, **model)
        click.echo(f"fine-tuned on the clip: {pipe.model_name}")
    else:
        pipe = TranslatePipeline.from_pretrained(checkpoint, parser_ckpt, **model)
    result = pipe(input, output, options)
    click.echo(f"wrote {result.output}: {result.frames} frames, {result.faces} faces in {result.tracks} tracks, "
               f"{result.seconds:.1f} s")
    if result.preview:
        click.echo(f"preview: {result.preview}")
    if result.temporal:
        we, fl = result.temporal["warp_error"], result.temporal["flicker_index"]
        click.echo(f"temporal: warp error {we['value']:.5f} (input {we['input']:.5f}), flicker index {fl['value']:.3f}")
    if result.report:
        click.echo(f"report: {result.report}")
