"""Metric costs: Inception features, Fréchet distance, KID, LPIPS, colour histograms, DIS flow + temporal metrics.

Run: ``python -m bench.bench_metrics [--quick] [--device cuda]``.  Networks use random weights (speed only, the
values are meaningless); quick = small batches, 256-d Fréchet distance and 256² frames; full = 2048-d, 50 images,
512² and 1080p frames.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.common import cuda_available, peak_rss_mb, print_table, timeit


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CPU, seconds)")
    ap.add_argument("--device", default="cuda" if cuda_available() else "cpu")
    args = ap.parse_args(argv)
    import logging

    logging.getLogger("vidanime.metrics.lpips_metrics").setLevel(logging.ERROR)  # 'random backbone' warning
    from vidanime.metrics.color import color_distance
    from vidanime.metrics.fid import FIDInceptionV3, fid_from_features, kid
    from vidanime.metrics.lpips_metrics import load_lpips, lpips_pairs
    from vidanime.metrics.temporal import FramePair, flicker_terms, warp_error_terms

    dev = torch.device(args.device)
    sync = dev.type == "cuda"
    rng = np.random.default_rng(0)
    rows = []

    n_img = 4 if args.quick else 50
    imgs = rng.integers(0, 256, (n_img, 256, 256, 3), dtype=np.uint8)
    inc = FIDInceptionV3().to(dev)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255).to(dev)
    with torch.no_grad():
        t = timeit(lambda: inc(x), repeat=2 if args.quick else 5, warmup=1, sync_cuda=sync)
    rows.append(["Inception pool3 (299²)", f"batch {n_img}", f"{t * 1e3:.0f}", f"{n_img / t:.1f} img/s"])

    dim = 256 if args.quick else 2048
    f1, f2 = rng.normal(size=(2 * dim, dim)), rng.normal(size=(2 * dim, dim))
    t = timeit(lambda: fid_from_features(f1, f2), repeat=1, warmup=0)
    rows.append(["Fréchet distance (stats + sqrtm)", f"{2 * dim}x{dim}", f"{t * 1e3:.0f}", "-"])
    t = timeit(lambda: kid(f1, f2, n_subsets=10, subset_size=min(1000, 2 * dim)), repeat=1, warmup=0)
    rows.append(["KID, 10 subsets", f"m={min(1000, 2 * dim)}, d={dim}", f"{t * 1e3:.0f}", "-"])

    lp = load_lpips("alex", backbone_path="random", device=dev)
    t = timeit(lambda: lpips_pairs(lp, imgs, imgs[::-1].copy(), size=256), repeat=2, warmup=1, sync_cuda=sync)
    rows.append(["LPIPS alex (256²)", f"{n_img} pairs", f"{t * 1e3:.0f}", f"{n_img / t:.1f} pairs/s"])

    lab = np.zeros((256, 256), np.uint8)
    lab[:80], lab[80:], lab[120:130, 60:90], lab[120:130, 160:190] = 17, 1, 4, 5
    t = timeit(lambda: color_distance(imgs[0], lab, imgs[1], lab), repeat=5, warmup=1)
    rows.append(["appearance kept (3 regions, EMD)", "256² pair", f"{t * 1e3:.1f}", f"{1 / t:.0f} pairs/s"])

    sizes = [(256, 256)] if args.quick else [(512, 512), (1080, 1920)]
    import cv2

    for h, w in sizes:
        base = cv2.GaussianBlur(rng.uniform(0, 255, (h + 8, w + 8, 3)).astype(np.float32), (0, 0), 3).astype(np.uint8)
        a, b = base[:h, :w].copy(), base[3 : h + 3, 2 : w + 2].copy()

        def run() -> None:
            p = FramePair(a, b, a, b)
            warp_error_terms(p)
            flicker_terms(p)

        t = timeit(run, repeat=2 if args.quick else 3, warmup=1)
        rows.append(["warp error + flicker (2 DIS flows)", f"{w}x{h} pair", f"{t * 1e3:.0f}", f"{1 / t:.1f} pairs/s"])
    print_table(rows, ["metric", "size", "time (ms)", "throughput"],
                title=f"metric costs on {dev.type} ({'quick' if args.quick else 'full'}); "
                      f"peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
