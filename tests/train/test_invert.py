"""W+ inversion (vidanime/train/invert.py): codes the frozen generator renders closer to the given images."""
from __future__ import annotations

import copy

import pytest
import torch

from vidanime.errors import VidanimeError
from vidanime.train.invert import InvertConfig, invert_codes, inverted_targets


def test_inversion_recovers_a_rendered_image_and_leaves_the_generator_alone(tiny_styleanime):
    model = copy.deepcopy(tiny_styleanime)
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    model.decoder.requires_grad_(True)
    model.decoder.style.requires_grad_(False)  # a mix of flags, to see them restored
    flags = [p.requires_grad for p in model.decoder.parameters()]
    g = torch.Generator().manual_seed(0)
    s = model.image_size
    with torch.no_grad():
        w0 = model.encode(torch.rand(3, 3, s, s, generator=g) * 2 - 1, torch.randint(0, 19, (3, s, s), generator=g))
        w_true = w0 + 0.5 * torch.randn(w0.shape, generator=g) * w0.std()
        images = model.decode(w_true)  # images the generator can draw exactly
        err0 = (model.decode(w0) - images).pow(2).mean().item()
    # codes of this tiny model spread ~0.1, hence lr 0.01 (at 0.05 Adam overshoots)
    w = invert_codes(model, images, w0, InvertConfig(steps=40, lr=0.01, lambda_pull=0.0))
    with torch.no_grad():
        err = (model.decode(w) - images).pow(2).mean().item()
    assert err < 0.3 * err0, (err0, err)
    assert all(torch.equal(before[k], v) for k, v in model.decoder.state_dict().items())
    assert [p.requires_grad for p in model.decoder.parameters()] == flags  # restored
    # a strong pull keeps the code near its start: the error falls less
    w_pulled = invert_codes(model, images, w0, InvertConfig(steps=40, lr=0.01, lambda_pull=100.0))
    assert (w_pulled - w0).abs().mean() < 0.5 * (w - w0).abs().mean()


def test_inverted_targets_per_chunk_match_one_batch(tiny_styleanime):
    """Each image is inverted as if alone: chunking (and the batch around an image) changes nothing."""
    g = torch.Generator().manual_seed(1)
    s = tiny_styleanime.image_size
    x, lab = torch.rand(4, 3, s, s, generator=g) * 2 - 1, torch.randint(0, 19, (4, s, s), generator=g)
    cfg = InvertConfig(steps=5, lr=0.02)
    w0a, wa = inverted_targets(tiny_styleanime, x, lab, cfg, chunk=4)
    w0b, wb = inverted_targets(tiny_styleanime, x, lab, cfg, chunk=1)
    assert torch.allclose(w0a, w0b, atol=1e-5) and torch.allclose(wa, wb, atol=1e-4)
    assert (wa - w0a).abs().max() > 1e-3


def test_bad_settings_are_one_line_errors(tiny_styleanime):
    with pytest.raises(VidanimeError, match="steps/lr/lambda_pull"):
        InvertConfig(lr=0)
    s = tiny_styleanime.image_size
    with pytest.raises(VidanimeError, match="2 images but 1 start codes"):
        invert_codes(tiny_styleanime, torch.zeros(2, 3, s, s), torch.zeros(1, tiny_styleanime.n_latent, 32))
