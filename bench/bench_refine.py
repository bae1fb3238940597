"""Test-time choices on held-out portraits: FaceBank α and ``--refine`` steps against seconds per face.

Run: ``python -m bench.bench_refine [--model NAME|PATH] [--limit 32] [--refine 0,10,25,50] [--alpha none,0.75,0.5]``.
For each setting it translates the held-out CelebAMask-HQ portraits (the split every demo model leaves out) and prints
structure kept (mIoU of the input's labels vs the anime parsing of the output), the parser-free layout measure,
hair colour specificity (1 = input ignored), hair / skin / eye colour EMD, P(anime) and seconds per face.  Needs
../shared/assets.  The README's "Keeping the person" table and the checkpoint's saved defaults come from this.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from bench.common import print_table


def _floats(text: str) -> list[float | None]:
    return [None if v.strip().lower() in ("none", "off") else float(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    from pipelines.recipes.report_demo import (
        ASSETS,
        domain_classifier,
        heldout_portraits,
        portrait_scores,
        portrait_translator,
        translate_portraits,
    )
    from pipelines.translate import DEFAULT_MODELS, OUTPUT_PARSERS
    from vidanime.registry import load_model
    from vidanime.train.refine import LatentRefiner, RefineConfig
    from vidanime.train.styleanime import model_discriminators

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODELS["p2a"][0], help="StyleAnime checkpoint (name or path)")
    ap.add_argument("--limit", type=int, default=32, help="held-out portraits (0 = all 90)")
    ap.add_argument("--refine", default="0,10,25,50", help="comma-separated refinement steps")
    ap.add_argument("--alpha", default="1", help="comma-separated FaceBank alphas ('none' = the checkpoint's)")
    ap.add_argument("--lr", type=float, default=RefineConfig.lr, help="refinement learning rate")
    ap.add_argument("--lambda-colour", type=float, default=RefineConfig.lambda_colour, help="colour term weight")
    ap.add_argument("--lambda-structure", type=float, default=RefineConfig.lambda_structure,
                    help="structure term weight")
    ap.add_argument("--lambda-adv", default=str(RefineConfig.lambda_adv),
                    help="comma-separated weights of the image-discriminator (D2) term")
    ap.add_argument("--lambda-latent", type=float, default=RefineConfig.lambda_latent,
                    help="latent-discriminator (D1) term weight")
    ap.add_argument("--montage", default="", help="write a PNG: 8 portraits (first column) and each setting's outputs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--quick", action="store_true", help="8 portraits, refine 0 and 10 (make bench)")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit, args.refine = 8, "0,10"
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model, format="vidanime.styleanime")
    discs = model_discriminators(model)
    portrait_parser = load_model(DEFAULT_MODELS["p2a"][1], format="vidanime.parser")
    anime_parser = load_model(OUTPUT_PARSERS["p2a"], format="vidanime.parser")
    ids, images, labels = heldout_portraits(ASSETS / "faces", limit=args.limit)
    clf = domain_classifier(ids)
    rows = []
    refine_steps = [int(v) for v in args.refine.split(",")]
    settings = [(alpha, steps, adv) for alpha in _floats(args.alpha) for steps in refine_steps
                for adv in (_floats(args.lambda_adv) if steps else [0.0])]
    columns = [images[:8]]
    for alpha, steps, adv in settings:
        rc = RefineConfig(steps=steps, lr=args.lr, lambda_colour=args.lambda_colour,
                          lambda_structure=args.lambda_structure, lambda_adv=adv, lambda_latent=args.lambda_latent)
        refiner = LatentRefiner(model, anime_parser, rc, discs) if steps else None
        outputs, secs = translate_portraits(portrait_translator(model, portrait_parser, alpha, refiner), images)
        r = portrait_scores(images, labels, outputs, anime_parser)
        columns.append(outputs[:8])
        c = r["colour_emd"]
        rows.append(["checkpoint's" if alpha is None else f"{alpha:g}", steps, adv, secs, 100 * r["structure_miou"],
                     r["layout_kept"], r["hair_colour_specificity"], c["hair"], c["skin"], c["eyes"],
                     float(clf.score(list(outputs)).mean())])
    if args.montage:
        # Rows: portraits; columns: the input, then one per setting in table order.
        grid = np.concatenate([np.concatenate(list(col), axis=0) for col in columns], axis=1)
        cv2.imwrite(args.montage, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print_table(rows, ["alpha", "refine steps", "D2 weight", "s/face", "structure kept %", "layout kept",
                       "hair specificity", "hair EMD", "skin EMD", "eyes EMD", "P(anime)"],
                title=f"test-time choices: {args.model}, {len(ids)} held-out portraits, refinement lr {args.lr:g}, "
                      f"structure weight {args.lambda_structure:g}, colour weight {args.lambda_colour:g}, "
                      f"D1 weight {args.lambda_latent:g}")


if __name__ == "__main__":
    main()
