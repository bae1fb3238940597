"""Frame triplets (i-g, i, i+g) from video clips, for training and evaluating interpolators.

Clips are decoded once and downscaled (longest side ``max_side``) into memory as uint8 arrays.  The last
``held_out_frac`` of every clip is held out: training triplets come from the first part, evaluation triplets from the
rest, and no training triplet touches a held-out frame.

A clip is either a video file (decoded with PyAV, imported only then) or a *frame folder*: a directory of frame images
(``000000.png``, ``000001.webp`` …, read in name order with OpenCV), as :func:`vidanime.data.pack.materialize` writes
from the training data pack, so training needs no video decoder.  A clip path that does not exist is replaced by the
folder of the same stem beside it when there is one (``video/liveportrait_d3.mp4`` → ``video/liveportrait_d3/``), so
the configs' ``assets/video/*.mp4`` entries resolve to the frame folders of a materialized pack once
``$VIDANIME_ASSETS`` points at it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from vidanime.errors import MediaError

logger = logging.getLogger(__name__)

__all__ = ["resolve_clip", "decode_clip", "TripletSet", "ASSETS_PREFIX", "FRAME_EXTS"]

ASSETS_PREFIX = "assets/"


FRAME_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # files read from a frame folder, in name order


def resolve_clip(path: str | os.PathLike) -> Path:
    """A clip path; ``assets/…`` is read from $VIDANIME_ASSETS or ../shared/assets beside the repository.

    When the path does not exist but a folder of the same stem does (``x/clip.mp4`` → ``x/clip/``), that frame folder
    is returned instead (see the module doc).
    """
    p = str(path)
    out = Path(p)
    if p.startswith(ASSETS_PREFIX) and not out.exists():
        root = Path(os.environ.get("VIDANIME_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))
        out = root / p[len(ASSETS_PREFIX):]
    if not out.exists() and out.suffix and out.with_suffix("").is_dir():
        return out.with_suffix("")
    return out


def _downscale(img: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W, 3) uint8 → the same, area-downscaled so the longest side is at most ``max_side`` (0 = unchanged)."""
    import cv2

    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w)) if max_side > 0 else 1.0
    if s < 1:
        img = cv2.resize(img, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    return img


def _read_frame_folder(folder: Path, max_side: int, max_frames: int) -> list[np.ndarray]:
    """Frames (H, W, 3) uint8 RGB of a frame folder, in file-name order, downscaled as in :func:`decode_clip`."""
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTS and p.is_file())
    if max_frames:
        files = files[:max_frames]
    frames: list[np.ndarray] = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MediaError(f"cannot read frame {f} (corrupt or unsupported image)")
        img = _downscale(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), max_side)
        if frames and img.shape != frames[0].shape:
            raise MediaError(f"frame {f} is {img.shape[1]}x{img.shape[0]}, the first frame of {folder} "
                             f"{frames[0].shape[1]}x{frames[0].shape[0]}: a frame folder needs one size")
        frames.append(img)
    return frames


def _decode_video(path: Path, max_side: int, max_frames: int) -> list[np.ndarray]:
    """Frames (H, W, 3) uint8 RGB of a video file, decoded with PyAV and downscaled as in :func:`decode_clip`."""
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                frames.append(_downscale(frame.to_ndarray(format="rgb24"), max_side))
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, IndexError) as exc:
        raise MediaError(f"cannot decode video {path}: {exc}") from None
    return frames


def decode_clip(path: str | os.PathLike, max_side: int = 256, max_frames: int = 0) -> np.ndarray:
    """All frames (N, H, W, 3) uint8 RGB of a clip (video file or frame folder, see :func:`resolve_clip`),
    downscaled with area filtering so the longest side is at most ``max_side`` (0 = full size); ``max_frames`` > 0
    keeps only the first that many."""
    path = resolve_clip(path)
    if path.is_dir():
        frames = _read_frame_folder(path, max_side, max_frames)
    elif path.is_file():
        frames = _decode_video(path, max_side, max_frames)
    else:
        raise MediaError(f"video not found: {path}")
    if len(frames) < 3:
        raise MediaError(f"{path} has {len(frames)} frames; a triplet needs at least 3")
    return np.stack(frames)


@dataclass
class TripletSet:
    """Decoded clips plus the (clip, centre, gap) triplets of one split ("train" or "heldout")."""

    clips: list[np.ndarray]
    triplets: list[tuple[int, int, int]]

    @classmethod
    def from_clips(cls, paths: Sequence[str | os.PathLike], split: str = "train", max_side: int = 256,
                   held_out_frac: float = 0.2, gaps: Sequence[int] = (1,), max_frames: int = 0,
                   decoded: list[np.ndarray] | None = None) -> "TripletSet":
        """Triplets of ``split`` from ``paths``; pass ``decoded`` to reuse clips decoded for the other split."""
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        clips = decoded if decoded is not None else [decode_clip(p, max_side, max_frames) for p in paths]
        triplets = []
        for ci, frames in enumerate(clips):
            n = len(frames)
            cut = int(round(n * (1 - held_out_frac)))
            for g in gaps:
                if split == "train":
                    triplets += [(ci, i, g) for i in range(g, cut - g)]
                else:
                    triplets += [(ci, i, g) for i in range(max(g, cut + g), n - g)]
        if not triplets:
            raise MediaError(f"no {split} triplets: clips too short for gaps {list(gaps)} "
                             f"and held_out_frac {held_out_frac}")
        logger.info("%s triplets: %d from %d clips", split, len(triplets), len(clips))
        return cls(clips, triplets)

    def __len__(self) -> int:
        return len(self.triplets)

    def triplet(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k-th triplet as three (H, W, 3) uint8 frames (previous, middle, next)."""
        ci, i, g = self.triplets[k]
        f = self.clips[ci]
        return f[i - g], f[i], f[i + g]

    def sample_batch(self, batch: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Random crops (B, 3, crop, crop) in [0, 1] of (img0, img1, gt), with random flips and time reversal."""
        outs: list[list[np.ndarray]] = [[], [], []]
        for _ in range(batch):
            a, gt, b = self.triplet(int(rng.integers(len(self))))
            h, w = gt.shape[:2]
            ch, cw = min(crop, h), min(crop, w)
            y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
            a, gt, b = (im[y:y + ch, x:x + cw] for im in (a, gt, b))
            if rng.random() < 0.5:
                a, gt, b = (im[:, ::-1] for im in (a, gt, b))
            if rng.random() < 0.5:
                a, b = b, a
            for lst, im in zip(outs, (a, b, gt)):
                lst.append(np.ascontiguousarray(im))
        return tuple(torch.from_numpy(np.stack(lst)).permute(0, 3, 1, 2).float().div(255) for lst in outs)

    def iter_full(self, limit: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Whole-frame triplets (img0, img1, gt), each (1, 3, H, W) in [0, 1]; ``limit`` > 0 spreads that many
        evenly."""
        idx = range(len(self))
        if limit and limit < len(self):
            idx = np.linspace(0, len(self) - 1, limit).round().astype(int)
        for k in idx:
            a, gt, b = self.triplet(int(k))
            yield tuple(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float().div(255)
                        for im in (a, b, gt))
