"""Translate's model stages on one device with a trained model set, on 720p frames that need no video decoder.

    python -m bench.bench_gpu [--set OUT_OF_TRAIN_ALL] [--data PACK.pt|DIR] [--frames 64] [--device cuda]

For a bare GPU machine (no PyAV, no detector weights): frames are a clip's frames from the data pack (or the assets
folder), upscaled to 1280x720; the face box is fixed (the clip's face region), so detection and tracking are not timed
(``bench.bench_translate`` times them where PyAV and the detector exist).  Timed per face, batched as translate batches
them: crop + resize, parse (portrait parser), encode (E_p+E_s), FaceBank aggregation, generate, the default hair/eye
recolouring (anime parser on the drawing), paste back at 720p.  Models come from ``--set`` (a ``train-all --out``
folder: styleanime-p2a.pt, parser-portrait.pt, parser-anime.pt, each where the set has it) or the bundled ones.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import clock, print_table


def _frames(data: str | None, n: int) -> list[np.ndarray]:
    """``n`` RGB uint8 frames (720, 1280, 3) from a talking-face clip's frame folder (pack) or the assets clip."""
    import cv2

    from interp.data import decode_clip
    from vidanime.data.pack import default_assets_root

    root = Path(data) if data else default_assets_root()
    if root.is_file():  # a data pack: unpack once next to it
        from vidanime.data.pack import materialize

        dest = root.with_suffix("")
        materialize(root, dest)
        root = dest
    clip = decode_clip(root / "video" / "liveportrait_d3.mp4", max_side=0, max_frames=n)
    return [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in clip]


def _labels(parser, crops: torch.Tensor, size: int) -> torch.Tensor:
    """Parsing labels (B, size, size) int64 of (B, 3, H, W) crops in [0, 1], as translate feeds the encoders."""
    import torch.nn.functional as F

    p = parser.config.image_size
    logits = parser(F.interpolate(crops, size=(p, p), mode="bilinear", antialias=True)).float()
    return F.interpolate(torch.softmax(logits, 1), size=(size, size), mode="bilinear").argmax(1)


