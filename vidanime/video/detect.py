"""Face detectors with 5 landmarks behind one interface: ``FaceDetector.detect(frames) -> list[list[Detection]]``.

Backends (``create_detector(name, weights=...)``):

* ``mtcnn`` (default) — facenet-pytorch's MTCNN; its weights ship inside the wheel, so no outside file is needed.
* ``retinaface`` — our port of RetinaFace-MobileNet0.25 (:mod:`vidanime.models.retinaface`); takes the public
  ``mobilenet0.25_Final.pth`` path.
* ``yunet`` — OpenCV Zoo YuNet through ``cv2.FaceDetectorYN``; takes the ``.onnx`` path.
* ``animecascade`` — lbpcascade_animeface through ``cv2.CascadeClassifier`` (OpenCV 4.x only); takes the XML path.
  The cascade gives boxes only: landmarks come from a ``landmarker`` callable (e.g. :func:`landmarks_from_parsing`
  over an anime parser's map) or, without one, from fixed positions inside the box (:data:`ANIME_BOX_LANDMARKS`).
* ``animeparser`` — anime faces located by the bundled anime parser over sliding windows (no outside file);
  landmarks from the same parse (eye and mouth centroids).
* ``haar`` — real faces with no extra package or outside file: OpenCV's Haar cascade (inside the opencv-python wheel)
  for boxes, the bundled portrait parser on a crop around each box for landmarks and a face check.  The default when
  facenet-pytorch (MTCNN) is not installed (:func:`default_detector`).

Landmark order everywhere: image-left eye, image-right eye, nose, image-left mouth corner, image-right mouth corner,
in pixel coordinates (x, y) of the input frame.  Frames are (H, W, 3) uint8 RGB.  Faces smaller than ``min_face``
pixels (shorter box side) are dropped with a log line.  ``max_side`` downscales frames before detection (speed on
720p/1080p) and maps the results back.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import CheckpointError, ConfigError, MediaError

__all__ = [
    "Detection",
    "check_detector",
    "FaceDetector",
    "MTCNNDetector",
    "RetinaFaceDetector",
    "YuNetDetector",
    "AnimeCascadeDetector",
    "AnimeParserDetector",
    "HaarDetector",
    "create_detector",
    "mtcnn_available",
    "default_detector",
    "DETECTORS",
    "landmarks_from_parsing",
    "ANIME_BOX_LANDMARKS",
    "check_frames",
    "box_iou",
    "MIN_FRAME_SIDE",
]

logger = logging.getLogger(__name__)

MIN_FRAME_SIDE = 8  # smaller frames cannot hold a face any detector finds


@dataclass
class Detection:
    """One face: ``box`` (4,) float32 (x0, y0, x1, y1); ``landmarks`` (5, 2) float32 (x, y); ``score`` in [0, 1]."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)
        self.score = float(self.score)

    @property
    def size(self) -> float:
        """Shorter side of the box in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def scaled(self, s: float) -> "Detection":
        """The same detection with coordinates multiplied by ``s`` (detection resolution → frame resolution)."""
        return Detection(self.box * s, self.landmarks * s, self.score)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) between boxes a (N, 4) and b (M, 4) in (x0, y0, x1, y1)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate a list of (H, W, 3) uint8 RGB frames; raise MediaError naming the bad one."""
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise MediaError(f"expected a list of (H, W, 3) frames, got one array of shape {frames.shape}")
    out = []
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise MediaError(f"frame {i}: expected an (H, W, 3) uint8 RGB array, got shape {f.shape} dtype {f.dtype}")
        if f.shape[0] < MIN_FRAME_SIDE or f.shape[1] < MIN_FRAME_SIDE:
            raise MediaError(f"frame {i}: size {f.shape[1]}x{f.shape[0]} is too small "
                             f"(expected at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE})")
        out.append(f)
    return out


def _check_weights(path: str | os.PathLike | None, name: str, what: str) -> str:
    if path is None:
        raise ConfigError(f"detector '{name}' needs a weights path ({what}), got none")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"detector '{name}': weights file not found: {path} (expected {what})")
    return path


