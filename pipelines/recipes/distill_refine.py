"""Refinement distillation of a StyleAnime checkpoint (an addition to the paper; :mod:`vidanime.train.distill`).

``python -m pipelines.recipes.distill_refine --out RUN_DIR [--model styleanime-p2a] [--refine 25] [--steps 600]``:

1. the training-side CelebAMask-HQ portraits (the 810 the parsers train on; the 90 they hold out are left out) go
   through the translate path's inputs (portrait parser at its own size, labels at the model size), their encoder
   codes are refined for ``--refine`` steps with the bundled anime parser and the checkpoint's discriminators, and the
   codes are cached in ``RUN_DIR/targets.pt`` (reused when the model, portraits and steps match);
2. E_p/E_s are fine-tuned to predict the refined codes; ``RUN_DIR/metrics.jsonl`` and ``RUN_DIR/config.yaml`` record
   it and ``RUN_DIR/checkpoints/styleanime-<steps>.pt`` is the result (same generator, FaceBank, discriminators and
   test-time defaults as the input checkpoint).

Several processes can share the refinement (one core each): ``--offset A --limit N --steps 0`` per part, then the
full run with ``--parts DIR ...`` takes their codes.  Measure the result with ``python -m pipelines.recipes.report_demo
--model RUN_DIR/checkpoints/styleanime-<steps>.pt``.  Needs ../shared/assets.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import yaml
from tqdm import tqdm

from pipelines.recipes.report_demo import ANIME_HELDOUT_START, ASSETS, anime_images, portrait_translator
from pipelines.translate import DEFAULT_MODELS, build_refiner
from vidanime.checkpoint import sha256_file
from vidanime.data.image_io import read_image_rgb
from vidanime.data.parsing import list_pairs, resize_image, split_ids
from vidanime.errors import ConfigError, VidanimeError
from vidanime.fileio import atomic_write_text
from vidanime.log import setup_logging
from vidanime.models.face_translator import StyleAnimeFaceTranslator
from vidanime.models.styleanime import save_styleanime
from vidanime.registry import load, load_model, resolve_path
from vidanime.train.distill import DistillConfig, blend_encoders, distill_encoders, refined_targets
from vidanime.train.invert import InvertConfig, inverted_targets
from vidanime.train.styleanime import model_discriminators

logger = logging.getLogger("vidanime.distill_refine")


def training_portraits(root: Path, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Ids and images (N, 256, 256, 3) uint8 of the shipped portraits the demo parsers and encoders train on."""
    pairs = {sid: ip for sid, ip, _ in list_pairs(root)}
    train, _ = split_ids(list(pairs), val_fraction, seed)
    return train, np.stack([resize_image(read_image_rgb(pairs[sid]), 256) for sid in train])


def _from_parts(parts: list[Path], key: dict) -> tuple[Any, Any] | None:
    """Codes from other runs' ``targets.pt`` that tile portraits [offset, offset + portraits) of this run in order
    (same model and refinement steps), else None."""
    loaded = [torch.load(Path(p) / "targets.pt", weights_only=True) for p in parts]
    loaded.sort(key=lambda c: c["key"].get("offset", 0))
    at = key["offset"]
    for c in loaded:
        k = c["key"]
        if k["model_sha256"] != key["model_sha256"] or k["refine"] != key["refine"] or k.get("offset", 0) != at:
            return None
        at += k["portraits"]
    if at != key["offset"] + key["portraits"]:
        return None
    return torch.cat([c["w0"] for c in loaded]), torch.cat([c["targets"] for c in loaded])


def _read_codes(cache: Path, key: dict) -> tuple[Any, Any] | None:
    """(w0, targets) from a codes cache (``targets.pt`` / ``anime_targets.pt``) written for ``key``, else None."""
    cached = torch.load(cache, weights_only=True) if cache.is_file() else None
    return (cached["w0"], cached["targets"]) if cached is not None and cached.get("key") == key else None


def _write_codes(cache: Path, key: dict, w0: Any, targets: Any) -> None:
    torch.save({"key": key, "w0": w0, "targets": targets}, cache)


