"""How steady each --temporal mode makes a translated video, and whether faces still move (issue #18's table).

    python -m bench.bench_temporal [--clips d0,d3,...] [--frames 100] [--modes off,filter,flow,ft:300,ft:auto+filter]
    python -m bench.bench_temporal --curve 25,50,100,200,300 [--clips ...]
    python -m bench.bench_temporal --smooth savgol:9:2   # landmark smoothing other than the default (flow:25:0)

For each clip and mode: the optical-flow warp error of the output (occlusion-masked, the input's flow) and the input's
own, the flicker index, the latent roughness of the codes, the mouth-region change of the aligned output crop
(mean absolute change between consecutive frames in the mouth box of the aligned crop; a mode that froze the face
would drive it to 0), and frames per second.  The bundled model translates; two passes per mode (pasted with
``--report``, then ``--crop`` for the aligned face).

Modes: ``off`` and ``filter`` are ``--temporal``; ``ft:N`` / ``ft:auto`` first fine-tune the model on the clip's
frames (``translate --finetune N|auto``, one fine-tune per clip and setting, shared by ``ft:N``, ``ft:N+filter`` and
``ft:N+flow``) and translate with ``--temporal off`` (or the mode after the ``+``); their rows add the iterations run
and the fine-tune's seconds.  ``--curve`` prints warp error against fine-tune iterations instead (one run per clip,
resumed from one count to the next, translated with ``--temporal off`` at each), the measurement behind
``--finetune auto``'s cap.
"""
from __future__ import annotations

import argparse
import functools
import re
import tempfile
from pathlib import Path

import numpy as np

from bench.common import print_table

CLIPS = ("d0", "d3", "d12", "d13", "s32")
MOUTH_BOX = (0.62, 0.86, 0.28, 0.72)  # rows y0:y1, columns x0:x1 of the aligned crop, as fractions


def mouth_change(crop_video: Path) -> float:
    """Mean absolute change (0-255) between consecutive aligned crops inside :data:`MOUTH_BOX`."""
    return crop_stats(crop_video)[0]


def crop_stats(crop_video: Path) -> tuple[float, float]:
    """(mouth change: mean absolute change (0-255) between consecutive aligned crops inside :data:`MOUTH_BOX`,
    sharpness: mean absolute Laplacian of the crops' grey levels — a blend that smears the drawing lowers it)."""
    import cv2

    from vidanime.video.io import VideoReader

    y0, y1, x0, x1 = MOUTH_BOX
    prev, diffs, sharp = None, [], []
    with VideoReader(crop_video) as r:
        for f in r:
            h, w = f.image.shape[:2]
            box = f.image[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)].astype(np.float32)
            if prev is not None:
                diffs.append(float(np.abs(box - prev).mean()))
            prev = box
            grey = cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
            sharp.append(float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean()))
    nan = float("nan")
    return (float(np.mean(diffs)) if diffs else nan), (float(np.mean(sharp)) if sharp else nan)


def _finetune(src: Path, end: str, setting: str, run_dir: Path) -> tuple[str, int, float]:
    """Fine-tune the bundled model on ``src``'s first frames (``translate --finetune setting``): (checkpoint,
    iterations run, seconds)."""
    import time

    from pipelines.finetune import finetune_for_translate
    from pipelines.translate import DEFAULT_MODELS
    from vidanime.train.run_dir import RunDir

    ckpt, parser = DEFAULT_MODELS["p2a"]
    t0 = time.perf_counter()
    tuned = finetune_for_translate(src, run_dir.with_suffix(".mp4"), ckpt, parser,
                                   setting if setting == "auto" else int(setting), end=end, run_dir=run_dir,
                                   progress=False)
    found = RunDir(run_dir).checkpoints("finetune")  # (step, path), oldest first
    return str(tuned), found[-1][0] if found else 0, time.perf_counter() - t0


