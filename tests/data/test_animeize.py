"""Anime-style augmentation of labelled portraits: the bulge warp against hand-computed values, labels kept exact."""
from __future__ import annotations

import numpy as np
import pytest

from vidanime import labels as L
from vidanime.data.animeize import animeize_pair, bulge_map


def test_bulge_map_hand_values_and_identity_outside():
    mx, my = bulge_map((41, 41), centre=(20.0, 20.0), radii=(10.0, 20.0), strength=(0.5, -0.5))
    # at the centre the map is fixed; on the x axis at 5 px (u = 0.5): d · (1 − 0.5 · (1 − 0.25)²) = 5 · 0.71875
    assert mx[20, 20] == pytest.approx(20.0) and my[20, 20] == pytest.approx(20.0)
    assert mx[20, 25] - 20 == pytest.approx(5 * (1 - 0.5 * 0.75 ** 2))
    # on the y axis at 10 px (u = 0.5 of ry = 20), a shrink: 10 · (1 + 0.5 · 0.75²)
    assert my[30, 20] - 20 == pytest.approx(10 * (1 + 0.5 * 0.75 ** 2))
    # outside the ellipse: identity
    assert mx[20, 32] == pytest.approx(32.0) and my[20, 32] == pytest.approx(20.0)
    assert mx[0, 0] == pytest.approx(0.0) and my[0, 0] == pytest.approx(0.0)
    # monotonic along the axis, so the warp is one-to-one
    assert np.all(np.diff(mx[20]) > 0)
    with pytest.raises(ValueError, match="strength"):
        bulge_map((8, 8), (4, 4), (2, 2), (0.95, 0.0))


def _face(size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A drawn test face in BiSeNet order: hair around a skin oval with two eyes, a nose and a mouth."""
    import cv2

    names = L.class_names("bisenet")
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (64, 60), 50, names.index("hair"), -1)
    cv2.ellipse(mask, (64, 70), (34, 44), 0, 0, 360, names.index("skin"), -1)
    cv2.ellipse(mask, (50, 62), (7, 3), 0, 0, 360, names.index("r_eye"), -1)
    cv2.ellipse(mask, (78, 62), (7, 3), 0, 0, 360, names.index("l_eye"), -1)
    cv2.ellipse(mask, (64, 78), (3, 6), 0, 0, 360, names.index("nose"), -1)
    cv2.ellipse(mask, (64, 95), (9, 3), 0, 0, 360, names.index("u_lip"), -1)
    img = (L.colorize(mask, "bisenet") * 0.8 + 20).astype(np.uint8)
    return img, mask


def test_animeize_enlarges_eyes_shrinks_nose_and_keeps_labels_valid():
    img, mask = _face()
    names = L.class_names("bisenet")
    eye = [names.index("l_eye"), names.index("r_eye")]
    out, m = animeize_pair(img, mask, "bisenet", np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8 and m.shape == mask.shape
    valid = m != 255
    assert set(np.unique(m[valid])) <= set(np.unique(mask))  # no new classes invented
    # eyes at least twice their area (zoom ≥ 1.5 × 2.4 at the centre, less towards the rim), nose smaller
    eye_area_before = np.isin(mask, eye).sum()
    eye_area_after = np.isin(m, eye).sum()
    assert eye_area_after > 2 * eye_area_before, (eye_area_before, eye_area_after)
    # eyes are taller than wide in proportion: the vertical zoom is the larger one
    ys, xs = np.nonzero(m == names.index("r_eye"))
    assert (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1) > 3 / 7
    # image and mask move together: the drawn iris (not the face's colour) sits inside the eye labels
    assert not np.array_equal(out[m == names.index("r_eye")].mean(0).round(), img[mask == names.index("skin")][0])


def test_animeize_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        animeize_pair(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), "bisenet", np.random.default_rng(0))


def test_parsing_dataset_anime_style_share(tmp_path):
    """data.anime_style = 1 draws every training pair as anime; 0 leaves them as they are; out of range is refused."""
    from PIL import Image

    from vidanime.data.parsing import ParsingDataConfig, ParsingDataset
    from vidanime.errors import ConfigError

    img, mask = _face()
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(img).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    base = dict(root=str(tmp_path), mask_labels="bisenet", image_size=128, flip=False, scale_jitter=0, color_jitter=0)
    plain = ParsingDataset(ParsingDataConfig(**base), "bisenet", augment=True)[0]
    drawn = ParsingDataset(ParsingDataConfig(**base, anime_style=1.0), "bisenet", augment=True)[0]
    np.testing.assert_array_equal(plain["labels"].numpy(), mask)
    assert (drawn["labels"].numpy() != mask).mean() > 0.01
    with pytest.raises(ConfigError, match="anime_style"):
        ParsingDataset(ParsingDataConfig(**base, anime_style=1.5), "bisenet")