def _finetune_speed(model, parser, crops: list[np.ndarray], matrix: np.ndarray, dev: torch.device, iterations: int,
                    interp_name: str, batch: int = 4) -> tuple[float, str]:
    """Iterations/s of the per-clip fine-tune (L_lcsc + L_fic with M = ``interp_name``, no L_base: its target-domain
    data is not on a bare GPU machine) on one track of fixed-box ``crops`` (T, S, S, 3) uint8, after 3 warm-up steps;
    returns (it/s, the interpolator used)."""
    import copy

    from interp import load as load_interp
    from vidanime.errors import VidanimeError
    from vidanime.train import finetune as ftm

    s = model.image_size
    labels = []
    with torch.no_grad():
        for i in range(0, len(crops), 16):
            x = torch.from_numpy(np.stack(crops[i:i + 16])).to(dev).permute(0, 3, 1, 2).float().div(255)
            labels += list(_labels(parser, x, s).to(torch.uint8).cpu())
    track = ftm.TrackFrames(0, frames=list(range(len(crops))), matrices=[matrix] * len(crops), labels=labels,
                            crops=list(crops))
    triplets = ftm.ClipTriplets("bench-clip", [track], crop_size=crops[0].shape[0], image_size=s,
                                n_frames=len(crops), fps=25.0)
    try:
        interp = load_interp(interp_name, device=dev)
    except (VidanimeError, OSError, ImportError) as exc:  # fall back to the classical M, saying why
        print(f"fine-tune: interpolator {interp_name} not loadable ({exc}); using classical")
        interp_name, interp = "classical", load_interp("classical", device=dev)
    options = ftm.FinetuneOptions(iterations=iterations, batch=batch, device=str(dev), progress=False)
    cfg = ftm.FinetuneConfig(train=options, base=ftm.BaseLossConfig(enabled=False))
    ft = ftm.ClipFinetuner(cfg, copy.deepcopy(model), triplets, interp=interp, device=dev)
    for _ in range(3):
        ft.train_step()
    sync = dev.type == "cuda"
    t, _ = clock(lambda: [ft.train_step() for _ in range(iterations)], sync)
    return iterations / t, interp_name


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default=None, help="train-all output folder (default: the bundled models)")
    ap.add_argument("--data", default=None, help="data pack or assets folder")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--half", action="store_true", help="float16 model stages on CUDA")
    ap.add_argument("--finetune", type=int, default=0, metavar="N",
                    help="also time N per-clip fine-tune iterations (batch 4 triplets, L_lcsc + L_fic, no L_base) "
                         "and extrapolate the paper's 5,000")
    args = ap.parse_args(argv)

    import torch.nn.functional as F

    from vidanime.models.facebank import FaceBank
    from vidanime.registry import load_model
    from vidanime.video.paste import PasteItem, paste_faces
    from vidanime.video.recolor import RegionRecolor

    dev = torch.device(args.device)
    sync = dev.type == "cuda"

    def src(name: str) -> str:  # the set's file when it has one (a refresh set exports only styleanime-p2a)
        path = Path(args.set) / f"{name}.pt" if args.set else None
        return str(path) if path is not None and path.is_file() else name

    model = load_model(src("styleanime-p2a"), device=dev).eval()
    parser = load_model(src("parser-portrait"), device=dev).eval()
    bank: FaceBank | None = getattr(model, "facebank", None)
    recolor = RegionRecolor(load_model(src("parser-anime"), device=dev).eval())  # translate's default --recolor
    frames = _frames(args.data, args.frames)
    # The clip's face sits in the middle of the 256-px frame: a fixed square box, mapped to the 720p frame.
    box = 512
    x0, y0 = (1280 - box) // 2, (720 - box) // 2
    matrix = np.array([[1.0, 0, -x0], [0, 1.0, -y0]], dtype=np.float32)  # frame -> crop (similarity, scale 1)
    p, s = parser.config.image_size, model.image_size
    half = args.half and sync
    if args.half and not sync:
        print("--half needs CUDA: timing float32 on", dev)

    def amp():  # float16 autocast around the model stages (parse, encode, FaceBank, generate) when --half
        return torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext()

    def model_out(crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (B, s, s) and drawings (B, 3, s, s) in [-1, 1] of (B, 3, box, box) crops in [0, 1], untimed."""
        lab = _labels(parser, crops, s)
        w = model.encode(F.interpolate(crops, size=(s, s), mode="bilinear", antialias=True) * 2 - 1, lab)
        if bank is not None:
            w = bank.to(dev).aggregate(w.float(), 0.7, k=10)
        return lab, model.decode(w).float()

    with torch.no_grad():
        first = torch.from_numpy(np.stack([f[y0:y0 + box, x0:x0 + box] for f in frames[:args.batch]]))
        first = first.to(dev).permute(0, 3, 1, 2).float().div(255)
        with amp():
            model_out(first)  # warm-up (CUDA context, cuDNN autotuning): not timed
    if half:  # fp16 against fp32 on the first batch: the same labels and nearly the same drawing?
        with torch.no_grad():
            lab32, out32 = model_out(first)
            with amp():
                lab16, out16 = model_out(first)
            diff = (out16 - out32).abs()
            mse = diff.pow(2).mean().clamp_min(1e-12)
            psnr = 10 * torch.log10(4.0 / mse)  # range [-1, 1]: peak-to-peak 2
            print(f"fp16 vs fp32 on {len(first)} faces: labels agree {(lab16 == lab32).float().mean().item():.4f}, "
                  f"drawing max |diff| {diff.max().item():.4f}, mean |diff| {diff.mean().item():.5f} "
                  f"(range [-1, 1]), PSNR {psnr.item():.1f} dB")
    totals = dict.fromkeys(["crop", "parse", "encode", "facebank", "generate", "recolor", "paste"], 0.0)
    n = 0
    with torch.no_grad(), amp():
        for start in range(0, len(frames), args.batch):
            chunk = frames[start:start + args.batch]
            t, crops = clock(lambda: torch.from_numpy(np.stack([f[y0:y0 + box, x0:x0 + box] for f in chunk]))
                              .to(dev).permute(0, 3, 1, 2).float().div(255), sync)
            totals["crop"] += t
            xp = F.interpolate(crops, size=(p, p), mode="bilinear", antialias=True)
            t, logits = clock(lambda: parser(xp), sync)
            totals["parse"] += t
            lab = F.interpolate(torch.softmax(logits, 1), size=(s, s), mode="bilinear").argmax(1)
            xm = F.interpolate(crops, size=(s, s), mode="bilinear", antialias=True) * 2 - 1
            t, w = clock(lambda: model.encode(xm, lab), sync)
            totals["encode"] += t
            if bank is not None:
                t, w = clock(lambda: bank.to(dev).aggregate(w.float(), 0.7, k=10), sync)
                totals["facebank"] += t
            t, out = clock(lambda: model.decode(w).float(), sync)
            totals["generate"] += t
            crops_u8 = (crops * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            t, out = clock(lambda: recolor(crops_u8, lab.byte().cpu().numpy().repeat(box // s, 1).repeat(box // s, 2),
                                           parser.config.label_set, out.float(), list(range(len(chunk)))), sync)
            totals["recolor"] += t
            out_u8 = ((F.interpolate(out, size=(box, box), mode="bilinear").clamp(-1, 1) + 1) * 127.5).byte()
            out_np = out_u8.permute(0, 2, 3, 1).cpu().numpy()
            t0 = time.perf_counter()
            for f, o in zip(chunk, out_np):
                paste_faces(f, [PasteItem(o, matrix, None, 1.0)])
            totals["paste"] += time.perf_counter() - t0
            n += len(chunk)
    name = torch.cuda.get_device_name(dev) if sync else "CPU"
    rows = [[k, f"{n / v:.1f}" if v > 0 else "-", f"{1000 * v / n:.2f}"] for k, v in totals.items()]
    rows.append(["sum of model stages", f"{n / sum(totals.values()):.1f}", f"{1000 * sum(totals.values()) / n:.2f}"])
    print_table(rows, ["stage", "faces/s", "ms/face"],
                title=f"translate model stages on {name}: {n} frames at 1280x720, one face, batch {args.batch}, "
                      f"{model.image_size}-px model from {args.set or 'the bundled set'}, "
                      f"{'float16' if half else 'float32'}")
    if args.finetune > 0:
        crops = [f[y0:y0 + box, x0:x0 + box] for f in frames]
        its, used = _finetune_speed(model, parser, crops, matrix, dev, args.finetune, src("ifnet-demo"))
        print(f"per-clip fine-tune on {name}: {its:.2f} it/s over {args.finetune} iterations (batch 4 triplets, "
              f"M = {Path(used).name}, no L_base); the paper's 5,000 iterations: {5000 / its / 60:.1f} min")


if __name__ == "__main__":
    main()
