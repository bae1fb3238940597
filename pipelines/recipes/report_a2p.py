"""Measure an anime → portrait (a2p) model on held-out shipped anime faces (the README's "Anime → portrait" numbers).

``python -m pipelines.recipes.report_a2p [--model styleanime-a2p] [--json docs/a2p_report.json] [--montage PNG]``
prints a Markdown table of, for 200 held-out anime faces (sorted files 9000-9199: the a2p encoders trained on the
first 2,000), against the naive baseline G(w_avg) of the model's portrait generator:

* **structure kept**: mIoU between the anime parser's parsing of the input and the portrait parser's parsing of the
  output (no hand labels exist for anime faces, so both sides are parser readings), shared 17-class set;
* **layout kept** without a parser (grey-thumbnail correlation, own output minus the others; 0 = same face for all)
  and **hair colour specificity** (1 = the output's hair ignores the input's);
* **appearance kept**: colour EMD of hair / skin / eyes between input and output, each in its own parsing;
* **P(anime)** of the outputs under :class:`vidanime.metrics.domain.DomainClassifier` (lower = more like a photo);
* **portrait look**: KID of the outputs against the 90 held-out portraits in the portrait parser's features, beside
  the inputs, the generator's own samples and 90 training-side portraits.

``--montage`` writes inputs over outputs for 8 faces.  Nothing from ../shared is written but that montage.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from PIL import Image

from pipelines.recipes.report_demo import (
    ANIME_HELDOUT_START,
    ASSETS,
    _mean_colour,
    anime_images,
    at_size,
    average_face,
    domain_classifier,
    heldout_portraits,
    parse,
    portrait_translator,
    print_report,
    training_portraits,
    translate_portraits,
)
from pipelines.translate import DEFAULT_MODELS, OUTPUT_PARSERS
from vidanime.fileio import atomic_path
from vidanime.metrics.color import colour_specificity
from vidanime.metrics.domain import anime_look_kids
from vidanime.metrics.structure import layout_kept, structure_kept
from vidanime.registry import load, load_model

logger = logging.getLogger("vidanime.report_a2p")


def generator_samples(model: Any, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded samples (N, S, S, 3) uint8 of the model's generator (truncation off)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.decoder.style_dim, generator=g).to(model.latent_avg)
    with torch.no_grad():
        x = torch.cat([model.decoder([z[i : i + 50]])[0] for i in range(0, n, 50)]).float()
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def measure(model_path: str | None = None, count: int = 200, alpha: float | None = None,
            device: str = "cpu") -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """All numbers (see the module doc) as a JSON-able dict, plus the inputs and outputs (N, 256, 256, 3) uint8."""
    ckpt_name, parser_name = DEFAULT_MODELS["a2p"]
    model = load(model_path or ckpt_name, expect="styleanime", device=device).model
    anime_parser = load_model(parser_name, device=device, format="vidanime.parser").eval()
    portrait_parser = load_model(OUTPUT_PARSERS["a2p"], device=device, format="vidanime.parser").eval()
    translator = portrait_translator(model, anime_parser, alpha=alpha, device=device)

    images = np.stack(anime_images(ASSETS / "anime", ANIME_HELDOUT_START, count))
    logger.info("translating %d held-out anime faces", len(images))
    outputs, seconds_per_face = translate_portraits(translator, images)
    outputs = at_size(outputs, 256) if outputs.shape[1] != 256 else outputs
    in_lab, out_lab = parse(anime_parser, images), parse(portrait_parser, outputs)
    base = average_face(model)
    base_lab = parse(portrait_parser, base[None])[0]

    res: dict[str, Any] = {"model": str(model_path or ckpt_name), "faces": len(images),
                           "alpha": alpha if alpha is not None else model.inference.get("alpha"),
                           "seconds_per_face": seconds_per_face, "threads": torch.get_num_threads()}
    res["structure_miou"] = structure_kept(zip(in_lab, out_lab)).miou
    res["structure_miou_baseline"] = structure_kept((a, base_lab) for a in in_lab).miou
    res["layout_kept"] = layout_kept(list(images), list(outputs))
    res["hair_colour_specificity"] = colour_specificity(images, in_lab, outputs, out_lab, "hair")
    res["colour_emd"] = _mean_colour(images, in_lab, outputs, out_lab)
    res["colour_emd_baseline"] = _mean_colour(images, in_lab, [base] * len(images), [base_lab] * len(images))

    ids, held_portraits, _ = heldout_portraits(ASSETS / "faces")
    train_portraits = training_portraits(ids, 600)  # read once: the classifier's and the KID's training side
    clf = domain_classifier(ids, train_portraits)
    res["p_anime"] = {"inputs": float(clf.score(list(images)).mean()),
                      "outputs": float(clf.score(list(outputs)).mean()),
                      "baseline": float(clf.score([base])[0]),
                      "heldout_portraits": float(clf.score(list(held_portraits)).mean())}
    s = int(model.image_size)
    sets = {"outputs": outputs, "inputs": images, "baseline": [base] * len(images),
            "generator": generator_samples(model, 200), "training_portraits": train_portraits[:90]}
    res["portrait_kid"] = anime_look_kids(portrait_parser, {k: at_size(v, s) for k, v in sets.items()},
                                          at_size(held_portraits, s))
    return res, images, outputs


def to_markdown(r: dict[str, Any]) -> str:
    """The README table for a :func:`measure` result."""
    c, cb, p, k = r["colour_emd"], r["colour_emd_baseline"], r["p_anime"], r["portrait_kid"]
    return "\n".join([
        f"| measure ({r['faces']} held-out anime faces) | {r['model']} | baseline: average portrait G(w_avg) |",
        "|---|---|---|",
        f"| structure kept: mIoU anime parsing of input vs portrait parsing of output (higher is better) "
        f"| {100 * r['structure_miou']:.1f} % | {100 * r['structure_miou_baseline']:.1f} % |",
        f"| layout kept, no parser (0 = same face for all) | {r['layout_kept']:.3f} | 0 |",
        f"| hair colour specificity (1 = input ignored, lower is better) | {r['hair_colour_specificity']:.2f} | 1 |",
        f"| appearance kept: colour EMD hair / skin / eyes (lower is better) | {c['hair']:.3f} / {c['skin']:.3f} / "
        f"{c['eyes']:.3f} (mean {c['mean']:.3f}) | {cb['hair']:.3f} / {cb['skin']:.3f} / {cb['eyes']:.3f} "
        f"(mean {cb['mean']:.3f}) |",
        f"| P(anime) of the output (lower = more like a photo; inputs {p['inputs']:.2f}, held-out portraits "
        f"{p['heldout_portraits']:.2f}) | {p['outputs']:.2f} | {p['baseline']:.2f} |",
        f"| portrait look: KID to the held-out portraits in the portrait parser's features (lower is better; inputs "
        f"{k['inputs']:.3f}, generator samples {k['generator']:.3f}, training portraits {k['training_portraits']:.3f})"
        f" | {k['outputs']:.3f} | {k['baseline']:.3f} |",
    ])


def save_montage(path: str | Path, images: np.ndarray, outputs: np.ndarray, n: int = 8, size: int = 128) -> Path:
    """Inputs (top row) over outputs (bottom row) for the first ``n`` faces, each ``size`` px, as a PNG."""
    top = np.concatenate(list(at_size(images[:n], size)), axis=1)
    bottom = np.concatenate(list(at_size(outputs[:n], size)), axis=1)
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate([top, bottom], axis=0)).save(tmp, format="PNG")
    return Path(path)


@click.command()
@click.option("--model", "model_path", default=None, help="a2p checkpoint (name or path) [default: styleanime-a2p].")
@click.option("--count", default=200, show_default=True, help="Held-out anime faces (from sorted index 9000).")
@click.option("--alpha", default=None, type=click.FloatRange(0, 1),
              help="FaceBank blend (default: the checkpoint's saved default, else off; 1 = off).")
@click.option("--json", "json_out", default=None, type=click.Path(), help="Also write the numbers as JSON here.")
@click.option("--montage", default=None, type=click.Path(), help="Also write inputs over outputs (8 faces) here.")
def main(model_path: str | None, count: int, alpha: float | None, json_out: str | None, montage: str | None) -> None:
    """Measure an anime → portrait model on held-out anime faces and print the README table."""
    _, images, outputs = print_report(lambda: measure(model_path, count=count, alpha=alpha), to_markdown, json_out)
    if montage:
        save_montage(montage, images, outputs)


if __name__ == "__main__":
    main()
