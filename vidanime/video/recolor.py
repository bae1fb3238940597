"""Region recolouring: the input face's hair and eye colours carried onto its translation (an addition to the paper).

The paper keeps colours through training only (L_cp, Eq. 4–5); the 64-px bundled model keeps them loosely (measured:
blond hair often comes out brown, dark hair red).  After decoding, :class:`RegionRecolor` parses the drawing with the
output domain's parser and, per region (hair; both eyes), moves the drawing's colours toward the input's in CIELAB
with a per-channel affine map that matches centre and spread (after Reinhard et al. 2001, per region):

    T(x) = (x − μ_out) · clip(σ_in / σ_out, ½, r_max) + m_in·(1, k, k)     per Lab channel, k = ``chroma``
    x'   = x + s · p(x) · (T(x) − x)                                   s = ``strength``, p = the region's probability

(m_in: the input region's median), so the drawing's own shading and lines stay (an affine map keeps the order of
lightness) and only the colour distribution moves.  r_max is 1 for lightness (2 for a/b): a larger lightness spread
would amplify the drawing's frame-to-frame changes (measured on ``liveportrait_d12``: warp error 7.3× the input's
against 6.2× without recolouring; 6.3× with the cap).  For video each track's map parameters are smoothed over
time (``smooth``, exponential), so a frame's parsing noise does not make the colour flicker; a new track starts from
its first frame's map.  Costs about 6 ms a face (batched, 2 CPU threads), most of it the drawing's parse at the
parser's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .. import labels as L
from ..errors import ConfigError, VidanimeError
from .track import forget_stale_tracks

__all__ = ["RecolorConfig", "RegionRecolor", "region_map", "apply_map", "REGIONS"]

_STATS_SIDE = 128  # input crops are brought to this side (area) before their region statistics are taken

# Region name → class names, looked up by name in each parsing map's own label set.
REGIONS: dict[str, tuple[str, ...]] = {"hair": ("hair",), "eyes": ("l_eye", "r_eye"), "skin": ("skin",)}


@dataclass
class RecolorConfig:
    """``strength`` s in [0, 1] (0 = off; the default 0.85 from ``report_demo --recolor``, README "Keeping the
    person"); ``regions`` recoloured (skin is left out: real skin tones on a drawing read as a photo — with skin at half
    strength beside hair and eyes, P(anime) fell from 0.80 to 0.69); ``min_fraction`` of the crop a region must cover
    in both images to be recoloured; ``feather``: blur of the region's probability as a fraction of the drawing's
    side; ``smooth`` in [0, 1): per-track exponential smoothing of the map over frames (0 = each frame its own);
    ``max_ratio``: the largest spread ratio σ_in / σ_out per Lab channel (see the module doc); ``chroma``: the
    target colour is the input's with its colourfulness (Lab a, b) scaled by this — drawn palettes are more
    saturated than photographs (README "Keeping the person": it buys back most of the anime look that matching the
    input's colour costs)."""

    strength: float = 0.85
    regions: tuple[str, ...] = ("hair", "eyes")
    min_fraction: float = 0.0005
    feather: float = 0.008
    smooth: float = 0.8
    max_ratio: tuple[float, float, float] = (1.0, 2.0, 2.0)
    chroma: float = 2.0

    def check(self) -> "RecolorConfig":
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"recolor strength={self.strength}: expected a number in [0, 1]")
        if not 0.5 <= self.chroma <= 3.0:
            raise ConfigError(f"recolor chroma={self.chroma}: expected a number in [0.5, 3]")
        if not 0.0 <= self.smooth < 1.0:
            raise ConfigError(f"recolor smooth={self.smooth}: expected a number in [0, 1)")
        bad = [r for r in self.regions if r not in REGIONS]
        if bad:
            raise ConfigError(f"recolor regions {bad}: expected some of {', '.join(REGIONS)}")
        return self


def _lab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB → float32 CIELAB (L 0..100, a/b about −128..127)."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def region_map(src_lab: np.ndarray, src_mask: np.ndarray, out_lab: np.ndarray, out_mask: np.ndarray,
               min_pixels: int, max_ratio: Sequence[float] = (1.0, 2.0, 2.0), chroma: float = 1.0) -> np.ndarray | None:
    """The map T of one region as a (3, 3) array (μ_out, ratio, target centre per Lab channel), from the region's
    pixels in the input (``src_lab`` (H, W, 3), ``src_mask`` (H, W) bool) and in the drawing; the target centre is the
    input's per-channel median (stray pixels the parser calls hair — a green screen between thin strands — do not move
    it as they move a mean) with its chroma (a, b) scaled by ``chroma``.  None when either image has fewer than
    ``min_pixels`` of the region."""
    if int(src_mask.sum()) < min_pixels or int(out_mask.sum()) < min_pixels:
        return None
    a, b = src_lab[src_mask], out_lab[out_mask]
    ratio = np.clip((a.std(0) + 1e-3) / (b.std(0) + 1e-3), 0.5, np.asarray(max_ratio, np.float32))
    target = np.median(a, 0) * np.array([1.0, chroma, chroma], np.float32)
    return np.stack([b.mean(0), ratio, target]).astype(np.float32)


