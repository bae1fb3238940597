"""Measure the bundled demo models on held-out shipped data (the numbers in the README's "Bundled default model").

``python -m pipelines.recipes.report_demo [--json docs/demo_report.json]`` prints a Markdown table of:

* **structure kept** on the 90 held-out CelebAMask-HQ portraits (the split every demo model leaves out): mIoU between
  the hand-labelled parsing of the input and the anime parser's parsing of the output, in the shared 17-class set;
* **appearance kept**: colour-histogram distance (EMD on [0, 1] intensities, per RGB channel) of hair / skin / eyes
  between input and output, each in its own parsing (input: hand labels; output: anime parser);
* both against the naive baseline the issue names: the generator's average face G(w_avg) for every input;
* **anime-domain score** P(anime) of inputs, outputs and baseline under
  :class:`vidanime.metrics.domain.DomainClassifier` (fitted on training-side images only);
* **anime look**: KID of the outputs against 500 held-out anime faces in the anime parser's backbone features
  (:func:`vidanime.metrics.domain.anime_look_kid`), beside the inputs, the generator's own samples and other held-out
  anime faces; unlike P(anime) it tells a clean anime face from a blotchy render in anime colours;
* **reconstruction** of the encoders on held-out anime faces (images the encoders never saw): L2 (MSE on [0, 1]) and
  PSNR, plus structure kept of the reconstruction;
* **anime parser** agreement with the portrait parser (where its pseudo-labels started: the teacher is the portrait
  parser fine-tuned on drawn portraits) on held-out anime faces: there is no labelled anime set here, so this says how
  far it moved from a photo parser's reading, not how right it is (``bench/bench_anime_parsing.py`` counts features).

Nothing from ../shared is written: only numbers.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import click
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.distill import ANIME_HELDOUT_START, anime_images
from pipelines.parse import ParsePipeline
from pipelines.translate import DEFAULT_MODELS
from vidanime import labels as L
from vidanime.data.image_io import read_image_rgb
from vidanime.data.pack import default_assets_root
from vidanime.data.parsing import list_pairs, read_mask, remap_mask, resize_image, split_ids
from vidanime.errors import VidanimeError
from vidanime.fileio import atomic_write_text
from vidanime.log import setup_logging
from vidanime.metrics.color import color_distance, colour_specificity
from vidanime.metrics.domain import DomainClassifier, anime_look_kids
from vidanime.metrics.lpips_metrics import load_lpips, lpips_pairs
from vidanime.metrics.structure import layout_kept, structure_kept
from vidanime.models.face_translator import StyleAnimeFaceTranslator
from vidanime.registry import load, load_model, read_registry
from vidanime.train.refine import LatentRefiner, RefineConfig
from vidanime.train.styleanime import model_discriminators
from vidanime.video.recolor import RecolorConfig, RegionRecolor

logger = logging.getLogger("vidanime.report_demo")

ASSETS = default_assets_root()  # $VIDANIME_ASSETS, else ../shared/assets beside the repository
def set_models(folder: str | Path) -> dict[str, str]:
    """Registry name → file path of a model set folder (``train-all --out``: ``registry.json`` + files), for the
    models a portrait → anime report needs; a one-line error when the folder is not a set or lacks them."""
    folder = Path(folder).expanduser()
    if not (folder / "registry.json").is_file():
        raise VidanimeError(f"{folder} holds no registry.json (expected the output folder of `vidanime train-all`)")
    out = {name: str(folder / e.file) for name, e in read_registry(folder / "registry.json").items()
           if (folder / e.file).is_file()}
    missing = [n for n in ("styleanime-p2a", "parser-portrait") if n not in out]
    if missing:
        raise VidanimeError(f"the set in {folder} lacks {', '.join(missing)}")
    return out


def heldout_portraits(root: Path, val_fraction: float = 0.1, seed: int = 0,
                      limit: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids, images (N, 256, 256, 3) uint8 and BiSeNet-order masks (N, 256, 256) of the held-out shipped portraits."""
    pairs = {sid: (ip, mp) for sid, ip, mp in list_pairs(root)}
    _, held = split_ids(list(pairs), val_fraction, seed)
    held = held[:limit] if limit else held
    images, masks = [], []
    for sid in held:
        ip, mp = pairs[sid]
        images.append(resize_image(read_image_rgb(ip), 256))
        m = read_mask(mp)
        m = L.resize_labels(m, (256, 256)) if m.shape != (256, 256) else m
        masks.append(remap_mask(m, "celebamask", "bisenet"))
    return held, np.stack(images), np.stack(masks)


