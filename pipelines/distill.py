"""Refinement distillation as one job: refine the training portraits' codes, invert anime crops, fine-tune the encoders.

An addition to the paper (README, "Keeping the person"; :mod:`vidanime.train.distill`).  Composes library parts:

1. the training-side CelebAMask-HQ portraits (the parsers' seeded split: the 10 % they hold out are left out) go
   through the translate path's inputs (portrait parser at its own size, labels at the model size), and their encoder
   codes are refined for ``refine`` steps with the output-domain (anime) parser and the checkpoint's discriminators;
2. optionally the first ``anime_count`` anime crops are inverted into W+ (pixel L2, :mod:`vidanime.train.invert`), so
   the encoders also learn to reconstruct anime faces;
3. E_p/E_s are fine-tuned to predict those codes, and ``blend`` of the weight change is kept.

``run_dir`` gets ``targets.pt`` / ``anime_targets.pt`` (code caches, reused when model, data and steps match),
``metrics.jsonl``, ``config.yaml`` and ``checkpoints/styleanime-<steps>.pt``.  With a :class:`Budget`, each phase
stops early at its share (``refine_share`` / ``invert_share`` of the budget, the rest for the fine-tune) and uses
the codes it has: ``vidanime train-all`` runs this as its ``distill`` stage.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from tqdm import tqdm

from vidanime.checkpoint import sha256_file
from vidanime.data.image_io import read_image_rgb
from vidanime.data.images import list_images
from vidanime.data.parsing import list_pairs, resize_image, split_ids
from vidanime.errors import ConfigError
from vidanime.fileio import atomic_write_text
from vidanime.models.face_translator import StyleAnimeFaceTranslator
from vidanime.models.styleanime import save_styleanime
from vidanime.registry import load, load_model, resolve_path
from vidanime.train.distill import DistillConfig, blend_encoders, distill_encoders, refined_targets
from vidanime.train.harness import Budget
from vidanime.train.invert import InvertConfig, inverted_targets
from vidanime.train.refine import LatentRefiner, RefineConfig
from vidanime.train.styleanime import model_discriminators

logger = logging.getLogger(__name__)

__all__ = ["DistillRunConfig", "distill_refine", "training_portraits", "anime_images", "ANIME_HELDOUT_START"]

# The shipped anime faces the demo models train on: the encoders the first 2,000 sorted files, the anime parser the
# first 3,000; files from this index on are held out (the reports measure on them).
ANIME_HELDOUT_START = 9000


def anime_images(root: str | Path, start: int, count: int, size: int = 256) -> list[np.ndarray]:
    """``count`` anime face crops (size, size, 3) uint8 from sorted index ``start`` on."""
    files = list_images(root)[start : start + count]
    return [resize_image(read_image_rgb(f), size) for f in files]


def training_portraits(root: str | Path, val_fraction: float = 0.1, seed: int = 0, offset: int = 0,
                       limit: int = 0) -> tuple[list[str], np.ndarray]:
    """Ids and images (N, 256, 256, 3) uint8 of the CelebAMask-HQ-layout portraits the parsers and encoders train on
    (their seeded split; the held-out part is left out), from ``offset`` on, at most ``limit`` (0 = all)."""
    pairs = {sid: ip for sid, ip, _ in list_pairs(root)}
    train, _ = split_ids(list(pairs), val_fraction, seed)
    train = train[offset : offset + limit if limit else None]
    if not train:
        raise ConfigError(f"no training portraits in {root} from offset {offset}")
    return train, np.stack([resize_image(read_image_rgb(pairs[sid]), 256) for sid in train])


@dataclass
class DistillRunConfig:
    """One refinement distillation (see the module doc); parsers and model are registry names or paths."""

    model: str = "styleanime-p2a"
    portrait_parser: str = "parser-portrait"  # the translate path's input parser
    anime_parser: str = "parser-anime"  # refinement's structure term and the anime crops' labels
    faces: str = ""  # CelebAMask-HQ-layout folder (images + masks); its training split is refined
    anime: str = ""  # anime face folder (needed when anime_count > 0)
    refine: int = 25  # refinement steps per portrait
    limit: int = 0  # at most this many training portraits (0 = all)
    offset: int = 0  # skip the first portraits (split the refinement over processes)
    anime_count: int = 0  # first N anime crops inverted and learned too (reconstruction)
    invert_steps: int = 50
    steps: int = 800  # fine-tune steps (0: only compute and cache the codes)
    batch: int = 16
    lr: float = 5e-5
    lambda_image: float = 1.0
    lambda_adv: float = 0.0
    blend: float = 1.0  # fraction of the encoder weight change kept (WiSE-FT style)
    refine_share: float = 0.55  # of a budget: refinement, then inversion, the rest for the fine-tune
    invert_share: float = 0.2
    dtype: str = "float32"  # of the saved checkpoint ("float16" halves it)

    def __post_init__(self) -> None:
        if not self.faces:
            raise ConfigError("distill: faces (the CelebAMask-HQ-layout folder) is required")
        if self.anime_count and not self.anime:
            raise ConfigError(f"distill: anime_count {self.anime_count} needs the anime folder (anime)")
        if self.anime_count > ANIME_HELDOUT_START:
            raise ConfigError(f"distill anime_count {self.anime_count}: at most {ANIME_HELDOUT_START} (the crops from "
                              f"{ANIME_HELDOUT_START} on are the reports' held-out anime faces)")
        if self.refine < 1 or self.limit < 0 or self.offset < 0 or self.anime_count < 0 or self.invert_steps < 1:
            raise ConfigError(f"distill refine/limit/offset/anime_count/invert_steps = {self.refine}/{self.limit}/"
                              f"{self.offset}/{self.anime_count}/{self.invert_steps}: expected >= 1 / >= 0 / >= 0 / "
                              ">= 0 / >= 1")
        if not 0 <= self.blend <= 1:
            raise ConfigError(f"distill blend {self.blend}: expected a number in [0, 1]")
        if not (0 <= self.refine_share and 0 <= self.invert_share and self.refine_share + self.invert_share < 1):
            raise ConfigError(f"distill refine_share + invert_share = {self.refine_share} + {self.invert_share}: "
                              "expected two non-negative shares summing to less than 1")
        self.distill_config()  # its own checks (steps, batch, lr, weights)

    def distill_config(self) -> DistillConfig:
        return DistillConfig(steps=self.steps, batch=self.batch, lr=self.lr, lambda_image=self.lambda_image,
                             lambda_adv=self.lambda_adv)


def _model_inputs(translator: Any, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-size images (N, 3, M, M) in [-1, 1] and labels (N, M, M) of (N, H, W, 3) uint8 ``images``, as
    ``translator`` feeds its model (32 at a time, independent tracks)."""
    xs, labs = [], []
    for i in range(0, len(images), 32):
        x, lab, _ = translator.model_inputs(images[i : i + 32], list(range(i, min(i + 32, len(images)))))
        xs.append(x.cpu())
        labs.append(lab.cpu())
    return torch.cat(xs), torch.cat(labs)