def _model_inputs(translator: Any, images: np.ndarray) -> tuple[Any, Any]:
    """Model-size images (N, 3, M, M) and labels (N, M, M) of (N, H, W, 3) uint8 ``images`` as ``translator`` feeds
    its model (32 at a time)."""
    xs, labs = [], []
    for i in range(0, len(images), 32):
        x, lab, _ = translator.model_inputs(images[i : i + 32], list(range(i, min(i + 32, len(images)))))
        xs.append(x)
        labs.append(lab)
    return torch.cat(xs), torch.cat(labs)


def _anime_targets(out: Path, model: Any, train_config: dict | None, model_sha256: str, count: int,
                   invert_steps: int) -> tuple[Any, Any, Any, Any, dict]:
    """The first ``count`` training anime crops at the model size, their labels (the parser that labelled them in
    training) and their encoder / inverted codes (:mod:`vidanime.train.invert`), cached in ``out/anime_targets.pt``;
    → (x, labels, w0, w*, cache key)."""
    if count > ANIME_HELDOUT_START:
        raise ConfigError(f"--anime {count}: at most {ANIME_HELDOUT_START} (the crops from {ANIME_HELDOUT_START} on "
                          "are the report's held-out anime faces)")
    parser_name = ((train_config or {}).get("target") or {}).get("parser") or DEFAULT_MODELS["p2a"][1]
    parser = load_model(parser_name, format="vidanime.parser").eval()
    translator = StyleAnimeFaceTranslator(model, parser, alpha=None, parsing_smooth=0)
    images = np.stack(anime_images(ASSETS / "anime", 0, count))
    x, lab = _model_inputs(translator, images)
    inv = InvertConfig(steps=invert_steps)
    key = {"model_sha256": model_sha256, "images": count, "parser": str(parser_name), "invert": asdict(inv)}
    cache = out / "anime_targets.pt"
    if (cached := _read_codes(cache, key)) is not None:
        logger.info("inverted codes of %d anime faces from %s", count, cache)
        return x, lab, *cached, key
    t0 = time.perf_counter()
    with tqdm(total=len(x), desc=f"inverting {len(x)} anime faces ({invert_steps} steps)", unit="face") as bar:
        w0, targets = inverted_targets(model, x, lab, inv, progress=bar.update)
    logger.info("inverted %d anime faces in %.0f s", len(x), time.perf_counter() - t0)
    _write_codes(cache, key, w0, targets)
    return x, lab, w0, targets, key


