"""Video I/O speed and memory: decode fps, encode fps, identity transcode with the threaded pipeline vs a serial loop
(also with a sleeping per-frame "model" stand-in, which is where overlapping the stages pays off),
and peak RSS of a transcode for a short vs a 6x longer clip (flat memory = bounded queues work).

    /work/main/.venv/bin/python -m bench.bench_video_io [--quick] [--preset medium] [--crf 18]

Clips are synthetic (moving gradients + texture, written with PyAV/libx264 into a temporary folder), so the numbers
are reproducible without the shared assets.  Timings on a shared machine are noisy.
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

import numpy as np

from bench.common import print_table

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def make_clip(path: Path, size: tuple[int, int], seconds: float, fps: int = 30, audio: bool = True) -> Path:
    """A textured, moving test clip (H.264, yuv420p, AAC tone) of ``seconds`` at ``fps``."""
    import av

    w, h = size
    rng = np.random.default_rng(0)
    base = np.zeros((h, 2 * w, 3), np.uint8)
    y, x = np.mgrid[0:h, 0 : 2 * w]
    base[..., 0] = (127 + 100 * np.sin(x / 37.0)).astype(np.uint8)
    base[..., 1] = (127 + 100 * np.sin(y / 23.0 + x / 71.0)).astype(np.uint8)
    base[..., 2] = rng.integers(0, 40, (h, 2 * w), dtype=np.uint8) + 100
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "20"}
        a = out.add_stream("aac", rate=48000) if audio else None
        if a is not None:
            a.layout = "stereo"
        for i in range(n):
            off = (7 * i) % w
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, off : off + w]), format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
        if a is not None:
            samples = int(seconds * 48000)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            for k in range(0, samples - 1023, 1024):
                af = av.AudioFrame.from_ndarray(np.stack([tone[k : k + 1024]] * 2), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, k
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


def decode_fps(path: Path) -> tuple[float, list]:
    from vidanime.video.io import VideoReader

    t0 = time.perf_counter()
    frames = []
    with VideoReader(path) as r:
        for f in r:
            if len(frames) < 60:  # kept for the encode row
                frames.append(f)
            n = f.index + 1
    return n / (time.perf_counter() - t0), frames


def encode_fps(path: Path, frames: list, preset: str, crf: int, repeat: int) -> float:
    from vidanime.video.io import VideoWriter

    t0 = time.perf_counter()
    n = 0
    with VideoWriter(path, fps=30, preset=preset, crf=crf) as w:
        for _ in range(repeat):
            for f in frames:
                w.write(f.image)
                n += 1
    return n / (time.perf_counter() - t0)


def _model_standin(ms: float):
    """A per-frame "model" that holds no GIL for ``ms`` milliseconds (like a GPU forward pass) and returns the frame."""

    def fn(frame):
        time.sleep(ms / 1000)
        return frame.image

    return fn


def transcode_fps(src: Path, dst: Path, preset: str, crf: int, concurrent: bool, model_ms: float = 0.0) -> float:
    """Frames per second of a whole transcode job (open, decode, process, encode, flush, rename)."""
    from pipelines.transcode import TranscodePipeline

    fn = _model_standin(model_ms) if model_ms else None
    t0 = time.perf_counter()
    stats = TranscodePipeline(crf=crf, preset=preset, concurrent=concurrent, progress=False)(src, dst, process_fn=fn)
    return stats.frames / (time.perf_counter() - t0)


def rss_child(src: str, dst: str, preset: str) -> None:
    """Run one transcode and print this process's peak RSS (MiB) as JSON (used in a subprocess).

    Reads VmHWM from /proc: ``ru_maxrss`` would carry the parent's high-water mark across exec."""
    from pipelines.transcode import TranscodePipeline

    def hwm() -> float:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024

    base = hwm()
    stats = TranscodePipeline(crf=23, preset=preset, progress=False)(src, dst)
    peak = hwm()
    print(json.dumps({"frames": stats.frames, "peak_mb": peak, "before_mb": base}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="360p/720p, short clips (about a minute)")
    ap.add_argument("--preset", default="medium", help="x264 preset for encode/transcode rows")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--seconds", type=float, default=None, help="clip length for the speed rows")
    ap.add_argument("--model-ms", type=float, default=50.0, help="per-frame model stand-in (sleep) for the last column")
    ap.add_argument("--skip-rss", action="store_true", help="only the speed table")
    ap.add_argument("--rss-child", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child, preset="ultrafast")
        return
    sizes = ["360p", "720p"] if args.quick else ["720p", "1080p"]
    seconds = args.seconds or 2.0
    rss_lengths = (3.0, 18.0) if args.quick else (10.0, 60.0)
    rss_size = "360p" if args.quick else "720p"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_video_io_") as tmp:
        tmp = Path(tmp)
        for name in sizes:
            src = make_clip(tmp / f"{name}.mp4", SIZES[name], seconds)
            dec, frames = decode_fps(src)
            enc = encode_fps(tmp / f"{name}_enc.mp4", frames, args.preset, args.crf, repeat=1)
            ser = transcode_fps(src, tmp / f"{name}_ser.mp4", args.preset, args.crf, concurrent=False)
            con = transcode_fps(src, tmp / f"{name}_con.mp4", args.preset, args.crf, concurrent=True)
            m = args.model_ms
            ser_m = transcode_fps(src, tmp / f"{name}_serm.mp4", args.preset, args.crf, concurrent=False, model_ms=m)
            con_m = transcode_fps(src, tmp / f"{name}_conm.mp4", args.preset, args.crf, concurrent=True, model_ms=m)
            rows.append([name, int(seconds * 30), f"{dec:.1f}", f"{enc:.1f}", f"{ser:.1f}", f"{con:.1f}",
                         f"{con / ser:.2f}", f"{ser_m:.1f} / {con_m:.1f} ({con_m / ser_m:.2f})"])
        print_table(rows, ["size", "frames", "decode fps", f"encode fps ({args.preset})", "transcode serial fps",
                           "transcode threaded fps", "threaded / serial",
                           f"with {args.model_ms:g} ms/frame model: serial / threaded fps (ratio)"],
                    title=f"Video I/O speed (x264 preset {args.preset}, CRF {args.crf}, synthetic 30 fps clips)")
        print()
        rss_rows = []
        for secs in () if args.skip_rss else rss_lengths:
            src = make_clip(tmp / f"rss_{secs:g}.mp4", SIZES[rss_size], secs)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                                os.environ.get("PYTHONPATH", "")]))
            out = subprocess.run([sys.executable, "-m", "bench.bench_video_io", "--rss-child", str(src),
                                  str(tmp / f"rss_{secs:g}_out.mp4")], capture_output=True, text=True, env=env,
                                 check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rss_rows.append([f"{secs:g} s", res["frames"], f"{res['before_mb']:.0f}", f"{res['peak_mb']:.0f}"])
        if rss_rows:
            print_table(rss_rows, ["clip", "frames", "RSS after imports (MiB)", "peak RSS (MiB)"],
                        title=f"Peak memory of a threaded identity transcode ({rss_size}, preset ultrafast, queue 8)")


if __name__ == "__main__":
    main()
