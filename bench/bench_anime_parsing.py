"""How often an anime parser finds each facial feature: on held-out anime faces and on the bundled generator's renders.

Run: ``python -m bench.bench_anime_parsing [--parsers parser-anime,parser-portrait,PATH] [--limit 200] [--renders 200]
[--montage docs/anime_parsing.png]``.  No labelled anime set ships, so this counts, per parser, the share of maps
holding each feature (eyes, brows, nose, mouth incl. lips, hair, skin: at least 0.2 % of the pixels) and the mean
pixel share of each.  A drawn face has all six; a parser that calls anime eyes skin (as a photo-trained one does)
scores low on eyes here, and the encoders, the refinement's structure term and the report's "structure kept" inherit
that.  Anime faces: the shipped crops from index 9,000 on (no demo model trained on them; needs ../shared/assets).
Renders: G(w) of the bundled StyleAnime's generator at truncation 0.7, seeded, parsed at the parser's size as the
refinement does.  The montage shows the first renders (and, with ``--montage-anime``, crops) with each parser's labels.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.common import machine_info, print_table


def _anime_crops(limit: int) -> np.ndarray:
    from pipelines.recipes.report_demo import ANIME_HELDOUT_START, ASSETS
    from vidanime.data.image_io import read_image_rgb
    from vidanime.data.parsing import IMAGE_EXTS, resize_image

    files = sorted(p for p in (ASSETS / "anime").iterdir() if p.suffix.lower() in IMAGE_EXTS)[ANIME_HELDOUT_START:]
    if not files:
        raise SystemExit(f"no held-out anime faces under {ASSETS / 'anime'}")
    return np.stack([resize_image(read_image_rgb(f), 256) for f in files[:limit]])


@torch.no_grad()
def _renders(model_name: str, n: int, seed: int = 0) -> np.ndarray:
    from vidanime.registry import load_model

    model = load_model(model_name, format="vidanime.styleanime").eval()
    g = model.decoder
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, 16):
        z = torch.randn(min(16, n - start), g.style_dim, generator=gen)
        w = g.style(z)
        centre = model.latent_avg.mean(0, keepdim=True)
        w = centre + 0.7 * (w - centre)
        img = model.decode(w[:, None].repeat(1, model.n_latent, 1)).clamp(-1, 1)
        img = torch.nn.functional.interpolate((img + 1) / 2, size=(256, 256), mode="bilinear", align_corners=False)
        out.append((img.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8))
    return np.concatenate(out)


def presence_table(pipe, images: np.ndarray) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """(share of maps holding each feature, mean pixel share of each, the (N, H, W) label maps) for one parser."""
    from pipelines.parse import FEATURE_GROUPS, feature_presence
    from vidanime import labels as L

    labels = np.stack(pipe(list(images)).labels)
    names = L.class_names(pipe.label_set)
    present = [feature_presence(m, pipe.label_set) for m in labels]
    share = {g: float(np.mean([p[g] for p in present])) for g in FEATURE_GROUPS}
    pixels = {g: float(np.isin(labels, [names.index(n) for n in FEATURE_GROUPS[g] if n in names]).mean())
              for g in FEATURE_GROUPS}
    return share, pixels, labels


def main(argv: list[str] | None = None) -> None:
    from pipelines.parse import FEATURE_GROUPS, ParsePipeline, overlay

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parsers", default="parser-anime,parser-portrait", help="comma-separated parser names or paths")
    ap.add_argument("--limit", type=int, default=200, help="held-out anime faces")
    ap.add_argument("--renders", type=int, default=200, help="generator renders (0 = none)")
    ap.add_argument("--model", default="styleanime-p2a", help="StyleAnime checkpoint whose generator renders")
    ap.add_argument("--montage", default="", help="write renders with each parser's labels to this PNG")
    ap.add_argument("--montage-anime", action="store_true",
                    help="put held-out anime crops in the montage too (for looking only: the crops carry no licence, "
                         "never commit such a picture)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--quick", action="store_true", help="40 crops and 40 renders (make bench)")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit, args.renders = min(args.limit, 40), min(args.renders, 40)
    if args.threads:
        torch.set_num_threads(args.threads)

    sets = {"anime faces": _anime_crops(args.limit)}
    if args.renders:
        sets["renders"] = _renders(args.model, args.renders)
    rows, shown = [], {}
    parsers = [p.strip() for p in args.parsers.split(",") if p.strip()]
    for name in parsers:
        pipe = ParsePipeline.from_pretrained(name, output_labels="bisenet")
        for what, images in sets.items():
            share, pixels, labels = presence_table(pipe, images)
            rows.append([Path(name).stem if "/" in name else name, f"{what} ({len(images)})",
                         *[f"{100 * share[g]:.0f}% ({100 * pixels[g]:.1f})" for g in FEATURE_GROUPS]])
            shown[(name, what)] = labels
    print(machine_info())
    print_table(rows, ["parser", "images", *FEATURE_GROUPS],
                title="Maps holding each feature (mean pixel share %, in brackets)")
    if args.montage:
        from PIL import Image

        from vidanime.fileio import atomic_path

        tiles = []
        for what, images in sets.items():
            if what == "anime faces" and not args.montage_anime:
                continue
            for i in range(min(4, len(images))):
                row = [images[i]] + [overlay(images[i], shown[(p, what)][i], "bisenet", alpha=0.55) for p in parsers]
                tiles.append(np.concatenate(row, axis=1))
        pic = np.concatenate(tiles, axis=0)
        with atomic_path(args.montage) as tmp:
            Image.fromarray(pic).save(tmp, format="PNG")
        print(f"montage: {args.montage} (columns: image, {', '.join(parsers)})")


if __name__ == "__main__":
    main()
