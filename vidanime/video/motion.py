"""Frame-to-frame rigid motion of a face region, for motion-compensated landmark smoothing.

A face detector's 5 landmarks jitter by a pixel or two from frame to frame; the aligned crop follows them, and the
pasted drawing shakes although the head is still (on the talking-face clips this is most of the output's warp error,
more than the codes' flicker).  Smoothing the landmarks over time removes the jitter but lags behind real head motion.
Tracking many corner points of the face between consecutive frames (pyramidal Lucas–Kanade, forward–backward checked)
gives the head's similarity motion precisely; landmarks of neighbouring frames moved by it into frame t's coordinates
all estimate the landmarks at t, and their mean has the jitter averaged away without the lag
(:func:`vidanime.video.faces.FaceProcessor`, ``smooth.method = "flow"``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["to_gray", "face_motion", "compose", "maps_into", "transport", "flow_maps"]

MAX_CORNERS = 120
FB_TOLERANCE = 0.5  # px: forward-backward tracking disagreement allowed for a point to count
MIN_POINTS = 8


def to_gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (H, W) uint8 grey."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _roi(box: np.ndarray, shape: tuple[int, int], grow: float) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * grow / 2, (y1 - y0) * grow / 2
    h, w = shape
    return (max(int(cx - hw), 0), max(int(cy - hh), 0), min(int(np.ceil(cx + hw)), w), min(int(np.ceil(cy + hh)), h))


def face_motion(prev_gray: np.ndarray, gray: np.ndarray, box: np.ndarray, grow: float = 1.2) -> np.ndarray | None:
    """Similarity (2, 3) mapping frame t-1 points to frame t of the face inside ``box`` (x0, y0, x1, y1 in frame t-1
    pixels), from corners tracked by pyramidal Lucas–Kanade with a forward–backward check and a RANSAC fit; None
    when too few points survive (flat region, occlusion, cut)."""
    import cv2

    x0, y0, x1, y1 = _roi(box, prev_gray.shape[:2], grow)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    side = max(x1 - x0, y1 - y0)
    pts = cv2.goodFeaturesToTrack(prev_gray[y0:y1, x0:x1], MAX_CORNERS, 0.01, max(side / 40, 2.0), blockSize=5)
    if pts is None or len(pts) < MIN_POINTS:
        return None
    p0 = (pts.reshape(-1, 2) + np.array([x0, y0], np.float32)).astype(np.float32)
    lk = {"winSize": (21, 21), "maxLevel": 3,
          "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
    p1, st, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, p0, None, **lk)
    p0b, st_b, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, p1, None, **lk)
    ok = (st.ravel() == 1) & (st_b.ravel() == 1) & (np.linalg.norm(p0b - p0, axis=1) < FB_TOLERANCE)
    if ok.sum() < MIN_POINTS:
        return None
    m, inliers = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0,
                                             maxIters=500, confidence=0.99, refineIters=10)
    if m is None or inliers is None or int(inliers.sum()) < MIN_POINTS:
        return None
    return m.astype(np.float64)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (2, 3) affine map 'a, then b'."""
    a3 = np.vstack([a, [0.0, 0.0, 1.0]])
    b3 = np.vstack([b, [0.0, 0.0, 1.0]])
    return (b3 @ a3)[:2]


def _inverse(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def maps_into(motions: dict[int, np.ndarray], t: int, reach: int) -> dict[int, np.ndarray]:
    """Maps (2, 3) from each frame f within ``reach`` of ``t`` into frame t's pixels, chaining ``motions[i]`` (frame
    i-1 → i) outward from t in one walk each way; a missing link ends that side (frames beyond it are absent)."""
    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = {t: eye}
    m = eye
    for f in range(t - 1, t - reach - 1, -1):  # f → t = motions[f + 1], then f + 1 → t
        if f + 1 not in motions:
            break
        m = compose(motions[f + 1], m)
        out[f] = m
    m = eye
    for f in range(t + 1, t + reach + 1):  # f → t = back through motions[f], then f - 1 → t
        if f not in motions:
            break
        m = compose(_inverse(motions[f]), m)
        out[f] = m
    return out


def transport(motions: dict[int, np.ndarray], src: int, dst: int) -> np.ndarray | None:
    """Map (2, 3) from frame ``src``'s pixels to frame ``dst``'s, chaining ``motions[i]`` (frame i-1 → i); None when a
    link is missing."""
    return maps_into(motions, dst, abs(src - dst)).get(src)


def flow_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampling maps of a backward warp by a dense flow (H, W, 2) (an image warped with them, e.g. by
    :func:`cv2.remap`, is sampled at x + flow(x)) → (map_x, map_y) float32 (H, W) and the (H, W) bool mask of the
    pixels whose sample lies inside the image."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    return mx, my, (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
