"""Face detectors with 5 landmarks behind one interface: ``FaceDetector.detect(frames) -> list[list[Detection]]``.

Backends (``create_detector(name, weights=...)``):

* ``mtcnn`` (default) — facenet-pytorch's MTCNN; its weights ship inside the wheel, so no outside file is needed.
* ``retinaface`` — our port of RetinaFace-MobileNet0.25 (:mod:`vidanime.models.retinaface`); takes the public
  ``mobilenet0.25_Final.pth`` path.
* ``yunet`` — OpenCV Zoo YuNet through ``cv2.FaceDetectorYN``; takes the ``.onnx`` path.
* ``animecascade`` — lbpcascade_animeface through ``cv2.CascadeClassifier`` (OpenCV 4.x only); takes the XML path.
  The cascade gives boxes only: landmarks come from a ``landmarker`` callable (e.g. :func:`landmarks_from_parsing`
  over an anime parser's map) or, without one, from fixed positions inside the box (:data:`ANIME_BOX_LANDMARKS`).

Landmark order everywhere: image-left eye, image-right eye, nose, image-left mouth corner, image-right mouth corner,
in pixel coordinates (x, y) of the input frame.  Frames are (H, W, 3) uint8 RGB.  Faces smaller than ``min_face``
pixels (shorter box side) are dropped with a log line.  ``max_side`` downscales frames before detection (speed on
720p/1080p) and maps the results back.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import CheckpointError, ConfigError, MediaError

__all__ = [
    "Detection",
    "FaceDetector",
    "MTCNNDetector",
    "RetinaFaceDetector",
    "YuNetDetector",
    "AnimeCascadeDetector",
    "create_detector",
    "DETECTORS",
    "landmarks_from_parsing",
    "ANIME_BOX_LANDMARKS",
    "check_frames",
]

logger = logging.getLogger(__name__)


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


def check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate a list of (H, W, 3) uint8 RGB frames; raise MediaError naming the bad one."""
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise MediaError(f"expected a list of (H, W, 3) frames, got one array of shape {frames.shape}")
    out = []
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise MediaError(f"frame {i}: expected an (H, W, 3) uint8 RGB array, got shape {f.shape} dtype {f.dtype}")
        if f.shape[0] < 8 or f.shape[1] < 8:
            raise MediaError(f"frame {i}: size {f.shape[1]}x{f.shape[0]} is too small (expected at least 8x8)")
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
            if min(h, w) * s < 16:  # too thin to hold a detectable face (and below MTCNN's 12-px input)
                logger.info("frames of size %dx%d are too thin for face detection: no faces", w, h)
                continue
            small = [frames[i] if s == 1.0 else cv2.resize(frames[i], (max(1, round(w * s)), max(1, round(h * s))),
                                                           interpolation=cv2.INTER_AREA) for i in idx]
            self._scale = s
            for i, dets in zip(idx, self._detect_batch(small)):
                dets = [d.scaled(1.0 / s) if s != 1.0 else d for d in dets if d.score >= self.score_threshold]
                kept = [d for d in dets if d.size >= self.min_face]
                if len(kept) < len(dets):
                    self.skipped_small += len(dets) - len(kept)
                    logger.info("frame %d: skipped %d face(s) smaller than %d px", i, len(dets) - len(kept), self.min_face)
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
            raise ConfigError(
                "detector 'mtcnn' needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0"
            ) from exc
        self.batch_size = batch_size
        self.model = MTCNN(keep_all=True, device=device, min_face_size=20, post_process=False)

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        # The image pyramid starts at the smallest face worth finding: min_face at frame scale (cheaper than 20 px).
        self.model.min_face_size = max(12, round(self.min_face * self._scale))
        out: list[list[Detection]] = []
        for k in range(0, len(frames), self.batch_size):
            chunk = np.stack(frames[k:k + self.batch_size])
            boxes, probs, points = self.model.detect(chunk, landmarks=True)
            for b, p, l in zip(boxes, probs, points):
                if b is None:
                    out.append([])
                    continue
                out.append([Detection(np.asarray(bb, np.float32), np.asarray(ll, np.float32), float(pp))
                             for bb, pp, ll in zip(b, p, l)])
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
        self.model = cv2.CascadeClassifier(path)
        if self.model.empty():
            raise CheckpointError(f"detector 'animecascade': OpenCV cannot load cascade {path} (expected an XML cascade)")
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


def landmarks_from_parsing(labels: np.ndarray, label_set: str = "bisenet") -> np.ndarray | None:
    """Five landmarks (5, 2) from a parsing map (H, W) of ints: eye centroids, nose centroid, mouth corners.

    The mouth corners are the left- and right-most points of the mouth region (mouth + lips) at its mean height;
    the nose falls back to the point below the eye midpoint when the map has no nose.  ``None`` when an eye or the
    mouth is missing.  Works for any label set with ``l_eye``/``r_eye``/``mouth`` (BiSeNet, Danbooru, CelebAMask).
    """
    from ..labels import LABEL_SETS, class_ids

    names = LABEL_SETS[label_set] if label_set in LABEL_SETS else None
    if names is None:
        raise ConfigError(f"unknown label set '{label_set}' (expected one of: {', '.join(LABEL_SETS)})")

    def centroid(ids: list[int]) -> np.ndarray | None:
        ys, xs = np.nonzero(np.isin(labels, ids))
        return None if len(xs) == 0 else np.array([xs.mean(), ys.mean()], np.float32)

    eyes = [centroid(class_ids(label_set, n)) for n in ("l_eye", "r_eye")]
    mouth_ids = class_ids(label_set, *[n for n in ("mouth", "u_lip", "l_lip") if n in names])
    ys, xs = np.nonzero(np.isin(labels, mouth_ids))
    if eyes[0] is None or eyes[1] is None or len(xs) == 0:
        return None
    eyes.sort(key=lambda p: p[0])  # image-left first, whatever the subject's side
    my = ys.mean()
    left = np.array([xs.min(), my], np.float32)
    right = np.array([xs.max(), my], np.float32)
    nose = centroid(class_ids(label_set, "nose"))
    if nose is None:
        mid = (eyes[0] + eyes[1]) / 2
        nose = mid + (np.array([(left[0] + right[0]) / 2, my]) - mid) * 0.55
    return np.stack([eyes[0], eyes[1], nose, left, right]).astype(np.float32)


DETECTORS: dict[str, type[FaceDetector]] = {
    "mtcnn": MTCNNDetector,
    "retinaface": RetinaFaceDetector,
    "yunet": YuNetDetector,
    "animecascade": AnimeCascadeDetector,
}


def create_detector(name: str = "mtcnn", weights: str | os.PathLike | None = None, **kw) -> FaceDetector:
    """Build a detector by name; ``weights`` is required for every backend but ``mtcnn`` (which must not get one)."""
    if name not in DETECTORS:
        raise ConfigError(f"unknown face detector '{name}' (expected one of: {', '.join(DETECTORS)})")
    if name == "mtcnn":
        if weights is not None:
            raise ConfigError("detector 'mtcnn' takes no weights path (its weights ship inside facenet-pytorch)")
        return MTCNNDetector(**kw)
    return DETECTORS[name](weights=weights, **kw)