def _cached(cache: Path, key: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(w0, targets) from a codes cache written for ``key``, else None."""
    found = torch.load(cache, weights_only=True) if cache.is_file() else None
    return (found["w0"], found["targets"]) if found is not None and found.get("key") == key else None


def _codes(cache: Path, key: dict, what: str, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]],
           parts: list[Path] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes from ``cache`` (or from other runs' caches that tile this one, ``parts``), else ``compute()``d and
    cached."""
    if (found := _cached(cache, key)) is not None:
        logger.info("%s from %s", what, cache)
        return found
    if parts and (found := _from_parts(parts, key)) is not None:
        logger.info("%s from %s", what, ", ".join(map(str, parts)))
        return found
    t0 = time.perf_counter()
    w0, targets = compute()
    logger.info("%s: %d in %.0f s", what, len(targets), time.perf_counter() - t0)
    torch.save({"key": key, "w0": w0, "targets": targets}, cache)
    return w0, targets


def _from_parts(parts: list[Path], key: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Codes from other runs' ``targets.pt`` that tile portraits [offset, offset + portraits) of this run in order
    (same model and refinement steps), else None."""
    loaded = sorted((torch.load(Path(p) / "targets.pt", weights_only=True) for p in parts),
                    key=lambda c: c["key"].get("offset", 0))
    at = key["offset"]
    for c in loaded:
        k = c["key"]
        if k["model_sha256"] != key["model_sha256"] or k["refine"] != key["refine"] or k.get("offset", 0) != at:
            return None
        at += len(c["targets"])
    if at != key["offset"] + key["portraits"]:
        return None
    return torch.cat([c["w0"] for c in loaded]), torch.cat([c["targets"] for c in loaded])


def _until(budget: Budget | None) -> Callable[[], bool] | None:
    return None if budget is None or budget.seconds is None else budget.expired


def distill_refine(cfg: DistillRunConfig, run_dir: str | Path, budget: Budget | None = None, device: Any = "cpu",
                   parts: list[Path] | None = None) -> Path:
    """Run one refinement distillation into ``run_dir``; returns the saved checkpoint (``run_dir/checkpoints``)."""
    out = Path(run_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    path = resolve_path(cfg.model)
    loaded = load(path, expect="styleanime", device=dev)  # one read: the model and the provenance it keeps
    model = loaded.model.eval()
    extras = {k: loaded.metadata[k] for k in ("train_config", "step") if k in loaded.metadata}
    model_sha = sha256_file(path)
    portrait_parser = load_model(cfg.portrait_parser, device=dev, format="vidanime.parser").eval()
    anime_parser = load_model(cfg.anime_parser, device=dev, format="vidanime.parser").eval()

    ids, images = training_portraits(cfg.faces, offset=cfg.offset, limit=cfg.limit)
    translator = StyleAnimeFaceTranslator(model, portrait_parser, alpha=None, device=dev, parsing_smooth=0)
    x, lab = _model_inputs(translator, images)
    shares = budget.part(budget.remaining() * cfg.refine_share) if budget is not None else None
    key = {"model_sha256": model_sha, "portraits": len(ids), "first": ids[0], "refine": cfg.refine,
           "offset": cfg.offset}
    refiner = LatentRefiner(model, anime_parser, RefineConfig(), model_discriminators(model))

    def refine() -> tuple[torch.Tensor, torch.Tensor]:
        with tqdm(total=len(x), desc=f"refining {len(x)} portraits ({cfg.refine} steps)", unit="face") as bar:
            return refined_targets(model, refiner, x.to(dev), lab.to(dev), cfg.refine, progress=bar.update,
                                   until=_until(shares))

    w0, targets = _codes(out / "targets.pt", key, "refined portrait codes", refine, parts)
    x, lab = x[: len(targets)], lab[: len(targets)]  # a budget may have stopped the refinement early

    anime_key = None
    if cfg.anime_count:
        translator_a = StyleAnimeFaceTranslator(model, anime_parser, alpha=None, device=dev, parsing_smooth=0,
                                                background_fill=0.0)  # the anime face itself is the target
        xa, laba = _model_inputs(translator_a, np.stack(anime_images(cfg.anime, 0, cfg.anime_count)))
        inv = InvertConfig(steps=cfg.invert_steps)
        anime_key = {"model_sha256": model_sha, "images": cfg.anime_count, "parser": str(cfg.anime_parser),
                     "invert": asdict(inv)}
        part = budget.part(budget.remaining() * cfg.invert_share / (1 - cfg.refine_share)) if budget else None

        def invert() -> tuple[torch.Tensor, torch.Tensor]:
            with tqdm(total=len(xa), desc=f"inverting {len(xa)} anime faces ({cfg.invert_steps} steps)",
                      unit="face") as bar:
                return inverted_targets(model, xa.to(dev), laba.to(dev), inv, progress=bar.update, until=_until(part))

        wa0, wa = _codes(out / "anime_targets.pt", anime_key, "inverted anime codes", invert)
        n = len(wa)
        x, lab = torch.cat([x, xa[:n]]), torch.cat([lab, laba[:n]])
        w0, targets = torch.cat([w0, wa0]), torch.cat([targets, wa])

    config = cfg.distill_config()
    start_state = {k: v.clone() for k, v in model.encoder.state_dict().items()} if cfg.blend < 1 else None
    t0 = time.perf_counter()
    rows = distill_encoders(model, x.to(dev), lab.to(dev), targets.to(dev), config, budget=budget,
                            discriminators=model_discriminators(model) if cfg.lambda_adv > 0 else None)
    secs = time.perf_counter() - t0
    if start_state is not None:
        n = blend_encoders(model, start_state, cfg.blend)
        logger.info("encoders blended %.2f of the way from the start to the distilled weights (%d tensors)",
                    cfg.blend, n)
    with torch.no_grad():
        after = torch.cat([model.encode(x[i : i + 64].to(dev), lab[i : i + 64].to(dev)).cpu()
                           for i in range(0, len(x), 64)])
    spread = (targets - w0).pow(2).mean().sqrt().item()
    left = (targets - after).pow(2).mean().sqrt().item()
    logger.info("RMS distance to the target codes: %.4f before, %.4f after (%.0f s)", spread, left, secs)
    steps = rows[-1]["step"] if rows else 0
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(out / "config.yaml", yaml.safe_dump({
        "name": "distill_refine", **asdict(cfg), "model_sha256": model_sha,
        "portraits": {"count": len(targets) - (len(wa) if anime_key else 0), "offset": cfg.offset},
        "anime_inverted": len(wa) if anime_key else 0,
        "result": {"steps": steps, "seconds": round(secs, 1), "rms_to_targets_before": spread,
                   "rms_to_targets_after": left}}, sort_keys=False))
    dst = save_styleanime(out / "checkpoints" / f"styleanime-{steps:07d}.pt", model, dtype=cfg.dtype, **extras)
    logger.info("wrote %s", dst)
    return dst