def apply_map(out_lab: np.ndarray, weight: np.ndarray, m: np.ndarray) -> np.ndarray:
    """x + weight · (T(x) − x) on a Lab image (H, W, 3) with ``weight`` (H, W) in [0, 1] and the map ``m`` (3, 3)."""
    t = (out_lab - m[0]) * m[1] + m[2]
    return out_lab + weight[..., None] * (t - out_lab)


class RegionRecolor:
    """Carry each input face's region colours onto its drawing (see the module doc).

    ``parser``: the output domain's face parser (e.g. ``parser-anime`` for p2a); ``config``: :class:`RecolorConfig`.
    Call with the input crops, their parsing, the decoded drawings and the track ids; :meth:`reset` between clips."""

    def __init__(self, parser: torch.nn.Module, config: RecolorConfig | None = None) -> None:
        self.config = (config or RecolorConfig()).check()
        self.parser = parser.eval()
        self.parser_labels = parser.config.label_set
        self._state: dict[int, dict[str, np.ndarray]] = {}  # track -> region -> smoothed map

    def reset(self) -> None:
        """Forget every track."""
        self._state.clear()

    @torch.no_grad()
    def output_probs(self, outputs: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, C, M, M) of drawings (N, 3, M, M) in [−1, 1], parsed at the parser's own size (as
        the inputs are) and resized back to M, in the parser's label set."""
        from ..models.face_translator import parser_probs

        m = outputs.shape[-1]
        param = next(self.parser.parameters())
        probs = parser_probs(self.parser, ((outputs.float().clamp(-1, 1) + 1) / 2).to(param.device, param.dtype))
        if probs.shape[-1] != m:  # back to M by area (the mean probability over each drawing pixel)
            probs = F.adaptive_avg_pool2d(probs, (m, m))
        return probs.cpu().numpy()

    def __call__(self, inputs: np.ndarray, input_labels: np.ndarray, input_label_set: str, outputs: torch.Tensor,
                 track_ids: Sequence[int]) -> torch.Tensor:
        """Input crops (N, S, S, 3) uint8 RGB with their parsing (N, S, S) in ``input_label_set``, the drawings
        (N, 3, M, M) in [−1, 1] and the track ids → the recoloured drawings (N, 3, M, M) in [−1, 1], same dtype and
        device.  Regions missing from either image are left as drawn."""
        c = self.config
        n = len(outputs)
        if c.strength == 0 or n == 0:
            return outputs
        if len(inputs) != n or len(input_labels) != n or len(track_ids) != n:
            raise VidanimeError(f"recolor: {len(inputs)} inputs, {len(input_labels)} parsings and {len(track_ids)} "
                                f"track ids for {n} drawings")
        out_probs = self.output_probs(outputs)
        out_labels = out_probs.argmax(1)
        m = outputs.shape[-1]
        out_u8 = ((outputs.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        res = np.empty_like(out_u8)
        ids = {r: (L.class_ids(input_label_set, *REGIONS[r]), L.class_ids(self.parser_labels, *REGIONS[r]))
               for r in c.regions}  # region -> (input ids, drawing ids)
        for i in range(n):
            src, src_labels = inputs[i], np.asarray(input_labels[i])
            if src.shape[0] > _STATS_SIDE:  # region statistics need no full resolution (a 512-px crop: 4 ms saved)
                size = (_STATS_SIDE, _STATS_SIDE)
                src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
                src_labels = cv2.resize(src_labels.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            src_lab, out_lab = _lab(src), _lab(out_u8[i])
            state = self._state.setdefault(int(track_ids[i]), {})
            acc = out_lab.copy()
            for region, (src_ids, out_ids) in ids.items():
                src_mask = np.isin(src_labels, src_ids)
                out_mask = np.isin(out_labels[i], out_ids)
                new = region_map(src_lab, src_mask, out_lab, out_mask,
                                 max(4, round(c.min_fraction * out_mask.size)), c.max_ratio, c.chroma)
                if new is None:
                    continue
                prev = state.get(region)
                state[region] = new if prev is None else c.smooth * prev + (1 - c.smooth) * new
                # the region's probability, not its argmax: a soft edge does not flicker with the parsing's boundary
                weight = cv2.GaussianBlur(out_probs[i, out_ids].sum(0), (0, 0), max(c.feather * m, 0.3))
                acc = apply_map(acc, c.strength * weight, state[region])
            # the change in RGB added to the drawing, so pixels the map leaves alone stay bit-exact (no Lab round trip)
            delta = cv2.cvtColor(acc, cv2.COLOR_LAB2RGB) - cv2.cvtColor(out_lab, cv2.COLOR_LAB2RGB)
            res[i] = np.clip(np.rint(out_u8[i] + delta * 255.0), 0, 255).astype(np.uint8)
        forget_stale_tracks(track_ids, self._state)
        back = torch.from_numpy(res).permute(0, 3, 1, 2).float() / 127.5 - 1
        return back.to(outputs.device, outputs.dtype)
