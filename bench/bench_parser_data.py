"""The parser trainers' batch stream alone (decode, flip, zoom, colour, anime redraw): images/s by worker processes.

    python -m bench.bench_parser_data [--batches 40] [--workers 0,1,2] [--data DIR]

This is the CPU-side work that bounded the parser stages on the first GPU loan (45-218 img/s on an H200 with 16
cores, none of it in parallel).  Each row times ``--batches`` batches of 16 after the first (worker start-up and the
decoding of the pairs into memory are left out), for the portrait parser's data (configs/demo_parser_portrait.yaml)
and the anime teacher's (configs/demo_parser_anime_teacher.yaml, 80 % of the pairs redrawn as anime).  Run one heavy
job at a time.
"""
from __future__ import annotations

import argparse
import itertools
import time

from bench.common import print_table

CONFIGS = {"portrait parser": "configs/demo_parser_portrait.yaml",
           "anime teacher": "configs/demo_parser_anime_teacher.yaml"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    ap.add_argument("--data", default="../shared/assets/faces", help="image/mask pairs (CelebAMask-HQ layout)")
    args = ap.parse_args(argv)

    from vidanime.data.parsing import ParsingDataset
    from vidanime.train.parser import _batches, heldout_ids, load_train_config

    rows = []
    for name, path in CONFIGS.items():
        cfg = load_train_config(path, {"data.root": args.data})
        train_ids, _ = heldout_ids(cfg.data)
        for w in (int(x) for x in args.workers.split(",")):
            ds = ParsingDataset(cfg.data, cfg.model.label_set, ids=train_ids, augment=True)
            ds.preload()
            stream = _batches(ds, 16, 0, 0, w)
            next(stream)  # start-up, not timed
            t = time.perf_counter()
            for _ in itertools.islice(stream, args.batches):
                pass
            dt = time.perf_counter() - t
            rows.append([name, w, f"{16 * args.batches / dt:.0f}"])
            stream.close()
    print_table(rows, ["data", "worker processes", "img/s"], title="parser batch stream (16 per batch)")


if __name__ == "__main__":
    main()
