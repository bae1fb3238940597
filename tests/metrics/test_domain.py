"""Anime-vs-portrait domain classifier: separates held-out shipped images, and features are deterministic."""
import numpy as np
import pytest

from vidanime.errors import VidanimeError
from vidanime.metrics.domain import DomainClassifier, domain_features


def _load(paths):
    from vidanime.data.image_io import read_image_rgb

    return [read_image_rgb(p) for p in paths]


def test_features_hand_case():
    flat = np.full((32, 32, 3), 128, np.uint8)  # flat grey: no saturation, no gradient
    f = domain_features(flat)
    assert f.shape == (16 * 16 * 3 + 32,)
    np.testing.assert_allclose(f[:768], 128 / 255, atol=1e-6)
    sat, mag = f[768:784] / 4, f[784:] / 4
    assert sat[0] == pytest.approx(1.0) and mag[0] == pytest.approx(1.0)  # all mass in the first bins
    with pytest.raises(VidanimeError, match="uint8"):
        domain_features(flat.astype(np.float32))


def test_classifier_separates_held_out_domains(assets):
    from vidanime.data.images import list_images

    anime = list_images(assets / "anime")
    faces = sorted((assets / "faces" / "images").glob("*.jpg"))
    clf = DomainClassifier.fit(_load(anime[:150]), _load(faces[:150]))
    p_anime = clf.score(_load(anime[-60:]))
    p_face = clf.score(_load(faces[-60:]))
    acc = ((p_anime > 0.5).sum() + (p_face < 0.5).sum()) / 120
    assert acc > 0.9, acc
    assert p_anime.mean() > 0.8 and p_face.mean() < 0.2
