"""Training speed of `vidanime train-gan` configs: iterations/s and the projected time of each config's run.

    /work/main/.venv/bin/python -m bench.bench_train_gan [--quick] [--threads N] [--configs tiny,demo]

Times ``GANTrainer.train_step`` (D step + lazy R1 + G step + lazy path length + EMA) over whole lazy-regularisation
cycles, on synthetic images (data loading from preloaded uint8 tensors is negligible), and prints a markdown table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import print_table
from vidanime.config import load_config
from vidanime.train.gan import GANTrainer, TrainGANConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class _RandomImages:
    """Stands in for the image folder: seeded random batches (B, 3, S, S) in [-1, 1]."""

    def __init__(self, size: int, n: int = 64):
        self.x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def __len__(self) -> int:
        return len(self.x)

    def get_uint8(self, i: int) -> torch.Tensor:
        return ((self.x[i] + 1) * 127.5).round().to(torch.uint8)

    def sample_batch(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.x[torch.randint(len(self.x), (batch,), generator=generator)]


def bench_config(name: str, steps: int, device: str) -> list:
    from vidanime.models.ops import set_upfirdn2d_impl

    config_file = "demo_stylegan2.yaml" if name == "demo" else f"stylegan2_{name}.yaml"
    cfg = load_config(CONFIGS / config_file, TrainGANConfig, overrides={"train.device": device})
    trainer = GANTrainer(cfg, _RandomImages(cfg.model.size))  # type: ignore[arg-type]
    set_upfirdn2d_impl(cfg.train.upfirdn2d)
    trainer.train_step()  # warm-up (includes the step-0 R1 pass)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
    wall = (time.perf_counter() - wall0) / steps
    cpu = (time.process_time() - cpu0) / steps
    params = sum(p.numel() for p in trainer.G.parameters()) / 1e6
    hours = cfg.train.iterations * wall / 3600
    return [name, cfg.model.size, f"{params:.2f}M", cfg.train.batch, steps, round(1 / wall, 3), round(wall, 3),
            round(cpu, 3), cfg.train.iterations, round(hours, 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed steps (one R1 cycle)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="tiny,demo")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps = 16 if args.quick else 48
    rows = [bench_config(name, steps, args.device) for name in args.configs.split(",")]
    print_table(rows, ["config", "px", "G params", "batch", "timed steps", "it/s", "s/it (wall)", "s/it (CPU time)",
                       "iterations in config", "projected hours"],
                title=f"train-gan speed ({args.device}, {args.threads} threads; shared machine: timings are noisy)")


if __name__ == "__main__":
    main()