class FaceDetector:
    """Base class: subclasses implement ``_detect_batch`` on frames already resized to at most ``max_side``."""

    name = "base"

    def __init__(self, score_threshold: float = 0.9, min_face: int = 32, max_side: int | None = 640) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ConfigError(f"score_threshold={score_threshold} is outside [0, 1]")
        if min_face < 0:
            raise ConfigError(f"min_face={min_face} must be >= 0 (pixels)")
        if max_side is not None and max_side < 32:
            raise ConfigError(f"max_side={max_side} is too small (expected None or >= 32)")
        self.score_threshold = score_threshold
        self.min_face = min_face
        self.max_side = max_side
        self.skipped_small = 0
        self._thin_sizes: set[tuple[int, int]] = set()  # frame sizes already reported as too thin for a face
        self._scale = 1.0  # detection-resolution / frame-resolution of the batch being processed

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        raise NotImplementedError

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces per frame, best score first; frames may differ in size (grouped by size internally)."""
        import cv2

        frames = check_frames(frames)
        results: list[list[Detection]] = [[] for _ in frames]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault(f.shape[:2], []).append(i)
        for (h, w), idx in groups.items():
            s = 1.0
            if self.max_side is not None and max(h, w) > self.max_side:
                # Extreme aspect ratios: never shrink the short side below 32 px.
                s = min(1.0, max(self.max_side / max(h, w), 32 / min(h, w)))
            sw, sh = (w, h) if s == 1.0 else (max(1, round(w * s)), max(1, round(h * s)))  # detection size
            if min(sw, sh) < max(16, round(self.min_face * s)):  # no face of min_face px fits (nor MTCNN's 12-px input)
                # said once per size at INFO (a video of such frames would repeat it every batch), later at DEBUG
                logger.log(logging.DEBUG if (w, h) in self._thin_sizes else logging.INFO,
                           "frames of size %dx%d are too thin for a face of %d px: no faces", w, h, self.min_face)
                self._thin_sizes.add((w, h))
                continue
            small = [frames[i] if s == 1.0 else cv2.resize(frames[i], (sw, sh), interpolation=cv2.INTER_AREA)
                     for i in idx]
            self._scale = s
            for i, dets in zip(idx, self._detect_batch(small)):
                dets = [d.scaled(1.0 / s) if s != 1.0 else d for d in dets if d.score >= self.score_threshold]
                kept = [d for d in dets if d.size >= self.min_face]
                if n_small := len(dets) - len(kept):  # said once at INFO (a video's reader sums them up at its end)
                    logger.log(logging.DEBUG if self.skipped_small else logging.INFO,
                               "skipped %d face(s) smaller than %d px (min_face)", n_small, self.min_face)
                    self.skipped_small += n_small
                results[i] = sorted(kept, key=lambda d: -d.score)
        return results


class MTCNNDetector(FaceDetector):
    """facenet-pytorch MTCNN (weights inside its wheel), batched over same-size frames.

    Its image pyramid starts at ``min_face`` (in detection pixels, at least 12): skipping faces we would drop anyway
    is also what keeps it fast.
    """

    name = "mtcnn"

    def __init__(self, device: str = "cpu", batch_size: int = 16, **kw) -> None:
        super().__init__(**kw)
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:  # a setup problem, say how to fix it
            raise ConfigError(MTCNN_MISSING) from exc
        self.batch_size = batch_size
        self.model = MTCNN(keep_all=True, device=device, min_face_size=20, post_process=False)

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        # The image pyramid starts at the smallest face worth finding: min_face at frame scale (cheaper than 20 px).
        self.model.min_face_size = max(12, round(self.min_face * self._scale))
        out: list[list[Detection]] = []
        for k in range(0, len(frames), self.batch_size):
            chunk = np.stack(frames[k:k + self.batch_size])
            boxes, probs, points = self.model.detect(chunk, landmarks=True)
            for b, p, pts in zip(boxes, probs, points):
                if b is None:
                    out.append([])
                    continue
                out.append([Detection(np.asarray(bb, np.float32), np.asarray(ll, np.float32), float(pp))
                             for bb, pp, ll in zip(b, p, pts)])
        return out


class RetinaFaceDetector(FaceDetector):
    """RetinaFace-MobileNet0.25 (public checkpoint layout) with NMS; batched over same-size frames."""

    name = "retinaface"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", nms_threshold: float = 0.4,
                 batch_size: int = 8, **kw) -> None:
        super().__init__(**kw)
        from ..models.retinaface import load_retinaface

        self.model = load_retinaface(_check_weights(weights, self.name, "RetinaFace mobilenet0.25 .pth"), device)
        self.device = device
        self.nms_threshold = nms_threshold
        self.batch_size = batch_size
        self._priors: dict[tuple[int, int], object] = {}

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        import torch
        from torchvision.ops import nms

        from ..models.retinaface import CFG_MNET, MEAN_BGR, decode, decode_landmarks, prior_boxes

        h, w = frames[0].shape[:2]
        if (h, w) not in self._priors:
            self._priors[(h, w)] = prior_boxes(h, w).to(self.device)
        priors = self._priors[(h, w)]
        var = CFG_MNET["variance"]
        scale = torch.tensor([w, h], dtype=torch.float32, device=self.device)
        mean = torch.tensor(MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        out: list[list[Detection]] = []
        for k in range(0, len(frames), self.batch_size):
            x = torch.from_numpy(np.stack(frames[k:k + self.batch_size])[..., ::-1].copy()).to(self.device)
            x = x.permute(0, 3, 1, 2).float() - mean
            with torch.inference_mode():
                loc, conf, landm = self.model(x)
            for b in range(x.shape[0]):
                scores = conf[b, :, 1]
                keep = scores > min(self.score_threshold, 0.5)
                if not bool(keep.any()):
                    out.append([])
                    continue
                boxes = decode(loc[b][keep], priors[keep], var) * scale.repeat(2)
                pts = decode_landmarks(landm[b][keep], priors[keep], var) * scale
                s = scores[keep]
                sel = nms(boxes, s, self.nms_threshold)
                out.append([Detection(boxes[i].cpu().numpy(), pts[i].cpu().numpy(), float(s[i])) for i in sel])
        return out


class YuNetDetector(FaceDetector):
    """OpenCV Zoo YuNet via ``cv2.FaceDetectorYN`` (one frame at a time; OpenCV uses its own threads)."""

    name = "yunet"

    def __init__(self, weights: str | os.PathLike | None = None, nms_threshold: float = 0.3, top_k: int = 5000,
                 **kw) -> None:
        super().__init__(**kw)
        import cv2

        path = _check_weights(weights, self.name, "YuNet face_detection_yunet.onnx")
        try:
            self.model = cv2.FaceDetectorYN.create(path, "", (320, 320), min(self.score_threshold, 0.5),
                                                   nms_threshold, top_k)
        except cv2.error as exc:
            raise CheckpointError(f"detector 'yunet': OpenCV cannot load {path}: {str(exc).splitlines()[-1]}") from None

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for f in frames:
            h, w = f.shape[:2]
            self.model.setInputSize((w, h))
            _, faces = self.model.detect(np.ascontiguousarray(f[..., ::-1]))
            dets = []
            for row in faces if faces is not None else []:
                x, y, bw, bh = row[:4]
                pts = row[4:14].reshape(5, 2)  # YuNet: right eye (subject's) first = image-left eye first
                dets.append(Detection([x, y, x + bw, y + bh], pts, float(row[14])))
            out.append(dets)
        return out


# Landmarks (fractions of the box) for an lbpcascade_animeface box when no parser is given: anime eyes sit low and
# wide in the cascade's box, the mouth close under them.  Approximate by design; a parsing map does better.
ANIME_BOX_LANDMARKS = np.array([[0.32, 0.55], [0.68, 0.55], [0.50, 0.70], [0.40, 0.82], [0.60, 0.82]], np.float32)


class AnimeCascadeDetector(FaceDetector):
    """lbpcascade_animeface (``cv2.CascadeClassifier``, OpenCV 4.x); landmarks from ``landmarker`` or box fractions.

    ``landmarker(frame, box) -> (5, 2) array or None`` lets an anime parser supply eye/mouth centroids
    (see :func:`landmarks_from_parsing`); ``None`` falls back to :data:`ANIME_BOX_LANDMARKS`.
    """

    name = "animecascade"

    def __init__(self, weights: str | os.PathLike | None = None, landmarker: Callable | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = 5, **kw) -> None:
        kw.setdefault("score_threshold", 0.0)
        kw.setdefault("min_face", 24)
        super().__init__(**kw)
        import cv2

        path = _check_weights(weights, self.name, "lbpcascade_animeface.xml")
        if not hasattr(cv2, "CascadeClassifier"):
            raise ConfigError(
                f"detector 'animecascade' needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} lacks "
                "(expected opencv-python<5 or opencv-contrib-python)"
            )
        try:  # a text or binary file that is no cascade makes OpenCV raise a SystemError from the constructor
            self.model = cv2.CascadeClassifier(path)
        except (cv2.error, SystemError) as exc:
            raise CheckpointError(f"detector 'animecascade': OpenCV cannot load cascade {path} (expected an XML "
                                  f"cascade such as lbpcascade_animeface.xml; {type(exc).__name__})") from None
        if self.model.empty():
            raise CheckpointError(f"detector 'animecascade': OpenCV cannot load cascade {path} "
                                  "(expected an XML cascade)")
        self.landmarker = landmarker
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        import cv2

        out: list[list[Detection]] = []
        for f in frames:
            gray = cv2.equalizeHist(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY))
            rects = self.model.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                                minSize=(24, 24))
            dets = []
            for x, y, w, h in (rects if len(rects) else []):
                box = np.array([x, y, x + w, y + h], np.float32)
                pts = self.landmarker(f, box) if self.landmarker is not None else None
                if pts is None:
                    pts = box[:2] + ANIME_BOX_LANDMARKS * np.array([w, h], np.float32)
                dets.append(Detection(box, pts, 1.0))
            out.append(dets)
        return out


def _two_eyes(labels: np.ndarray, eye_ids: list[int]) -> list[np.ndarray] | None:
    """Centroids of the two largest blobs of eye pixels (either side's label), or None unless there are two blobs,
    each with >= 20 % of the eye pixels, side by side.  Parsers trained without reliable left/right labels (anime
    pseudo-labels) often call both eyes "r_eye"; blobs do not care."""
    import cv2

    mask = np.isin(labels, eye_ids).astype(np.uint8)
    n, comp, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 3:
        return None
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1
    a, b = order[:2]
    total = stats[1:, cv2.CC_STAT_AREA].sum()
    if min(stats[a, cv2.CC_STAT_AREA], stats[b, cv2.CC_STAT_AREA]) < 0.2 * total:
        return None
    pa, pb = cents[a].astype(np.float32), cents[b].astype(np.float32)
    if abs(pa[0] - pb[0]) < abs(pa[1] - pb[1]):  # one above the other: not a pair of eyes
        return None
    return [pa, pb]


def landmarks_from_parsing(labels: np.ndarray, label_set: str = "bisenet",
                           nose: str = "centroid") -> np.ndarray | None:
    """Five landmarks (5, 2) from a parsing map (H, W) of ints: eye centroids, nose, mouth corners.

    The eyes are the two largest eye blobs whatever their left/right label (else the two classes' centroids); the
    mouth corners are the left- and right-most points of the mouth region (mouth + lips) at its mean height.
    ``nose="centroid"``: the nose region's centroid; ``"tip"``: its lower end (height: 80th percentile of the nose
    pixels' rows; x: mean of its lowest 30 %), where MTCNN, RetinaFace and YuNet put the nose on real faces.  The nose
    falls back to the point below the eye midpoint when the map has no nose.  ``None`` when an eye or the mouth is
    missing.  Works for any label set with ``l_eye``/``r_eye``/``mouth`` (BiSeNet, Danbooru, CelebAMask).
    """
    from ..labels import LABEL_SETS, class_ids

    names = LABEL_SETS[label_set] if label_set in LABEL_SETS else None
    if names is None:
        raise ConfigError(f"unknown label set '{label_set}' (expected one of: {', '.join(LABEL_SETS)})")
    if nose not in ("centroid", "tip"):
        raise ConfigError(f"nose='{nose}': expected 'centroid' or 'tip'")

    def centroid(ids: list[int]) -> np.ndarray | None:
        ys, xs = np.nonzero(np.isin(labels, ids))
        return None if len(xs) == 0 else np.array([xs.mean(), ys.mean()], np.float32)

    eyes = _two_eyes(labels, class_ids(label_set, "l_eye", "r_eye"))
    if eyes is None:
        eyes = [centroid(class_ids(label_set, n)) for n in ("l_eye", "r_eye")]
    mouth_ids = class_ids(label_set, *[n for n in ("mouth", "u_lip", "l_lip") if n in names])
    ys, xs = np.nonzero(np.isin(labels, mouth_ids))
    if eyes[0] is None or eyes[1] is None or len(xs) == 0:
        return None
    eyes.sort(key=lambda p: p[0])  # image-left first, whatever the subject's side
    my = ys.mean()
    left = np.array([xs.min(), my], np.float32)
    right = np.array([xs.max(), my], np.float32)
    nys, nxs = np.nonzero(np.isin(labels, class_ids(label_set, "nose")))
    if len(nxs) == 0:
        mid = (eyes[0] + eyes[1]) / 2
        nose_pt = mid + (np.array([(left[0] + right[0]) / 2, my]) - mid) * 0.55
    elif nose == "tip":
        low = nys >= np.quantile(nys, 0.7)
        nose_pt = np.array([nxs[low].mean(), np.quantile(nys, 0.8)], np.float32)
    else:
        nose_pt = np.array([nxs.mean(), nys.mean()], np.float32)
    return np.stack([eyes[0], eyes[1], nose_pt, left, right]).astype(np.float32)


def _plausible_face(pts: np.ndarray, side: float) -> bool:
    """Whether five landmarks (5, 2) from a parse look like one face of width ``side``: eye distance 0.15-0.8 of it
    and the mouth below the eyes (the face checks of the parser-based detectors)."""
    eye_d = float(np.linalg.norm(pts[1] - pts[0]))
    mouth_y = (pts[3, 1] + pts[4, 1]) / 2
    return 0.15 * side <= eye_d <= 0.8 * side and mouth_y > max(pts[0, 1], pts[1, 1])


def _greedy_nms(dets: Sequence[Detection], iou: float = 0.3) -> list[Detection]:
    """Best-scored first, dropping any detection whose box overlaps a kept one by ``iou`` or more."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if not kept or box_iou(d.box, np.stack([e.box for e in kept])).max() < iou:
            kept.append(d)
    return kept


class AnimeParserDetector(FaceDetector):
    """Anime faces found by an anime face parser: needs no outside file (default: the bundled ``parser-anime``).

    Each frame is covered by square windows (sides ``scales`` x its short side, half-overlapping); every window is
    parsed at the parser's size.  A window whose map holds both eyes and a mouth inside one face region (skin and
    facial features) gives a face: landmarks from :func:`landmarks_from_parsing`, box = that region's bounds, score =
    the parser's mean confidence over it.  Overlapping faces from different windows are merged (best score kept).
    Slower than the cascade (one parser pass per window: ``2 + 3x2`` windows at the default scales on 4:3 frames)
    but with landmarks from the same parse.
    """

    name = "animeparser"
    FACE_CLASSES = ("skin", "l_eye", "r_eye", "l_brow", "r_brow", "nose", "mouth", "u_lip", "l_lip")

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu",
                 scales: Sequence[float] = (1.0, 0.6), batch: int = 8, parser: Any = None, **kw) -> None:
        kw.setdefault("score_threshold", 0.6)
        kw.setdefault("min_face", 24)
        super().__init__(**kw)
        from ..registry import load_model

        if weights is not None and str(weights).lower().endswith(".xml"):
            raise ConfigError(f"detector 'animeparser' takes an anime parser checkpoint, not {weights}; for the "
                              "lbpcascade_animeface XML use --detector animecascade")
        if not scales or any(not 0.1 <= float(x) <= 1.0 for x in scales):
            raise ConfigError(f"scales={list(scales)}: expected window sizes in [0.1, 1] of the short side")
        # ``parser``: an already built vidanime parser module (tests); else a checkpoint path or bundled name.
        self.parser = (parser if parser is not None else
                       load_model(weights or "parser-anime", device=device, format="vidanime.parser")).eval()
        self.device = device
        self.scales = [float(x) for x in scales]
        self.batch = int(batch)
        self.label_set = self.parser.config.label_set
        from ..labels import LABEL_SETS, class_ids

        names = LABEL_SETS[self.label_set]
        self._face_ids = class_ids(self.label_set, *[n for n in self.FACE_CLASSES if n in names])

    def windows(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """(x, y, side) of the square windows covering an (h, w) frame."""
        out = []
        for sc in self.scales:
            side = max(16, round(sc * min(h, w)))
            # Evenly spaced, about half-overlapping: round((extent - side) / (side / 2)) + 1 positions per axis.
            nx, ny = (round(max(0, n - side) / (side / 2)) + 1 for n in (w, h))
            xs = np.linspace(0, max(0, w - side), nx).round().astype(int)
            ys = np.linspace(0, max(0, h - side), ny).round().astype(int)
            out += [(int(x), int(y), side) for y in ys for x in xs]
        return out

    def _face_in(self, lab: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(box (4,), landmarks (5, 2), score) of the face in one parsed window (parser pixels), or None."""
        import cv2

        pts = landmarks_from_parsing(lab, self.label_set)
        if pts is None:
            return None
        face = np.isin(lab, self._face_ids).astype(np.uint8)
        _, comp = cv2.connectedComponents(face, connectivity=8)
        p = lab.shape[0]
        cx, cy = np.clip(np.round((pts[0] + pts[1]) / 2), 0, p - 1).astype(int)
        k = comp[cy, cx]
        if k == 0:  # the eye midpoint is not on the face region: eyes of two faces, or noise
            return None
        ys, xs = np.nonzero(comp == k)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        if not _plausible_face(pts, float(box[2] - box[0])):
            return None
        return box, pts, float(conf[comp == k].mean())

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        import cv2
        import torch


        size = self.parser.config.image_size
        out: list[list[Detection]] = []
        for f in frames:
            wins = self.windows(*f.shape[:2])
            found: list[Detection] = []
            for i in range(0, len(wins), self.batch):
                chunk = wins[i : i + self.batch]
                crops = np.stack([cv2.resize(f[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)
                                  for x, y, s in chunk])
                with torch.no_grad():
                    xt = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div(255.0)
                    conf, lab = torch.softmax(self.parser(xt).float(), 1).max(1)
                for (x, y, s), lb, cf in zip(chunk, lab.cpu().numpy(), conf.cpu().numpy()):
                    hit = self._face_in(lb, cf)
                    if hit is None:
                        continue
                    k = s / size
                    box, pts, score = hit
                    found.append(Detection(box * k + np.array([x, y, x, y], np.float32),
                                           pts * k + np.array([x, y], np.float32), score))
            out.append(_greedy_nms(found))  # one face seen by several windows
        return out


class HaarDetector(FaceDetector):
    """Real faces without an extra package or outside file: OpenCV's Haar cascade (inside the opencv-python wheel)
    gives boxes, the bundled portrait parser gives landmarks and checks that each box holds a face.

    Each cascade box is cut as a square ``crop_scale`` x its side around its centre (the framing of the parser's
    CelebAMask-HQ training faces), resized to the parser's size P, and parsed; the crops of all boxes of a batch of
    frames go through the parser together, ``batch`` at a time.  Landmarks come from :func:`landmarks_from_parsing`
    (nose: the tip).  A box is kept only when the parse holds two eyes and a mouth, the eye midpoint lies in the box,
    the eye distance is 0.15-0.8 of the box side and the mouth sits below the eyes: this cuts most of the cascade's
    false positives.  Eye pixels are those where the two eye classes together reach ``eye_threshold`` (eyes behind
    glasses or half shut rarely win the parser's argmax); faces with both eyes shut are still rejected (the tracker
    bridges short gaps).  Score: the parser's mean confidence over the face classes.

    ``weights``: a portrait parser (checkpoint path or bundled name; default ``parser-portrait``); ``cascade``: a file
    name under ``cv2.data.haarcascades`` or a path (default ``haarcascade_frontalface_alt2.xml``, which found more
    faces than ``..._default.xml`` on the talking clips with fewer false boxes).
    """

    name = "haar"
    CASCADE = "haarcascade_frontalface_alt2.xml"
    FACE_CLASSES = AnimeParserDetector.FACE_CLASSES

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", cascade: str | None = None,
                 crop_scale: float = 1.5, scale_factor: float = 1.15, min_neighbors: int = 5,
                 eye_threshold: float = 0.2, batch: int = 16, parser: Any = None, **kw) -> None:
        kw.setdefault("score_threshold", 0.5)
        super().__init__(**kw)
        import cv2

        from ..labels import LABEL_SETS, class_ids
        from ..registry import load_model

        if weights is not None and str(weights).lower().endswith((".xml", ".onnx")):
            raise ConfigError(f"detector 'haar' takes a portrait parser checkpoint (default: the bundled "
                              f"parser-portrait), not {weights}")
        if not 1.0 <= crop_scale <= 3.0:
            raise ConfigError(f"crop_scale={crop_scale}: expected a crop of 1-3 box sides")
        if not 0.0 < eye_threshold <= 1.0:
            raise ConfigError(f"eye_threshold={eye_threshold}: expected a probability in (0, 1]")
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise ConfigError(f"detector 'haar' needs cv2.CascadeClassifier and the cascades of the opencv-python "
                              f"wheel, which OpenCV {cv2.__version__} lacks (expected opencv-python-headless<5)")
        cascade = cascade or self.CASCADE
        path = cascade if os.path.isfile(cascade) else os.path.join(cv2.data.haarcascades, cascade)
        if not os.path.isfile(path):
            raise CheckpointError(f"detector 'haar': cascade not found: {path}")
        try:
            self.cascade = cv2.CascadeClassifier(path)
        except (cv2.error, SystemError):
            self.cascade = None
        if self.cascade is None or self.cascade.empty():
            raise CheckpointError(f"detector 'haar': OpenCV cannot load cascade {path} (expected an XML cascade)")
        self.parser = (parser if parser is not None else
                       load_model(weights or "parser-portrait", device=device, format="vidanime.parser")).eval()
        self.device = device
        self.crop_scale = float(crop_scale)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.eye_threshold = float(eye_threshold)
        self.batch = int(batch)
        self.label_set = self.parser.config.label_set
        names = LABEL_SETS[self.label_set]
        self._face_ids = class_ids(self.label_set, *[n for n in self.FACE_CLASSES if n in names])
        self._eye_ids = class_ids(self.label_set, "l_eye", "r_eye")

    def boxes(self, frame: np.ndarray) -> np.ndarray:
        """Cascade boxes (N, 4) float32 (x0, y0, x1, y1) of one (H, W, 3) uint8 RGB frame, before the face check.

        Faces we would drop anyway (under ``min_face``) are not searched for: the grey image is shrunk until the
        smallest face kept fills the cascade's window (20 px for the default cascade), which saves most of its time."""
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        win = int(max(self.cascade.getOriginalWindowSize()))
        k = min(1.0, win / max(win, self.min_face * self._scale))
        if k < 1.0:
            h, w = gray.shape
            gray = cv2.resize(gray, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        rects = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(win, win))
        if not len(rects):
            return np.zeros((0, 4), np.float32)
        rects = np.asarray(rects, np.float32).reshape(-1, 4) / k
        return np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)

    def _crop(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Square crop (P, P, 3) around ``box`` at the parser's size P, with its frame origin (x, y) and side."""
        import cv2

        size = self.parser.config.image_size
        side = max(2, round(float(box[2] - box[0]) * self.crop_scale))
        x0 = round(float(box[0] + box[2]) / 2 - side / 2)
        y0 = round(float(box[1] + box[3]) / 2 - side / 2)
        h, w = frame.shape[:2]
        pad = [max(0, -y0), max(0, y0 + side - h), max(0, -x0), max(0, x0 + side - w)]
        crop = frame[max(0, y0):min(h, y0 + side), max(0, x0):min(w, x0 + side)]
        if any(pad):  # the part outside the frame is black, as at the frame border in training crops
            crop = cv2.copyMakeBorder(crop, *pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        return crop, float(x0), float(y0), float(side)

    def _face_in(self, lab: np.ndarray, conf: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float] | None:
        """(landmarks (5, 2) in crop pixels, score) when the parse (P, P) of a crop holds a face, else None;
        ``box`` (4,) is the cascade box in the same crop pixels."""
        pts = landmarks_from_parsing(lab, self.label_set, nose="tip")
        if pts is None:
            return None
        mid = (pts[0] + pts[1]) / 2
        if (not (box[0] <= mid[0] <= box[2] and box[1] <= mid[1] <= box[3])
                or not _plausible_face(pts, float(box[2] - box[0]))):
            return None
        face = np.isin(lab, self._face_ids)
        return pts, float(conf[face].mean())

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        import torch

        size = self.parser.config.image_size
        jobs: list[tuple[int, np.ndarray, float, float, float]] = []  # (frame index, box, crop x, crop y, crop side)
        crops: list[np.ndarray] = []
        for i, f in enumerate(frames):
            for box in self.boxes(f):
                crop, x0, y0, side = self._crop(f, box)
                crops.append(crop)
                jobs.append((i, box, x0, y0, side))
        found: list[list[Detection]] = [[] for _ in frames]
        for k in range(0, len(crops), self.batch):
            with torch.no_grad():
                x = torch.from_numpy(np.stack(crops[k:k + self.batch])).to(self.device)
                prob = torch.softmax(self.parser(x.permute(0, 3, 1, 2).float().div(255.0)).float(), 1)  # (B, C, P, P)
                conf, lab = prob.max(1)
                # Eyes behind glasses or half shut rarely win the argmax: a pixel is eye where both eye classes
                # together pass eye_threshold (labelled with the likelier side).
                eye_p = prob[:, self._eye_ids]  # (B, 2, P, P)
                eye_lab = torch.tensor(self._eye_ids, device=prob.device)[eye_p.argmax(1)]
                lab = torch.where(eye_p.sum(1) > self.eye_threshold, eye_lab, lab)
            for (i, box, x0, y0, side), lb, cf in zip(jobs[k:k + self.batch], lab.cpu().numpy(), conf.cpu().numpy()):
                s = side / size  # frame pixels per crop pixel; crop pixel j covers frame x0 + [j, j + 1) * s
                hit = self._face_in(lb, cf, (box - np.array([x0, y0, x0, y0], np.float32)) / s)
                if hit is not None:
                    pts = (hit[0] + 0.5) * s - 0.5 + np.array([x0, y0], np.float32)
                    found[i].append(Detection(box, pts, hit[1]))
        return [_greedy_nms(dets) for dets in found]  # nested cascade boxes on one face: keep the best


DETECTORS: dict[str, type[FaceDetector]] = {
    "mtcnn": MTCNNDetector,
    "retinaface": RetinaFaceDetector,
    "yunet": YuNetDetector,
    "animecascade": AnimeCascadeDetector,
    "animeparser": AnimeParserDetector,
    "haar": HaarDetector,
}


MTCNN_FIX = "pip install --no-deps facenet-pytorch==2.6.0"
MTCNN_MISSING = f"detector 'mtcnn' needs facenet-pytorch: {MTCNN_FIX} (or use --detector haar)"


def mtcnn_available() -> bool:
    """Whether facenet-pytorch's MTCNN imports (a plain ``pip install vidanime`` lacks it: see the README)."""
    try:
        from facenet_pytorch import MTCNN  # noqa: F401
    except ImportError:
        return False
    return True


_warned_fallback = False


def default_detector(direction: str) -> str:
    """The detector used when none is named: MTCNN for real faces (p2a), the bundled anime parser for anime (a2p).

    Without facenet-pytorch, real faces fall back to ``haar`` (OpenCV's cascade + the bundled portrait parser), with
    one warning per process naming the fix."""
    global _warned_fallback

    if direction != "p2a":
        return "animeparser"
    if mtcnn_available():
        return "mtcnn"
    if not _warned_fallback:
        logger.warning("facenet-pytorch is not installed: detecting faces with 'haar' (OpenCV cascade + bundled "
                       "portrait parser); for the better default detector: %s", MTCNN_FIX)
        _warned_fallback = True
    return "haar"


def _check_name(name: str, weights: str | os.PathLike | None) -> None:
    """The checks :func:`check_detector` and :func:`create_detector` share: a known name, no weights for mtcnn."""
    if name not in DETECTORS:
        raise ConfigError(f"unknown face detector '{name}' (expected one of: {', '.join(DETECTORS)})")
    if name == "mtcnn" and weights is not None:
        raise ConfigError("detector 'mtcnn' takes no weights path (its weights ship inside facenet-pytorch)")


def check_detector(name: str | None, weights: str | os.PathLike | None = None) -> None:
    """Check a detector choice before any model loads (so that a bad choice fails in a second, not after the models):
    a known name, mtcnn's package installed and given no weights path, a weights file that exists where one is
    needed.  ``name=None`` (the default detector) always passes.  Raises :class:`ConfigError` naming the fix."""
    if name is None:
        return
    _check_name(name, weights)
    if name == "mtcnn":
        if not mtcnn_available():
            raise ConfigError(MTCNN_MISSING)
        return
    if weights is None and name not in ("animeparser", "haar"):
        raise ConfigError(f"detector '{name}' needs a weights file (--detector-weights PATH)")
    if weights is not None and not os.path.isfile(weights):
        raise ConfigError(f"detector weights {weights} not found (or not a file)")


def create_detector(name: str = "mtcnn", weights: str | os.PathLike | None = None, **kw) -> FaceDetector:
    """Build a detector by name; ``weights`` is required for every backend but ``mtcnn`` (which must not get one),
    ``animeparser`` (default: the bundled anime parser) and ``haar`` (default: the bundled portrait parser)."""
    _check_name(name, weights)
    if name == "mtcnn":
        return MTCNNDetector(**kw)
    return DETECTORS[name](weights=weights, **kw)
