"""Batch throughput: files per minute of ``vidanime batch`` at ``--jobs 1`` vs ``--jobs 2`` (worker processes).

    /work/main/.venv/bin/python -m bench.bench_batch [--quick] [--jobs 1,2] [--files 6] [--seconds 1.0] [--size 256]

The folder holds copies of the demo clip (the public-domain astronaut face moving; ``make_demo_clip``), translated with
the identity face model (detection, tracking, alignment, paste-back and encoding all run; no trained weights needed).
Each row is a fresh batch into an empty output folder, so it includes starting the workers (the first run of a
process also starts the fork server that imports torch once).  Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import print_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 files of 0.6 s at 128 px")
    ap.add_argument("--jobs", default="1,2", help="comma-separated --jobs values to compare")
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each clip")
    ap.add_argument("--size", type=int, default=256, help="frame size (square, even)")
    args = ap.parse_args(argv)
    if args.quick:
        args.files, args.seconds, args.size = 4, 0.6, 128
    jobs_list = [int(j) for j in args.jobs.split(",") if j.strip()]

    from pipelines.batch import BatchOptions, BatchPipeline
    from pipelines.translate import TranslateOptions
    from vidanime.data.demo_clip import make_demo_clip

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        src = Path(tmp) / "in"
        clip = make_demo_clip(Path(tmp) / "clip.mp4", seconds=args.seconds, size=args.size)
        for i in range(args.files):
            (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, src / f"d{i % 2}" / f"clip{i:02d}.mp4")
        for jobs in jobs_list:
            out = Path(tmp) / f"out{jobs}"
            opts = BatchOptions(jobs=jobs, progress=False,
                                translate=TranslateOptions(progress=False, preset="veryfast"))
            t0 = time.perf_counter()
            res = BatchPipeline()(src, out, opts)
            wall = time.perf_counter() - t0
            frames = sum(r["frames"] for r in res.done)
            per_file = sorted(r["seconds"] for r in res.done)
            rows.append((jobs, len(res.done), len(res.failed), round(wall, 1), round(60 * len(res.done) / wall, 1),
                         round(frames / wall, 1), per_file[len(per_file) // 2]))
    print_table(rows, ["jobs", "files done", "failed", "wall s", "files/min", "frames/s", "median s/file"],
                title=f"vidanime batch: {args.files} clips of {args.seconds} s at {args.size}² (identity face model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
