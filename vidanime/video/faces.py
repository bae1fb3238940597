"""Faces in a video stream: detection → tracking → temporal landmark smoothing → alignment, per frame.

:class:`FaceProcessor` consumes frames (H, W, 3) uint8 RGB one by one (any iterable, e.g. a decoder) and yields, per
frame and in order, a :class:`FrameFaces` holding every aligned face of that frame: its track id, the S x S crop, the
frame→crop similarity matrix and its inverse, and a fade weight for paste-back.  Frames with no face come out with an
empty list.

Streaming and latency: output for frame t is produced once frame t + ``latency`` has been tracked, where
``latency = max(smoothing look-ahead, min_track_frames - 1, fade_frames + max_misses + 1)`` frames (12 with the
defaults: 0.48 s at 25 fps) — the look-ahead is what lets the centred smoothing window, the gap interpolation and the
fade-out see the near future.  Detection runs in batches of ``detect_batch`` frames, so at most
``latency + detect_batch`` frames are held in memory.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from ..errors import ConfigError
from .align import BORDERS, apply_affine, estimate_similarity, valid_mask, warp_face
from .detect import DETECTORS, Detection, FaceDetector, check_frames, create_detector, default_detector
from .motion import face_motion, to_gray
from .paste import fade_weight
from .smooth import OneEuroFilter, SmoothConfig, face_scale, local_poly_smooth, motion_compensated_smooth
from .track import FaceTrackerState, SceneCutDetector, Track, TrackerConfig

__all__ = ["FaceConfig", "AlignedFace", "FrameFaces", "FaceProcessor"]

logger = logging.getLogger(__name__)


@dataclass
class FaceConfig:
    """Face pipeline options.  ``detector``: mtcnn|retinaface|yunet|animecascade|animeparser|haar
    (``detector_weights`` for all but mtcnn, animeparser and haar; None: :func:`~vidanime.video.detect.default_detector`
    for real faces, i.e. mtcnn, or haar when facenet-pytorch is missing); detection runs on frames downscaled to
    ``detect_max_side`` px; faces under ``min_face`` px are skipped; crops are ``crop_size``² (FFHQ-style template,
    ``zoom`` > 1 = tighter), padded by ``border`` outside the frame; tracks shorter than ``min_track_frames`` are
    dropped (false positives); faces fade over ``fade_frames``.  ``detect_every`` = k > 1 runs the detector on every
    k-th frame only: between them each face follows its tracked motion (:mod:`vidanime.video.motion`), and a frame
    where a face's motion is lost, or a scene cut, is detected after all."""

    detector: str | None = None
    detector_weights: str | None = None
    score_threshold: float | None = None  # None: the detector's own default (0.9 for the face detectors)
    min_face: int = 32
    detect_max_side: int = 640
    detect_batch: int = 8
    detect_every: int = 3
    device: str = "cpu"
    crop_size: int = 256
    zoom: float = 1.0
    border: str = "reflect"
    fade_frames: int = 4
    min_track_frames: int = 3
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def check(self) -> "FaceConfig":
        if self.detector is not None and self.detector not in DETECTORS:
            raise ConfigError(f"unknown face detector '{self.detector}' (expected one of: {', '.join(DETECTORS)})")
        if self.crop_size < 16:
            raise ConfigError(f"crop_size={self.crop_size} is too small (expected >= 16)")
        if self.border not in BORDERS:
            raise ConfigError(f"border='{self.border}' is not one of {', '.join(BORDERS)}")
        if self.fade_frames < 0 or self.min_track_frames < 1 or self.detect_batch < 1 or self.detect_every < 1:
            raise ConfigError(
                f"expected fade_frames >= 0, min_track_frames >= 1, detect_batch >= 1, detect_every >= 1, got "
                f"{self.fade_frames}, {self.min_track_frames}, {self.detect_batch}, {self.detect_every}"
            )
        self.smooth.check()
        self.tracker.check()
        return self


@dataclass
class AlignedFace:
    """One tracked face in one frame: ``crop`` (S, S, 3) uint8, frame→crop ``matrix`` (2, 3) and ``inverse``,
    paste opacity ``weight`` in (0, 1], smoothed and raw ``landmarks`` (5, 2) in frame pixels, ``valid`` (S, S) mask
    of crop pixels inside the frame, ``interpolated`` when the detector missed this frame."""

    track_id: int
    crop: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    weight: float
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    box: np.ndarray
    valid: np.ndarray
    interpolated: bool = False


