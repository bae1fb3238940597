"""Benchmark: the ``haar`` detector (OpenCV cascade + bundled portrait parser) against MTCNN on one talking clip.

    python -m bench.bench_haar [--clip liveportrait_d12.mp4] [--frames 150] [--cascade NAME] [--assets DIR]

Single-threaded (torch and OpenCV at 1 thread).  Prints a markdown table: frames with a face for both detectors, the
mean distance of haar's landmarks to MTCNN's (in MTCNN face widths, per landmark and overall, on frames where both
find the face), and detection fps of both at the default settings (frames downscaled to 640 px).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench.bench_faces import read_frames
from bench.common import print_table

LANDMARKS = ("eye (img-left)", "eye (img-right)", "nose", "mouth (img-left)", "mouth (img-right)")


def run(assets: Path, clip: str, n: int, cascade: str | None) -> None:
    import cv2
    import torch

    from vidanime.video.detect import create_detector

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    frames = read_frames(assets / "video" / clip, n=n)
    dets, secs = {}, {}
    for name, kw in (("mtcnn", {}), ("haar", {"cascade": cascade} if cascade else {})):
        det = create_detector(name, **kw)
        det.detect(frames[:2])  # warm-up (first-call allocations)
        t0 = time.perf_counter()
        dets[name] = [d for k in range(0, len(frames), 8) for d in det.detect(frames[k:k + 8])]
        secs[name] = time.perf_counter() - t0
    dist = []
    for m, h in zip(dets["mtcnn"], dets["haar"]):
        if m and h:
            width = float(m[0].box[2] - m[0].box[0])
            dist.append(np.linalg.norm(h[0].landmarks - m[0].landmarks, axis=1) / width)
    dist_arr = np.array(dist)
    title = f"{clip}, first {len(frames)} frames ({frames[0].shape[1]}x{frames[0].shape[0]}), detection at 640 px"
    rows = [[name, f"{np.mean([len(d) > 0 for d in dets[name]]):.0%}",
             f"{np.mean([len(d) > 1 for d in dets[name]]):.0%}", f"{len(frames) / secs[name]:.1f}"]
            for name in ("mtcnn", "haar")]
    print_table(rows, ["detector", "frames with a face", "frames with >1 face", "fps (1 thread)"], title=title)
    if len(dist_arr):
        print_table([[n_, f"{v:.3f}"] for n_, v in zip(LANDMARKS, dist_arr.mean(0))]
                    + [["all five", f"{dist_arr.mean():.3f}"], ["frames compared", str(len(dist_arr))]],
                    ["landmark", "haar's mean distance to MTCNN (face widths)"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=Path,
                    default=Path(os.environ.get("VIDANIME_ASSETS", Path(__file__).resolve().parents[2] / "shared"
                                                / "assets")))
    ap.add_argument("--clip", default="liveportrait_d12.mp4")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--cascade", default=None, help="cascade file name under cv2.data.haarcascades (default: haar's)")
    a = ap.parse_args()
    run(a.assets, a.clip, a.frames, a.cascade)


if __name__ == "__main__":
    main()
