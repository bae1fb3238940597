"""Run every ``bench/bench_*.py`` benchmark, each in its own subprocess with a timeout, then print a summary.

``python -m bench.run_all`` (= ``--quick``, the ``make bench`` default: small sizes, a few minutes on CPU) or
``python -m bench.run_all --full`` (paper sizes; meant for a GPU).  ``--only facebank,metrics`` picks modules.
Exit status 1 when any benchmark failed or timed out.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine_info

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Module names ``bench.bench_<topic>`` of the benchmark scripts present, sorted."""
    return [f"bench.{p.stem}" for p in sorted(HERE.glob("bench_*.py"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (default)")
    mode.add_argument("--full", action="store_true", help="paper sizes (GPU)")
    ap.add_argument("--only", default=None, help="comma-separated topics, e.g. facebank,metrics")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default 300 quick, 3600 full)")
    args = ap.parse_args(argv)
    quick = not args.full
    timeout = args.timeout or (300.0 if quick else 3600.0)
    modules = discover()
    if args.only:
        wanted = {f"bench.bench_{t.strip()}" for t in args.only.split(",") if t.strip()}
        unknown = wanted - set(modules)
        if unknown:
            print(f"error: no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(modules)})",
                  file=sys.stderr)
            return 2
        modules = [m for m in modules if m in wanted]
    print(f"# vidanime benchmarks ({'quick' if quick else 'full'})\nmachine: {machine_info()}\n", flush=True)
    summary = []
    for mod in modules:
        cmd = [sys.executable, "-m", mod] + (["--quick"] if quick else [])
        print(f"## {mod}\n$ {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=timeout)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            print(proc.stdout, flush=True)
            if proc.returncode != 0:
                print("\n".join(proc.stderr.strip().splitlines()[-15:]), flush=True)
        except subprocess.TimeoutExpired as exc:
            status = f"timed out after {timeout:.0f} s"
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            print(out, flush=True)
        summary.append((mod, status, time.perf_counter() - t0))
        print(flush=True)
    print("## summary\n\n| benchmark | status | seconds |\n|---|---|---|")
    for mod, status, sec in summary:
        print(f"| {mod} | {status} | {sec:.1f} |")
    failed = [m for m, s, _ in summary if s != "ok"]
    print(f"\n{len(summary) - len(failed)} ran, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
