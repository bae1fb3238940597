"""Face-parser speed: images/s at 256² (batch 1 and 8) on CPU and, when present, GPU; optional held-out mIoU.

    /work/main/.venv/bin/python -m bench.bench_parser [--quick] [--checkpoint runs/.../parser-*.pt]

Speeds are eval-mode forward passes (no_grad) of the configs' architectures with random weights; the quality row
scores a trained checkpoint on its stored held-out split (Table-1 metrics).
"""
from __future__ import annotations

import argparse

import torch

from bench.common import cuda_available, print_table, timeit
from vidanime.models.parser import ParserConfig, build_parser

MODELS = {
    "bisenet w0.25 (demo)": ParserConfig(arch="bisenet", width=0.25),
    "danet w0.25 os8 (demo)": ParserConfig(arch="danet", width=0.25, output_stride=8),
    "bisenet w1.0 (public layout)": ParserConfig(arch="bisenet", width=1.0),
    "danet r34 os8 (portrait)": ParserConfig(arch="danet", width=1.0, blocks=[3, 4, 6, 3], output_stride=8),
}


def speed_rows(quick: bool) -> list[list]:
    rows = []
    devices = ["cpu"] + (["cuda"] if cuda_available() else [])
    for name, cfg in MODELS.items():
        if quick and "portrait" in name:
            continue
        for dev in devices:
            model = build_parser(cfg).to(dev).eval()
            for batch in (1, 8):
                x = torch.rand(batch, 3, 256, 256, device=dev)

                @torch.no_grad()
                def run() -> None:
                    model(x)

                t = timeit(run, repeat=2 if quick else 5, warmup=1, sync_cuda=dev == "cuda")
                params = sum(p.numel() for p in model.parameters()) / 1e6
                rows.append([name, f"{params:.2f}M", dev, batch, f"{t * 1000 / batch:.1f}", f"{batch / t:.1f}"])
    return rows


def quality_row(checkpoint: str) -> str:
    from pipelines.parse import ParsePipeline

    r = ParsePipeline.from_pretrained(checkpoint).evaluate(split="heldout")
    return f"held-out ({r.images} faces) of {checkpoint}:\n" + r.table()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip the paper-size DANet")
    ap.add_argument("--checkpoint", default=None, help="a trained parser checkpoint to score on its held-out split")
    args = ap.parse_args()
    print_table(speed_rows(args.quick), ["model", "params", "device", "batch", "ms/image", "images/s"],
                title="Face parser speed at 256x256 (eval, no_grad)")
    if args.checkpoint:
        print()
        print(quality_row(args.checkpoint))  # benchmarks print their tables


if __name__ == "__main__":
    main()
