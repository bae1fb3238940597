"""Temporal stability of a translated video: warp error, flicker index, latent-code roughness.

All frame metrics compare the output video with the input it was made from, frame pair by frame pair (t, t+1), with
the motion taken from the **input** (OpenCV DIS optical flow on grey input frames, forward and backward):

* **warp error** (Lai et al. 2018): E_t = Σ_x M_t(x) ‖O_t(x) − O_{t+1}(x + f_t(x))‖² / Σ_x M_t(x), RGB in [0, 1],
  ‖·‖² summed over channels; the clip's value is the mean over pairs.  M masks out occlusions (forward-backward check:
  ‖f + f_b(x + f)‖² < 0.01 (‖f‖² + ‖f_b(x + f)‖²) + 0.5, Sundaram et al. 2010) and pixels that flow out of the frame.
  The same quantity of the input (``warp_error_input``) is the floor the flow itself allows.
* **flicker index**: in static regions (consistent flow with ‖f‖ < 0.5 px) the mean absolute frame difference of the
  output divided by that of the input, both over the whole clip: mean|O_{t+1} − O_t| / max(mean|I_{t+1} − I_t|, 1/255).
  1 ≈ the output changes where the input is still no more than the input does (sensor noise); above 1 = added flicker.
  The floor of one code value keeps perfectly still (synthetic) inputs from dividing by zero.
* **latent roughness**: mean over frames i and style layers of ‖(w[i+1] + w[i−1]) / 2 − w[i]‖₂ for a sequence of
  codes (T, ..., D) — 0 for codes moving linearly, large for codes that jitter.

Frames are (H, W, 3) uint8 RGB; with ``max_side`` both videos are downscaled (area) so the longer side is at most that
before any metric (flow on 1080p frames is slow and no more telling).
"""
from __future__ import annotations

import math
from functools import cached_property
from typing import Any, Iterable, Iterator, Sequence

import cv2
import numpy as np

from ..errors import VidanimeError
from ..video.motion import flow_maps

__all__ = [
    "dis_flow",
    "warp_backward",
    "FramePair",
    "frame_pairs",
    "prepare_frame",
    "warp_error_terms",
    "reduce_warp_error",
    "flicker_terms",
    "reduce_flicker",
    "warp_error",
    "flicker_index",
    "latent_roughness",
]

STATIC_FLOW_PX = 0.5
MIN_INPUT_DIFF = 1.0 / 255.0


