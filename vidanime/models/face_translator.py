"""Aligned face crops → translated crops + paste masks: parser, StyleAnime encoders, FaceBank, frozen generator.

This is the model step of the video data flow (faces → latents → frames).  A face translator takes a batch of aligned
crops (N, S, S, 3) uint8 RGB with their track ids and returns :class:`TranslatedFaces`: the translated crops at the
same size, a feathered paste mask per crop, the parsing of each input crop and the W+ codes.

* :class:`StyleAnimeFaceTranslator` — the method: parse the crop (per-pixel class probabilities, smoothed over the
  previous frames of the same track so the structure codes do not flicker), encode with E_p/E_s, aggregate with the
  FaceBank (α), decode with the generator's fixed noise, resize back to S (doubled first by a learned upscaler when
  one is given).
* :class:`IdentityFaceTranslator` — passes crops through unchanged (ellipse masks): the face pipeline without a model,
  used when no model is available and in tests of detection/alignment/paste-back.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import labels as L
from ..errors import VidanimeError
from ..video.grey import GREY_TOLERANCE, grey_like
from ..video.track import forget_stale_tracks

logger = logging.getLogger(__name__)

__all__ = ["TranslatedFaces", "FaceTranslator", "IdentityFaceTranslator", "StyleAnimeFaceTranslator", "parser_probs",
           "labels_at", "fill_background", "resolve_background_fill", "ANIME_BACKGROUND"]

#: Mean RGB in [0, 1] of the pixels the anime parser calls background in 300 shipped anime faces (250, 250, 248 of
#: 255): anime face crops are drawn on near-white paper.
ANIME_BACKGROUND = (250.0 / 255, 249.5 / 255, 248.4 / 255)


def parser_probs(parser: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, C, P, P) of RGB ``images`` (N, 3, H, W) in [0, 1], parsed at the parser's own size P
    (antialiased resize first): a parser trained at 256 px labels a 64-px face badly, so never parse at model size."""
    p = parser.config.image_size
    if tuple(images.shape[-2:]) != (p, p):
        images = F.interpolate(images, size=(p, p), mode="bilinear", antialias=True, align_corners=False)
    return torch.softmax(parser(images).float(), dim=1)


def labels_at(probs: torch.Tensor, size: int, parser_labels: str, model_labels: str) -> torch.Tensor:
    """Probabilities (N, C, P, P) → labels (N, size, size) in ``model_labels``: the probabilities are resized, then
    the argmax taken (labels themselves are never interpolated)."""
    if probs.shape[-1] != size:
        probs = F.interpolate(probs, size=(size, size), mode="bilinear", align_corners=False)
    return L.remap(probs.argmax(1), parser_labels, model_labels)


def fill_background(images: torch.Tensor, labels: torch.Tensor, label_set: str, strength: float,
                    colour: Sequence[float] = ANIME_BACKGROUND) -> torch.Tensor:
    """Images (N, 3, M, M) in [-1, 1] with the pixels that ``labels`` (N, M, M, in ``label_set``) call background
    moved ``strength`` (0 = unchanged, 1 = replaced) of the way to ``colour`` (RGB in [0, 1]).  What E_s is fed when
    a checkpoint sets ``inference["background_fill"]``: the room behind a portrait is not part of the person, and an
    encoder that carries it into the drawing turns a dark background into a muddy face (an addition to the paper)."""
    if not 0.0 <= float(strength) <= 1.0:
        raise VidanimeError(f"background_fill={strength}: expected a number in [0, 1]")
    if strength == 0:
        return images
    bg = (labels == L.LABEL_SETS[label_set].index("background")).unsqueeze(1).to(images.dtype) * float(strength)
    c = torch.tensor(colour, dtype=images.dtype, device=images.device).view(1, 3, 1, 1) * 2 - 1
    return images * (1 - bg) + c * bg


