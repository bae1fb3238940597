"""Refinement distillation (vidanime/train/distill.py): the encoders learn to predict given codes on a tiny model."""
from __future__ import annotations

import copy

import pytest
import torch

from vidanime.errors import VidanimeError
from vidanime.train.distill import DistillConfig, distill_encoders


def _random_batch(model, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random model-size images in [-1, 1] and random 19-class label maps."""
    s = model.image_size
    return torch.rand(n, 3, s, s, generator=g) * 2 - 1, torch.randint(0, 19, (n, s, s), generator=g)


@pytest.mark.slow
def test_encoders_move_toward_the_target_codes_and_the_loss_falls(tiny_styleanime):
    model = copy.deepcopy(tiny_styleanime)
    g = torch.Generator().manual_seed(0)
    images, labels = _random_batch(model, 6, g)
    with torch.no_grad():
        w0 = model.encode(images, labels)
        targets = w0 + 0.5 * torch.randn(w0.shape, generator=g) * w0.std()  # codes the encoders do not give
    rows = distill_encoders(model, images, labels, targets, DistillConfig(steps=60, batch=6, lr=2e-3), log_every=20)
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"], rows
    with torch.no_grad():
        after = model.encode(images, labels)
    assert (after - targets).pow(2).mean() < 0.7 * (w0 - targets).pow(2).mean()
    assert not any(p.requires_grad for p in model.parameters())  # left frozen, in eval mode
    assert not model.encoder.training


def test_mismatched_inputs_are_one_line_errors(tiny_styleanime):
    s = tiny_styleanime.image_size
    with pytest.raises(VidanimeError, match="as many"):
        distill_encoders(tiny_styleanime, torch.zeros(2, 3, s, s), torch.zeros(1, s, s, dtype=torch.long),
                         torch.zeros(2, tiny_styleanime.n_latent, 8))
    with pytest.raises(VidanimeError, match="steps"):
        DistillConfig(steps=-1)


@pytest.mark.slow
def test_distill_refine_runs_in_parts_and_writes_a_loadable_model(assets, tmp_path):
    """The pipeline on 4 shipped portraits: two one-portrait-range parts, then the run that takes their codes."""
    from pipelines.distill import DistillRunConfig, distill_refine
    from vidanime.registry import load_styleanime

    a, b, full = tmp_path / "a", tmp_path / "b", tmp_path / "full"
    faces = str(assets / "faces")
    distill_refine(DistillRunConfig(faces=faces, refine=1, steps=0, limit=2), a)
    distill_refine(DistillRunConfig(faces=faces, refine=1, steps=0, limit=2, offset=2), b)
    parts = [torch.load(p / "targets.pt", weights_only=True) for p in (a, b)]
    out = distill_refine(DistillRunConfig(faces=faces, refine=1, steps=3, limit=4), full, parts=[b, a])
    assert not (full / "targets.pt").exists()  # the parts' codes were used, none computed again
    model = load_styleanime(out)
    assert model.discriminator_state is not None
    assert model.inference == load_styleanime("styleanime-p2a").inference  # the saved defaults carry over
    assert (full / "config.yaml").is_file() and len((full / "metrics.jsonl").read_text().splitlines()) == 1
    # the parts' refined codes differ from the encoders' (the refinement did something)
    assert all((p["targets"] - p["w0"]).abs().max() > 1e-4 for p in parts)


@pytest.mark.slow
def test_adversarial_term_raises_d2_on_the_distilled_drawings(tiny_styleanime):
    """lambda_adv > 0 adds softplus(-D2(G(E(x)))): with only that term weighted up, D2's score of the outputs rises;
    without discriminators it is a one-line error."""
    from vidanime.losses.latent import LatentDiscriminator
    from vidanime.models.stylegan2 import Discriminator

    model = copy.deepcopy(tiny_styleanime)
    gcfg = model.config.generator
    torch.manual_seed(3)
    discs = (LatentDiscriminator(gcfg.n_latent, gcfg.style_dim), Discriminator(gcfg))
    images, labels = _random_batch(model, 8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        targets = model.encode(images, labels)
        before = discs[1](model.decode(targets)).mean().item()
    cfg = DistillConfig(steps=30, batch=8, lr=2e-3, lambda_image=0.0, lambda_adv=10.0)
    rows = distill_encoders(model, images, labels, targets, cfg, log_every=10, discriminators=discs)
    assert "adv" in rows[0] and rows[-1]["adv"] < rows[0]["adv"], rows
    with torch.no_grad():
        after = discs[1](model.decode(model.encode(images, labels))).mean().item()
    assert after > before
    with pytest.raises(VidanimeError, match="needs the checkpoint's discriminators"):
        distill_encoders(model, images, labels, targets, cfg)


def test_blend_moves_the_encoder_weights_part_of_the_way(tiny_styleanime):
    from vidanime.train.distill import blend_encoders

    model = copy.deepcopy(tiny_styleanime)
    start = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)  # "distilled": every weight one higher
    tuned = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    n = blend_encoders(model, start, 0.3)
    assert n == sum(1 for k, v in start.items() if v.is_floating_point() and not torch.equal(v, tuned[k])) > 0
    for k, v in model.encoder.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, start[k] + 0.3 * (tuned[k] - start[k]), atol=1e-6), k
    blend_encoders(model, start, 0.0)
    assert all(torch.equal(v, start[k]) for k, v in model.encoder.state_dict().items())
    with pytest.raises(VidanimeError, match="blend t = 1.5"):
        blend_encoders(model, start, 1.5)
