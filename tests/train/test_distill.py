"""Refinement distillation (vidanime/train/distill.py): the encoders learn to predict given codes on a tiny model."""
from __future__ import annotations

import copy

import pytest
import torch

from vidanime.errors import VidanimeError
from vidanime.train.distill import DistillConfig, distill_encoders


def test_encoders_move_toward_the_target_codes_and_the_loss_falls(tiny_styleanime):
    model = copy.deepcopy(tiny_styleanime)
    s = model.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, s, s, generator=g) * 2 - 1
    labels = torch.randint(0, 19, (6, s, s), generator=g)
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
    from pipelines.distill_refine import run
    from vidanime.registry import load_styleanime

    a, b, full = tmp_path / "a", tmp_path / "b", tmp_path / "full"
    run(a, "styleanime-p2a", refine=1, steps=0, lr=5e-5, lambda_image=1.0, limit=2)
    run(b, "styleanime-p2a", refine=1, steps=0, lr=5e-5, lambda_image=1.0, limit=2, offset=2)
    parts = [torch.load(p / "targets.pt", weights_only=True) for p in (a, b)]
    out = run(full, "styleanime-p2a", refine=1, steps=3, lr=5e-5, lambda_image=1.0, limit=4, parts=[b, a])
    assert not (full / "targets.pt").exists()  # the parts' codes were used, none computed again
    model = load_styleanime(out)
    assert model.discriminator_state is not None and model.inference.get("refine") == 10
    assert (full / "config.yaml").is_file() and len((full / "metrics.jsonl").read_text().splitlines()) == 1
    # the parts' refined codes differ from the encoders' (the refinement did something)
    assert all((p["targets"] - p["w0"]).abs().max() > 1e-4 for p in parts)
