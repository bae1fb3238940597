"""Benchmark: face detection + tracking + smoothing + alignment fps at 720p on CPU, detection rates, crop jitter.

    python -m bench.bench_faces [--quick] [--every N] [--only speed,jitter,rates,anime,follow]
                                [--assets ../shared/assets]

Prints markdown tables (machine line first).  Speed uses liveportrait_s32.mp4 (1280x720); detection rates use the
single-face clips (every 3rd frame, every 9th with --quick, ``--every 1`` for all); jitter uses liveportrait_d0.mp4
(static head); anime detectors are scored on held-out anime faces pasted onto backgrounds and run on the anime clip;
``follow`` runs MTCNN on every k-th frame with the faces following their tracked motion between.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench.common import print_table

CLIPS = ("liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d12.mp4", "liveportrait_d13.mp4",
         "liveportrait_s32.mp4")


def read_frames(path: Path, n: int | None = None, step: int = 1) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if n is not None and len(out) >= n:
                break
            if i % step == 0:
                out.append(f.to_ndarray(format="rgb24"))
    return out


def backends(assets: Path) -> list[tuple[str, str | None]]:
    w = assets / "weights"
    return [("mtcnn", None), ("retinaface", str(w / "retinaface_mobilenet0.25_Final.pth")),
            ("yunet", str(w / "face_detection_yunet.onnx"))]


class _Replay:
    """Detector stand-in returning detections computed before, so tracking + smoothing + alignment are timed alone."""

    skipped_small = 0

    def __init__(self, dets):
        self.dets, self.i = dets, 0

    def detect(self, frames):
        out = self.dets[self.i:self.i + len(frames)]
        self.i += len(frames)
        return out


def bench_speed(assets: Path, n: int) -> None:
    from vidanime.video.detect import create_detector
    from vidanime.video.faces import FaceConfig, FaceProcessor

    frames = read_frames(assets / "video" / "liveportrait_s32.mp4", n=n)
    rows = []
    for name, weights in backends(assets):
        for max_side in (640, 1280):
            cfg = FaceConfig(detector=name, detector_weights=weights, detect_max_side=max_side)
            det = create_detector(name, weights, max_side=max_side)
            det.detect(frames[:2])  # warm-up
            t0 = time.perf_counter()
            dets = det.detect(frames)
            t_det = time.perf_counter() - t0
            replay = _Replay(dets)
            t0 = time.perf_counter()
            outs = list(FaceProcessor(cfg, detector=replay).process(frames))
            t_rest = time.perf_counter() - t0
            found = np.mean([len(d) > 0 for d in dets])
            faces = sum(len(o.faces) for o in outs)
            rows.append([name, f"{frames[0].shape[1]}x{frames[0].shape[0]}", max_side, len(frames),
                         len(frames) / t_det, len(frames) / (t_det + t_rest), 1000 * t_rest / max(faces, 1),
                         f"{found:.0%}"])
    print_table(rows, ["detector", "frame", "detect max side", "frames", "detect fps", "detect+track+smooth+align fps",
                       "track+smooth+align ms/face", "frames with a face"],
                title="Face detection + alignment speed at 720p (CPU)")


def bench_follow(assets: Path, n: int | None, every: tuple[int, ...] = (1, 2, 3, 4)) -> None:
    """MTCNN on every k-th frame, faces following their tracked motion between: speed at 720p (first 40 frames of
    liveportrait_s32), share of frames with a face on the single-face clips (first ``n`` frames, all when None)."""
    from vidanime.video.align import estimate_similarity, transform_jitter
    from vidanime.video.detect import create_detector
    from vidanime.video.faces import FaceConfig, FaceProcessor

    speed_frames = read_frames(assets / "video" / "liveportrait_s32.mp4", n=40)
    clips = {c: read_frames(assets / "video" / c, n=n) for c in CLIPS}
    det = create_detector("mtcnn", None)
    det.detect(speed_frames[:2])  # warm-up
    rows = []
    for k in every:
        proc = FaceProcessor(FaceConfig(detect_every=k), detector=det)
        t0 = time.perf_counter()
        list(proc.process(speed_frames))
        fps = len(speed_frames) / (time.perf_counter() - t0)
        with_face = total = 0
        for c, frames in clips.items():
            outs = list(FaceProcessor(FaceConfig(detect_every=k), detector=det).process(frames))
            with_face += sum(len(o.faces) > 0 for o in outs)
            total += len(outs)
            if c == "liveportrait_d0.mp4":
                jitter = transform_jitter([estimate_similarity(o.faces[0].landmarks)[0] for o in outs if o.faces])
        rows.append([k, f"{fps:.1f}", f"{proc.detected_frames}/{len(speed_frames)}", f"{with_face / total:.1%}",
                     total, f"{jitter['corner_px']:.2f}"])
    print_table(rows, ["detect every", "faces fps (720p, detect+track+smooth+align)", "frames detected",
                       "frames with a face (5 clips)", "frames", "d0 crop jitter (px)"],
                title="MTCNN on every k-th frame, faces following their motion between (default smoothing)")


def bench_rates(assets: Path, step: int) -> None:
    from vidanime.video.detect import create_detector

    rows = []
    dets = {name: create_detector(name, w) for name, w in backends(assets)}
    for clip in CLIPS:
        frames = read_frames(assets / "video" / clip, step=step)
        row = [clip, len(frames)]
        for det in dets.values():
            row.append(f"{np.mean([len(d) > 0 for d in det.detect(frames)]):.1%}")
        rows.append(row)
    print_table(rows, ["clip", "frames"] + list(dets),
                title=f"Detection rate (frames with >= 1 face, every {step}th frame)")


def bench_jitter(assets: Path, n: int | None) -> None:
    from vidanime.video.align import estimate_similarity, transform_jitter
    from vidanime.video.detect import create_detector
    from vidanime.video.motion import face_motion, to_gray
    from vidanime.video.smooth import SmoothConfig, smooth_sequence

    frames = read_frames(assets / "video" / "liveportrait_d0.mp4", n=n)
    grays = [to_gray(f) for f in frames]
    rows = []
    for name, w in backends(assets):
        dets = [d[0] for d in create_detector(name, w).detect(frames)]
        lm = np.stack([d.landmarks for d in dets])
        motions = {i: m for i in range(1, len(frames))
                   if (m := face_motion(grays[i - 1], grays[i], dets[i - 1].box)) is not None}
        raw = transform_jitter([estimate_similarity(x)[0] for x in lm])
        for cfg in (SmoothConfig("savgol", window=5, order=2), SmoothConfig("savgol", window=9, order=2),
                    SmoothConfig("savgol", window=15, order=2), SmoothConfig("one_euro", min_cutoff=1.0, beta=0.5),
                    SmoothConfig("one_euro", min_cutoff=0.5, beta=0.5), SmoothConfig("flow", window=9),
                    SmoothConfig("flow", window=25)):
            sm = transform_jitter([estimate_similarity(x)[0]
                                   for x in smooth_sequence(lm, cfg, fps=25, motions=motions)])
            label = (f"{cfg.method} w={cfg.window}" if cfg.method != "one_euro"
                     else f"one_euro fc={cfg.min_cutoff} b={cfg.beta}")
            rows.append([name, label, raw["corner_px"], sm["corner_px"], raw["corner_px"] / sm["corner_px"],
                         raw["rotation_deg"], sm["rotation_deg"], raw["scale_pct"], sm["scale_pct"]])
    print_table(rows, ["detector", "smoothing", "jitter raw (crop px)", "jitter smoothed", "reduction",
                       "rot raw (deg)", "rot smoothed", "scale raw (%)", "scale smoothed"],
                title=f"Crop jitter on liveportrait_d0 (static head, {len(frames)} frames, crop 256)")


def pasted_anime_frames(assets: Path, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(640x480 frame, true box) pairs: held-out anime faces (files 9000+) pasted at random places and sizes
    (200-400 px) onto blurred noise; the detection-rate set for anime detectors (the anime clip has no labels)."""
    import cv2

    from vidanime.data.image_io import read_image_rgb
    from vidanime.data.images import list_images

    rng = np.random.default_rng(seed)
    out = []
    for f in list_images(assets / "anime")[9000 : 9000 + n]:
        frame = cv2.GaussianBlur(rng.integers(60, 200, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
        side = int(rng.integers(200, 400))
        x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        frame[y : y + side, x : x + side] = cv2.resize(read_image_rgb(f), (side, side), interpolation=cv2.INTER_CUBIC)
        out.append((frame, np.array([x, y, x + side, y + side], np.float32)))
    return out


def pasted_hit(det, box: np.ndarray) -> bool:
    """A detection finds the pasted face when its eye midpoint lies inside the pasted square and its box is at least a
    quarter of the square's side (the crops hold hair and background, so face boxes are smaller than the square)."""
    mid = (det.landmarks[0] + det.landmarks[1]) / 2
    inside = box[0] <= mid[0] <= box[2] and box[1] <= mid[1] <= box[3]
    return bool(inside and det.size >= 0.25 * (box[2] - box[0]))


def bench_anime(assets: Path, n: int, step: int) -> None:
    """Anime detectors: recall / false detections on pasted held-out faces, faces found on the anime clip, speed."""
    from vidanime.registry import available_models
    from vidanime.video.detect import create_detector

    dets = {"animecascade": create_detector("animecascade", str(assets / "weights" / "lbpcascade_animeface.xml"))}
    if "parser-anime" in {m.name for m in available_models()}:
        dets["animeparser"] = create_detector("animeparser")
    pasted = pasted_anime_frames(assets, n)
    clip = read_frames(assets / "video" / "realesrgan_onepiece_demo.mp4", step=step)
    rows = []
    for name, det in dets.items():
        t0 = time.perf_counter()
        found = det.detect([f for f, _ in pasted])
        fps = len(pasted) / (time.perf_counter() - t0)
        hits = sum(any(pasted_hit(d, box) for d in ds) for ds, (_, box) in zip(found, pasted))
        extra = sum(len(ds) for ds in found) - hits
        on_clip = det.detect(clip)
        rows.append([name, f"{hits / len(pasted):.0%}", f"{extra / len(pasted):.2f}", fps,
                     f"{np.mean([len(d) > 0 for d in on_clip]):.0%}", f"{np.mean([len(d) for d in on_clip]):.2f}"])
    print_table(rows, ["detector", f"recall, {len(pasted)} pasted held-out faces", "false detections / frame",
                       "fps (640x480)", f"onepiece clip: frames with a face (every {step}th)", "faces / frame"],
                title="Anime face detectors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames")
    ap.add_argument("--every", type=int, default=None, help="detection rates on every Nth frame (1 = every frame)")
    ap.add_argument("--only", default="speed,jitter,rates,anime,follow", help="comma-separated parts to run")
    default_assets = str(Path(__file__).resolve().parents[2] / "shared" / "assets")
    ap.add_argument("--assets", default=os.environ.get("VIDANIME_ASSETS", default_assets))
    args = ap.parse_args()
    assets = Path(args.assets)
    parts = set(args.only.split(","))
    if "speed" in parts:
        bench_speed(assets, 10 if args.quick else 40)
    if "jitter" in parts:
        bench_jitter(assets, 40 if args.quick else None)
    if "follow" in parts:
        bench_follow(assets, 40 if args.quick else None)
    if "rates" in parts:
        bench_rates(assets, args.every or (9 if args.quick else 3))
    if "anime" in parts:
        bench_anime(assets, 12 if args.quick else 48, 6 if args.quick else 2)


if __name__ == "__main__":
    main()
