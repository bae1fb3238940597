"""Tracking faces across frames: Hungarian matching on IoU + landmark distance, gap interpolation, scene cuts.

:class:`FaceTrackerState` is online: feed it each frame's detections in order; it returns which track each detection
joined, and, when a track comes back after up to ``max_misses`` missed frames, linearly interpolated observations
for the missed frames (so ids stay stable and the face does not blink).  Tracks missing for longer end.  A scene
cut (:class:`SceneCutDetector`) ends every track; tracks that start at frame 0 or at a cut, or that end at a cut or
at the end of the stream, are flagged so paste-back does not fade them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..errors import ConfigError
from .detect import Detection, box_iou  # box_iou re-exported: it lived here first

__all__ = ["TrackerConfig", "Track", "TrackUpdate", "FaceTrackerState", "SceneCutDetector", "box_iou", "track_all",
           "forget_stale_tracks", "MAX_TRACK_STATES"]

logger = logging.getLogger(__name__)

# Per-track states (filters, carried drawings, colour maps) kept before the tracks not in the current batch are dropped.
MAX_TRACK_STATES = 64


def forget_stale_tracks(live: Iterable[int], *stores: dict) -> None:
    """Bounded memory for per-track states keyed by track id: once the first of ``stores`` holds more than
    :data:`MAX_TRACK_STATES` tracks, every track not in ``live`` (the current batch's ids) is dropped from all."""
    if not stores or len(stores[0]) <= MAX_TRACK_STATES:
        return
    keep = {int(t) for t in live}
    for store in stores:
        for t in [t for t in store if t not in keep]:
            del store[t]


@dataclass
class TrackerConfig:
    """Matching: cost = (1 - IoU) + ``landmark_weight`` * mean landmark distance / box side; a pair is allowed when
    IoU >= ``min_iou`` or the normalised landmark distance <= ``max_landmark_dist``.  ``max_misses``: frames a track
    survives undetected (interpolated when it comes back).  Scene cuts: HSV-histogram Bhattacharyya distance between
    consecutive frames above ``cut_threshold`` (0 disables)."""

    landmark_weight: float = 1.0
    min_iou: float = 0.2
    max_landmark_dist: float = 1.0
    max_misses: int = 5
    cut_threshold: float = 0.5

    def check(self) -> "TrackerConfig":
        if self.max_misses < 0:
            raise ConfigError(f"max_misses={self.max_misses} must be >= 0 frames")
        if not 0 <= self.min_iou <= 1:
            raise ConfigError(f"min_iou={self.min_iou} must be in [0, 1]")
        if self.landmark_weight < 0 or self.max_landmark_dist < 0:
            raise ConfigError("landmark_weight and max_landmark_dist must be >= 0")
        if not 0 <= self.cut_threshold <= 1:
            raise ConfigError(f"cut_threshold={self.cut_threshold} must be in [0, 1] (0 = no scene-cut detection)")
        return self


@dataclass
class Track:
    """A face over time: ``obs[frame]`` → (landmarks (5, 2), box (4,), score, interpolated flag); ``count`` frames
    observed in all (old observations may be pruned by the streaming processor)."""

    track_id: int
    start: int
    starts_at_cut: bool = False
    ended: bool = False
    ends_at_cut: bool = False
    last: int = -1
    misses: int = 0
    count: int = 0
    obs: dict[int, tuple[np.ndarray, np.ndarray, float, bool]] = field(default_factory=dict)

    def add(self, frame: int, det: Detection, interpolated: bool = False) -> None:
        self.count += frame not in self.obs
        self.obs[frame] = (det.landmarks.astype(np.float64), det.box.astype(np.float64), det.score, interpolated)
        self.last = max(self.last, frame)

    def size(self) -> float:
        """Face size for normalising landmark distances: the mean side of the last box (pixels, >= 1)."""
        box = self.obs[self.last][1]
        return float(max((box[2] - box[0] + box[3] - box[1]) / 2, 1.0))

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks and box expected at ``frame``: last observation moved on at the last observed velocity."""
        lm, box = self.obs[self.last][:2]
        prev = [f for f in self.obs if f < self.last and not self.obs[f][3]]
        if not prev:
            return lm, box
        p = max(prev)
        v_lm = (lm - self.obs[p][0]) / (self.last - p)
        v_box = (box - self.obs[p][1]) / (self.last - p)
        k = frame - self.last
        return lm + k * v_lm, box + k * v_box


@dataclass
class TrackUpdate:
    """Result of one frame: ``assigned`` (track_id, Detection); ``filled`` (track_id, frame, Detection) interpolated
    for earlier missed frames; ``started`` and ``ended`` track ids; ``cut`` when this frame starts a new shot."""

    frame: int
    assigned: list[tuple[int, Detection]]
    filled: list[tuple[int, int, Detection]]
    started: list[int]
    ended: list[int]
    cut: bool = False


class SceneCutDetector:
    """Flags a frame whose colour histogram differs from the previous frame's by more than ``threshold``
    (Bhattacharyya distance in [0, 1] on an 8x8x4 HSV histogram of a 64-px-wide thumbnail)."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.prev: np.ndarray | None = None
        self.last_distance = 0.0

    def _hist(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        h, w = frame.shape[:2]
        small = cv2.resize(frame, (64, max(1, round(64 * h / w))), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 4], [0, 180, 0, 256, 0, 256])
        return cv2.normalize(hist, hist).flatten()

    def __call__(self, frame: np.ndarray) -> bool:
        import cv2

        hist = self._hist(frame)
        cut = False
        if self.prev is not None and self.threshold > 0:
            self.last_distance = float(cv2.compareHist(self.prev, hist, cv2.HISTCMP_BHATTACHARYYA))
            cut = self.last_distance > self.threshold
        self.prev = hist
        return cut


class FaceTrackerState:
    """Online multi-face tracker; call :meth:`update` once per frame in order (frame indices strictly increasing)."""

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = (cfg or TrackerConfig()).check()
        self.tracks: dict[int, Track] = {}
        self.active: list[int] = []
        self.next_id = 0
        self.prev_frame = -1

    def _cost(self, track: Track, frame: int, dets: list[Detection]) -> np.ndarray:
        lm_pred, box_pred = track.predict(frame)
        iou = box_iou(box_pred, np.stack([d.box for d in dets]))[0]
        dist = np.array([np.linalg.norm(d.landmarks - lm_pred, axis=1).mean() for d in dets]) / track.size()
        cost = (1 - iou) + self.cfg.landmark_weight * dist
        allowed = (iou >= self.cfg.min_iou) | (dist <= self.cfg.max_landmark_dist)
        return np.where(allowed, cost, np.inf)

    def end_all(self, at_cut: bool = False) -> list[int]:
        """End every active track (stream end or scene cut); returns their ids."""
        ended = list(self.active)
        for tid in ended:
            self.tracks[tid].ended = True
            self.tracks[tid].ends_at_cut = at_cut
        self.active = []
        return ended

    def update(self, frame: int, dets: list[Detection], cut: bool = False) -> TrackUpdate:
        """Assign this frame's detections to tracks (Hungarian on the gated cost), start/end tracks, fill gaps."""
        from scipy.optimize import linear_sum_assignment

        if frame <= self.prev_frame:
            raise ConfigError(f"tracker: frame {frame} after frame {self.prev_frame} (expected increasing indices)")
        first = self.prev_frame < 0
        self.prev_frame = frame
        ended: list[int] = self.end_all(at_cut=True) if cut else []
        if cut and ended:
            logger.debug("frame %d: scene cut, ended tracks %s", frame, ended)
        assigned: list[tuple[int, Detection]] = []
        filled: list[tuple[int, int, Detection]] = []
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if self.active and dets:
            cost = np.stack([self._cost(self.tracks[t], frame, dets) for t in self.active])
            big = 1e6
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
            for r, c in zip(rows, cols):
                if not np.isfinite(cost[r, c]):
                    continue
                tid = self.active[r]
                track = self.tracks[tid]
                gap = frame - track.last - 1
                if gap > 0:  # came back after misses: interpolate the missed frames linearly
                    lm0, box0, s0, _ = track.obs[track.last]
                    last = track.last
                    for g in range(1, gap + 1):
                        a = g / (gap + 1)
                        det = Detection(box0 * (1 - a) + dets[c].box * a, lm0 * (1 - a) + dets[c].landmarks * a,
                                        min(s0, dets[c].score))
                        track.add(last + g, det, interpolated=True)
                        filled.append((tid, last + g, det))
                track.add(frame, dets[c])
                track.misses = 0
                assigned.append((tid, dets[c]))
                matched_t.add(tid)
                matched_d.add(c)
        for tid in list(self.active):
            if tid in matched_t:
                continue
            track = self.tracks[tid]
            track.misses = frame - track.last
            if track.misses > self.cfg.max_misses:
                track.ended = True
                self.active.remove(tid)
                ended.append(tid)
        started = []
        for c, d in enumerate(dets):
            if c in matched_d:
                continue
            track = Track(self.next_id, frame, starts_at_cut=cut or first)
            self.next_id += 1
            track.add(frame, d)
            self.tracks[track.track_id] = track
            self.active.append(track.track_id)
            assigned.append((track.track_id, d))
            started.append(track.track_id)
        return TrackUpdate(frame, assigned, filled, started, ended, cut)


def track_all(detections: list[list[Detection]], cfg: TrackerConfig | None = None,
              cuts: list[bool] | None = None) -> dict[int, Track]:
    """Offline convenience: run the tracker over per-frame detections; returns all tracks by id (all ended)."""
    state = FaceTrackerState(cfg)
    for i, dets in enumerate(detections):
        state.update(i, dets, cut=bool(cuts[i]) if cuts is not None else False)
    state.end_all(at_cut=True)
    return state.tracks