def parse(parser: Any, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """(N, S, S) labels of uint8 images with a vidanime parser (its own label order), at the images' size."""
    return np.stack(ParsePipeline(parser, batch_size=16)(list(images)).labels)


def average_face(model: Any, size: int = 256) -> np.ndarray:
    """G(w_avg) as a (size, size, 3) uint8 image: the naive baseline."""
    with torch.no_grad():
        img = model.decode(model.latent_avg[None])
        img = F.interpolate(img.float(), size=(size, size), mode="bilinear", align_corners=False)
    return ((img[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def _mean_colour(src: Sequence[np.ndarray], src_lab: Sequence[np.ndarray], out: Sequence[np.ndarray],
                 out_lab: Sequence[np.ndarray]) -> dict[str, float]:
    rows = [color_distance(a, la, b, lb) for a, la, b, lb in zip(src, src_lab, out, out_lab)]
    res = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    res["mean"] = float(np.nanmean(list(res.values())))
    return res


def portrait_translator(model: Any, portrait_parser: Any, alpha: float | None = None, refiner: Any = None,
                        device: str = "cpu", recolor: Any = None, background_fill: float | None = None) -> Any:
    """The video path's face translator for independent still portraits: no parsing smoothing, and with ``refiner``
    every crop refined (each is its own track's keyframe, its correction applied in full); ``recolor``: a
    :class:`~vidanime.video.recolor.RegionRecolor` (each portrait its own track); ``background_fill``: None = the
    checkpoint's default."""
    steps = refiner.config.steps if refiner is not None else 0
    return StyleAnimeFaceTranslator(model, portrait_parser, alpha=alpha, device=device, parsing_smooth=0,
                                    refiner=refiner, refine=steps, refine_every=1, refine_ease=1.0, recolor=recolor,
                                    background_fill=background_fill)


def translate_portraits(translator: Any, images: np.ndarray, chunk: int = 16) -> tuple[np.ndarray, float]:
    """Translations (N, H, W, 3) uint8 of aligned portraits ``images`` (N, H, W, 3) at their size, and the seconds
    per face, through ``translator`` (see :func:`portrait_translator`); each image is its own track."""
    translator.reset()
    t0 = time.perf_counter()
    out = [translator(images[i : i + chunk], list(range(i, min(i + chunk, len(images))))).crops
           for i in range(0, len(images), chunk)]
    return np.concatenate(out), (time.perf_counter() - t0) / max(len(images), 1)


def portrait_scores(images: np.ndarray, labels: np.ndarray, outputs: np.ndarray, anime_parser: Any) -> dict[str, Any]:
    """What a translation keeps of each portrait: structure (mIoU of the input's labels vs the anime parsing of the
    output), parser-free layout (grey-thumbnail correlation, own output minus the others), hair colour specificity
    (Lab distance to own input / to the other inputs; 1 = the input is ignored) and per-region colour EMD."""
    out_lab = parse(anime_parser, outputs)
    return {"structure_miou": structure_kept(zip(labels, out_lab)).miou,
            "layout_kept": layout_kept(list(images), list(outputs)),
            "hair_colour_specificity": colour_specificity(images, labels, outputs, out_lab, "hair"),
            "colour_emd": _mean_colour(images, labels, outputs, out_lab)}


def training_portraits(held_out_ids: Sequence[str], count: int = 600) -> list[np.ndarray]:
    """The first ``count`` shipped portraits (sorted ids) that are not held out, as (256, 256, 3) uint8."""
    held = set(held_out_ids)
    pairs = [ip for sid, ip, _ in list_pairs(ASSETS / "faces") if sid not in held][:count]
    return [resize_image(read_image_rgb(ip), 256) for ip in pairs]


def domain_classifier(held_out_ids: Sequence[str], train_portraits: Sequence[np.ndarray] | None = None) -> Any:
    """Anime-vs-portrait classifier fitted on training-side data only: anime files 0..999 and 600 portraits that are
    not held out (``train_portraits``: those, when the caller has read them already)."""
    portraits = list(train_portraits) if train_portraits is not None else training_portraits(held_out_ids, 600)
    return DomainClassifier.fit(anime_images(ASSETS / "anime", 0, 1000, size=128), portraits)


def at_size(images: np.ndarray | Sequence[np.ndarray], size: int) -> np.ndarray:
    """(N, size, size, 3) uint8: square uint8 images resized (area) to ``size``, those already at it untouched."""
    return np.stack([im if im.shape[0] == size else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
                     for im in images])


def anime_look(model: Any, anime_parser: Any, images: np.ndarray, outputs: np.ndarray, base: np.ndarray,
               n_generated: int = 200) -> dict[str, float]:
    """KID in the anime parser's features (lower = more like real anime faces) of the outputs, the inputs, the
    average face, ``n_generated`` seeded samples of the model's generator and 90 other held-out anime faces, each
    against the held-out anime faces 9200-9699 (see :func:`vidanime.metrics.domain.anime_look_kid`); every set is
    first brought to the model's size, so that sharpness does not count, only what is drawn."""
    s = int(model.image_size)
    reference = np.stack(anime_images(ASSETS / "anime", ANIME_HELDOUT_START + 200, 500, size=s))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n_generated, model.decoder.style_dim, generator=g).to(model.latent_avg)
    with torch.no_grad():
        samples = torch.cat([model.decoder([z[i : i + 50]])[0] for i in range(0, len(z), 50)]).float()
    samples = ((samples.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    other = np.stack(anime_images(ASSETS / "anime", ANIME_HELDOUT_START + 700, 90, size=s))
    sets = {"outputs": outputs, "inputs": images, "baseline": [base] * len(images), "generator": samples,
            "heldout_anime": other}
    return anime_look_kids(anime_parser, {name: at_size(x, s) for name, x in sets.items()}, reference)


def measure(limit: int = 0, anime_count: int = 200, alpha: float | None = None, device: str = "cpu",
            lpips_backbone: str | None = None, model_path: str | None = None, refine: int = 0,
            recolor: float = 0.0, model_set: str | None = None,
            background_fill: float | None = None) -> dict[str, Any]:
    """All numbers of the report (see the module doc) as a JSON-able dict; ``model_path``: a StyleAnime checkpoint
    (name or path) to measure instead of the bundled ``styleanime-p2a``; ``model_set``: a set folder (``train-all
    --out``) whose ``styleanime-p2a``, ``parser-portrait`` and ``parser-anime`` are measured together (the measuring
    instruments — the anime parser that reads the outputs, the KID features, the domain classifier — stay the bundled
    ones, so two sets are measured alike); ``refine``: test-time refinement steps (:mod:`vidanime.train.refine`) on
    each portrait's code, timed (``seconds_per_face``); ``recolor``: the strength of
    :class:`~vidanime.video.recolor.RegionRecolor` (0 = off); ``background_fill``: how far each portrait's background
    is moved to anime white before the encoders (None = the checkpoint's default)."""
    ckpt_name, parser_name = DEFAULT_MODELS["p2a"]
    own = set_models(model_set) if model_set else {}
    if own and model_path:
        raise VidanimeError("give --model or --set, not both")
    loaded = load(own.get("styleanime-p2a") or model_path or ckpt_name, expect="styleanime", device=device)
    model = loaded.model
    portrait_parser = load_model(own.get("parser-portrait", parser_name), device=device,
                                 format="vidanime.parser").eval()
    anime_parser = load_model("parser-anime", device=device, format="vidanime.parser").eval()
    # The parser that labelled the anime faces in training (recorded in our checkpoints) labels them for reconstruction.
    target = (loaded.train_config or {}).get("target") or {}
    teacher_name = target.get("parser") or parser_name
    teacher_parser = load_model(own.get(teacher_name, teacher_name), device=device, format="vidanime.parser").eval()
    refiner = LatentRefiner(model, anime_parser, RefineConfig(steps=refine), model_discriminators(model)) \
        if refine else None
    # the recolouring belongs to the product: it reads the drawings with the set's own anime parser when it has one
    recolor_parser = (load_model(own["parser-anime"], device=device, format="vidanime.parser").eval()
                      if "parser-anime" in own else anime_parser)
    recolorer = RegionRecolor(recolor_parser, RecolorConfig(strength=recolor)) if recolor else None
    translator = portrait_translator(model, portrait_parser, alpha=alpha, refiner=refiner, device=device,
                                     recolor=recolorer, background_fill=background_fill)

    ids, images, gt = heldout_portraits(ASSETS / "faces", limit=limit)
    logger.info("translating %d held-out portraits%s", len(ids), f" ({refine} refinement steps)" if refine else "")
    outputs, seconds_per_face = translate_portraits(translator, images)
    base = average_face(model)
    base_lab = parse(anime_parser, base[None])[0]

    effective_alpha = alpha if alpha is not None else model.inference.get("alpha")
    res: dict[str, Any] = {"model": str(own.get("styleanime-p2a") or model_path or ckpt_name), "portraits": len(ids),
                           "alpha": effective_alpha,
                           "refine": refine, "recolor": recolor, "background_fill": translator.background_fill,
                           "seconds_per_face": seconds_per_face,
                           "threads": torch.get_num_threads(),
                           "training_parser": str(own.get(teacher_name, teacher_name))}
    res.update(portrait_scores(images, gt, outputs, anime_parser))
    res["structure_miou_baseline"] = structure_kept((g, base_lab) for g in gt).miou
    res["colour_emd_baseline"] = _mean_colour(images, gt, [base] * len(images), [base_lab] * len(images))
    clf = domain_classifier(ids)
    heldout_anime = anime_images(ASSETS / "anime", ANIME_HELDOUT_START, 200)
    res["p_anime"] = {"inputs": float(clf.score(list(images)).mean()),
                      "outputs": float(clf.score(list(outputs)).mean()),
                      "baseline": float(clf.score([base])[0]),
                      "heldout_anime": float(clf.score(heldout_anime).mean())}
    res["anime_kid"] = anime_look(model, anime_parser, images, outputs, base)

    # Encoder reconstruction on held-out anime faces (parsing by the parser used in training, as in training).
    anime = np.stack(anime_images(ASSETS / "anime", ANIME_HELDOUT_START, anime_count))
    a_trans = StyleAnimeFaceTranslator(model, teacher_parser, alpha=None, device=device, parsing_smooth=0,
                                       background_fill=0.0)  # the anime face itself is the target
    mse, recon = [], []
    for i in range(0, len(anime), 16):
        xm, lab_m, _ = a_trans.model_inputs(anime[i : i + 16], list(range(i, i + len(anime[i : i + 16]))))
        with torch.no_grad():
            y, _ = model(xm, lab_m)
        mse.extend(((y.clamp(-1, 1) - xm) / 2).pow(2).mean((1, 2, 3)).tolist())
        recon.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    recon_u8 = np.concatenate(recon)
    teacher = parse(teacher_parser, anime)

    recon_256 = np.stack([cv2.resize(r, (256, 256), interpolation=cv2.INTER_LINEAR) for r in recon_u8])
    res["recon_anime"] = {"images": len(anime), "size": int(model.image_size), "mse": float(np.mean(mse)),
                          "psnr": float(np.mean([10 * math.log10(1 / max(m, 1e-10)) for m in mse])),
                          "structure_miou": structure_kept(zip(teacher, parse(anime_parser, recon_256))).miou,
                          "lpips": None}
    if lpips_backbone:  # needs torchvision's ImageNet AlexNet file, which cannot be downloaded here
        res["recon_anime"]["lpips"] = float(lpips_pairs(load_lpips("alex", lpips_backbone), list(anime),
                                                        list(recon_256)).mean())
    # Anime parser vs the portrait parser (where its pseudo-labels started) on held-out anime faces.
    agree = structure_kept(zip(parse(portrait_parser, anime), parse(anime_parser, anime)))
    res["anime_parser_vs_teacher"] = {"miou": agree.miou, "accuracy": agree.overall_accuracy}
    return res


def to_markdown(r: dict[str, Any]) -> str:
    """The README table for a :func:`measure` result."""
    c, cb = r["colour_emd"], r["colour_emd_baseline"]
    p = r["p_anime"]
    how = f", --refine {r['refine']} ({r['seconds_per_face']:.1f} s/face)" if r.get("refine") else ""
    how += f", --recolor {r['recolor']:g}" if r.get("recolor") else ""
    how += f", background fill {r['background_fill']:g}" if r.get("background_fill") else ""
    lines = [
        f"| measure (held-out data) | {r.get('model', 'bundled model')}{how} | baseline: average face G(w_avg) |",
        "|---|---|---|",
        f"| structure kept: mIoU input labels vs anime parsing of output ({r['portraits']} portraits, "
        "higher is better) "
        f"| {100 * r['structure_miou']:.1f} % | {100 * r['structure_miou_baseline']:.1f} % |",
        f"| appearance kept: colour EMD hair / skin / eyes (lower is better) | {c['hair']:.3f} / {c['skin']:.3f} / "
        f"{c['eyes']:.3f} (mean {c['mean']:.3f}) | {cb['hair']:.3f} / {cb['skin']:.3f} / {cb['eyes']:.3f} "
        f"(mean {cb['mean']:.3f}) |",
        f"| P(anime) of the output (inputs {p['inputs']:.2f}, held-out anime faces {p['heldout_anime']:.2f}) "
        f"| {p['outputs']:.2f} | {p['baseline']:.2f} |",
    ]
    if "anime_kid" in r:
        k = r["anime_kid"]
        lines.append(f"| anime look: KID to held-out anime faces in the anime parser's features (lower is better; "
                     f"inputs {k['inputs']:.3f}, generator samples {k['generator']:.3f}, other anime faces "
                     f"{k['heldout_anime']:.3f}) | {k['outputs']:.3f} | {k['baseline']:.3f} |")
    if "layout_kept" in r:
        lines += [
            f"| layout kept, no parser: 16x16 grey-thumbnail correlation, own output minus others (0 = same face for "
            f"all) | {r['layout_kept']:.3f} | 0 |",
            f"| hair colour specificity: Lab distance to own input / to other inputs (1 = input ignored, lower is "
            f"better) | {r['hair_colour_specificity']:.2f} | 1 |",
        ]
    rec = r["recon_anime"]
    lines.append("")
    lpips = (f"LPIPS {rec['lpips']:.3f}" if rec.get("lpips") is not None
             else "LPIPS not measured (no ImageNet AlexNet file)")
    lines.append(f"Encoder reconstruction of {rec['images']} held-out anime faces at {rec['size']} px: "
                 f"L2 (MSE on [0, 1]) {rec['mse']:.4f}, PSNR {rec['psnr']:.1f} dB, {lpips}, "
                 f"structure kept {100 * rec['structure_miou']:.1f} % mIoU. "
                 f"Anime parser vs the portrait parser on the same faces: "
                 f"{100 * r['anime_parser_vs_teacher']['miou']:.1f} % mIoU.")
    return "\n".join(lines)


def print_report(measure_fn: Callable[[], Any], markdown: Callable[[dict[str, Any]], str],
                 json_out: str | None) -> Any:
    """Run ``measure_fn`` (→ the numbers, or a tuple that starts with them), print their Markdown table and write
    them as JSON to ``json_out``; → what ``measure_fn`` returned.  A user error exits 2 with one line."""
    setup_logging(0)
    try:
        out = measure_fn()
    except VidanimeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    numbers = out[0] if isinstance(out, tuple) else out
    click.echo(markdown(numbers))
    if json_out:
        atomic_write_text(json_out, json.dumps(numbers, indent=1) + "\n")
    return out


@click.command()
@click.option("--limit", default=0, show_default=True, help="Only the first N held-out portraits (0 = all 90).")
@click.option("--anime-count", default=200, show_default=True, help="Held-out anime faces for the reconstruction.")
@click.option("--alpha", default=None, type=click.FloatRange(0, 1),
              help="FaceBank blend (default: the checkpoint's saved default, else off; 1 = off).")
@click.option("--lpips-backbone", default=None, type=click.Path(),
              help="torchvision ImageNet AlexNet weights: adds the reconstruction LPIPS (none can be downloaded here).")
@click.option("--json", "json_out", default=None, type=click.Path(), help="Also write the numbers as JSON here.")
@click.option("--model", "model_path", default=None,
              help="StyleAnime checkpoint (registry name or path) to measure instead of the bundled styleanime-p2a.")
@click.option("--refine", default=0, show_default=True, type=click.IntRange(min=0),
              help="Test-time refinement steps on each portrait's code (timed: seconds per face).")
@click.option("--recolor", default=RecolorConfig.strength, show_default=True, type=click.FloatRange(0, 1),
              help="Strength of the hair/eye recolouring (vidanime.video.recolor; the translate default; 0 = off, "
                   "the outputs as drawn).")
@click.option("--set", "model_set", default=None, type=click.Path(file_okay=False),
              help="A model set folder (`vidanime train-all --out`): its styleanime-p2a, parser-portrait and "
                   "parser-anime are measured; the measuring instruments stay the bundled ones.")
@click.option("--background-fill", default=None, type=click.FloatRange(0, 1),
              help="How far each portrait's background is moved to anime white before the encoders (default: the "
                   "checkpoint's saved default, else 0 = off).")
def main(limit: int, anime_count: int, alpha: float | None, lpips_backbone: str | None, json_out: str | None,
         model_path: str | None, refine: int, recolor: float, model_set: str | None,
         background_fill: float | None) -> None:
    """Measure the bundled models (or --model, or a --set) on held-out shipped data and print the README table."""
    print_report(lambda: measure(limit=limit, anime_count=anime_count, alpha=alpha, lpips_backbone=lpips_backbone,
                                 model_path=model_path, refine=refine, recolor=recolor, model_set=model_set,
                                 background_fill=background_fill),
                 to_markdown, json_out)


if __name__ == "__main__":
    main()
