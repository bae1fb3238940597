"""Test-time refinement (vidanime/train/refine.py): the grouping, the structure term on hand-built parser outputs, and
a refinement that lowers its objective and moves the output's colours towards the input's."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vidanime import labels as L
from vidanime.errors import VidanimeError
from vidanime.models.styleanime import StyleAnime
from vidanime.train.refine import STRUCTURE_GROUPS, LatentRefiner, RefineConfig, group_matrix


class LabelParser(torch.nn.Module):
    """Returns fixed logits (a confident one-hot of ``labels``) at its own size, whatever the image."""

    def __init__(self, labels: torch.Tensor, size: int, confidence: float = 20.0):
        super().__init__()
        self.config = SimpleNamespace(image_size=size, label_set="bisenet")
        self.logits = torch.nn.functional.one_hot(labels, 19).permute(0, 3, 1, 2).float() * confidence

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert tuple(x.shape[-2:]) == (self.config.image_size,) * 2  # parsed at the parser's own size
        return self.logits.expand(len(x), -1, -1, -1) + 0 * x.mean()


class ConvParser(torch.nn.Module):
    """A small differentiable parser (seeded random 1x1 conv) so the structure term has gradients."""

    def __init__(self, size: int):
        super().__init__()
        self.config = SimpleNamespace(image_size=size, label_set="bisenet")
        torch.manual_seed(5)
        self.conv = torch.nn.Conv2d(3, 19, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x * 2 - 1) * 4


@pytest.fixture(scope="module")
def model(tiny_styleanime) -> StyleAnime:
    return tiny_styleanime


def test_every_class_of_every_label_set_is_in_exactly_one_group():
    for name in ("bisenet", "celebamask", "danbooru"):
        m = group_matrix(name)
        assert m.shape == (len(STRUCTURE_GROUPS), L.num_classes(name)) and torch.equal(m.sum(0), torch.ones(m.shape[1]))
    g = group_matrix("bisenet")
    hair = list(STRUCTURE_GROUPS).index("hair")
    assert g[hair, L.class_ids("bisenet", "hair")[0]] == 1
    assert g[list(STRUCTURE_GROUPS).index("mouth"), L.class_ids("bisenet", "u_lip")[0]] == 1


def test_structure_term_is_zero_for_the_same_layout_and_large_for_another(model):
    s = model.image_size
    labels = torch.zeros(1, s, s, dtype=torch.long)
    labels[:, : s // 2] = L.class_ids("bisenet", "hair")[0]
    labels[:, s // 2 :, s // 4 : 3 * s // 4] = L.class_ids("bisenet", "skin")[0]
    big = labels.repeat_interleave(2, 1).repeat_interleave(2, 2)  # the same layout at the parser's 2x size
    image = torch.zeros(1, 3, s, s)
    same = LatentRefiner(model, LabelParser(big, 2 * s)).structure_loss(image, labels)
    # nose and skin share a group: a parser calling the skin "nose" costs nothing
    nose = big.clone()
    nose[big == L.class_ids("bisenet", "skin")[0]] = L.class_ids("bisenet", "nose")[0]
    grouped = LatentRefiner(model, LabelParser(nose, 2 * s)).structure_loss(image, labels)
    flipped = LatentRefiner(model, LabelParser(big.flip(1), 2 * s)).structure_loss(image, labels)
    assert same.item() < 1e-6 and grouped.item() < 1e-6
    # half the pixels wrong with confidence 20: CE ~ 20 on those, ~ 10 on average
    assert flipped.item() > 8


def test_refinement_lowers_its_objective_and_pulls_hair_colour_towards_the_input(model):
    s = model.image_size
    torch.manual_seed(1)
    labels = torch.zeros(2, s, s, dtype=torch.long)
    labels[:, : s // 2] = L.class_ids("bisenet", "hair")[0]
    labels[:, s // 2 :] = L.class_ids("bisenet", "skin")[0]
    image = torch.zeros(2, 3, s, s)
    image[:, 0, : s // 2], image[:, 1:, : s // 2] = 0.8, -0.8  # red hair
    with torch.no_grad():
        w0 = model.encode(image, labels)
    ref = LatentRefiner(model, ConvParser(2 * s), RefineConfig(steps=40, lr=0.05, lambda_pull=0.01))
    assert torch.equal(ref(w0, image, labels, steps=0), w0)
    w = ref(w0, image, labels)
    before, after = ref.losses(w0, w0, image, labels)[1], ref.losses(w, w0, image, labels)[1]
    assert after["colour"] < 0.5 * before["colour"], (before, after)
    assert after["structure"] < before["structure"], (before, after)
    with torch.no_grad():
        red = lambda x: (x[:, 0, : s // 2] - x[:, 1:, : s // 2].mean(1)).mean().item()  # noqa: E731
        assert red(model.decode(w)) > red(model.decode(w0)) + 0.1


def test_bad_settings_are_one_line_errors():
    with pytest.raises(VidanimeError, match="steps"):
        RefineConfig(steps=-1)
    with pytest.raises(VidanimeError, match="lambda_pull"):
        RefineConfig(lambda_pull=-0.1)


def _discriminators(model: StyleAnime, seed: int = 3):
    from vidanime.losses.latent import LatentDiscriminator
    from vidanime.models.stylegan2 import Discriminator

    torch.manual_seed(seed)
    gcfg = model.config.generator
    return LatentDiscriminator(gcfg.n_latent, gcfg.style_dim), Discriminator(gcfg)


def test_anime_terms_follow_the_discriminators_and_are_dropped_without_them(model):
    s = model.image_size
    torch.manual_seed(2)
    labels = torch.zeros(2, s, s, dtype=torch.long)
    image = torch.zeros(2, 3, s, s)
    with torch.no_grad():
        w0 = model.encode(image, labels)
    d1, d2 = _discriminators(model)
    only_d = RefineConfig(steps=30, lr=0.05, lambda_structure=0, lambda_colour=0, lambda_pull=0.0,
                          lambda_adv=1.0, lambda_latent=1.0)
    ref = LatentRefiner(model, ConvParser(2 * s), only_d, (d1, d2))
    # the D2 term is softplus(-D2) of each image on its own (no minibatch coupling): a hand computation per face
    with torch.no_grad():
        terms = ref.losses(w0, w0, image, labels)[1]
        out = model.decode(w0)
        expect = torch.nn.functional.softplus(-torch.cat([d2(out[:1]), d2(out[1:])])).mean().item()
    assert terms["adv"] == pytest.approx(expect, rel=1e-5)
    assert terms["latent"] == pytest.approx(torch.nn.functional.softplus(-d1(w0)).mean().item(), rel=1e-5)
    after = ref.losses(ref(w0, image, labels), w0, image, labels)[1]
    assert after["adv"] < terms["adv"] and after["latent"] < terms["latent"], (terms, after)
    # a model without saved discriminators refines without those terms (the config's weights set to 0)
    plain = LatentRefiner(model, ConvParser(2 * s), only_d)
    assert plain.config.lambda_adv == 0 and plain.config.lambda_latent == 0
    assert plain.losses(w0, w0, image, labels)[1]["adv"] == 0


def test_saved_discriminators_reach_the_refiner_through_the_checkpoint(model, tmp_path, monkeypatch):
    import vidanime.registry as registry
    from pipelines.translate import build_refiner
    from vidanime.models.styleanime import save_styleanime

    d1, d2 = _discriminators(model, seed=4)
    disc = {"d1": d1.state_dict(), "d2": d2.state_dict(), "d1_layers": 4, "mbstd_group": 4}
    loaded = registry.load_styleanime(save_styleanime(tmp_path / "m.pt", model, discriminators=disc))
    again = registry.load_styleanime(save_styleanime(tmp_path / "again.pt", loaded))  # kept when re-saved
    monkeypatch.setattr("pipelines.translate.load_model", lambda *a, **k: ConvParser(2 * model.image_size))
    for m in (loaded, again):
        ref = build_refiner(m, "p2a")
        assert ref.config.lambda_adv > 0 and ref.config.lambda_latent > 0
        for mine, saved in ((ref.d1, d1), (ref.d2, d2)):
            assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), saved.state_dict().values()))
    assert model.discriminator_state is None  # the fixture's model has none: its refiner drops the terms
    assert build_refiner(model, "p2a").config.lambda_adv == 0
