"""How steady each --temporal mode makes a translated video, and whether faces still move (issue #18's table).

    python -m bench.bench_temporal [--clips d0,d3,...] [--frames 100] [--modes off,filter]

For each clip and mode: the optical-flow warp error of the output (occlusion-masked, the input's flow) and the input's
own, the flicker index, the latent roughness of the codes, the mouth-region change of the aligned output crop
(mean absolute change between consecutive frames in the mouth box of the aligned crop; a mode that froze the face
would drive it to 0), and frames per second.  The bundled model translates; two passes per mode (pasted with
``--report``, then ``--crop`` for the aligned face).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.common import print_table

CLIPS = ("d0", "d3", "d12", "d13", "s32")
MOUTH_BOX = (0.62, 0.86, 0.28, 0.72)  # rows y0:y1, columns x0:x1 of the aligned crop, as fractions


def mouth_change(crop_video: Path) -> float:
    """Mean absolute change (0-255) between consecutive aligned crops inside :data:`MOUTH_BOX`."""
    from vidanime.video.io import VideoReader

    y0, y1, x0, x1 = MOUTH_BOX
    prev, diffs = None, []
    with VideoReader(crop_video) as r:
        for f in r:
            h, w = f.image.shape[:2]
            box = f.image[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)].astype(np.float32)
            if prev is not None:
                diffs.append(float(np.abs(box - prev).mean()))
            prev = box
    return float(np.mean(diffs)) if diffs else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=",".join(CLIPS), help="liveportrait clip names (d0, d3, d12, d13, s32)")
    ap.add_argument("--frames", type=int, default=100, help="frames per clip (from the start)")
    ap.add_argument("--modes", default="off,filter")
    ap.add_argument("--variants", default="",
                    help="extra filter settings to compare, 'S:A:B' = structure cut-off Hz : appearance cut-off Hz : "
                         "beta, comma-separated (e.g. 1:0.2:0.05,4:0.5:0.1)")
    args = ap.parse_args(argv)

    from pipelines.translate import TranslateOptions, TranslatePipeline
    from vidanime.data.pack import default_assets_root
    from vidanime.video.smooth import LatentFilterConfig

    rows = []
    pipes = {m: TranslatePipeline.from_pretrained(temporal=m) for m in args.modes.split(",")}
    for v in filter(None, args.variants.split(",")):
        s_cut, a_cut, beta = (float(x) for x in v.split(":"))
        pipe = TranslatePipeline.from_pretrained(temporal="filter")
        pipe.translator.latent_filter.config = LatentFilterConfig(s_cut, a_cut, beta).check()
        pipes[f"filter {v}"] = pipe
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips.split(","):
            src = default_assets_root() / "video" / f"liveportrait_{clip}.mp4"
            for mode, pipe in pipes.items():
                end = f"{args.frames}f"
                res = pipe(src, Path(tmp) / f"{clip}-{mode}.mp4", TranslateOptions(end=end, progress=False,
                                                                                    report=True))
                crop = Path(tmp) / f"{clip}-{mode}-crop.mp4"
                pipe(src, crop, TranslateOptions(end=end, progress=False, crop=True, faces="largest"))
                we, fl = res.temporal["warp_error"], res.temporal["flicker_index"]
                rows.append([clip, mode, f"{we['value']:.5f}", f"{we['input']:.5f}", f"{we['value'] / we['input']:.2f}",
                             f"{fl['value']:.3f}", f"{res.latent_roughness:.4f}", f"{mouth_change(crop):.2f}",
                             f"{res.frames / res.seconds:.1f}"])
    print_table(rows, ["clip", "mode", "warp error", "input's", "ratio", "flicker", "latent roughness",
                       "mouth change", "fps"],
                title=f"--temporal modes on the talking-face clips ({args.frames} frames each, bundled model)")


if __name__ == "__main__":
    main()
