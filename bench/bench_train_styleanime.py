"""StyleAnime base-training speed: iterations/s and peak memory of full training steps (D1/D2 + R1 + encoders).

    python -m bench.bench_train_styleanime [--quick] [--configs demo,paper] [--device auto] [--threads 1] [--amp]
                                           [--compare]

``--compare`` adds rows with the previous defaults: NCHW encoders/D2 (``train.channels_last: false``) and the
reference ``upfirdn2d`` (vidanime/models/ops.py), so what each change buys is measured on the machine at hand.

``paper`` (256 px, IR-SE50 encoders, batch 8) is meant for a GPU; ``demo`` (64 px, configs/demo_styleanime_p2a.yaml) and
``tiny`` run on CPU.  Data are synthetic (random images with blocky parsing maps), the generator and the LPIPS trunk
random: the cost per step is the same as with real weights.  R1 runs every ``r1_every`` steps, so the timing window
is a multiple of it where possible.
"""
from __future__ import annotations

import argparse
import logging
import time

import torch

from bench.common import peak_rss_mb, print_table

CONFIGS = {"tiny": "configs/styleanime_train_tiny.yaml", "demo": "configs/demo_styleanime_p2a.yaml",
           "paper": "configs/styleanime_p2a.yaml", "gpu128": "configs/gpu_styleanime_p2a_128.yaml"}
VARIANTS = {"default": ("fast", True), "nchw": ("fast", False), "nchw+reference": ("reference", False)}


class _SyntheticDomain:
    """Stand-in for DomainDataset: random images (3, S, S) in [-1, 1] and blocky label maps."""

    def __init__(self, n: int, size: int, label_set: str, seed: int):
        from vidanime import labels as L

        g = torch.Generator().manual_seed(seed)
        self.size, self.label_set, self.n = size, label_set, n
        self.images = torch.rand(n, 3, size, size, generator=g) * 2 - 1
        blocks = torch.randint(0, L.num_classes(label_set), (n, 8, 8), generator=g)
        self.labels = blocks.repeat_interleave(size // 8, 1).repeat_interleave(size // 8, 2)

    def __len__(self) -> int:
        return self.n

    def batch(self, indices, flips=None):
        idx = torch.as_tensor(list(indices))
        return self.images[idx], self.labels[idx]


def bench_one(name: str, device: str, steps: int, amp: bool, variant: str = "default") -> list:
    from vidanime.models import ops

    impl, channels_last = VARIANTS[variant]
    previous = ops.get_upfirdn2d_impl()
    ops.set_upfirdn2d_impl(impl)
    try:
        return _bench_one(name, device, steps, amp, channels_last) + [variant]
    finally:
        ops.set_upfirdn2d_impl(previous)


def _bench_one(name: str, device: str, steps: int, amp: bool, channels_last: bool) -> list:
    from vidanime.config import load_config
    from vidanime.train.styleanime import StyleAnimeTrainer, TrainStyleAnimeConfig

    overrides = {"generator": "random", "loss.lpips_backbone": "random", "train.device": device, "train.amp": amp,
                 "target.root": "-", "source.root": "-", "train.channels_last": channels_last}
    cfg = load_config(CONFIGS[name], TrainStyleAnimeConfig, overrides=overrides)
    s, ls = int(cfg.model.image_size), cfg.model.label_set
    tr = StyleAnimeTrainer(cfg, _SyntheticDomain(64, s, ls, 0), _SyntheticDomain(64, s, ls, 1))
    dev = tr.device
    tr.train_step()  # warm-up (also the first R1 step)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.train_step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    dt = (time.perf_counter() - t0) / steps
    mem = (f"{torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB (CUDA)" if dev.type == "cuda"
           else f"{peak_rss_mb():.0f} MB (RSS)")
    n_enc = sum(p.numel() for p in tr.model.encoder.parameters()) / 1e6
    return [name, f"{s} px", cfg.train.batch, f"{n_enc:.2f}M", str(dev) + (" bf16" if tr.use_amp else ""), steps,
            f"{dt:.3f}", f"{1 / dt:.2f}", mem]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few steps (smoke run)")
    ap.add_argument("--configs", default=None, help="comma list of tiny, demo, paper (default: demo on CPU, "
                                                     "paper too on CUDA)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--compare", action="store_true", help="also time NCHW and NCHW + reference upfirdn2d")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    names = args.configs.split(",") if args.configs else (["demo", "paper"] if cuda else ["demo"])
    rows = []
    for name in names:
        steps = (4 if args.quick else 16) if name != "tiny" else (8 if args.quick else 32)
        for variant in (VARIANTS if args.compare else ["default"]):
            rows.append(bench_one(name, args.device, steps, args.amp, variant))
    print_table(rows, ["config", "size", "batch/proc", "encoder params", "device", "steps", "s/iter", "iter/s",
                       "peak memory", "layout / upfirdn2d"],
                title="StyleAnime base training (full step: D1+D2 (+R1), encoders)")


if __name__ == "__main__":
    main()
