"""Anime-vs-portrait domain classifier: separates held-out shipped images, and features are deterministic."""
import numpy as np
import pytest
import torch

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


def _tiny_parser(arch="bisenet"):
    from vidanime.models.parser import ParserConfig, build_parser

    torch.manual_seed(0)
    return build_parser(ParserConfig(arch=arch, width=0.125, blocks=[1, 1, 1, 1], image_size=32)).eval()


@pytest.mark.parametrize("arch", ["bisenet", "danet"])
def test_parser_features_are_the_pooled_backbone_outputs(arch):
    """The features are the backbone's 1/16 and 1/32 outputs averaged over space (computed here by hand from the
    backbone on the resized, normalised input), the same in any batch size, and the hook is removed afterwards."""
    from vidanime.metrics.domain import parser_features
    from vidanime.models.parser import ResNet

    parser = _tiny_parser(arch)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    f = parser_features(parser, images, batch_size=2)
    backbone = next(m for m in parser.modules() if isinstance(m, ResNet))
    seen = []
    h = backbone.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0]))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        parser(torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False))
        h.remove()
        _, f16, f32 = backbone(seen[0])
    want = torch.cat([f16.mean((2, 3)), f32.mean((2, 3))], 1).double().numpy()
    assert f.shape == want.shape and np.allclose(f, want, atol=1e-5)
    assert np.allclose(parser_features(parser, images, batch_size=16), f, atol=1e-5)
    assert not backbone._forward_hooks
    with pytest.raises(VidanimeError, match="uint8"):
        parser_features(parser, images.astype(np.float32))


def test_anime_look_kid_is_zero_for_the_same_distribution_and_positive_for_another():
    from vidanime.metrics.domain import anime_look_kid

    parser = _tiny_parser()
    rng = np.random.default_rng(1)
    flat = np.repeat(np.repeat(rng.integers(0, 256, (60, 4, 4, 3), dtype=np.uint8), 8, 1), 8, 2)  # blocky pictures
    noise = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    same = anime_look_kid(parser, flat[:30], flat[30:])
    other = anime_look_kid(parser, noise, flat[30:])
    assert abs(same) < 0.1 * other and other > 0, (same, other)