def run(out: Path, model_name: str, refine: int, steps: int, lr: float, lambda_image: float, limit: int,
        offset: int = 0, parts: list[Path] | None = None, anime: int = 0, invert_steps: int = 100,
        lambda_adv: float = 0.0, blend: float = 1.0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = resolve_path(model_name)
    loaded = load(path, expect="styleanime")  # one read: the model and the provenance it keeps
    model = loaded.model
    extras = {k: loaded.metadata[k] for k in ("train_config", "step") if k in loaded.metadata}
    portrait_parser = load_model(DEFAULT_MODELS["p2a"][1], format="vidanime.parser").eval()
    ids, images = training_portraits(ASSETS / "faces")
    ids, images = ids[offset : offset + limit if limit else None], images[offset : offset + limit if limit else None]
    translator = portrait_translator(model, portrait_parser)
    x, lab = _model_inputs(translator, images)

    key = {"model_sha256": sha256_file(path), "portraits": len(ids), "first": ids[0], "refine": refine,
           "offset": offset}
    cache = out / "targets.pt"
    if (cached := _read_codes(cache, key)) is not None:
        w0, targets = cached
        logger.info("refined codes of %d portraits from %s", len(targets), cache)
    elif parts and (merged := _from_parts(parts, key)) is not None:
        w0, targets = merged
        logger.info("refined codes of %d portraits from %s", len(targets), ", ".join(map(str, parts)))
    else:
        refiner = build_refiner(model, "p2a")
        t0 = time.perf_counter()
        with tqdm(total=len(x), desc=f"refining {len(x)} portraits ({refine} steps)", unit="face") as bar:
            w0, targets = refined_targets(model, refiner, x, lab, refine, progress=bar.update)
        logger.info("refined %d portraits in %.0f s", len(x), time.perf_counter() - t0)
        _write_codes(cache, key, w0, targets)

    anime_key = None
    if anime:
        xa, laba, wa0, wa, anime_key = _anime_targets(out, model, extras.get("train_config"), key["model_sha256"],
                                                      anime, invert_steps)
        x, lab, w0, targets = torch.cat([x, xa]), torch.cat([lab, laba]), torch.cat([w0, wa0]), torch.cat([targets, wa])

    config = DistillConfig(steps=steps, lr=lr, lambda_image=lambda_image, lambda_adv=lambda_adv)
    start_state = {k: v.clone() for k, v in model.encoder.state_dict().items()} if blend < 1 else None
    t0 = time.perf_counter()
    rows = distill_encoders(model, x, lab, targets, config,
                            discriminators=model_discriminators(model) if lambda_adv > 0 else None)
    secs = time.perf_counter() - t0
    if start_state is not None:
        n = blend_encoders(model, start_state, blend)
        logger.info("encoders blended %.2f of the way from the start to the distilled weights (%d tensors)", blend, n)
    with torch.no_grad():
        after = torch.cat([model.encode(x[i : i + 64], lab[i : i + 64]) for i in range(0, len(x), 64)])
    spread = (targets - w0).pow(2).mean().sqrt().item()
    left = (targets - after).pow(2).mean().sqrt().item()
    logger.info("RMS distance to the target codes: %.4f before, %.4f after (%.0f s)", spread, left, secs)
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(out / "config.yaml", yaml.safe_dump({
        "name": "distill_refine", "model": str(model_name), "model_sha256": key["model_sha256"],
        "portraits": {"count": len(ids), "offset": offset}, "refine_steps": refine,
        "anime": anime_key and {k: anime_key[k] for k in ("images", "invert")}, "distill": asdict(config),
        "blend": blend,
        "result": {"seconds": round(secs, 1), "rms_to_targets_before": spread, "rms_to_targets_after": left}},
        sort_keys=False))
    dst = save_styleanime(out / "checkpoints" / f"styleanime-{steps:07d}.pt", model, dtype="float16", **extras)
    logger.info("wrote %s", dst)
    return dst


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (targets cache, result).")
@click.option("--model", "model_name", default="styleanime-p2a", show_default=True, help="StyleAnime name or path.")
@click.option("--refine", default=25, show_default=True, type=click.IntRange(min=1), help="Refinement steps.")
@click.option("--steps", default=600, show_default=True, type=click.IntRange(min=0), help="Distillation steps.")
@click.option("--lr", default=5e-5, show_default=True, type=float, help="Encoder learning rate.")
@click.option("--lambda-image", default=1.0, show_default=True, type=float, help="Weight of the image term.")
@click.option("--lambda-adv", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the image discriminator D2 on the distilled encoders' drawings (keeps them anime).")
@click.option("--limit", default=0, show_default=True, help="Only N training portraits (0 = all).")
@click.option("--offset", default=0, show_default=True, help="Skip the first N training portraits.")
@click.option("--anime", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also teach the encoders the W+ inversions of the first N training anime crops (reconstruction).")
@click.option("--invert-steps", default=100, show_default=True, type=click.IntRange(min=1),
              help="Adam steps of each anime inversion.")
@click.option("--blend", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Keep this fraction of the distillation's change to the encoder weights (1 = all; lower trades "
                   "keeping the person back for anime look, by weight interpolation with the starting encoders).")
@click.option("--parts", multiple=True, type=click.Path(file_okay=False),
              help="Run folders whose refined codes tile this run's portraits (several processes, one core each).")
def main(out: str, model_name: str, refine: int, steps: int, lr: float, lambda_image: float, lambda_adv: float,
         limit: int, offset: int, anime: int, invert_steps: int, blend: float, parts: tuple[str, ...]) -> None:
    """Distil test-time refinement into the encoders of a StyleAnime checkpoint."""
    setup_logging(0)
    try:
        run(Path(out), model_name, refine, steps, lr, lambda_image, limit, offset, [Path(p) for p in parts], anime,
            invert_steps, lambda_adv, blend)
    except VidanimeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