def dis_flow(a: np.ndarray, b: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """Optical flow (H, W, 2) float32 from grey frame ``a`` to ``b`` (uint8 (H, W)): a(x) ≈ b(x + f(x))."""
    dis = cv2.DISOpticalFlow_create(preset)
    return dis.calc(a, b, None)


def warp_backward(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` at x + flow(x) (bilinear, edges replicated) → (warped image, (H, W) bool in-bounds mask)."""
    mx, my, inside = flow_maps(flow)
    return cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), inside


def prepare_frame(image: np.ndarray, max_side: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Check an (H, W, 3) uint8 frame and resize it (area) to ``size`` = (H, W) or so its longer side ≤ ``max_side``."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise VidanimeError(f"frames must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    if size is None and max_side and max(img.shape[:2]) > max_side:
        s = max_side / max(img.shape[:2])
        size = (max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s)))
    if size is not None and tuple(img.shape[:2]) != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


class FramePair:
    """Input frames t, t+1 and output frames t, t+1 (same size, uint8 RGB) with lazily computed, shared flow and
    masks."""

    def __init__(self, in0: np.ndarray, in1: np.ndarray, out0: np.ndarray, out1: np.ndarray):
        shapes = {in0.shape, in1.shape, out0.shape, out1.shape}
        if len(shapes) != 1:
            raise VidanimeError(f"frame pair holds frames of different sizes: {sorted(shapes)}")
        self.in0, self.in1, self.out0, self.out1 = in0, in1, out0, out1

    @cached_property
    def flow_fw(self) -> np.ndarray:
        return dis_flow(cv2.cvtColor(self.in0, cv2.COLOR_RGB2GRAY), cv2.cvtColor(self.in1, cv2.COLOR_RGB2GRAY))

    @cached_property
    def flow_bw(self) -> np.ndarray:
        return dis_flow(cv2.cvtColor(self.in1, cv2.COLOR_RGB2GRAY), cv2.cvtColor(self.in0, cv2.COLOR_RGB2GRAY))

    @cached_property
    def _bw_at_fw(self) -> tuple[np.ndarray, np.ndarray]:
        return warp_backward(self.flow_bw, self.flow_fw)

    @cached_property
    def valid(self) -> np.ndarray:
        """(H, W) bool: flow from t lands inside frame t+1 and passes the forward-backward check (not occluded)."""
        fb, inside = self._bw_at_fw
        f = self.flow_fw
        err = ((f + fb) ** 2).sum(-1)
        consistent = err < 0.01 * ((f ** 2).sum(-1) + (fb ** 2).sum(-1)) + 0.5
        return consistent & inside

    @cached_property
    def static(self) -> np.ndarray:
        """(H, W) bool: valid pixels whose input motion is under half a pixel."""
        return self.valid & (np.sqrt((self.flow_fw ** 2).sum(-1)) < STATIC_FLOW_PX)

    def warped(self, which: str) -> np.ndarray:
        """Frame t+1 of ``which`` ("in" | "out") warped back to t, float32 in [0, 1]."""
        img = self.in1 if which == "in" else self.out1
        return warp_backward(img.astype(np.float32) / 255.0, self.flow_fw)[0]


def frame_pairs(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], max_side: int | None = None
                ) -> Iterator[FramePair]:
    """Consecutive :class:`FramePair` s of two equally long frame streams (outputs resized to the inputs' size)."""
    prev = None
    for inp, out in zip(inputs, outputs):
        i = prepare_frame(inp, max_side)
        o = prepare_frame(out, size=i.shape[:2])
        if prev is not None:
            if prev[0].shape != i.shape:
                raise VidanimeError(f"input frames change size mid-stream: {prev[0].shape} then {i.shape}")
            yield FramePair(prev[0], i, prev[1], o)
        prev = (i, o)


def _masked_sq_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    n = int(mask.sum())
    return (float((((a - b) ** 2).sum(-1) * mask).sum()), n)


def warp_error_terms(pair: FramePair) -> dict[str, float]:
    """Per-pair warp error of the output and of the input (NaN when no pixel is valid) and the valid fraction."""
    mask = pair.valid
    out_s, n = _masked_sq_error(pair.out0.astype(np.float32) / 255.0, pair.warped("out"), mask)
    in_s, _ = _masked_sq_error(pair.in0.astype(np.float32) / 255.0, pair.warped("in"), mask)
    return {"out": out_s / n if n else math.nan, "in": in_s / n if n else math.nan, "valid": n / mask.size}


def reduce_warp_error(terms: Sequence[dict[str, float]]) -> dict[str, float]:
    """Clip warp error: mean of per-pair values (pairs without valid pixels left out)."""
    def mean(key: str) -> float:
        v = [t[key] for t in terms if not math.isnan(t[key])]
        return float(np.mean(v)) if v else math.nan

    return {"value": mean("out"), "input": mean("in"), "valid_fraction": mean("valid")}


def flicker_terms(pair: FramePair) -> dict[str, float]:
    """Sums of |ΔO| and |ΔI| (mean over RGB, [0, 1] units) over the pair's static pixels, and their count."""
    m = pair.static
    d_out = np.abs(pair.out1.astype(np.float32) - pair.out0.astype(np.float32)).mean(-1) / 255.0
    d_in = np.abs(pair.in1.astype(np.float32) - pair.in0.astype(np.float32)).mean(-1) / 255.0
    return {"out": float(d_out[m].sum()), "in": float(d_in[m].sum()), "n": float(m.sum()), "pixels": float(m.size)}


def reduce_flicker(terms: Sequence[dict[str, float]]) -> dict[str, float]:
    """Clip flicker index (see module doc) plus the mean static differences in code values (0..255)."""
    n = sum(t["n"] for t in terms)
    total = sum(t["pixels"] for t in terms)
    if n == 0:
        return {"value": math.nan, "output_diff": math.nan, "input_diff": math.nan, "static_fraction": 0.0}
    out = sum(t["out"] for t in terms) / n
    inp = sum(t["in"] for t in terms) / n
    return {"value": out / max(inp, MIN_INPUT_DIFF), "output_diff": 255 * out, "input_diff": 255 * inp,
            "static_fraction": n / total}


def warp_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], max_side: int | None = None
               ) -> dict[str, float]:
    """Warp error of an output clip against its input clip (lists or iterators of (H, W, 3) uint8 frames)."""
    terms = [warp_error_terms(p) for p in frame_pairs(inputs, outputs, max_side)]
    if not terms:
        raise VidanimeError("warp error needs at least 2 frames")
    return reduce_warp_error(terms)


def flicker_index(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], max_side: int | None = None
                  ) -> dict[str, float]:
    """Flicker index of an output clip against its input clip."""
    terms = [flicker_terms(p) for p in frame_pairs(inputs, outputs, max_side)]
    if not terms:
        raise VidanimeError("flicker index needs at least 2 frames")
    return reduce_flicker(terms)


def latent_roughness(w: Any) -> float:
    """Mean over i = 1..T−2 (and style layers) of ‖(w[i+1] + w[i−1]) / 2 − w[i]‖₂ for codes (T, D) or (T, L, D)."""
    arr = np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, dtype=np.float64)
    if arr.ndim < 2:
        raise VidanimeError(f"latent codes must be (T, D) or (T, L, D), got shape {arr.shape}")
    if arr.shape[0] < 3:
        raise VidanimeError(f"latent roughness needs at least 3 frames of codes, got {arr.shape[0]}")
    second = (arr[2:] + arr[:-2]) / 2 - arr[1:-1]
    return float(np.linalg.norm(second, axis=-1).mean())
