"""Training speed of every train-all stage on this machine: images (or items) per second, per stage.

    python -m bench.bench_train [--config configs/train_all.yaml] [--seconds 20] [--device auto] [--data PACK|DIR]

Runs each stage of the recipe for about ``--seconds`` of wall time (the recipe's budget split with equal shares; data
loading and model set-up count, as they do in a budgeted run), on the real data, into a temporary folder, and prints
a markdown table with the machine.  ``img/s`` is the last logged row's rate; for the pseudo-label and FaceBank stages
it is items per second of the whole stage.  Run one heavy job at a time: parallel jobs make every number false.
"""
from __future__ import annotations

import argparse
import tempfile

from bench.common import print_table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train_all.yaml")
    ap.add_argument("--seconds", type=float, default=20.0, help="wall time per stage")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data", default=None, help="data pack (.pt) or assets folder [default: ../shared/assets]")
    ap.add_argument("--stages", default=None, help="comma-separated subset")
    args = ap.parse_args(argv)

    from pipelines.train_all import TrainAllPipeline
    from vidanime.train.harness import Budget

    pipe = TrainAllPipeline.from_config_file(args.config)
    wanted = [s for s in args.stages.split(",") if s] if args.stages else None
    stages = [s for s in pipe.config.stages if s.enabled and (wanted is None or s.name in wanted)]
    for s in stages:
        s.share = 1.0
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        summary = pipe(tmp, budget=Budget(args.seconds * len(stages)), device=args.device, data=args.data,
                       stages=[s.name for s in stages], smoke=False, export=False)
    rows = []
    for r in summary["stages"]:
        rate = r["img_per_s"]
        if rate is None and r["status"] == "ok" and r["step"] and r["kind"] in ("pseudo", "facebank"):
            rate = r["step"] / max(r["seconds"], 1e-9)
        rows.append([r["name"], r["kind"], r["status"], r["step"] if r["step"] is not None else "",
                     f"{r['seconds']:.1f}", f"{rate:.1f}" if rate else "", r["error"][:60]])
    print_table(rows, ["stage", "kind", "status", "steps/items", "seconds", "img/s", "error"],
                title=f"train-all stages on {summary['device']} ({summary['device_name']}): {args.config}, about "
                      f"{args.seconds:.0f} s each, set-up and data loading included")


if __name__ == "__main__":
    main()
