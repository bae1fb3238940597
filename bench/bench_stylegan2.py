"""StyleGAN2 generator speed: images/s at 256 px (cm 2), batch 1 and 8; CPU fp32 and, with CUDA, GPU fp32 vs fp16.

Rows cover both ``upfirdn2d`` implementations (``reference``, ``fast``; see vidanime/models/ops.py).  Random weights:
speed does not depend on them.  Fixed noise, W+ input (what video translation runs).

    /work/main/.venv/bin/python -m bench.bench_stylegan2 [--quick] [--size 256] [--no-cpu]
"""
from __future__ import annotations

import argparse
import contextlib

import torch

from bench.common import cuda_available, print_table, timeit
from vidanime.models import ops
from vidanime.models.stylegan2 import Generator, StyleGAN2Config


def _bench_one(g: Generator, batch: int, device: str, dtype: torch.dtype, repeat: int, warmup: int) -> float:
    """Median seconds per synthesis call of ``batch`` W+ codes."""
    w_plus = torch.randn(batch, g.n_latent, g.style_dim, device=device)
    autocast = (
        torch.autocast("cuda", dtype=dtype) if (device == "cuda" and dtype != torch.float32)
        else contextlib.nullcontext()
    )

    def run() -> None:
        with torch.inference_mode(), autocast:
            g.synthesis(w_plus)

    return timeit(run, repeat=repeat, warmup=warmup, sync_cuda=device == "cuda")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (CPU: 1, no warm-up; GPU: 5)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    g = Generator(StyleGAN2Config(size=args.size, channel_multiplier=2)).eval()
    n_params = sum(p.numel() for p in g.parameters())
    settings = []
    if not args.no_cpu:
        settings += [("cpu", torch.float32, impl) for impl in ops.UPFIRDN2D_IMPLS]
    if cuda_available():
        settings += [("cuda", dt, impl) for dt in (torch.float32, torch.float16) for impl in ops.UPFIRDN2D_IMPLS]

    rows = []
    previous = ops.get_upfirdn2d_impl()
    try:
        for device, dtype, impl in settings:
            g.to(device)
            ops.set_upfirdn2d_impl(impl)
            if device == "cpu":
                repeat, warmup = (1, 0) if args.quick else (3, 1)
            else:
                repeat, warmup = (5, 3) if args.quick else (20, 5)
            for batch in args.batches:
                seconds = _bench_one(g, batch, device, dtype, repeat, warmup)
                dtype_name = "fp32" if dtype == torch.float32 else "fp16 autocast"
                rows.append([device, dtype_name, impl, batch, f"{seconds * 1000:.1f}", f"{batch / seconds:.2f}"])
    finally:
        ops.set_upfirdn2d_impl(previous)

    return print_table(
        rows,
        ["device", "dtype", "upfirdn2d", "batch", "ms / call", "images / s"],
        title=f"StyleGAN2 generator synthesis, {args.size} px, cm 2 ({n_params / 1e6:.1f}M params), "
        f"median of {'quick' if args.quick else 'full'} repeats",
    )


if __name__ == "__main__":
    main()
