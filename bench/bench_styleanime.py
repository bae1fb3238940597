"""StyleAnime encoder + generator throughput at paper size (IR-SE50 E_p/E_s, 256-px StyleGAN2).

Run: ``python -m bench.bench_styleanime [--quick] [--device cuda]``.  Random weights (speed does not depend on
them); parsing is a 19-class one-hot map; times are medians, images/s = batch / time.
"""
from __future__ import annotations

import argparse

import torch

from bench.common import cuda_available, peak_rss_mb, print_table, timeit
from vidanime.config import load_config
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 1 only, 2 repeats")
    ap.add_argument("--device", default="cuda" if cuda_available() else "cpu")
    ap.add_argument("--config", default="configs/styleanime_paper.yaml")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    sync = dev.type == "cuda"
    torch.manual_seed(0)
    model = StyleAnime(load_config(args.config, StyleAnimeConfig)).to(dev).eval()
    s = model.image_size
    batches = [int(b) for b in args.batches.split(",")] if args.batches else ([1] if args.quick else [1, 4])
    if dev.type == "cuda" and not args.batches:
        batches = [1, 8, 32]
    repeat = 2 if args.quick else 3
    rows = []
    for dtype in [torch.float32] + ([torch.float16] if dev.type == "cuda" else []):
        for b in batches:
            image = torch.rand(b, 3, s, s, device=dev) * 2 - 1
            labels = torch.randint(0, model.config.n_classes, (b, s, s), device=dev)
            w = model.encode(image, labels).detach()

            def run_all() -> None:
                with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                    model.translate(image, labels)

            def run_enc() -> None:
                with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                    model.encode(image, labels)

            def run_dec() -> None:
                with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                    model.decode(w)

            t_all = timeit(run_all, repeat=repeat, warmup=1, sync_cuda=sync)
            t_enc = timeit(run_enc, repeat=repeat, warmup=1, sync_cuda=sync)
            t_dec = timeit(run_dec, repeat=repeat, warmup=1, sync_cuda=sync)
            rows.append([dev.type, str(dtype).replace("torch.", ""), b, f"{t_enc * 1e3:.0f}", f"{t_dec * 1e3:.0f}",
                         f"{t_all * 1e3:.0f}", f"{b / t_all:.2f}"])
    mem = f"peak RSS {peak_rss_mb():.0f} MiB"
    if sync:
        mem += f", peak GPU {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    params = {n: sum(p.numel() for p in model.get_submodule(n).parameters()) / 1e6
              for n in ("encoder.encoder_1", "encoder.encoder_2", "decoder")}
    print_table(rows, ["device", "dtype", "batch", "E_p+E_s (ms)", "G (ms)", "translate (ms)", "images/s"],
                title=f"StyleAnime {s} px (E_p {params['encoder.encoder_1']:.1f}M, "
                      f"E_s {params['encoder.encoder_2']:.1f}M, G {params['decoder']:.1f}M params; {mem})")


if __name__ == "__main__":
    main()
