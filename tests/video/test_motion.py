"""Face motion between frames and motion-compensated landmark smoothing (the default ``flow`` method)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vidanime.errors import ConfigError
from vidanime.video.align import apply_affine, estimate_similarity, template, transform_jitter
from vidanime.video.faces import FaceConfig, FaceProcessor
from vidanime.video.motion import compose, face_motion, to_gray, transport
from vidanime.video.smooth import SmoothConfig, motion_compensated_smooth, savgol_smooth_sequence, smooth_sequence

from .face_helpers import cached, read_frames, video, yunet_path


def _similarity(angle_deg: float, scale: float, tx: float, ty: float, center=(0.0, 0.0)) -> np.ndarray:
    """(2, 3) similarity: rotate by ``angle_deg`` and scale about ``center``, then translate by (tx, ty)."""
    a = math.radians(angle_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(center, np.float64)
    return np.hstack([r, (c - r @ c + [tx, ty])[:, None]])


def _texture(h=240, w=320, seed=0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = cv2.resize(rng.integers(0, 255, (h // 4, w // 4), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.repeat(noise[..., None], 3, axis=2)


def test_face_motion_recovers_a_known_similarity():
    import cv2

    img = _texture()
    true = _similarity(2.0, 1.03, 3.5, -2.25, center=(160, 120))  # a head turning, nearing and moving
    moved = cv2.warpAffine(img, true, (320, 240), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    m = face_motion(to_gray(img), to_gray(moved), np.array([100, 60, 220, 180]))
    assert m is not None
    pts = np.array([[100, 60], [220, 60], [100, 180], [220, 180], [160, 120]], np.float64)
    np.testing.assert_allclose(apply_affine(m, pts), apply_affine(true, pts), atol=0.15)  # px, over the face box


def test_face_motion_is_none_on_a_flat_region():
    flat = np.full((240, 320), 128, np.uint8)
    assert face_motion(flat, flat, np.array([100, 60, 220, 180])) is None


def test_transport_chains_forward_and_backward():
    motions = {1: _similarity(0, 1, 2, 0), 2: _similarity(90, 1, 0, 0), 3: _similarity(0, 2, 0, 1)}
    p = np.array([[1.0, 0.0]])
    # Frame 0 → 3: +2 in x → (3, 0); rotate 90° → (0, 3); scale 2 then +1 in y → (0, 7).
    np.testing.assert_allclose(apply_affine(transport(motions, 0, 3), p), [[0.0, 7.0]], atol=1e-12)
    np.testing.assert_allclose(apply_affine(transport(motions, 3, 0), [[0.0, 7.0]]), p, atol=1e-12)
    np.testing.assert_allclose(transport(motions, 2, 2), compose(np.eye(3)[:2], np.eye(3)[:2]))
    assert transport({1: motions[1], 3: motions[3]}, 0, 3) is None  # a missing link breaks the chain


def _moving_face(n=60, noise=1.5, seed=0):
    """True landmarks (n, 5, 2) of a face swinging fast (±8° and ±40 px at 1 Hz, 25 fps), their exact per-frame
    motions, and noisy observations."""
    base = template(256) * 0.5 + 100
    poses = [_similarity(8 * math.sin(2 * math.pi * t / 25), 1.0, 40 * math.sin(2 * math.pi * t / 25), 0,
                         center=(164, 164)) for t in range(n)]
    truth = np.stack([apply_affine(p, base) for p in poses])
    inv = [np.linalg.inv(np.vstack([p, [0, 0, 1]]))[:2] for p in poses]
    motions = {t: compose(inv[t - 1], poses[t]) for t in range(1, n)}
    obs = truth + np.random.default_rng(seed).normal(0, noise, truth.shape)
    return truth, motions, obs


def test_flow_smoothing_is_exact_on_rigid_motion_and_averages_noise_without_lag():
    truth, motions, obs = _moving_face(noise=0.0)
    exact = np.stack([motion_compensated_smooth(dict(enumerate(truth)), motions, t, 25) for t in range(len(truth))])
    np.testing.assert_allclose(exact, truth, atol=1e-9)  # no lag at all, however fast the head moves

    truth, motions, obs = _moving_face(noise=1.5)
    flow = smooth_sequence(obs, SmoothConfig("flow", window=25, order=0), motions=motions)
    savgol = savgol_smooth_sequence(obs, window=9, order=2)
    err = {k: float(np.sqrt(((v - truth)[12:-12] ** 2).mean())) for k, v in
           [("raw", obs), ("flow", flow), ("savgol", savgol)]}
    assert err["flow"] < 0.3 * err["raw"] and err["flow"] < 0.5 * err["savgol"], err


def test_flow_smoothing_needs_motions_and_skips_broken_links():
    truth, motions, obs = _moving_face(n=20, noise=0.0)
    with pytest.raises(ConfigError, match="motions"):
        smooth_sequence(obs, SmoothConfig("flow"))
    motions.pop(10)  # frames before 10 can no longer reach frame 12: only 10..20 of the window count
    lm = dict(enumerate(obs + np.arange(20)[:, None, None] * 0.0))
    lm[5] = lm[5] + 100.0  # would show if frame 5 were used
    np.testing.assert_allclose(motion_compensated_smooth(lm, motions, 12, 25), truth[12], atol=1e-9)


def test_flow_smoothing_steadies_real_crops_and_stays_on_the_face(assets):
    """liveportrait_d0 (static head), first 40 frames, YuNet: the flow default against savgol window 9."""
    from vidanime.video.detect import create_detector

    frames = cached(("d0", 40), lambda: read_frames(video(assets, "liveportrait_d0.mp4"), n=40))
    jitter = {}
    for name, sm in [("savgol", SmoothConfig("savgol", window=9, order=2)), ("flow", SmoothConfig())]:
        det = create_detector("yunet", yunet_path(assets))
        outs = list(FaceProcessor(FaceConfig(smooth=sm), detector=det).process(frames))
        assert all(len(o.faces) == 1 for o in outs)
        jitter[name] = transform_jitter([estimate_similarity(o.faces[0].landmarks)[0] for o in outs])["corner_px"]
        err = np.mean([np.abs(o.faces[0].landmarks - o.faces[0].raw_landmarks).mean() for o in outs])
        assert err < 3.0, f"{name}: landmarks {err:.2f} px from the detections"
    assert jitter["flow"] < 0.6 * jitter["savgol"], jitter


class _Truth:
    """Detector stand-in that reads the frame number from pixel (0, 0) and returns the true face there; it counts
    the frames it is shown."""

    skipped_small = 0

    def __init__(self, truth_lm, truth_box):
        self.lm, self.box, self.seen = truth_lm, truth_box, []

    def detect(self, frames):
        from vidanime.video.detect import Detection

        out = []
        for f in frames:
            t = int(f[0, 0, 0])
            self.seen.append(t)
            out.append([Detection(self.box[t], self.lm[t], 0.99)])
        return out


def _sliding_face_clip(n=24, flat_at=None):
    """A textured frame sliding (+2.5, +1.25) px per frame; the 'face' is a 120-px box in it with template landmarks."""
    import cv2

    img = _texture(seed=3)
    lm0 = template(256) * 120 / 256 + [100, 60]
    frames, lms, boxes = [], [], []
    for t in range(n):
        shift = np.array([2.5 * t, 1.25 * t])
        f = cv2.warpAffine(img, _similarity(0, 1, *shift), (320, 240), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
        if t == flat_at:
            f[:] = 128
        f[0, 0] = t
        frames.append(f)
        lms.append(lm0 + shift)
        boxes.append(np.array([100, 60, 220, 180]) + np.tile(shift, 2))
    return frames, np.stack(lms), np.stack(boxes)


def test_detect_every_k_follows_faces_between_detections():
    frames, lms, boxes = _sliding_face_clip()
    det = _Truth(lms, boxes)
    proc = FaceProcessor(FaceConfig(detect_every=3, smooth=SmoothConfig("none"), detect_batch=5), detector=det)
    outs = list(proc.process(frames))
    # frames 0-2 detected until the new track is confirmed (min_track_frames 3), then every third frame
    assert sorted(det.seen) == [0, 1, 2, *range(3, 24, 3)] and proc.detected_frames == 10
    assert all(len(o.faces) == 1 for o in outs)
    err = [np.abs(o.faces[0].raw_landmarks - lms[o.index]).max() for o in outs]
    assert max(err) < 0.3, err  # px: the followed faces are where the detector would have put them


def test_detect_every_k_detects_where_the_motion_is_lost():
    frames, lms, boxes = _sliding_face_clip(flat_at=4)  # frame 4 has no texture to follow
    det = _Truth(lms, boxes)
    list(FaceProcessor(FaceConfig(detect_every=3, smooth=SmoothConfig("none")), detector=det).process(frames))
    assert 4 in det.seen and 5 in det.seen  # 4: motion 3 -> 4 lost; 5: nothing to follow from the flat frame 4
    with pytest.raises(ConfigError, match="detect_every"):
        FaceConfig(detect_every=0).check()


def test_detect_every_k_still_drops_a_one_frame_false_detection():
    """A false face seen once on a detection frame is not carried along: the next frames are detected until a new
    track is confirmed (min_track_frames), so it is dropped as with detection on every frame."""
    from vidanime.video.detect import Detection

    frames, lms, boxes = _sliding_face_clip()

    class _WithFalse(_Truth):
        def detect(self, frames):
            out = super().detect(frames)
            for f, dets in zip(frames, out):
                if int(f[0, 0, 0]) == 9:
                    dets.append(Detection([250, 150, 310, 210], template(256) * 60 / 256 + [250, 150], 0.95))
            return out

    det = _WithFalse(lms, boxes)
    outs = list(FaceProcessor(FaceConfig(detect_every=3, smooth=SmoothConfig("none")), detector=det).process(frames))
    assert all(len(o.faces) == 1 for o in outs)
    assert 10 in det.seen and 11 not in det.seen  # detected while the new track was unconfirmed, then followed