@dataclass
class FrameFaces:
    """All faces of frame ``index`` (the frame itself kept for paste-back); ``cut`` when a new shot starts here."""

    index: int
    frame: np.ndarray
    faces: list[AlignedFace]
    cut: bool = False


class FaceProcessor:
    """Streaming detection → tracking → smoothing → alignment (see the module docstring for latency)."""

    def __init__(self, cfg: FaceConfig | None = None, detector: FaceDetector | None = None, fps: float = 25.0) -> None:
        self.cfg = (cfg or FaceConfig()).check()
        if fps <= 0:
            raise ConfigError(f"fps={fps} must be > 0")
        self.fps = fps
        c = self.cfg
        if detector is None:
            name = c.detector or default_detector("p2a")
            kw = {"device": c.device} if name in ("mtcnn", "retinaface", "animeparser", "haar") else {}
            if c.score_threshold is not None:
                kw["score_threshold"] = c.score_threshold
            detector = create_detector(name, c.detector_weights, min_face=c.min_face, max_side=c.detect_max_side, **kw)
        self.detector = detector
        self.latency = max(c.smooth.lookahead, c.min_track_frames - 1, c.fade_frames + c.tracker.max_misses + 1)
        self.detected_frames = 0  # frames the detector saw in the last process() run

    def process(self, frames: Iterable[np.ndarray]) -> Iterator[FrameFaces]:
        """Yield one :class:`FrameFaces` per input frame, in order, ``latency`` frames behind the input; afterwards
        ``detected_frames`` counts the frames the detector saw."""
        tracker = FaceTrackerState(self.cfg.tracker)
        cuts = SceneCutDetector(self.cfg.tracker.cut_threshold)
        pending: deque[tuple[int, np.ndarray, bool]] = deque()
        filters: dict[int, OneEuroFilter] = {}
        scales: dict[int, float] = {}
        motions: dict[int, dict[int, np.ndarray]] = {}  # track → frame i → similarity (2, 3), frame i-1 → i
        batch: list[np.ndarray] = []
        index = 0
        prev_gray: np.ndarray | None = None
        every = self.cfg.detect_every
        use_motion = self.cfg.smooth.method == "flow" or every > 1
        self.detected_frames = 0

        def flush(final: bool) -> Iterator[FrameFaces]:
            nonlocal index, prev_gray
            if batch:
                # The detector sees every frame, or every `every`-th (batched); faces follow their motion in between.
                keyed = [j for j in range(len(batch)) if (index + j) % every == 0]
                found = dict(zip(keyed, self.detector.detect([batch[j] for j in keyed]))) if keyed else {}
                self.detected_frames += len(keyed)
                for j, frame in enumerate(batch):
                    cut = cuts(frame) and index > 0
                    if use_motion:
                        gray = to_gray(frame)
                        if prev_gray is not None and not cut:
                            self._track_motion(tracker, index, prev_gray, gray, motions)
                        prev_gray = gray
                    dets = found.get(j)
                    if dets is None:
                        dets = None if cut else self._followed(tracker, index, motions)
                        if dets is None:  # a scene cut, or a face whose motion was lost: detect after all
                            dets = self.detector.detect([frame])[0]
                            self.detected_frames += 1
                    tracker.update(index, dets, cut=cut)
                    pending.append((index, frame, cut))
                    index += 1
                batch.clear()
            if final:
                tracker.end_all(at_cut=True)  # stream end: no fade-out
            # A clip shorter than the confirmation window (a still as a 1-frame video) confirms its tracks by lasting
            # the whole clip: there is nothing longer to compare with.
            confirm = min(self.cfg.min_track_frames, index) if final else self.cfg.min_track_frames
            while pending and (final or len(pending) > self.latency):
                i, frame, cut = pending.popleft()
                yield FrameFaces(i, frame, self._faces_at(i, frame, tracker, filters, scales, motions, confirm), cut)

        for frame in frames:
            batch.append(check_frames([frame])[0])
            if len(batch) >= self.cfg.detect_batch:
                yield from flush(final=False)
        yield from flush(final=True)
        if self.detector.skipped_small:
            logger.info("skipped %d face detection(s) smaller than %d px", self.detector.skipped_small,
                        self.cfg.min_face)

    def _followed(self, tracker: FaceTrackerState, i: int,
                  motions: dict[int, dict[int, np.ndarray]]) -> list[Detection] | None:
        """Frame i's faces without the detector: each track seen at frame i-1 moved by its motion i-1 → i; None when
        a track's motion is missing or a track is not yet confirmed (``min_track_frames``: a one-frame false detection
        must not be carried along into a kept track), and the caller detects."""
        dets = []
        for tid, track in tracker.tracks.items():
            if track.ended or track.last != i - 1:
                continue
            m = motions.get(tid, {}).get(i)
            if m is None or track.count < self.cfg.min_track_frames:
                return None
            lm, box, score, _ = track.obs[i - 1]
            x0, y0, x1, y1 = box
            corners = apply_affine(m, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]))
            dets.append(Detection(np.concatenate([corners.min(0), corners.max(0)]), apply_affine(m, lm), score))
        return dets

    @staticmethod
    def _track_motion(tracker: FaceTrackerState, i: int, prev_gray: np.ndarray, gray: np.ndarray,
                      motions: dict[int, dict[int, np.ndarray]]) -> None:
        """Each live track's face motion from frame i-1 to i, measured in its latest box up to frame i-1."""
        for tid, track in tracker.tracks.items():
            if track.ended:
                continue
            before = [f for f in track.obs if f < i]
            if not before:
                continue
            m = face_motion(prev_gray, gray, track.obs[max(before)][1])
            if m is not None:
                motions.setdefault(tid, {})[i] = m

    def _smoothed(self, track: Track, t: int, filters: dict, scales: dict,
                  motions: dict[int, dict[int, np.ndarray]] | None = None) -> np.ndarray:
        sc = self.cfg.smooth
        raw = track.obs[t][0]
        if sc.method == "none":
            return raw
        if sc.method == "flow":  # neighbours' landmarks moved into frame t by the face's tracked motion, then fitted
            h = sc.window // 2
            near = {f: track.obs[f][0] for f in range(t - h, t + h + 1) if f in track.obs}
            return motion_compensated_smooth(near, (motions or {}).get(track.track_id, {}), t, sc.window, sc.order)
        if sc.method == "savgol":
            h = sc.window // 2
            frames = [f for f in range(t - h, t + h + 1) if f in track.obs]
            return local_poly_smooth(np.array(frames, np.float64), np.stack([track.obs[f][0] for f in frames]), t,
                                     sc.order)
        tid = track.track_id
        if tid not in filters:
            filters[tid] = OneEuroFilter(sc.min_cutoff, sc.beta, sc.d_cutoff)
            scales[tid] = face_scale(raw)
        return filters[tid](raw / scales[tid], t / self.fps) * scales[tid]

    def _faces_at(self, t: int, frame: np.ndarray, tracker: FaceTrackerState, filters: dict,
                  scales: dict, motions: dict[int, dict[int, np.ndarray]], confirm: int) -> list[AlignedFace]:
        """The aligned faces of frame ``t``: tracks seen at ``t`` that have lasted ``confirm`` frames."""
        c = self.cfg
        out: list[AlignedFace] = []
        for tid, track in tracker.tracks.items():
            if t not in track.obs or track.count < confirm:
                continue
            lm = self._smoothed(track, t, filters, scales, motions)
            m, inv = estimate_similarity(lm, c.crop_size, c.zoom)
            until_end = track.last - t if track.ended else None
            w = fade_weight(t - track.start, until_end, c.fade_frames, fade_in=not track.starts_at_cut,
                            fade_out=not track.ends_at_cut)
            raw, box, _, interp = track.obs[t]
            out.append(AlignedFace(
                tid, warp_face(frame, m, c.crop_size, c.border), m, inv, w, lm.astype(np.float32),
                raw.astype(np.float32), box.astype(np.float32), valid_mask(m, frame.shape[:2], c.crop_size), interp))
        # Forget what is no longer needed (memory stays bounded on long videos): finished tracks, old observations.
        horizon = t - c.smooth.window
        for tid in list(tracker.tracks):
            tr = tracker.tracks[tid]
            if tr.ended and tr.last < horizon:
                del tracker.tracks[tid]
                filters.pop(tid, None)
                scales.pop(tid, None)
                motions.pop(tid, None)
            else:
                for f in [f for f in tr.obs if f < horizon and f < tr.last - 2]:
                    del tr.obs[f]
                chain = motions.get(tid, {})
                for f in [f for f in chain if f < horizon]:
                    del chain[f]
        return out
