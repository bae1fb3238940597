"""FaceBank query throughput: 1,000 W+ codes against a 50,000-code bank, batched vs one code at a time.

Run: ``python -m bench.bench_facebank [--quick] [--device cuda]``.  Each query is kNN (k = 10, exact, chunked
``torch.cdist``) + the sum-to-one least-squares anchor (Eq. 11–14).  The bank holds W codes (N, 512) (see
:mod:`vidanime.models.facebank`); a W+ bank of the same size (N, 14, 512) is timed for comparison when it fits.
"""
from __future__ import annotations

import argparse

import torch

from bench.common import cuda_available, print_table, timeit
from vidanime.models.facebank import FaceBank


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 queries, 10,000 codes, no W+ bank")
    ap.add_argument("--device", default="cuda" if cuda_available() else "cpu")
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--bank", type=int, default=None)
    args = ap.parse_args(argv)
    n_q = args.queries or (200 if args.quick else 1000)
    n_bank = args.bank or (10_000 if args.quick else 50_000)
    n_latent, dim, k = 14, 512, 10
    dev = torch.device(args.device)
    sync = dev.type == "cuda"
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(n_bank, dim, generator=g)
    w = (codes[torch.randint(0, n_bank, (n_q,), generator=g)][:, None]
         + 0.3 * torch.randn(n_q, n_latent, dim, generator=g))
    w = w.to(dev)
    rows = []

    bank = FaceBank(codes).to(dev)
    t_batch = timeit(lambda: bank.anchor(w, k), repeat=3, warmup=1, sync_cuda=sync)
    n_loop = n_q if not args.quick else min(n_q, 100)

    def loop() -> None:
        for i in range(n_loop):
            bank.anchor(w[i : i + 1], k)

    t_loop = timeit(loop, repeat=1, warmup=0, sync_cuda=sync) * n_q / n_loop
    rows.append([f"W bank ({n_bank}x{dim})", "batched", n_q, f"{t_batch * 1e3:.0f}", f"{n_q / t_batch:.0f}", "1.0"])
    rows.append([f"W bank ({n_bank}x{dim})", f"per-code loop ({n_loop} timed)", n_q, f"{t_loop * 1e3:.0f}",
                 f"{n_q / t_loop:.0f}", f"{t_loop / t_batch:.1f}"])
    if not args.quick:
        plus = FaceBank(codes[:, None].expand(-1, n_latent, -1).contiguous()).to(dev)
        t_plus = timeit(lambda: plus.anchor(w, k), repeat=1, warmup=1, sync_cuda=sync)
        rows.append([f"W+ bank ({n_bank}x{n_latent}x{dim})", "batched", n_q, f"{t_plus * 1e3:.0f}",
                     f"{n_q / t_plus:.0f}", f"{t_plus / t_batch:.1f}"])
    print_table(rows, ["bank", "mode", "queries", "time (ms)", "queries/s", "time vs batched W"],
                title=f"FaceBank kNN (k={k}) + anchor weights on {dev.type}")


if __name__ == "__main__":
    main()
