"""Detector backends: RetinaFace port (public checkpoint, anchors, decoding), MTCNN/YuNet/RetinaFace agreement,
detection rate on the real single-face clips, bad input."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vidanime.errors import CheckpointError, ConfigError, MediaError
from vidanime.models.retinaface import RetinaFace, decode, decode_landmarks, load_retinaface, prior_boxes
from vidanime.video.detect import (
    ANIME_BOX_LANDMARKS,
    Detection,
    FaceDetector,
    create_detector,
    landmarks_from_parsing,
)

from .face_helpers import (
    SINGLE_FACE_CLIPS,
    cached,
    read_frames,
    retinaface_path,
    spread_frames,
    video,
    yunet_path,
)


def test_prior_boxes_count_and_first_anchors():
    pr = prior_boxes(512, 512)
    assert pr.shape == ((64 * 64 + 32 * 32 + 16 * 16) * 2, 4)
    np.testing.assert_allclose(pr[0].numpy(), [4 / 512, 4 / 512, 16 / 512, 16 / 512])
    np.testing.assert_allclose(pr[1].numpy(), [4 / 512, 4 / 512, 32 / 512, 32 / 512])
    np.testing.assert_allclose(pr[-1].numpy(), [(15.5 * 32) / 512, (15.5 * 32) / 512, 1.0, 1.0])


def test_decode_hand_computed():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.1]])
    loc = torch.tensor([[1.0, -2.0, 0.0, np.log(2.0) / 0.2]])
    box = decode(loc, priors, [0.1, 0.2])[0]
    # centre (0.5 + 0.1*0.2, 0.5 - 0.2*0.1) = (0.52, 0.48); size (0.2, 0.2)
    np.testing.assert_allclose(box.numpy(), [0.42, 0.38, 0.62, 0.58], atol=1e-6)
    lm = decode_landmarks(torch.ones(1, 10), priors, [0.1, 0.2])[0]
    np.testing.assert_allclose(lm.numpy(), np.tile([0.52, 0.51], (5, 1)), atol=1e-6)


def test_public_layout_checkpoint_loads_strictly_and_errors_name_keys(tmp_path):
    model = RetinaFace()
    sd = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 426_608
    assert len(sd) == 300 and "body.stage1.0.0.weight" in sd and "LandmarkHead.2.conv1x1.weight" in sd
    good = tmp_path / "rf.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, good)  # DataParallel prefix is accepted
    assert isinstance(load_retinaface(str(good)), RetinaFace)
    bad = tmp_path / "bad.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("ClassHead.0")}, bad)
    with pytest.raises(CheckpointError, match="ClassHead.0.conv1x1"):
        load_retinaface(str(bad))


def test_shared_retinaface_checkpoint_loads_strict(assets):
    model = load_retinaface(str(retinaface_path(assets)))
    assert not model.training


def _d0_frame(assets):
    return cached(("d0", 1), lambda: read_frames(video(assets, "liveportrait_d0.mp4"), n=1))[0]


@pytest.mark.parametrize("backend", ["mtcnn", "retinaface", "yunet"])
def test_backends_agree_on_landmarks_and_order(assets, backend):
    weights = {"mtcnn": None, "retinaface": retinaface_path(assets), "yunet": yunet_path(assets)}[backend]
    det = create_detector(backend, weights, score_threshold=0.8)
    (faces,) = det.detect([_d0_frame(assets)])
    assert len(faces) == 1
    lm = faces[0].landmarks
    ref = np.array([[209.2, 249.5], [305.4, 249.6], [255.4, 316.1], [217.2, 371.7], [293.7, 371.9]])
    eye_dist = np.linalg.norm(ref[1] - ref[0])
    assert np.linalg.norm(lm - ref, axis=1).max() < 0.15 * eye_dist
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # image-left first
    assert faces[0].box[0] < lm[:, 0].min() and lm[:, 0].max() < faces[0].box[2]


@pytest.mark.parametrize("clip", SINGLE_FACE_CLIPS)
def test_mtcnn_finds_the_face_on_single_face_clips(assets, clip):
    """Default detector, default settings (frames downscaled to 640 px): 5 frames spread over each clip."""
    frames = spread_frames(video(assets, clip), 5)
    det = cached("mtcnn-default", lambda: create_detector("mtcnn"))
    found = [len(f) >= 1 for f in det.detect(frames)]
    assert np.mean(found) >= 0.95, f"{clip}: face found on {sum(found)}/{len(found)} frames"


class _Scripted(FaceDetector):
    """A detector returning fixed detections (tests the shared filtering and scaling of the base class)."""

    name = "scripted"

    def __init__(self, dets, **kw):
        super().__init__(**kw)
        self.dets = dets
        self.seen = []

    def _detect_batch(self, frames):
        self.seen += [f.shape for f in frames]
        return [list(self.dets) for _ in frames]


def _det(x, y, s, score=0.99):
    return Detection([x, y, x + s, y + s], np.array([x, y]) + ANIME_BOX_LANDMARKS * s, score)


def test_tiny_faces_are_skipped_with_a_log_line(caplog):
    det = _Scripted([_det(10, 10, 100), _det(200, 10, 20)], max_side=None)
    with caplog.at_level(logging.INFO, logger="vidanime.video.detect"):
        (faces,) = det.detect([np.zeros((300, 400, 3), np.uint8)])
    assert len(faces) == 1 and faces[0].size == 100
    assert "smaller than 32 px" in caplog.text and det.skipped_small == 1
    caplog.clear()  # said once: later frames only add to the count the video reader reports at its end
    with caplog.at_level(logging.INFO, logger="vidanime.video.detect"):
        det.detect([np.zeros((300, 400, 3), np.uint8)] * 2)
    assert "smaller than" not in caplog.text and det.skipped_small == 3


def test_thin_frames_are_reported_once_per_size(caplog):
    det = _Scripted([_det(0, 0, 40)], max_side=None)  # min_face 32: a 20-px wide frame cannot hold a face
    with caplog.at_level(logging.INFO, logger="vidanime.video.detect"):
        assert det.detect([np.zeros((300, 20, 3), np.uint8)] * 2) == [[], []]
    assert caplog.text.count("too thin") == 1 and det.seen == []
    caplog.clear()  # the next batch of the same size is not reported again; a new size is
    with caplog.at_level(logging.INFO, logger="vidanime.video.detect"):
        det.detect([np.zeros((300, 20, 3), np.uint8)])
        assert "too thin" not in caplog.text
        det.detect([np.zeros((20, 300, 3), np.uint8)])
    assert caplog.text.count("300x20 are too thin") == 1


def test_downscaled_detection_maps_back_and_low_scores_drop():
    det = _Scripted([_det(10, 10, 100), _det(100, 100, 100, score=0.5)], max_side=640)
    (faces,) = det.detect([np.zeros((1280, 1920, 3), np.uint8)])
    assert det.seen == [(427, 640, 3)]
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, np.array([10, 10, 110, 110]) * 3.0, rtol=1e-5)


def test_extreme_aspect_ratios_do_not_crash():
    det = cached("mtcnn-default", lambda: create_detector("mtcnn"))
    res = det.detect([np.full((10, 3000, 3), 128, np.uint8)])
    assert res == [[]]
    res = det.detect([np.full((2000, 40, 3), 128, np.uint8), np.full((40, 2000, 3), 128, np.uint8)])
    assert res == [[], []]
    # Narrower than min_face (32 px) but wide enough to try: MTCNN's pyramid would be empty (torch.cat of nothing).
    assert det.detect([np.full((3000, 20, 3), 128, np.uint8), np.full((20, 3000, 3), 128, np.uint8)]) == [[], []]
    scripted = _Scripted([], max_side=640)
    scripted.detect([np.zeros((100, 4000, 3), np.uint8)])
    assert scripted.seen == [(32, 1280, 3)]  # short side kept at 32 px, not squeezed to 16


def test_bad_inputs_raise_one_line_errors(tmp_path):
    det = _Scripted([])
    with pytest.raises(MediaError, match="uint8"):
        det.detect([np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(MediaError, match="list"):
        det.detect(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ConfigError, match="unknown face detector 'dlib'"):
        create_detector("dlib")
    with pytest.raises(ConfigError, match="needs a weights path"):
        create_detector("retinaface")
    with pytest.raises(CheckpointError, match="not found"):
        create_detector("yunet", tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="takes no weights"):
        create_detector("mtcnn", tmp_path / "x.pt")


def test_anime_cascade_finds_anime_faces(assets):
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip("this OpenCV build has no CascadeClassifier (OpenCV 5)")
    paths = sorted((assets / "anime").glob("*.jpg"))[:4]
    frames = [cv2.copyMakeBorder(cv2.imread(str(p))[..., ::-1], 64, 64, 64, 64, cv2.BORDER_CONSTANT,
                                 value=(200, 200, 200)) for p in paths]
    det = create_detector("animecascade", assets / "weights" / "lbpcascade_animeface.xml")
    res = det.detect(frames)
    assert sum(len(r) == 1 for r in res) >= 3
    box = res[0][0].box
    assert 64 - 20 < box[0] < 64 + 60 and box[2] - box[0] > 50  # the face inside the pasted 128-px crop


def test_landmarks_from_parsing_centroids():
    from vidanime.labels import class_ids

    lab = np.zeros((100, 100), np.int64)
    l_eye, r_eye, nose, mouth = class_ids("bisenet", "l_eye", "r_eye", "nose", "mouth")
    lab[30:36, 60:70] = l_eye  # subject's left eye is on the image right
    lab[30:36, 30:40] = r_eye
    lab[50:56, 48:52] = nose
    lab[70:74, 38:62] = mouth
    lm = landmarks_from_parsing(lab, "bisenet")
    np.testing.assert_allclose(lm, [[34.5, 32.5], [64.5, 32.5], [49.5, 52.5], [38, 71.5], [61, 71.5]])
    lab[lab == l_eye] = 0
    assert landmarks_from_parsing(lab) is None


@pytest.mark.parametrize("content", [b"hello, not a cascade\n", bytes(range(256)) * 8])
def test_anime_cascade_on_a_file_that_is_no_cascade_is_one_line(content, tmp_path):
    """A text or binary file given as cascade weights: OpenCV raises a SystemError; we say which file and why."""
    bad = tmp_path / "weights.xml"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot load cascade .*weights.xml"):
        create_detector("animecascade", bad)