def resolve_background_fill(model: Any, value: float | None = None) -> float:
    """The background fill to use: ``value``, or when None the checkpoint's ``inference["background_fill"]`` (else 0);
    either checked to be a number in [0, 1] (a one-line error names a bad one)."""
    if value is None:
        value = (getattr(model, "inference", None) or {}).get("background_fill", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise VidanimeError(f"background_fill={value!r}: expected a number in [0, 1]")
    return float(value)


@dataclass
class TranslatedFaces:
    """Result for N crops: ``crops`` (N, S, S, 3) uint8, ``masks`` (N, S, S) float32 in [0, 1], ``parsing``
    (N, S, S) uint8 labels of the input crops in ``label_set`` (None without a parser), ``latents`` (N, L, D) or
    None."""

    crops: np.ndarray
    masks: np.ndarray
    parsing: np.ndarray | None = None
    label_set: str = "bisenet"
    latents: torch.Tensor | None = None


class FaceTranslator(Protocol):
    """Anything that maps aligned crops of known tracks to translated crops."""

    def __call__(self, crops: np.ndarray, track_ids: Sequence[int]) -> TranslatedFaces: ...

    def reset(self, fps: float | None = None) -> None: ...


def _check_crops(crops: np.ndarray) -> np.ndarray:
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2] or crops.dtype != np.uint8:
        raise VidanimeError(f"crops must be (N, S, S, 3) uint8, got {crops.shape} {crops.dtype}")
    return crops


class IdentityFaceTranslator:
    """Returns the crops unchanged with feathered ellipse masks (no model)."""

    def __call__(self, crops: np.ndarray, track_ids: Sequence[int]) -> TranslatedFaces:
        from ..video.paste import ellipse_mask

        crops = _check_crops(crops)
        n, s = crops.shape[:2]
        mask = ellipse_mask(s)
        return TranslatedFaces(crops=crops.copy(), masks=np.broadcast_to(mask, (n, s, s)).copy())

    def reset(self, fps: float | None = None) -> None:
        """No state."""


