"""`vidanime parser train|eval|pseudo-label|import-bisenet`: train and score face parsers."""
from __future__ import annotations

import click

from vidanime.config import parse_overrides

from .options import DEVICE, FiniteFloatRange


@click.group(name="parser")
def cli() -> None:
    """Face parsers (BiSeNet / DANet): train, evaluate as in the paper's Table 1, pseudo-label, import public
    weights."""


@cli.command()
@click.option("--config", "config", required=True, type=click.Path(path_type=str), help="configs/parser_*.yaml")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--resume", default=None, help="'auto', a run folder or a train-*.pt checkpoint to continue.")
def train(config: str, sets: tuple[str, ...], resume: str | None) -> None:
    """Train a parser; writes a numbered run folder under runs_root."""
    from vidanime.train.parser import load_train_config, train_parser

    cfg = load_train_config(config, parse_overrides(sets))
    run = train_parser(cfg, resume=resume)
    click.echo(f"run folder: {run.path}")


@cli.command(name="eval")
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("--data", "data_root", default=None, help="Pairs folder (default: the checkpoint's training data).")
@click.option("--mask-labels", type=click.Choice(["celebamask", "bisenet", "danbooru"]), default=None,
              help="Label order of the masks in --data (required with --data).")
@click.option("--split", type=click.Choice(["heldout", "all"]), default=None,
              help="heldout = the ids held out in training (default without --data); all = every pair.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--json", "json_out", default=None, type=click.Path(path_type=str), help="Also write the scores as JSON.")
def eval_(checkpoint: str, data_root: str | None, mask_labels: str | None, split: str | None, device: str,
          batch_size: int, json_out: str | None) -> None:
    """Per-class pixel accuracy, overall accuracy and mIoU of CHECKPOINT (a table laid out like the paper's Table 1)."""
    import json

    from pipelines.parse import ParsePipeline
    from vidanime.fileio import atomic_write_text
    from vidanime.train.parser import resolve_device

    result = ParsePipeline.from_pretrained(checkpoint, device=resolve_device(device)).evaluate(
        data_root, mask_labels, split, batch_size=batch_size)
    click.echo(f"{checkpoint}: {result.images} images ({result.split}), {result.scores.pixels} pixels, "
               f"{result.label_set} classes")
    click.echo(result.table())
    if json_out:
        atomic_write_text(json_out, json.dumps(result.as_dict(), indent=1))


def _parse_scales(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 0.75,1,1.25, got '{value}'") from None
    if not scales or any(not 0.25 <= v <= 4.0 for v in scales):
        raise click.BadParameter(f"each scale must be in [0.25, 4], got '{value}'")
    return scales


@cli.command(name="pseudo-label")
@click.argument("images", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option("--model", "model", required=True, help="The (portrait) parser checkpoint that labels the images.")
@click.option("--min-confidence", default=0.7, show_default=True, type=FiniteFloatRange(0, 1),
              help="Pixels below this top-class probability become 255 (ignored).")
@click.option("--feature-confidence", default=None, type=FiniteFloatRange(0, 1),
              help="Lower threshold for eyes, brows, nose, mouth and lips (a portrait parser is rarely sure of anime "
                   "eyes); default: --min-confidence for every class.")
@click.option("--min-kept", default=0.8, show_default=True, type=FiniteFloatRange(0, 1),
              help="Drop images where fewer pixels than this pass.")
@click.option("--limit", default=0, show_default=True, type=click.IntRange(0),
              help="Only the first N images (0 = all).")
@click.option("--tta-scales", default="1", show_default=True, callback=_parse_scales,
              help="Comma-separated resolutions (× the parser's size) whose predictions are averaged, "
                   "e.g. 0.75,1,1.25.")
@click.option("--flip-tta/--no-flip-tta", default=False, show_default=True,
              help="Also average the mirror image's prediction (left/right classes swapped back).")
@click.option("--colour-refine", default=0.0, show_default=True, type=FiniteFloatRange(0, 10),
              help="For flat-shaded drawings: move hair/skin/clothes/backdrop pixels towards the class whose colour "
                   "fits, with this weight (0 = off; 0.3 is what the bundled anime parser used).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
def pseudo_label(images: str, out: str, model: str, min_confidence: float, feature_confidence: float | None,
                 min_kept: float, limit: int, tta_scales: tuple[float, ...], flip_tta: bool, colour_refine: float,
                 device: str) -> None:
    """Label a folder of anime faces with a parser; writes OUT/images + OUT/masks for `parser train`."""
    from pipelines.parse import ParsePipeline
    from vidanime.train.parser import resolve_device

    pipe = ParsePipeline.from_pretrained(model, device=resolve_device(device))
    s = pipe.pseudo_label(images, out, min_confidence=min_confidence, min_kept_fraction=min_kept, limit=limit,
                          feature_confidence=feature_confidence, scales=tta_scales, flip=flip_tta,
                          colour_refine=colour_refine)
    presence = ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["feature_presence"].items())
    click.echo(f"kept {s['kept']}, dropped {s['dropped']} images; mean confident-pixel fraction "
               f"{s['mean_confident_fraction']:.3f}; masks in {s['label_set']} order under {s['out']} "
               f"(train with data.root={s['out']}, data.mask_labels={s['label_set']}); masks holding each feature: "
               f"{presence}")


@cli.command(name="import-bisenet")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
def import_bisenet_cmd(src: str, dst: str) -> None:
    """Convert face-parsing.PyTorch's 79999_iter.pth (19 classes) into a vidanime.parser checkpoint."""
    from vidanime.checkpoint import save_checkpoint
    from vidanime.fileio import check_not_same_file
    from vidanime.importers.bisenet import import_bisenet
    from vidanime.models.parser import PARSER_FORMAT, config_of

    check_not_same_file(src, dst)
    model = import_bisenet(src)
    save_checkpoint(dst, format=PARSER_FORMAT, config=config_of(model), state_dict=model.state_dict(),
                    source="face-parsing.PyTorch 79999_iter.pth")
    click.echo(f"wrote {dst}")
