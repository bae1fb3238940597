"""End-to-end video translation speed, by stage, and peak memory vs clip length.

Stages timed separately on the same frames: decode, faces (detect + track + smooth + align), parse, encode (E_p+E_s),
FaceBank, generate, upscale (the learned x2 drawing upscaler, demo size only), paste, encode video; then the whole
threaded pipeline.  Models are randomly initialised at the demo size (and at paper size with ``--full``): speed does
not depend on the weights.

    python -m bench.bench_translate --quick          # demo size, 12 frames of a 720p clip
    python -m bench.bench_translate --full           # + paper size (slow on CPU; meant for a GPU)
    python -m bench.bench_translate --rss            # peak RSS of the pipeline on a 10 s vs a 60 s clip
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import clock, peak_rss_mb, print_table

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("VIDANIME_ASSETS", REPO.parent / "shared" / "assets"))


def _models(size: str, device: str):
    from vidanime.config import config_from_dict, load_config
    from vidanime.models.facebank import FaceBank
    from vidanime.models.parser import ParserConfig, build_parser
    from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig

    torch.manual_seed(0)
    if size == "paper":
        cfg = load_config(REPO / "configs" / "styleanime_paper.yaml", StyleAnimeConfig)
        pcfg = ParserConfig(width=1.0, image_size=256)
        bank_n = 50_000
    else:
        import yaml

        raw = yaml.safe_load((REPO / "configs" / "demo_styleanime_p2a.yaml").read_text())["model"]
        cfg = config_from_dict(raw, StyleAnimeConfig)
        praw = yaml.safe_load((REPO / "configs" / "demo_parser_portrait.yaml").read_text())["model"]
        pcfg = config_from_dict(praw, ParserConfig)
        bank_n = 10_000
    model = StyleAnime(cfg).to(device).eval()
    parser = build_parser(pcfg).to(device).eval()
    with torch.no_grad():
        z = torch.randn(bank_n, cfg.generator.style_dim, device=device)
        codes = torch.cat([model.decoder.mapping(c) for c in z.split(2000)])
    return model, parser, FaceBank(codes)


def bench_stages(clip: Path, n_frames: int, size: str, device: str) -> list[list]:
    import torch.nn.functional as F

    from vidanime.video.faces import FaceConfig, FaceProcessor
    from vidanime.video.io import VideoReader, VideoWriter
    from vidanime.video.paste import PasteItem, paste_faces

    sync = device.startswith("cuda")
    model, parser, bank = _models(size, device)
    t_dec, frames = clock(lambda: [f.image for f in VideoReader(clip, end=f"{n_frames}f")], False)
    h, w = frames[0].shape[:2]
    proc = FaceProcessor(FaceConfig(device=device), fps=25.0)
    t_faces, per_frame = clock(lambda: list(proc.process(frames)), False)
    faces = [f for ff in per_frame for f in ff.faces]
    if not faces:
        raise SystemExit(f"no face found in the first {n_frames} frames of {clip}")
    crops = torch.from_numpy(np.stack([f.crop for f in faces])).permute(0, 3, 1, 2).float().div(255).to(device)
    p, s = parser.config.image_size, model.image_size
    with torch.no_grad():
        xp = F.interpolate(crops, size=(p, p), mode="bilinear", antialias=True)
        t_parse, logits = clock(lambda: parser(xp), sync)
        lab = F.interpolate(torch.softmax(logits, 1), size=(s, s), mode="bilinear").argmax(1)
        xm = F.interpolate(crops, size=(s, s), mode="bilinear", antialias=True) * 2 - 1
        t_enc, wcodes = clock(lambda: model.encode(xm, lab), sync)
        t_bank, wagg = clock(lambda: bank.aggregate(wcodes, 0.7, k=10), sync)
        t_gen, out = clock(lambda: model.decode(wagg), sync)
        t_up = 0.0
        if s < 128:  # the x2 drawing upscaler of stills (image translate --upscaler auto; videos: opt-in)
            import yaml

            from vidanime.config import config_from_dict
            from vidanime.models.upscaler import Upscaler, UpscalerConfig

            raw = yaml.safe_load((REPO / "configs" / "demo_upscaler.yaml").read_text())["model"]
            up = Upscaler(config_from_dict(raw, UpscalerConfig)).to(device).eval()
            t_up, out = clock(lambda: up(out), sync)
    out_crops = F.interpolate(out, size=crops.shape[-2:], mode="bilinear")
    out_u8 = ((out_crops.clamp(-1, 1) + 1) * 127.5).byte().permute(0, 2, 3, 1).cpu().numpy()
    from vidanime.video.deflicker import CropFlowBlend

    in_u8 = np.stack([f.crop for f in faces])
    t_blend, _ = clock(lambda: CropFlowBlend()(in_u8, out_u8, [f.track_id for f in faces]), False)
    it = iter(range(len(faces)))
    t0 = time.perf_counter()
    pasted = [paste_faces(ff.frame, [PasteItem(out_u8[next(it)], f.matrix, None, f.weight) for f in ff.faces])
              for ff in per_frame]
    t_paste = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        def write() -> None:
            with VideoWriter(Path(tmp) / "o.mp4", fps=25, preset="medium") as wr:
                for im in pasted:
                    wr.write(im)

        t_write, _ = clock(write, False)
    n, nf = len(frames), len(faces)
    rows = [
        [size, "decode", f"{w}x{h}", n / t_dec],
        [size, "faces (detect+track+align)", f"{w}x{h}", n / t_faces],
        [size, "parse", f"{p}²", nf / t_parse],
        [size, "encode (E_p+E_s)", f"{s}²", nf / t_enc],
        [size, "FaceBank (α 0.7, k 10)", f"{len(bank.codes)} codes", nf / t_bank],
        [size, "generate", f"{s}²", nf / t_gen],
        *([[size, "upscale x2 (learned)", f"{s}² → {2 * s}²", nf / t_up]] if t_up else []),
        [size, "deflicker (--temporal flow crop blend)", f"{crops.shape[-1]}²", nf / t_blend],
        [size, "paste", f"{w}x{h}", n / t_paste],
        [size, "encode video (x264 medium)", f"{w}x{h}", n / t_write],
    ]
    total = t_dec + t_faces + t_parse + t_enc + t_bank + t_gen + t_up + t_blend + t_paste + t_write
    rows.append([size, "sum of stages (serial)", f"{w}x{h}", n / total])
    rows.append([size, "end-to-end threaded pipeline", f"{w}x{h}", _end_to_end(clip, n_frames, model, parser, device)])
    return rows


def _end_to_end(clip: Path, n_frames: int, model, parser, device: str) -> float:
    from pipelines.translate import TranslateOptions, TranslatePipeline
    from vidanime.models.face_translator import StyleAnimeFaceTranslator
    from vidanime.video.deflicker import CropFlowBlend
    from vidanime.video.faces import FaceConfig
    from vidanime.video.smooth import LatentFilter

    # as `vidanime translate` by default: latent filter and crop blending (--temporal flow), no upscaler
    translator = StyleAnimeFaceTranslator(model, parser, device=device, latent_filter=LatentFilter(
        model.n_structure_codes), crop_blend=CropFlowBlend())
    pipe = TranslatePipeline(translator, FaceConfig(device=device))
    with tempfile.TemporaryDirectory() as tmp:
        res = pipe(clip, Path(tmp) / "o.mp4", TranslateOptions(end=f"{n_frames}f", progress=False))
    return res.frames / res.seconds


_RSS_CHILD = """
import resource, sys
from pipelines.translate import TranslateOptions, TranslatePipeline
TranslatePipeline()(sys.argv[1], sys.argv[2], TranslateOptions(progress=False, preset="ultrafast"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bench_rss() -> list[list]:
    """Peak RSS of the (identity-model) pipeline on synthetic 10 s and 60 s clips, each in a fresh process."""
    from vidanime.data.demo_clip import make_demo_clip

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (10, 60):
            src = make_demo_clip(Path(tmp) / f"clip{seconds}.mp4", seconds=seconds, size=384)
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(src), str(Path(tmp) / f"o{seconds}.mp4")],
                                 capture_output=True, text=True, check=True, cwd=REPO)
            rows.append([f"{seconds} s (384², identity model)", float(out.stdout.strip().splitlines()[-1]),
                         time.perf_counter() - t0])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="demo size only, 12 frames")
    ap.add_argument("--full", action="store_true", help="also paper size")
    ap.add_argument("--rss", action="store_true", help="peak RSS of 10 s vs 60 s clips")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--clip", default=str(ASSETS / "video" / "liveportrait_s32.mp4"), help="a 720p clip with a face")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    n = args.frames or (12 if args.quick else 48)
    clip = Path(args.clip)
    if not clip.is_file():
        raise SystemExit(f"clip not found: {clip} (set --clip or VIDANIME_ASSETS)")
    rows = bench_stages(clip, n, "demo", args.device)
    if args.full:
        rows += bench_stages(clip, n, "paper", args.device)
    print_table(rows, ["model size", "stage", "at", "items/s"],
                title=f"translate by stage ({n} frames of {clip.name}, {args.device}; faces/s for model stages)")
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MiB")
    if args.rss:
        print_table(bench_rss(), ["clip", "peak RSS MiB", "seconds"], title="pipeline peak memory vs clip length")


if __name__ == "__main__":
    main()
