"""FaceProcessor end to end: streaming latency, fades, pass-through frames, several faces, real clip, paste-back."""
from __future__ import annotations

import numpy as np
import pytest

from vidanime.errors import ConfigError
from vidanime.video.align import template
from vidanime.video.detect import Detection, FaceDetector
from vidanime.video.faces import FaceConfig, FaceProcessor
from vidanime.video.paste import PasteItem, paste_faces, psnr
from vidanime.video.smooth import SmoothConfig

from .face_helpers import cached, read_frames, video, yunet_path


def _det(x, y, s=80.0):
    return Detection([x, y, x + s, y + s], np.array([x, y]) + template(512)[None] / 512 * s, 0.99)


class _Script(FaceDetector):
    """Detections by frame number: ``plan[i]`` = list of (x, y) face positions (frames counted as the detector sees
    them, so the tests using it detect on every frame: ``detect_every=1``)."""

    name = "script"

    def __init__(self, plan):
        super().__init__(max_side=None)
        self.plan, self.i = plan, 0

    def _detect_batch(self, frames):
        out = []
        for _ in frames:
            out.append([_det(x, y) for x, y in self.plan.get(self.i, [])])
            self.i += 1
        return out


def _frames(n, h=240, w=320):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [base.copy() for _ in range(n)]


def test_latency_is_bounded_and_every_frame_comes_out_in_order():
    cfg = FaceConfig(detect_batch=4)
    proc = FaceProcessor(cfg, detector=_Script({}))
    assert proc.latency == max(12, 2, cfg.fade_frames + cfg.tracker.max_misses + 1) == 12  # flow window 25: 12 ahead
    consumed = []

    def gen():
        for i, f in enumerate(_frames(30)):
            consumed.append(i)
            yield f

    for out in proc.process(gen()):
        if len(consumed) < 30:
            assert len(consumed) - 1 - out.index <= proc.latency + cfg.detect_batch
    assert out.index == 29


def test_no_face_frames_pass_through_and_faces_fade_in_and_out():
    plan = {i: [(100 + i, 60)] for i in range(10, 30)}  # a face visible on frames 10-29 of 40
    cfg = FaceConfig(fade_frames=4, min_track_frames=3, detect_every=1)
    outs = list(FaceProcessor(cfg, detector=_Script(plan)).process(_frames(40)))
    assert [len(o.faces) for o in outs] == [0] * 10 + [1] * 20 + [0] * 10
    w = [o.faces[0].weight for o in outs[10:30]]
    np.testing.assert_allclose(w[:5], [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(w[-5:], [1.0, 0.8, 0.6, 0.4, 0.2])
    assert len({o.faces[0].track_id for o in outs[10:30]}) == 1
    frame = outs[0].frame
    assert paste_faces(frame, []) is frame


def test_clips_shorter_than_the_confirmation_window_keep_their_faces():
    """A track must last min_track_frames to count (a one-frame false detection is dropped), except in a clip that
    is shorter than that: a 1- or 2-frame clip with a face gives that face; a longer clip still drops a blip."""
    cfg = FaceConfig(min_track_frames=3, detect_every=1)
    for n in (1, 2):
        outs = list(FaceProcessor(cfg, detector=_Script({i: [(100, 60)] for i in range(n)})).process(_frames(n)))
        assert [len(o.faces) for o in outs] == [1] * n, n
    outs = list(FaceProcessor(cfg, detector=_Script({5: [(100, 60)]})).process(_frames(8)))
    assert [len(o.faces) for o in outs] == [0] * 8


def test_faces_present_from_the_first_to_the_last_frame_do_not_fade():
    plan = {i: [(100, 60)] for i in range(12)}
    outs = list(FaceProcessor(FaceConfig(detect_every=1), detector=_Script(plan)).process(_frames(12)))
    assert [o.faces[0].weight for o in outs] == [1.0] * 12


def test_gaps_are_filled_and_one_frame_false_positives_dropped():
    plan = {i: [(100, 60)] for i in range(20) if i not in (7, 8)}
    plan[3] = plan[3] + [(230, 150)]  # a false positive seen once
    outs = list(FaceProcessor(FaceConfig(detect_every=1), detector=_Script(plan)).process(_frames(20)))
    assert [len(o.faces) for o in outs] == [1] * 20
    assert outs[7].faces[0].interpolated and outs[8].faces[0].interpolated and not outs[9].faces[0].interpolated
    assert {o.faces[0].track_id for o in outs} == {0}


def test_several_faces_each_get_a_crop_and_matrices():
    plan = {i: [(20, 40), (200, 100)] for i in range(8)}
    outs = list(FaceProcessor(FaceConfig(crop_size=64, detect_every=1), detector=_Script(plan)).process(_frames(8)))
    for o in outs:
        assert sorted(f.track_id for f in o.faces) == [0, 1]
        for f in o.faces:
            assert f.crop.shape == (64, 64, 3) and f.crop.dtype == np.uint8
            np.testing.assert_allclose(f.matrix @ np.vstack([f.inverse, [0, 0, 1]]), np.eye(3)[:2], atol=1e-9)


def test_bad_config_values():
    with pytest.raises(ConfigError, match="crop_size"):
        FaceProcessor(FaceConfig(crop_size=8), detector=_Script({}))
    with pytest.raises(ConfigError, match="border"):
        FaceProcessor(FaceConfig(border="wrap"), detector=_Script({}))
    with pytest.raises(ConfigError, match="fps"):
        FaceProcessor(FaceConfig(), detector=_Script({}), fps=0)


def test_real_clip_one_stable_track_smooth_crops_and_identity_paste(assets):
    """liveportrait_d0 (static head), first 40 frames, YuNet backend (fast on CPU), savgol window 9."""
    from vidanime.video.detect import create_detector

    frames = cached(("d0", 40), lambda: read_frames(video(assets, "liveportrait_d0.mp4"), n=40))
    cfg = FaceConfig(crop_size=256, smooth=SmoothConfig("savgol", window=9, order=2))
    det = create_detector("yunet", yunet_path(assets))
    outs = list(FaceProcessor(cfg, detector=det).process(frames))
    assert len(outs) == 40 and all(len(o.faces) == 1 for o in outs)
    assert {o.faces[0].track_id for o in outs} == {0}
    assert all(o.faces[0].weight == 1.0 for o in outs)
    # Smoothed landmarks stay on the face (a few pixels from the raw detections).
    err = np.mean([np.abs(o.faces[0].landmarks - o.faces[0].raw_landmarks).mean() for o in outs])
    assert err < 3.0
    # Paste-back of the unmodified crops reproduces the frame.
    o = outs[20]
    f = o.faces[0]
    back = paste_faces(o.frame, [PasteItem(f.crop, f.matrix, None, f.weight)], color_match=1.0)
    assert psnr(back, o.frame) > 38.0
