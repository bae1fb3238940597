"""`haar` detector (OpenCV's bundled cascade + the bundled portrait parser) and the fallback to it when
facenet-pytorch (MTCNN, the default) is not installed: issue #19 item 7."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from vidanime.errors import ConfigError
from vidanime.video import detect
from vidanime.video.detect import HaarDetector, create_detector, default_detector

from .face_helpers import cached


def _haar() -> HaarDetector:
    from vidanime.registry import available_models

    if "parser-portrait" not in {m.name for m in available_models()}:
        pytest.skip("parser-portrait is not bundled")
    return cached("haar-default", lambda: create_detector("haar"))


def _portraits(assets, n: int = 8) -> list[np.ndarray]:
    """The first ``n`` shipped CelebAMask-HQ portraits (256 px), on a 448-px grey canvas so the face does not touch
    the frame border."""
    import cv2

    paths = sorted((assets / "faces" / "images").glob("*.jpg"))[:n]
    return [np.ascontiguousarray(cv2.copyMakeBorder(cv2.imread(str(p))[..., ::-1], 96, 96, 96, 96,
                                                    cv2.BORDER_CONSTANT, value=(128, 128, 128))) for p in paths]


def test_haar_finds_portraits_with_landmarks_close_to_mtcnn(assets):
    pytest.importorskip("facenet_pytorch")
    frames = _portraits(assets)
    haar = _haar().detect(frames)
    mtcnn = cached("mtcnn-default", lambda: create_detector("mtcnn")).detect(frames)
    dists = []
    for i, (h, m) in enumerate(zip(haar, mtcnn)):
        assert len(h) == 1 and len(m) == 1, f"portrait {i}: haar found {len(h)} face(s), mtcnn {len(m)}"
        lm = h[0].landmarks
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0] and lm[0, 1] < lm[2, 1] < lm[3, 1]  # order as MTCNN's
        width = float(m[0].box[2] - m[0].box[0])
        d = np.linalg.norm(lm - m[0].landmarks, axis=1) / width
        assert d.mean() < 0.08 and d.max() < 0.15, f"portrait {i}: distances to MTCNN {np.round(d, 3)} face widths"
        assert box_overlap(h[0].box, m[0].box) > 0.5
        dists.append(d.mean())
    assert np.mean(dists) < 0.05


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    from vidanime.video.detect import box_iou

    return float(box_iou(a, b)[0, 0])


def test_haar_on_a_talking_clip_frame(assets):
    """Frame 0 of liveportrait_d0.mp4 against the MTCNN landmarks the alignment tests use."""
    from .face_helpers import D0_FRAME0_LANDMARKS, read_frames, video

    frame = cached(("d0", 1), lambda: read_frames(video(assets, "liveportrait_d0.mp4"), n=1))[0]
    (faces,) = _haar().detect([frame])
    assert len(faces) == 1 and 0.5 <= faces[0].score <= 1.0
    eye_dist = np.linalg.norm(D0_FRAME0_LANDMARKS[1] - D0_FRAME0_LANDMARKS[0])
    assert np.linalg.norm(faces[0].landmarks - D0_FRAME0_LANDMARKS, axis=1).max() < 0.1 * eye_dist


def test_haar_rejects_blank_and_noise():
    import cv2

    rng = np.random.default_rng(0)
    frames = [np.full((480, 640, 3), 128, np.uint8), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
              cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 4),
              cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)]
    assert _haar().detect(frames) == [[], [], [], []]


def test_face_check_on_hand_built_maps():
    """A cascade box is kept only with two eyes and a mouth below them inside the box (no parser needed)."""
    from vidanime import labels as L

    det = _haar()
    lab = np.zeros((64, 64), np.int64)
    skin, le, re, nose, mouth = L.class_ids("bisenet", "skin", "l_eye", "r_eye", "nose", "mouth")
    lab[12:52, 12:52] = skin
    lab[24:28, 20:26] = re
    lab[24:28, 38:44] = le
    lab[30:40, 30:34] = nose
    lab[42:45, 24:40] = mouth
    conf = np.full((64, 64), 0.9, np.float32)
    box = np.array([12, 12, 52, 52], np.float32)
    pts, score = det._face_in(lab, conf, box)
    np.testing.assert_allclose(pts[:2], [[22.5, 25.5], [40.5, 25.5]])
    assert pts[2, 1] > 36 and score == pytest.approx(0.9)  # nose tip: the lower end of the nose region
    assert det._face_in(lab, conf, np.array([0, 40, 30, 64], np.float32)) is None  # eyes outside the box
    flipped = lab[::-1].copy()  # mouth above the eyes
    assert det._face_in(flipped, conf, box) is None
    lab[lab == le] = skin  # one eye
    assert det._face_in(lab, conf, box) is None
    with pytest.raises(ConfigError, match="portrait parser checkpoint"):
        create_detector("haar", "lbpcascade_animeface.xml")


def test_default_falls_back_to_haar_without_facenet(monkeypatch, caplog):
    """No facenet-pytorch (a plain `pip install vidanime`): the implicit default becomes haar with one warning naming
    the fix; an explicit mtcnn request is still a one-line error."""
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # makes `import facenet_pytorch` raise ImportError
    monkeypatch.setattr(detect, "_warned_fallback", False)
    assert not detect.mtcnn_available()
    with caplog.at_level(logging.WARNING, logger="vidanime.video.detect"):
        assert default_detector("p2a") == "haar"
        assert default_detector("p2a") == "haar"
        assert default_detector("a2p") == "animeparser"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "pip install --no-deps facenet-pytorch==2.6.0" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    with pytest.raises(ConfigError, match="needs facenet-pytorch: pip install --no-deps") as exc:
        create_detector("mtcnn")
    assert "\n" not in str(exc.value)


def test_face_processor_default_detector_without_facenet(monkeypatch):
    """FaceConfig() names no detector: the library path falls back too, an explicit 'mtcnn' does not."""
    from vidanime.video.faces import FaceConfig, FaceProcessor

    _haar()  # skip when the portrait parser is not bundled
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    monkeypatch.setattr(detect, "_warned_fallback", False)
    assert isinstance(FaceProcessor(FaceConfig()).detector, HaarDetector)
    with pytest.raises(ConfigError, match="needs facenet-pytorch"):
        FaceProcessor(FaceConfig(detector="mtcnn"))
    with pytest.raises(ConfigError, match="unknown face detector 'dlib'"):
        FaceConfig(detector="dlib").check()


def test_default_is_mtcnn_when_installed():
    pytest.importorskip("facenet_pytorch")
    assert default_detector("p2a") == "mtcnn"


def test_translate_command_falls_back_only_when_detector_is_not_given(monkeypatch, tmp_path, capsys):
    """Through the CLI: no --detector → haar and one warning line on stderr; --detector mtcnn → refused at once with
    the one-line error above, before the pipeline is built.  The pipeline is stopped before any model loads."""
    import pipelines.translate
    from pipelines.cli import run
    from vidanime.data.demo_clip import make_demo_clip
    from vidanime.errors import VidanimeError

    clip = make_demo_clip(tmp_path / "c.mp4", seconds=0.2, size=64)
    seen = []

    def stop(cls, *args, face_config=None, **kwargs):
        seen.append(face_config.detector)
        raise VidanimeError("stopped before loading models")

    monkeypatch.setattr(pipelines.translate.TranslatePipeline, "from_pretrained", classmethod(stop))
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    monkeypatch.setattr(detect, "_warned_fallback", False)
    for extra in ([], ["--detector", "mtcnn"]):
        monkeypatch.setattr(sys, "argv", ["vidanime", "translate", str(clip), str(tmp_path / "o.mp4"), *extra])
        capsys.readouterr()
        with pytest.raises(SystemExit):
            run()
        err = capsys.readouterr().err
        fallback = [ln for ln in err.splitlines() if "facenet-pytorch" in ln]
        assert len(fallback) == 1, err
        assert fallback[0].startswith("error: detector 'mtcnn' needs") if extra else "haar" in fallback[0], err
    assert seen == ["haar"]  # the mtcnn run never reached the pipeline