class StyleAnimeFaceTranslator:
    """Parser + StyleAnime (+ FaceBank) on aligned crops; see the module docstring.

    ``parser`` maps (B, 3, P, P) RGB in [0, 1] to class logits (B, C, P, P) with ``config.label_set`` and
    ``config.image_size`` (a :mod:`vidanime.models.parser` module).  ``alpha`` is the FaceBank blend of Eq. 14
    (1 = no FaceBank).  ``parsing_smooth`` = number of previous frames of the same track whose class probabilities are
    averaged with the current one (0 = off); it is causal, so streaming stays streaming.

    ``refiner`` (a :class:`vidanime.train.refine.LatentRefiner`, with ``refine`` > 0 steps): test-time refinement on
    per-track keyframes (a track's first frame, then every ``refine_every``-th).  A keyframe's correction
    Δ = w_refined − w_encoder is carried to the frames after it, eased in (each frame moves the applied correction
    by ``1 / refine_ease`` of the way to the newest keyframe's Δ) so it never jumps; causal, like the rest.

    ``latent_filter`` (a :class:`vidanime.video.smooth.LatentFilter`): each track's final codes are filtered over time
    (One-Euro, causal) before decoding, to steady the video (``translate --temporal filter``).  ``facebank``: a
    :class:`~vidanime.models.facebank.FaceBank` used instead of the model's own.  ``crop_blend`` (a
    :class:`vidanime.video.deflicker.CropFlowBlend`): each track's translated crops and paste masks are blended with
    the previous ones carried along the input's motion (``translate --temporal flow``).  ``recolor`` (a
    :class:`vidanime.video.recolor.RegionRecolor`): the input's hair and eye colours are carried onto each drawing
    before it is resized and blended (``--recolor``).  ``upscaler`` (a :class:`vidanime.models.upscaler.Upscaler`):
    each drawing smaller than the crop is enlarged by it before the resize to the crop (``--upscaler``).
    ``background_fill`` (None = the checkpoint's ``inference["background_fill"]``, else 0): how far the crop's
    background is moved to anime paper white before E_s sees it (:func:`fill_background`).
    """

    def __init__(
        self,
        model: Any,
        parser: torch.nn.Module,
        alpha: float | None = None,
        k: int | None = None,
        device: Any = "cpu",
        parsing_smooth: int = 2,
        fp16: bool = False,
        refiner: Any = None,
        refine: int = 0,
        refine_every: int = 8,
        refine_ease: float = 4.0,
        latent_filter: Any = None,
        facebank: Any = None,
        crop_blend: Any = None,
        recolor: Any = None,
        upscaler: Any = None,
        background_fill: float | None = None,
    ) -> None:
        self.device = torch.device(device)
        if fp16 and self.device.type != "cuda":
            raise VidanimeError("fp16 needs a CUDA device; on CPU use fp32 (the default)")
        self.dtype = torch.float16 if fp16 else torch.float32
        self.model = model.to(self.device).eval()
        self.parser = parser.to(self.device).eval()
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise VidanimeError(f"alpha={alpha}: expected a number in [0, 1]")
        self.alpha = alpha
        self.k = None if k is None else int(k)  # None: the model's saved k (else 10)
        self.facebank = facebank  # a FaceBank to use instead of the model's own (None: the model's)
        if parsing_smooth < 0:
            raise VidanimeError(f"parsing_smooth={parsing_smooth}: expected >= 0 frames")
        self.parsing_smooth = int(parsing_smooth)
        self.parser_labels = parser.config.label_set
        self.model_labels = model.config.label_set
        L.remap_table(self.parser_labels, self.model_labels)  # fails early on incompatible label orders
        self._history: dict[int, deque] = {}
        if refine < 0 or refine_every < 1 or refine_ease < 1:
            raise VidanimeError(f"refine={refine}, refine_every={refine_every}, refine_ease={refine_ease}: expected "
                                ">= 0 steps, a keyframe interval >= 1 and an easing >= 1 frame")
        if refine > 0 and refiner is None:
            raise VidanimeError(f"refine={refine} needs a refiner (an output-domain parser)")
        self.refiner, self.refine = refiner, int(refine)
        self.refine_every, self.refine_ease = int(refine_every), float(refine_ease)
        self._frames: dict[int, int] = {}  # frames seen per track
        self._delta_key: dict[int, torch.Tensor] = {}  # newest keyframe correction per track
        self._delta: dict[int, torch.Tensor] = {}  # correction applied to the last frame per track
        self.latent_filter = latent_filter  # a vidanime.video.smooth.LatentFilter (or None: codes unfiltered)
        self.crop_blend = crop_blend  # a vidanime.video.deflicker.CropFlowBlend (or None: crops not blended)
        self.recolor = recolor  # a vidanime.video.recolor.RegionRecolor (or None: the drawing's own colours)
        self.upscaler = None if upscaler is None else upscaler.to(self.device).eval()
        self.background_fill = resolve_background_fill(model, background_fill)  # None: the checkpoint's default

    def reset(self, fps: float | None = None) -> None:
        """Forget the per-track parsing history, refinement corrections and code filters (call between clips, with
        the new clip's ``fps`` for the latent filter)."""
        self._history.clear()
        self._frames.clear()
        self._delta_key.clear()
        self._delta.clear()
        if self.latent_filter is not None:
            self.latent_filter.reset(fps)
        if self.crop_blend is not None:
            self.crop_blend.reset()
        if self.recolor is not None:
            self.recolor.reset()

    @torch.no_grad()
    def upscale(self, out: torch.Tensor, s: int) -> torch.Tensor:
        """Drawings (N, 3, M, M) in [-1, 1] → (N, 3, s, s): through the learned upscaler while it enlarges (M < s),
        then a bilinear resize to s (antialiased when shrinking)."""
        if self.upscaler is not None and out.shape[-1] < s:
            out = self.upscaler.enlarge(out)
        if out.shape[-1] != s:
            out = F.interpolate(out, size=(s, s), mode="bilinear", antialias=out.shape[-1] > s, align_corners=False)
        return out

    def _refined(self, w: torch.Tensor, xm: torch.Tensor, lab_m: torch.Tensor,
                 track_ids: Sequence[int]) -> torch.Tensor:
        """Codes with each track's eased keyframe correction added (keyframes are refined here, in one batch)."""
        keys = []
        for i, tid in enumerate(track_ids):
            t = int(tid)
            if self._frames.get(t, 0) % self.refine_every == 0:
                keys.append(i)
            self._frames[t] = self._frames.get(t, 0) + 1
        if keys:
            idx = torch.tensor(keys, device=w.device)
            w_key = self.refiner(w[idx].float(), xm[idx], lab_m[idx], steps=self.refine)
            for j, i in enumerate(keys):
                self._delta_key[int(track_ids[i])] = (w_key[j] - w[i].float()).detach()
        out = w.float().clone()
        for i, tid in enumerate(track_ids):
            t = int(tid)
            target = self._delta_key[t]
            prev = self._delta.get(t)
            d = target if prev is None else prev + (target - prev) / self.refine_ease
            self._delta[t] = d
            out[i] += d
        forget_stale_tracks(track_ids, self._frames, self._delta_key, self._delta)
        return out

    def _smooth(self, probs: torch.Tensor, track_ids: Sequence[int]) -> torch.Tensor:
        if self.parsing_smooth <= 0:
            return probs
        out = torch.empty_like(probs)
        for i, tid in enumerate(track_ids):
            hist = self._history.setdefault(int(tid), deque(maxlen=self.parsing_smooth))
            out[i] = torch.stack([*hist, probs[i]]).mean(0)
            hist.append(probs[i])
        # A tighter bound than video.track.forget_stale_tracks (64 tracks) on purpose: each entry holds full-size
        # parser probabilities (19 x 256 x 256 float32 = 5 MB, so 10 MB per track at parsing_smooth 2) where the
        # other per-track stores hold 256-px uint8 crops.  On the 7-face crowd clip (10 tracks) neither bound is hit.
        live = set(int(t) for t in track_ids)
        if len(self._history) > 4 * max(1, len(live)) + 16:  # drop tracks not seen for a while (bounded memory)
            for tid in [t for t in self._history if t not in live]:
                del self._history[tid]
        return out

    @torch.no_grad()
    def model_inputs(self, crops: np.ndarray,
                     track_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the model is fed for aligned crops (N, S, S, 3) uint8 of ``track_ids`` (updates the parsing history):
        image (N, 3, M, M) in [-1, 1] (antialiased resize to the model size M), labels (N, M, M) in the model's label
        set (argmax of the smoothed parser probabilities resized to M), and those probabilities (N, C, P, P); the
        image's background filled as :attr:`background_fill` says."""
        crops = _check_crops(crops)
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div(255.0)  # (N, 3, S, S) in [0, 1]
        probs = self._smooth(parser_probs(self.parser, x), track_ids)  # (N, C, P, P)
        size = self.model.image_size
        lab_m = labels_at(probs, size, self.parser_labels, self.model_labels)
        xm = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False) * 2 - 1
        xm = fill_background(xm, lab_m, self.model_labels, self.background_fill)
        return xm, lab_m, probs

    @torch.no_grad()
    def __call__(self, crops: np.ndarray, track_ids: Sequence[int]) -> TranslatedFaces:
        from ..video.paste import parsing_mask

        crops = _check_crops(crops)
        if len(track_ids) != len(crops):
            raise VidanimeError(f"{len(track_ids)} track ids for {len(crops)} crops")
        n, s = crops.shape[:2]
        if n == 0:
            empty = np.zeros((0, s, s), np.float32)
            return TranslatedFaces(crops=crops.copy(), masks=empty, parsing=empty.astype(np.uint8),
                                   label_set=self.parser_labels)
        xm, lab_m, probs = self.model_inputs(crops, track_ids)
        p = probs.shape[-1]
        half = self.dtype == torch.float16
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=half):
            w = self.model.aggregate(self.model.encode(xm, lab_m), self.alpha, k=self.k, facebank=self.facebank)
        if self.refine > 0:  # test-time refinement of the keyframes (float32), before the one decode
            w = self._refined(w, xm, lab_m, track_ids)
        if self.latent_filter is not None:  # causal per-track filtering of the codes over time (--temporal filter)
            w = self.latent_filter(w, list(track_ids))
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=half):
            out = self.model.decode(w)
        probs_s = F.interpolate(probs, size=(s, s), mode="bilinear", align_corners=False) if p != s else probs
        lab_s = probs_s.argmax(1).byte().cpu().numpy()  # labels are never interpolated: probabilities are
        if self.recolor is not None:  # the input's hair and eye colours onto the drawing (--recolor)
            out = self.recolor(crops, lab_s, self.parser_labels, out.float(), list(track_ids))
        out = self.upscale(out.float(), s)
        out_u8 = ((out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        for i, crop in enumerate(crops):  # a black-and-white face (an old film) gets a black-and-white drawing
            out_u8[i] = grey_like(crop, out_u8[i], GREY_TOLERANCE)
        masks = np.stack([parsing_mask(lab, self.parser_labels) for lab in lab_s])
        if self.crop_blend is not None:  # per-track flow-guided blending with the previous output (--temporal flow)
            out_u8, masks = self.crop_blend.blend(crops, out_u8, list(track_ids), masks)
        return TranslatedFaces(crops=out_u8, masks=masks, parsing=lab_s, label_set=self.parser_labels,
                               latents=w.float().cpu())
