"""Frame-interpolation jobs: one middle frame from two images, doubling a clip's frame rate, training and evaluation.

Pipelines only compose library parts (:mod:`interp`); the ``vidanime interp`` command only parses arguments.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import interp
from interp.train import InterpTrainConfig, evaluate_interpolators, load_datasets, train_ifnet
from pipelines.base import Pipeline
from vidanime.config import load_config
from vidanime.data.image_io import IMAGE_FORMATS, read_image_rgb
from vidanime.errors import MediaError, VidanimeError
from vidanime.fileio import atomic_path, check_not_same_file, check_output_path
from vidanime.train.run_dir import resolve_resume
from vidanime.video.io import VideoReader, VideoWriter, check_video_output

logger = logging.getLogger(__name__)

__all__ = ["read_image", "InterpImagePipeline", "InterpVideoPipeline", "train_pipeline", "eval_pipeline"]


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as (1, 3, H, W) float in [0, 1]."""
    arr = read_image_rgb(path, min_side=1)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float().div(255)


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return img[0].detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


@dataclass
class InterpImagePipeline(Pipeline):
    """``InterpImagePipeline(model)(a, b)`` -> the middle frame of two image files, written atomically."""

    model: Any

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu") -> "InterpImagePipeline":
        return cls(interp.load(name_or_path, device=device))

    def check_inputs(self, a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
        if a.shape != b.shape:
            raise VidanimeError(f"{names[0]} is {a.shape[-1]}x{a.shape[-2]} but {names[1]} is "
                                f"{b.shape[-1]}x{b.shape[-2]}; both frames must have the same size")

    @torch.no_grad()
    def __call__(self, a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike, t: float = 0.5) -> Path:
        for src in (a, b):
            check_not_same_file(src, out)
        if Path(out).suffix.lower() not in IMAGE_FORMATS:
            raise MediaError(f"output {out} is not an image file name: expected one of {', '.join(IMAGE_FORMATS)}")
        check_output_path(out, "output image")
        ia, ib = read_image(a), read_image(b)
        self.check_inputs(ia, ib, (str(a), str(b)))
        dev = next(iter(self.model.parameters()), torch.empty(0)).device
        mid = self.model(ia.to(dev), ib.to(dev), t)
        out = Path(out)
        with atomic_path(out) as tmp:
            fmt = IMAGE_FORMATS[out.suffix.lower()]
            Image.fromarray(_to_uint8(mid)).save(tmp, format=fmt)
        return out


@dataclass
class InterpVideoPipeline(Pipeline):
    """Double a clip's frame rate: between every two frames insert M's middle frame; the audio is kept."""

    model: Any
    crf: int = 18

    @torch.no_grad()
    def __call__(self, src: str | os.PathLike, dst: str | os.PathLike, max_frames: int = 0) -> dict:
        src, dst = Path(src), Path(dst)
        if not src.is_file():
            raise MediaError(f"video not found: {src}")
        check_not_same_file(src, dst)
        check_video_output(dst)
        dev = next(iter(self.model.parameters()), torch.empty(0)).device
        n_in = 0
        with VideoReader(src) as reader:
            fps = Fraction(reader.info.fps).limit_denominator(1_000_000)
            rate = fps * 2
            end = max_frames / float(fps) if max_frames else None
            with VideoWriter(dst, fps=rate, time_base=1 / rate, audio_from=src, audio_range=(None, end),
                             crf=self.crf) as writer:
                prev = None
                for frame in tqdm(reader, desc="interp video", disable=None, leave=False):
                    cur = torch.from_numpy(frame.image).permute(2, 0, 1)[None].float().div(255)
                    if prev is not None:
                        writer.write(_to_uint8(self.model(prev.to(dev), cur.to(dev))))
                    writer.write(frame.image)
                    prev, n_in = cur, n_in + 1
                    if max_frames and n_in >= max_frames:
                        break
                if n_in == 0:
                    raise MediaError(f"{src} has no video frames")
                n_out = writer.frames_written
        logger.debug("wrote %s: %d frames from %d at %s fps", dst, n_out, n_in, float(rate))
        return {"frames_in": n_in, "frames_out": n_out, "fps": float(rate), "path": str(dst)}


def train_pipeline(config: str | os.PathLike, overrides: dict | None = None, resume: str | None = None,
                   steps: int | None = None, budget: Any = None, device: str = "cpu") -> Any:
    """Train IFNet from a YAML config (``resume``: a train checkpoint, a run folder or ``auto``; ``budget``: a
    :class:`vidanime.train.harness.Budget`); returns the RunDir."""
    cfg = load_config(config, InterpTrainConfig, overrides or None)
    ckpt = resolve_resume(resume, cfg.out_dir, cfg.name) if resume else None
    return train_ifnet(cfg, resume=ckpt, steps=steps, budget=budget, device=device)


def eval_pipeline(models: list[str], config: str | os.PathLike, limit: int = 0, overrides: dict | None = None) -> dict:
    """PSNR/SSIM of each model (names or paths) and the two baselines on the config's held-out triplets."""
    cfg = load_config(config, InterpTrainConfig, overrides or None)
    _, heldout = load_datasets(cfg.data)
    loaded = {Path(m).name if os.sep in m or Path(m).suffix else m: interp.load(m) for m in models}
    return evaluate_interpolators(loaded, heldout, limit)