def _measure(pipe, src: Path, out: Path, end: str, crop: bool = True) -> dict:
    from pipelines.translate import TranslateOptions

    res = pipe(src, out, TranslateOptions(end=end, progress=False, report=True))
    row = {"warp": res.temporal["warp_error"]["value"], "input": res.temporal["warp_error"]["input"],
           "flicker": res.temporal["flicker_index"]["value"], "rough": res.latent_roughness,
           "fps": res.frames / res.seconds, "mouth": float("nan"), "sharp": float("nan")}
    if crop:
        crop_path = out.with_name(out.stem + "-crop.mp4")
        pipe(src, crop_path, TranslateOptions(end=end, progress=False, crop=True, faces="largest"))
        row["mouth"], row["sharp"] = crop_stats(crop_path)
    return row


def _curve(args, clips: list[str], tmp: Path) -> None:
    from vidanime.data.pack import default_assets_root

    counts = sorted({int(c) for c in args.curve.split(",")})
    end = f"{args.frames}f"
    rows = []
    for clip in clips:
        src = default_assets_root() / "video" / f"liveportrait_{clip}.mp4"
        pipe = args.make_pipe(temporal="off", face_config=args.face_config)
        off = _measure(pipe, src, tmp / f"{clip}-off.mp4", end, crop=False)
        rows.append([clip, "0", f"{off['warp'] / off['input']:.2f}", "1.00", f"{off['rough']:.4f}", "0"])
        spent = 0.0
        for n in counts:
            tuned, steps, secs = _finetune(src, end, str(n), tmp / f"{clip}-curve")
            spent += secs
            pipe = args.make_pipe(tuned, temporal="off", face_config=args.face_config)
            r = _measure(pipe, src, tmp / f"{clip}-{n}.mp4", end, crop=False)
            rows.append([clip, str(steps), f"{r['warp'] / r['input']:.2f}", f"{r['warp'] / off['warp']:.2f}",
                         f"{r['rough']:.4f}", f"{spent:.0f}"])
    print_table(rows, ["clip", "fine-tune iterations", "warp error ×input", "×per-frame", "latent roughness",
                       "fine-tune s (face pass included)"],
                title=f"Warp error against fine-tune iterations ({args.frames} frames per clip, bundled model, "
                      "--temporal off)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=",".join(CLIPS), help="liveportrait clip names (d0, d3, d12, d13, s32)")
    ap.add_argument("--frames", type=int, default=100, help="frames per clip (from the start)")
    ap.add_argument("--modes", default="off,filter",
                    help="comma-separated: off, filter, flow, ft:N, ft:auto, ft:N+filter, ft:auto+flow, ...")
    ap.add_argument("--variants", default="",
                    help="extra filter settings to compare, 'S:A:B' = structure cut-off Hz : appearance cut-off Hz : "
                         "beta, comma-separated (e.g. 1:0.2:0.05,4:0.5:0.1)")
    ap.add_argument("--blends", default="",
                    help="extra --temporal flow settings to compare, 'BETA:TAU[:MASKS]' (MASKS 1 = blend the paste "
                         "masks too, the default; 0 = the drawing only), comma-separated (e.g. 0.4:0.04,0.7:0.06:0)")
    ap.add_argument("--recolor", type=float, default=None,
                    help="hair/eye recolouring strength for every mode (0 = off; default: translate's, 0.85)")
    ap.add_argument("--smooth", default="",
                    help="landmark smoothing METHOD:WINDOW:ORDER for every mode (default: FaceConfig's, flow:25:0)")
    ap.add_argument("--detect-every", type=int, default=0,
                    help="run the face detector on every k-th frame only (default: FaceConfig's)")
    ap.add_argument("--upscaler", default="none",
                    help="drawing upscaler for every mode: none (as translate), auto (the bundled one), a name or path")
    ap.add_argument("--curve", default="", help="fine-tune iteration counts for the warp-error curve (e.g. 50,100,300)")
    args = ap.parse_args(argv)

    from pipelines.translate import TranslatePipeline
    from vidanime.data.pack import default_assets_root
    from vidanime.video.faces import FaceConfig
    from vidanime.video.recolor import RecolorConfig
    from vidanime.video.smooth import LatentFilterConfig, SmoothConfig

    recolor = RecolorConfig.strength if args.recolor is None else args.recolor
    args.make_pipe = functools.partial(TranslatePipeline.from_pretrained, recolor=recolor, upscaler=args.upscaler)
    args.face_config = None
    if args.smooth or args.detect_every:
        args.face_config = FaceConfig()
    if args.smooth:
        method, window, order = args.smooth.split(":")
        args.face_config.smooth = SmoothConfig(method, window=int(window), order=int(order))
    if args.detect_every:
        args.face_config.detect_every = args.detect_every
    clips = args.clips.split(",")
    if args.curve:
        with tempfile.TemporaryDirectory() as tmp:
            _curve(args, clips, Path(tmp))
        return
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("off", "filter", "flow") and not re.fullmatch(r"ft:(auto|\d+)(\+(filter|flow))?", m):
            ap.error(f"--modes: unknown mode {m!r}")
    pipes = {m: args.make_pipe(temporal=m, face_config=args.face_config) for m in modes
             if m in ("off", "filter", "flow")}
    for v in filter(None, args.variants.split(",")):
        s_cut, a_cut, beta = (float(x) for x in v.split(":"))
        pipe = args.make_pipe(temporal="filter", face_config=args.face_config)
        pipe.translator.latent_filter.config = LatentFilterConfig(s_cut, a_cut, beta).check()
        pipes[f"filter {v}"] = pipe
    for v in filter(None, args.blends.split(",")):
        from vidanime.video.deflicker import FlowBlendConfig

        beta, tau, *more = v.split(":")
        pipe = args.make_pipe(temporal="flow", face_config=args.face_config)
        pipe.translator.crop_blend.config = FlowBlendConfig(
            beta=float(beta), tau=float(tau), masks=bool(int(more[0])) if more else True).check()
        pipes[f"flow {v}"] = pipe
    rows = []
    end = f"{args.frames}f"
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            src = default_assets_root() / "video" / f"liveportrait_{clip}.mp4"
            tuned: dict[str, tuple[str, int, float]] = {}
            for mode in [*modes, *(k for k in pipes if k.startswith(("filter ", "flow ")))]:
                ft = ""
                if mode.startswith("ft:"):
                    setting, _, filt = mode[3:].partition("+")
                    if setting not in tuned:
                        tuned[setting] = _finetune(src, end, setting, Path(tmp) / f"{clip}-ft-{setting}")
                    ckpt, steps, secs = tuned[setting]
                    pipe = args.make_pipe(ckpt, temporal=filt or "off", face_config=args.face_config)
                    ft = f"{steps} in {secs:.0f} s"
                else:
                    pipe = pipes[mode]
                r = _measure(pipe, src, Path(tmp) / f"{clip}-{mode.replace(':', '_')}.mp4", end)
                rows.append([clip, mode, f"{r['warp']:.5f}", f"{r['input']:.5f}", f"{r['warp'] / r['input']:.2f}",
                             f"{r['flicker']:.3f}", f"{r['rough']:.4f}", f"{r['mouth']:.2f}", f"{r['sharp']:.2f}",
                             f"{r['fps']:.1f}", ft or "-"])
    print_table(rows, ["clip", "mode", "warp error", "input's", "ratio", "flicker", "latent roughness",
                       "mouth change", "sharpness", "fps", "fine-tune (iterations, s)"],
                title=f"--temporal modes on the talking-face clips ({args.frames} frames each, bundled model, landmark "
                      f"smoothing {args.smooth or 'default'}, detect every {args.detect_every or 'default'}, "
                      f"recolor {recolor:g})")


if __name__ == "__main__":
    main()
