"""Flow-guided temporal blending of translated face crops (``translate --temporal flow``; an addition to the paper).

A translated face is drawn anew every frame, so it flickers where the input does not, most where the head turns out
of plane, which the 2D alignment cannot follow and latent filtering cannot undo.  Blind video temporal consistency
(Bonneel et al. 2015; Lai et al. 2018) carries the previous output along the input's motion and blends it into the
new one.  Here it runs per face track in the aligned crop space (the residual motion after alignment: expressions
and out-of-plane turns), before paste-back:

    f      = DIS flow from input crop t to input crop t−1 (grey, at ``flow_size`` px, upsampled)
    W(·)   = backward warp by f (bilinear)
    c(x)   = exp(−(|g∗I_t − g∗W(I_{t−1})|₁(x) / 3 / τ)²)  how well the flow explains the input there (0..1)
    O'_t   = O_t + β·c·(W(O'_{t−1}) − O_t)                 recurrent: O'_{t−1} is the previous blended crop
    O'_t  += (β_d − β)·c·(H(W(O'_{t−1})) − H(O_t))          the detail layer H(x) = x − h∗x carried with β_d

with g a Gaussian of ``gate_sigma``: the input is compared at about the scale the drawing can hold (a 64-px drawing
is one pixel in four of a 256-px crop), so hair strands or skin texture that the flow cannot follow exactly do not
veto carrying a drawing that has none of them.  Where the flow fails (occlusions, a mouth opening) c falls and the
new drawing shows through, so expressions still move; where it holds, the drawing follows the input's own motion
instead of re-drawing itself.  The paste mask (from each frame's parsing) is blended the same way, so the seam between
drawing and photo follows the face too.  Causal and per track; a track's first frame (and a scene cut, which starts
new tracks) is passed through.

The detail layer (what a Gaussian h of ``detail_sigma`` removes: lines, strands, speckle) is carried with a larger
weight β_d (``detail_beta``) than the shading and colours: a re-drawn drawing's frame-to-frame change is mostly
there, while an expression change (a mouth opening) shows in the coarse layer, where the new drawing still comes
through with β.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from .motion import flow_maps
from .track import forget_stale_tracks

__all__ = ["FlowBlendConfig", "CropFlowBlend"]


@dataclass
class FlowBlendConfig:
    """``beta``: the most of the carried-over previous output in a pixel (0 = off, < 1); ``tau``: the input's mean
    absolute error per channel (0..1) at which the flow is trusted to e^-1; ``flow_size``: side (px) the flow is
    computed at (crops are resized to it).  Defaults from ``bench_temporal --blends`` on the five talking-face clips
    (README, "Steady video"): 0.7 / 0.06 roughly halves the warp error of turning heads for 5-12 % of sharpness;
    0.8 / 0.08 is steadier still but visibly smears.  ``masks``: also blend the paste masks given to
    :meth:`CropFlowBlend.blend`.  ``gate_sigma``: σ (px of a 256-px crop, scaled with the crop) of the Gaussian the
    input is smoothed with before the trust c is measured (0 = pixel by pixel, the behaviour before 2026-12-03; 4
    lowered the warp error on all five clips by 2-12 % at the same mouth motion, README "Steady video").
    ``detail_beta`` / ``detail_sigma``: the weight of the detail layer (module doc; never below ``beta``: at or under
    it, one weight for all, the behaviour before 2026-12-03) and the σ (px of a 256-px crop) that separates it."""

    beta: float = 0.7
    tau: float = 0.06
    flow_size: int = 128
    masks: bool = True
    gate_sigma: float = 4.0
    detail_beta: float = 0.9
    detail_sigma: float = 2.0

    def check(self) -> "FlowBlendConfig":
        if not 0.0 <= self.beta < 1.0 or self.tau <= 0 or self.flow_size < 16 or self.gate_sigma < 0:
            raise ConfigError(f"flow blend beta={self.beta}, tau={self.tau}, flow_size={self.flow_size}, gate_sigma="
                              f"{self.gate_sigma}: expected 0 <= beta < 1, tau > 0, flow_size >= 16, gate_sigma >= 0")
        if not 0.0 <= self.detail_beta < 1.0 or self.detail_sigma <= 0:
            raise ConfigError(f"flow blend detail_beta={self.detail_beta}, detail_sigma={self.detail_sigma}: expected "
                              "0 <= detail_beta < 1 and detail_sigma > 0")
        return self


class CropFlowBlend:
    """Per-track state (previous input crop, previous blended output crop) and the blend of the module doc."""

    def __init__(self, config: FlowBlendConfig | None = None) -> None:
        self.config = (config or FlowBlendConfig()).check()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        # track -> (input crop, blended output crop, blended paste mask or None)
        self._state: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def reset(self) -> None:
        """Forget every track (call between clips)."""
        self._state.clear()

    def _flow(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """(S, S, 2) float32 flow with cur(x) ≈ prev(x + f(x)), computed on grey crops at ``flow_size``."""
        s, fs = cur.shape[0], self.config.flow_size
        a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (cur, prev))
        if fs != s:
            a, b = (cv2.resize(x, (fs, fs), interpolation=cv2.INTER_AREA) for x in (a, b))
        f = self._dis.calc(a, b, None)
        if fs != s:
            f = cv2.resize(f, (s, s), interpolation=cv2.INTER_LINEAR) * (s / fs)
        return f

    def _carry(self, inp: np.ndarray, prev_in: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampling maps (mx, my) (S, S) of the backward warp t−1 → t and the blend weight β·c (S, S, 1) float32."""
        mx, my, inside = flow_maps(self._flow(inp, prev_in))
        w_in = cv2.remap(prev_in, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cur, carried = inp.astype(np.float32), w_in.astype(np.float32)
        if self.config.gate_sigma > 0:  # compare at the drawing's scale (module doc)
            sigma = self.config.gate_sigma * inp.shape[0] / 256.0
            cur, carried = (cv2.GaussianBlur(x, (0, 0), sigma) for x in (cur, carried))
        err = np.abs(cur - carried).mean(-1) / 255.0
        a = self.config.beta * np.exp(-((err / self.config.tau) ** 2)) * inside
        return mx, my, cv2.GaussianBlur(a.astype(np.float32), (0, 0), 1.0)[..., None]

    def blend_one(self, inp: np.ndarray, out: np.ndarray, prev_in: np.ndarray, prev_out: np.ndarray,
                  mask: np.ndarray | None = None, prev_mask: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """One crop: input (S, S, 3) uint8 at t and t−1, output at t and the blended output at t−1 → (blended (S, S, 3)
        uint8, and with ``mask``/``prev_mask`` (S, S) float32 the paste mask blended the same way, else None)."""
        mx, my, a = self._carry(inp, prev_in)
        # bicubic for the carried drawing: repeated bilinear resampling of the recurrent output would blur it
        w_out = cv2.remap(prev_out, mx, my, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        carried, new = w_out.astype(np.float32), out.astype(np.float32)
        res = new + a * (carried - new)
        cfg = self.config
        if cfg.detail_beta > cfg.beta and cfg.beta > 0:  # the detail layer carried with more weight (module doc)
            s = cfg.detail_sigma * inp.shape[0] / 256.0
            detail = (carried - cv2.GaussianBlur(carried, (0, 0), s)) - (new - cv2.GaussianBlur(new, (0, 0), s))
            res += a * (cfg.detail_beta / cfg.beta - 1.0) * detail
        blended_mask = None
        if mask is not None and prev_mask is not None:
            w_mask = cv2.remap(prev_mask.astype(np.float32), mx, my, interpolation=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            blended_mask = np.clip(mask + a[..., 0] * (w_mask - mask), 0.0, 1.0).astype(np.float32)
        return np.clip(np.rint(res), 0, 255).astype(np.uint8), blended_mask

    def blend(self, inputs: np.ndarray, outputs: np.ndarray, track_ids: Sequence[int],
              masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Input crops (N, S, S, 3) uint8, their translations (N, S, S, 3) uint8, track ids in frame order (a track
        may appear several times: its crops are taken in order) and optionally the paste masks (N, S, S) float32 in
        [0, 1] → (blended translations, blended masks or None).  The masks follow the same flow and weights as the
        drawing, so the seam between drawing and photo moves with the face instead of re-deciding itself each frame."""
        if self.config.beta == 0 or len(outputs) == 0:
            return outputs, masks
        res = outputs.copy()
        res_m = None if masks is None else np.asarray(masks, np.float32).copy()
        carry_masks = res_m is not None and self.config.masks
        for i, tid in enumerate(track_ids):
            t = int(tid)
            prev = self._state.get(t)
            if prev is not None and prev[0].shape == inputs[i].shape:
                use_mask = carry_masks and prev[2] is not None
                res[i], m = self.blend_one(inputs[i], outputs[i], prev[0], prev[1],
                                           res_m[i] if use_mask else None, prev[2] if use_mask else None)
                if m is not None:
                    res_m[i] = m
            self._state[t] = (inputs[i].copy(), res[i].copy(), res_m[i].copy() if carry_masks else None)
        forget_stale_tracks(track_ids, self._state)
        return res, res_m

    def __call__(self, inputs: np.ndarray, outputs: np.ndarray, track_ids: Sequence[int]) -> np.ndarray:
        """:meth:`blend` without masks: the blended translations (N, S, S, 3) uint8."""
        return self.blend(inputs, outputs, track_ids)[0]
