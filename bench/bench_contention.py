"""Translate and fine-tune speed on an idle machine and beside another PyTorch job, with and without the thread policy.

    python -m bench.bench_contention [--clip d0] [--frames 40] [--iterations 8]

Each measurement runs in a fresh process so that OpenMP starts with the environment under test:

* policy **on**: what the CLI does (:func:`vidanime.threads.apply_thread_policy` before torch loads: threads = the
  cores this process may use less those other processes keep busy, ``OMP_WAIT_POLICY=PASSIVE``);
* policy **off**: PyTorch's defaults (no ``OMP_NUM_THREADS``, OpenMP's default spin-then-sleep wait).

"Contended" runs the measurement while a *contender* process trains a small conv net with PyTorch's defaults (2
threads, spinning waits): someone else's job on the same cores.  Translate is the bundled model on the first
``--frames`` frames of a talking-face clip (frames per second of the translate call, models loaded); the fine-tune
is ``translate --finetune`` on the same frames (iterations per second from the run's log rows after the first).
Issue #21's bar: contended ≥ 0.35× idle (a fair share of 2 cores is 0.5×).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_table

REPO = Path(__file__).resolve().parents[1]
POLICY_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")


def _env(policy_on: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in POLICY_ENV}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if policy_on:
        env["VIDANIME_BENCH_POLICY"] = "1"
    return env


def _contender() -> None:
    """Someone else's PyTorch job: conv-net training steps forever with PyTorch's default threads and waits."""
    import torch

    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 32, 3, padding=1))
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    x = torch.randn(8, 32, 48, 48)
    while True:
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()


def _worker(kind: str, clip: str, frames: int, iterations: int) -> dict:
    """One measurement in this process; the policy is applied first when the parent asked for it."""
    if os.environ.get("VIDANIME_BENCH_POLICY") == "1":
        from vidanime.threads import apply_thread_policy

        apply_thread_policy()
    import torch

    from pipelines.translate import DEFAULT_MODELS, TranslateOptions, TranslatePipeline
    from vidanime.data.pack import default_assets_root

    src = default_assets_root() / "video" / f"liveportrait_{clip}.mp4"
    end = f"{frames}f"
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "translate":
            pipe = TranslatePipeline.from_pretrained(temporal="off")
            res = pipe(src, Path(tmp) / "out.mp4", TranslateOptions(end=end, progress=False))
            speed = res.frames / res.seconds
        else:
            from pipelines.finetune import finetune_for_translate

            ckpt, parser = DEFAULT_MODELS["p2a"]
            run = Path(tmp) / "ft"
            finetune_for_translate(src, Path(tmp) / "out.mp4", ckpt, parser, iterations, end=end, run_dir=run,
                                   progress=False, overrides={"train.log_every": 2})
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
            rates = [r["it_per_s"] for r in rows if "it_per_s" in r][1:]
            speed = sum(rates) / len(rates) if rates else float("nan")
    return {"speed": speed, "threads": torch.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY", "-")}


def _measure(kind: str, policy_on: bool, contended: bool, args) -> dict:
    contender = None
    if contended:
        contender = subprocess.Popen([sys.executable, "-m", "bench.bench_contention", "--contender"], env=_env(False),
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)  # let it reach its training loop
    try:
        cmd = [sys.executable, "-m", "bench.bench_contention", "--worker", kind, "--clip", args.clip,
               "--frames", str(args.frames), "--iterations", str(args.iterations)]
        try:
            r = subprocess.run(cmd, env=_env(policy_on), cwd=REPO, capture_output=True, text=True,
                               timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"speed": float("nan"), "threads": "-", "wait": "-", "note": f"over {args.timeout} s"}
        if r.returncode != 0:
            raise SystemExit(f"worker {kind} failed:\n{r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if contender is not None:
            contender.kill()
            contender.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="d0", help="liveportrait clip (d0, d3, d12, d13, s32)")
    ap.add_argument("--frames", type=int, default=40, help="frames translated / fine-tuned on")
    ap.add_argument("--iterations", type=int, default=8, help="fine-tune iterations per measurement")
    ap.add_argument("--kinds", default="translate,finetune")
    ap.add_argument("--timeout", type=int, default=600, help="seconds before a measurement is given up")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--contender", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small sizes (make bench): 16 frames, translate only")
    ap.add_argument("--full", action="store_true", help="the default sizes above")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.kinds = min(args.frames, 16), "translate"
    if args.contender:
        _contender()
        return
    if args.worker:
        print(json.dumps(_worker(args.worker, args.clip, args.frames, args.iterations)), flush=True)
        return
    rows = []
    for kind in args.kinds.split(","):
        unit = "fps" if kind == "translate" else "it/s"
        for policy_on in (False, True):
            idle = _measure(kind, policy_on, False, args)
            busy = _measure(kind, policy_on, True, args)
            ratio = busy["speed"] / idle["speed"]  # nan when either timed out
            rows.append([kind, "on" if policy_on else "off (torch defaults)", f"{idle['threads']} / {idle['wait']}",
                         f"{idle['speed']:.2f} {unit}", f"{busy['speed']:.2f} {unit}" + (f" ({busy['note']})"
                                                                                         if "note" in busy else ""),
                         f"{ratio:.2f}x"])
            print(rows[-1], file=sys.stderr, flush=True)
    print_table(rows, ["job", "thread policy", "threads / wait", "idle", "beside a 2-thread torch job",
                       "contended / idle"],
                title=f"Contention: liveportrait_{args.clip}, {args.frames} frames, bundled model")


if __name__ == "__main__":
    main()
