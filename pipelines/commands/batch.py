"""`vidanime batch IN_DIR OUT_DIR`: translate every video of a folder (parses options, calls BatchPipeline)."""
from __future__ import annotations

import click

from .options import MODEL_OPTIONS, RENDER_OPTIONS, TEMPORAL_OPTION, FiniteFloatRange, finetune_option, show_progress


@click.command(name="batch")
@click.argument("in_dir", type=click.Path(file_okay=False, path_type=str))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files translated at once, each in its own worker process (models loaded once per worker; "
                   "torch threads = cores / jobs).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads per job (default: cores / jobs).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS|auto|local",
              help="Run one Ray task per file on a cluster (auto: the running one; local: start one here). "
                   "Needs pip install 'vidanime[ray]'; IN_DIR/OUT_DIR must be shared by all nodes.")
@click.option("--ray-cpus", type=FiniteFloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="CPUs each Ray file task reserves.")
@click.option("--retry-failed", is_flag=True, help="Translate again the files the manifest records as failed.")
@click.option("--ext", type=click.Choice(["mp4", "mkv", "mov", "webm"]), default="mp4", show_default=True,
              help="Output container (the output keeps the input's relative path and name).")
@finetune_option("each clip")
@click.option("--keep-finetune", is_flag=True,
              help="Keep each clip's fine-tune run folder (OUT_DIR/<name>.finetune); by default it is deleted once "
                   "the clip is done (it holds full model checkpoints).")
@MODEL_OPTIONS
@TEMPORAL_OPTION
@RENDER_OPTIONS
@click.pass_context
def cli(ctx, in_dir, out_dir, jobs, threads, ray_address, ray_cpus, retry_failed, ext, finetune, keep_finetune,
        checkpoint, parser_ckpt, direction, alpha, device, fp16, recolor, upscaler, background_fill, temporal, faces,
        crop, crf, preset,
        detector, detector_weights, detect_every, batch, no_progress) -> None:
    """Translate every video under IN_DIR (recursive: mp4 mov mkv webm avi m4v) into OUT_DIR, mirroring the paths.

    OUT_DIR/manifest.jsonl records each finished or failed file with a one-line reason; a re-run skips the files
    already done (and, unless --retry-failed, those that failed), so a killed batch resumes where it stopped. One
    bad file never stops the others; the exit status is 1 when any file is left failed. Outputs are written under a
    temporary name and renamed when complete.
    """
    from pipelines.batch import BatchOptions, BatchPipeline
    from pipelines.translate import TranslateOptions
    from vidanime.video.detect import check_detector, default_detector
    from vidanime.video.faces import FaceConfig

    check_detector(detector, detector_weights)  # before any model loads
    face_cfg = FaceConfig(device=device, detector=detector or default_detector(direction),
                          detector_weights=detector_weights, detect_every=detect_every)
    options = BatchOptions(
        jobs=jobs, threads=threads, ray=ray_address, ray_cpus=ray_cpus, retry_failed=retry_failed, ext=f".{ext}",
        finetune=finetune, keep_finetune=keep_finetune, progress=show_progress(no_progress),
        translate=TranslateOptions(faces=faces, crop=crop, crf=crf, preset=preset, batch=batch, progress=False))
    BatchPipeline.check_inputs(in_dir, out_dir, options)
    pipe = BatchPipeline.from_pretrained(checkpoint, parser_ckpt, direction=direction, alpha=alpha, device=device,
                                         fp16=fp16, face_config=face_cfg, temporal=temporal, recolor=recolor,
                                         upscaler=upscaler, background_fill=background_fill)
    result = pipe(in_dir, out_dir, options)
    for row in result.failed:
        click.echo(f"failed: {row['input']}: {row['reason']}", err=True)
    click.echo(result.summary())
    if not result.ok:
        ctx.exit(1)
