"""StyleAnime: disentanglement (gradients), latent_avg, fixed-noise decoding, style mixing, FaceBank, checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidanime.config import load_config
from vidanime.errors import CheckpointError, VidanimeError
from vidanime.models.facebank import FaceBank
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig, save_styleanime, styleanime_from_checkpoint
from vidanime.registry import load_styleanime

TINY = Path(__file__).resolve().parents[2] / "configs" / "styleanime_tiny.yaml"


def tiny_model(**overrides) -> StyleAnime:
    torch.manual_seed(0)
    model = StyleAnime(load_config(TINY, StyleAnimeConfig, overrides=overrides)).eval()
    model.set_latent_avg(torch.randn(model.config.generator.style_dim) * 0.1)
    return model


def inputs(batch: int = 2, n_classes: int = 19, size: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
            torch.randint(0, n_classes, (batch, size, size), generator=g))


def test_tiny_config_keeps_the_paper_structure():
    m = tiny_model()
    assert m.n_latent == 8 and m.n_structure_codes == 6 and m.config.n_coarse_codes == 2
    assert len(m.encoder.encoder_1.styles) == 6 and len(m.encoder.encoder_2.styles) == 2
    assert m.encoder.encoder_1.levels == ("coarse",) * 2 + ("medium",) * 4
    assert m.encoder.encoder_2.levels == ("fine",) * 2
    assert not any(p.requires_grad for p in m.decoder.parameters())  # G is frozen
    m.train()
    assert m.encoder.training and not m.decoder.training


def test_parsing_drives_only_structure_codes_and_image_only_appearance_codes():
    m = tiny_model()
    image, labels = inputs()
    onehot = m.parsing_input(labels).requires_grad_(True)
    image = image.requires_grad_(True)
    w = m.encode(image, onehot)
    n_s = m.n_structure_codes
    g_parse_app, g_img_app = torch.autograd.grad(
        w[:, n_s:].square().sum(), [onehot, image], allow_unused=True, retain_graph=True
    )
    assert g_parse_app is None or g_parse_app.abs().max() == 0
    assert g_img_app.abs().max() > 0
    g_parse_str, g_img_str = torch.autograd.grad(w[:, :n_s].square().sum(), [onehot, image], allow_unused=True)
    assert g_parse_str.abs().max() > 0
    assert g_img_str is None or g_img_str.abs().max() == 0
    # parameters: structure codes train E_p only, appearance codes train E_s only
    m.zero_grad()
    w = m.encode(image.detach(), labels)
    w[:, :n_s].sum().backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in m.encoder.encoder_2.parameters())
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in m.encoder.encoder_1.parameters())
    # changing only the image leaves codes 0..n_s-1 untouched, and vice versa
    with torch.no_grad():
        image2, labels2 = inputs(seed=5)
        w1, w2, w3 = m.encode(image, labels), m.encode(image2, labels), m.encode(image, labels2)
    assert torch.equal(w1[:, :n_s], w2[:, :n_s]) and not torch.allclose(w1[:, n_s:], w2[:, n_s:])
    assert torch.equal(w1[:, n_s:], w3[:, n_s:]) and not torch.allclose(w1[:, :n_s], w3[:, :n_s])


def test_codes_are_residuals_on_latent_avg_and_decode_uses_fixed_noise():
    m = tiny_model()
    image, labels = inputs()
    with torch.no_grad():
        raw = torch.cat(m.encoder(m.parsing_input(labels), image), 1)
        w = m.encode(image, labels)
        torch.testing.assert_close(w, raw + m.latent_avg)
        a, b = m.decode(w), m.decode(w)
        assert torch.equal(a, b)  # no re-randomised noise
        torch.testing.assert_close(a, m.decoder([w], input_is_latent=True, noise=m.decoder.fixed_noise())[0])
        for layer in [m.decoder.conv1, *m.decoder.convs]:
            layer.noise.weight.fill_(0.3)  # fresh generators have zero noise strength
        a = m.decode(w)
        m.decoder.noises.noise_3.add_(1.0)
        assert not torch.allclose(m.decode(w), a)  # the buffers are what is used


def test_reference_gives_appearance_codes_and_facebank_alpha():
    m = tiny_model()
    image, labels = inputs()
    reference, _ = inputs(batch=1, seed=9)
    n_s = m.n_structure_codes
    out, w = m.translate(image, labels, reference=reference, return_latents=True)
    torch.testing.assert_close(w[:, :n_s], m.encode_structure(labels))
    torch.testing.assert_close(w[:, n_s:], m.encode_appearance(reference).expand(2, -1, -1))
    torch.testing.assert_close(out, m.decode(w))
    with pytest.raises(VidanimeError, match="needs a FaceBank"):
        m.translate(image, labels, alpha=0.5)
    bank = FaceBank(torch.randn(64, m.config.generator.style_dim))
    w0 = m.encode(image, labels).detach()
    anchor, _, _ = bank.anchor(w0, k=4)
    _, w_agg = m.translate(image, labels, alpha=0.25, k=4, facebank=bank, return_latents=True)
    torch.testing.assert_close(w_agg, 0.25 * w0 + 0.75 * anchor)
    with pytest.raises(VidanimeError, match=r"alpha=2.0: expected a number in \[0, 1\]"):
        m.translate(image, labels, alpha=2.0, facebank=bank)


def test_bad_inputs_name_the_expected_value():
    m = tiny_model()
    image, labels = inputs()
    with pytest.raises(VidanimeError, match=r"expected \(B, 19, 32, 32\) \(19 classes of label set 'bisenet'\)"):
        m.encode(image, torch.zeros(2, 17, 32, 32))
    with pytest.raises(VidanimeError, match="outside the 19 classes"):
        m.encode(image, labels + 5)
    with pytest.raises(VidanimeError, match="expected 32x32"):
        m.encode(torch.zeros(2, 3, 64, 64), labels)
    with pytest.raises(VidanimeError, match=r"expected an RGB batch \(B, 3, 32, 32\)"):
        m.encode(torch.zeros(2, 1, 32, 32), labels)
    with pytest.raises(VidanimeError, match=r"expected \(B, 8, 32\)"):
        m.decode(torch.zeros(2, 14, 32))


def test_seventeen_class_model():
    import numpy as np

    from vidanime import labels as label_sets

    ids = np.arange(19)
    for a, b in [("celebamask", "bisenet"), ("bisenet", "celebamask")]:  # 19 ↔ 19: bijective, round trip exact
        assert sorted(label_sets.remap(ids, a, b)) == list(range(19))
        assert np.array_equal(label_sets.remap(label_sets.remap(ids, a, b), b, a), ids)
    to17 = label_sets.remap(ids, "celebamask", "danbooru")  # lips merge into the mouth for the 17-class model
    mouth = label_sets.DANBOORU.index("mouth")
    assert [int(to17[label_sets.CELEBAMASK.index(n)]) for n in ("mouth", "u_lip", "l_lip")] == [mouth] * 3
    assert len(set(to17.tolist())) == 17
    m = tiny_model(label_set="danbooru")
    assert m.encoder.encoder_1.input_layer[0].weight.shape[1] == 17
    image, labels = inputs(n_classes=17)
    assert m.translate(image, labels).shape == (2, 3, 32, 32)


def test_checkpoint_round_trip_with_facebank(tmp_path):
    from vidanime.checkpoint import load_checkpoint
    from vidanime.models.stylegan2 import Generator, save_generator

    m = tiny_model()
    bank = FaceBank(torch.randn(40, 32))
    image, labels = inputs()
    ref = m.translate(image, labels, alpha=0.5, facebank=bank)
    save_styleanime(tmp_path / "sa.pt", m, facebank=bank)
    m2 = styleanime_from_checkpoint(load_checkpoint(tmp_path / "sa.pt"))
    assert m2.config == m.config and torch.equal(m2.facebank.codes, bank.codes)
    torch.testing.assert_close(m2.translate(image, labels, alpha=0.5), ref, atol=1e-6, rtol=0)
    m3 = load_styleanime(tmp_path / "sa.pt")
    torch.testing.assert_close(m3.translate(image, labels, alpha=0.5), ref, atol=1e-6, rtol=0)
    save_generator(tmp_path / "g.pt", Generator(m.config.generator))
    with pytest.raises(CheckpointError, match="'vidanime.stylegan2' checkpoint, expected 'vidanime.styleanime'"):
        load_styleanime(tmp_path / "g.pt")


def test_saved_inference_defaults_apply_when_alpha_is_not_given(tmp_path):
    """A checkpoint's measured test-time defaults (FaceBank alpha and k) are used for alpha=None / k=None; alpha 1 is
    off."""
    m = tiny_model()
    m.facebank = FaceBank(torch.randn(64, m.config.generator.style_dim))
    m.inference = {"alpha": 0.5, "k": 3, "refine": 7}
    path = save_styleanime(tmp_path / "sa.pt", m)
    loaded = load_styleanime(path)
    assert loaded.inference == {"alpha": 0.5, "k": 3, "refine": 7}
    x, p = inputs()
    with torch.no_grad():
        default = loaded.translate(x, p)
        torch.testing.assert_close(default, loaded.translate(x, p, alpha=0.5, k=3))
        assert not torch.allclose(default, loaded.translate(x, p, alpha=1.0))
        assert not torch.allclose(default, loaded.translate(x, p, alpha=0.5, k=10))
        # an explicit alpha still takes the saved k unless k is given too (--alpha alone keeps the model's k)
        torch.testing.assert_close(loaded.translate(x, p, alpha=0.5), default)
    # a saved anchor_layers entry pins those layers to the bank whenever it is used, at any alpha, never at alpha 1
    loaded.inference["anchor_layers"] = [loaded.n_latent - 1]
    with torch.no_grad():
        w = loaded.encode(x, p)
        pinned = loaded.aggregate(w, 0.9, k=3)
        anchor, _, _ = loaded.facebank.anchor(w, 3)
        torch.testing.assert_close(pinned[:, -1], anchor[:, -1])
        torch.testing.assert_close(pinned[:, :-1], 0.9 * w[:, :-1] + 0.1 * anchor[:, :-1])
        assert loaded.aggregate(w, 1.0) is w
    plain = tiny_model()
    assert plain.inference == {}
    with torch.no_grad():  # no saved defaults: alpha None is no FaceBank, as before
        torch.testing.assert_close(plain.translate(x, p), plain.translate(x, p, alpha=1.0))


def test_train_encoders_keeps_batchnorm_statistics_when_frozen():
    """``train_encoders(freeze_bn=True)``: a training-mode forward leaves the encoders' BatchNorm running statistics
    unchanged (they are in eval mode) and the generator in eval mode; without it the statistics move."""
    m = tiny_model()
    bns = [b for b in m.encoder.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns, "the tiny encoders hold BatchNorm layers"
    x, p = inputs()
    before = [b.running_mean.clone() for b in bns]
    m.train_encoders(freeze_bn=True)
    assert m.encoder.training and not m.decoder.training and not any(b.training for b in bns)
    m.encode(x, p)
    assert all(torch.equal(b.running_mean, r) for b, r in zip(bns, before))
    m.train_encoders()
    m.encode(x, p)
    assert any(not torch.equal(b.running_mean, r) for b, r in zip(bns, before))
