"""`animeparser` detector: anime faces located by the anime parser (no outside file)."""
import numpy as np
import pytest

from vidanime import labels as L
from vidanime.models.parser import build_parser
from vidanime.video.detect import AnimeParserDetector, create_detector, default_detector


def _tiny_detector(**kw):
    parser = build_parser({"arch": "bisenet", "label_set": "bisenet", "width": 0.125, "image_size": 64})
    return AnimeParserDetector(parser=parser, **kw)


def _face_map(p=64, eyes_on_skin=True):
    """Hand-built BiSeNet map: a skin square with two eyes and a mouth (or the eyes off the skin)."""
    lab = np.zeros((p, p), np.uint8)
    skin = L.class_ids("bisenet", "skin")[0]
    le, re, mouth = [L.class_ids("bisenet", n)[0] for n in ("l_eye", "r_eye", "mouth")]
    lab[16:48, 16:48] = skin
    ey = 26 if eyes_on_skin else 4
    lab[ey : ey + 4, 22:28] = le
    lab[ey : ey + 4, 36:42] = re
    lab[38:41, 26:38] = mouth
    return lab


def test_face_in_hand_built_map():
    det = _tiny_detector()
    conf = np.full((64, 64), 0.8, np.float32)
    box, pts, score = det._face_in(_face_map(), conf)
    np.testing.assert_array_equal(box, [16, 16, 48, 48])  # the face region's bounds
    np.testing.assert_allclose(pts[0], [24.5, 27.5])  # image-left eye centroid
    np.testing.assert_allclose(pts[1], [38.5, 27.5])
    assert pts[3][0] == 26 and pts[4][0] == 37  # mouth corners
    assert score == pytest.approx(0.8)
    assert det._face_in(_face_map(eyes_on_skin=False), conf) is None  # eyes outside the face region: no face
    assert det._face_in(np.zeros((64, 64), np.uint8), conf) is None


def test_windows_cover_the_frame():
    det = _tiny_detector(scales=(1.0, 0.6))
    wins = det.windows(480, 640)
    cover = np.zeros((480, 640), bool)
    for x, y, s in wins:
        assert 0 <= x and x + s <= 640 and 0 <= y and y + s <= 480
        cover[y : y + s, x : x + s] = True
    assert cover.all() and len(wins) == 2 + 6  # 2 full-height windows + a 3x2 grid at 0.6
    with pytest.raises(ValueError, match="scales"):
        _tiny_detector(scales=(2.0,))
    with pytest.raises(ValueError, match="use --detector animecascade"):
        create_detector("animeparser", "lbpcascade_animeface.xml")


def test_default_detectors():
    assert default_detector("p2a") == "mtcnn" and default_detector("a2p") == "animeparser"


@pytest.mark.slow
def test_bundled_anime_parser_finds_pasted_anime_faces(assets):
    """Shipped anime faces (held out from the parser's training) pasted onto a noisy 640x480 background at a random
    place and size: found (eye midpoint inside the pasted square, see bench.bench_faces.pasted_hit) in most frames,
    few extra detections."""
    from bench.bench_faces import pasted_anime_frames, pasted_hit
    from vidanime.registry import available_models

    if "parser-anime" not in {m.name for m in available_models()}:
        pytest.skip("parser-anime is not bundled yet")
    det = create_detector("animeparser")
    pasted = pasted_anime_frames(assets, 24)
    found = det.detect([f for f, _ in pasted])
    hits = sum(any(pasted_hit(d, box) for d in ds) for ds, (_, box) in zip(found, pasted))
    extra = sum(len(ds) for ds in found) - hits
    assert hits >= 0.75 * len(pasted), (hits, len(pasted))
    assert extra <= 0.25 * len(pasted), extra


def test_landmarks_when_both_eyes_carry_one_label():
    """Anime parsers trained on pseudo-labels often call both eyes r_eye: the two eye blobs still give both eyes."""
    from vidanime.video.detect import landmarks_from_parsing

    lab = _face_map()
    r_eye = L.class_ids("bisenet", "r_eye")[0]
    lab[np.isin(lab, L.class_ids("bisenet", "l_eye"))] = r_eye
    pts = landmarks_from_parsing(lab, "bisenet")
    np.testing.assert_allclose(pts[:2], [[24.5, 27.5], [38.5, 27.5]])
    # one eye only (a single blob): no face
    lab[:, :32][lab[:, :32] == r_eye] = L.class_ids("bisenet", "skin")[0]
    assert landmarks_from_parsing(lab, "bisenet") is None
