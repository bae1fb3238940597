"""Small helpers for the face tests: decode the first frames of a shared clip with PyAV (independent of video/io.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def read_frames(path: Path, n: int | None = None, step: int = 1, max_side: int | None = None) -> list[np.ndarray]:
    """Frames 0, step, 2*step, ... (at most ``n``) of a clip as (H, W, 3) uint8 RGB, downscaled to ``max_side``."""
    import av
    import cv2

    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if n is not None and len(out) >= n:
                break
            if i % step:
                continue
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            if max_side is not None and max(h, w) > max_side:
                s = max_side / max(h, w)
                img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            out.append(img)
    return out


# Landmarks measured with MTCNN on frame 0 of liveportrait_d0.mp4 (512x512): image-left eye, image-right eye, nose,
# image-left / image-right mouth corner.  Fixed here so alignment tests need no detector.
D0_FRAME0_LANDMARKS = np.array(
    [[209.2, 249.5], [305.4, 249.6], [255.4, 316.1], [217.2, 371.7], [293.7, 371.9]], dtype=np.float32
)

_CACHE: dict = {}


def cached(key, fn):
    """Memoise an expensive result (decoded frames, detections) across test modules of one pytest process."""
    if key not in _CACHE:
        _CACHE[key] = fn()
    return _CACHE[key]


def video(assets, name):
    return assets / "video" / name


def retinaface_path(assets):
    return assets / "weights" / "retinaface_mobilenet0.25_Final.pth"


def yunet_path(assets):
    return assets / "weights" / "face_detection_yunet.onnx"


SINGLE_FACE_CLIPS = ("liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d12.mp4", "liveportrait_d13.mp4",
                     "liveportrait_s32.mp4")


def clip_length(path) -> int:
    import av

    with av.open(str(path)) as c:
        return c.streams.video[0].frames


def spread_frames(path, k: int) -> list[np.ndarray]:
    """``k`` frames spread evenly over the whole clip (decoded once, full resolution)."""
    n = clip_length(path)
    step = max(1, n // k)
    return read_frames(path, n=k, step=step)


def facenet_dets(assets):
    """RetinaFace (score > 0.9, frames at 640 px as in the MANIFEST) on the first 30 frames of the multi-face clip."""
    from vidanime.video.detect import create_detector

    def run():
        frames = read_frames(video(assets, "facenet_pytorch_video.mp4"), n=30, max_side=640)
        det = create_detector("retinaface", retinaface_path(assets), max_side=640, min_face=16)
        return det.detect(frames)

    return cached(("facenet", 30), run)
