"""`vidanime eval images|video`: the paper's metrics (FID, KID, LPIPS-s/-d, parser mIoU) and temporal stability."""
from __future__ import annotations

import click

from .options import DEVICE


def _metric_list(value: str | None) -> list[str] | None:
    return [m.strip() for m in value.split(",") if m.strip()] if value else None


def _check_json(json_path: str, inputs: list[str]) -> None:
    """Before any work: the JSON path is writable (not a folder) and overwrites none of the inputs."""
    from vidanime.fileio import check_not_same_file, check_output_path

    for p in inputs:
        check_not_same_file(p, json_path)
    check_output_path(json_path, "JSON output")


def _finish(result, json_path: str) -> None:
    click.echo(result.table())
    result.save_json(json_path)
    click.echo(f"wrote {json_path} ({result.seconds:.1f} s)")


@click.group(name="eval")
def cli() -> None:
    """Evaluate translations offline: image sets (paper Tables 1–2) or a translated video (flicker)."""


@cli.command(name="images")
@click.option("--pred", required=True, type=click.Path(path_type=str), help="Folder of translated outputs.")
@click.option("--real", default=None, type=click.Path(path_type=str),
              help="Folder of real target-domain images (FID/KID).")
@click.option("--source", default=None, type=click.Path(path_type=str),
              help="Folder of the inputs, same file names as --pred (LPIPS-s, structure/appearance kept).")
@click.option("--inception", default=None, type=click.Path(path_type=str),
              help="pt_inception-2015-12-05-6726825d.pth (or $VIDANIME_FID_INCEPTION); FID/KID skipped without it.")
@click.option("--lpips-backbone", default=None, type=click.Path(path_type=str),
              help="torchvision ImageNet weights of the LPIPS net (or $VIDANIME_LPIPS_BACKBONE); "
                   "LPIPS skipped without.")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg", "squeeze"]), default="alex", show_default=True)
@click.option("--source-masks", default=None, type=click.Path(path_type=str), help="Label PNGs of the sources.")
@click.option("--pred-masks", default=None, type=click.Path(path_type=str), help="Label PNGs of the outputs.")
@click.option("--gt-masks", default=None, type=click.Path(path_type=str),
              help="Ground-truth label PNGs of the --pred images: scores the pred parser (Table 1).")
@click.option("--mask-labels", type=click.Choice(["bisenet", "danbooru", "celebamask"]), default="bisenet",
              show_default=True, help="Label order of the mask folders.")
@click.option("--source-parser", default=None, help="Parser (registry name or checkpoint) for the sources.")
@click.option("--pred-parser", default=None, help="Parser (registry name or checkpoint) for the outputs.")
@click.option("--metrics", default=None, help="Comma-separated metric names (default: all whose inputs are given).")
@click.option("--max-images", default=None, type=click.IntRange(2), help="Use only the first N images of each folder.")
@click.option("--kid-subsets", default=100, show_default=True, type=click.IntRange(1))
@click.option("--kid-subset-size", default=1000, show_default=True, type=click.IntRange(2))
@click.option("--lpips-d-pairs", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--color-distance", type=click.Choice(["emd", "chi2"]), default="emd", show_default=True)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--json", "json_path", default="eval_images.json", show_default=True, type=click.Path(path_type=str),
              help="Where to write the results.")
def images(pred: str, real: str | None, source: str | None, inception: str | None, lpips_backbone: str | None,
           lpips_net: str, source_masks: str | None, pred_masks: str | None, gt_masks: str | None, mask_labels: str,
           source_parser: str | None, pred_parser: str | None, metrics: str | None, max_images: int | None,
           kid_subsets: int, kid_subset_size: int, lpips_d_pairs: int, color_distance: str, batch_size: int,
           seed: int, device: str, json_path: str) -> None:
    """Score a folder of outputs: FID, KID, LPIPS-s, LPIPS-d, structure kept, appearance kept, parser mIoU.

    \b
    Examples:
      vidanime eval images --pred out/ --real anime_test/ --source photos/ \\
          --inception pt_inception-2015-12-05-6726825d.pth --lpips-backbone alexnet-owt-7be5be79.pth
      vidanime eval images --pred out/ --source photos/ --source-masks photo_masks/ --pred-parser parser-anime
    """
    from pipelines.evaluate import EvalImagesPipeline

    _check_json(json_path, [])
    pipe = EvalImagesPipeline(
        inception=inception, lpips_backbone=lpips_backbone, lpips_net=lpips_net, source_parser=source_parser,
        pred_parser=pred_parser, mask_labels=mask_labels, metrics=_metric_list(metrics), device=device,
        batch_size=batch_size, seed=seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
        lpips_d_pairs=lpips_d_pairs, color_distance=color_distance,
    )
    result = pipe(pred, real=real, source=source, source_masks=source_masks, pred_masks=pred_masks, gt_masks=gt_masks,
                  max_images=max_images)
    _finish(result, json_path)


@cli.command(name="video")
@click.option("--input", "input_", required=True, type=click.Path(path_type=str), help="The source clip.")
@click.option("--output", required=True, type=click.Path(path_type=str), help="Its translation.")
@click.option("--latents", default=None, type=click.Path(path_type=str),
              help="Per-frame codes (.npy/.pt, (T, 14, 512) or per track) for latent roughness.")
@click.option("--metrics", default=None, help="Comma-separated metric names (default: all whose inputs are given).")
@click.option("--max-side", default=512, show_default=True, type=click.IntRange(0),
              help="Downscale frames so the longer side is at most this before measuring (0 = full size).")
@click.option("--max-frames", default=None, type=click.IntRange(2), help="Compare only the first N frames.")
@click.option("--json", "json_path", default="eval_video.json", show_default=True, type=click.Path(path_type=str),
              help="Where to write the results.")
def video(input_: str, output: str, latents: str | None, metrics: str | None, max_side: int, max_frames: int | None,
          json_path: str) -> None:
    """Temporal stability of OUTPUT against INPUT: warp error, flicker index, latent roughness.

    \b
    Example:
      vidanime eval video --input in.mp4 --output out.mp4 --json flicker.json
    """
    from pipelines.evaluate import EvalVideoPipeline

    _check_json(json_path, [input_, output] + ([latents] if latents else []))
    pipe = EvalVideoPipeline(metrics=_metric_list(metrics), max_side=max_side or None, max_frames=max_frames)
    result = pipe(input_, output, latents=latents)
    _finish(result, json_path)
