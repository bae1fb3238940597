"""FaceBank (Eq. 11–14): exact kNN, sum-to-one least-squares anchors, W vs W+ storage, files, build, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidanime.errors import CheckpointError, VidanimeError
from vidanime.models.facebank import FaceBank, anchor_weights, build_facebank, knn, knn_reference
from vidanime.models.stylegan2 import Generator, StyleGAN2Config, save_generator

TINY_G = StyleGAN2Config(size=32, style_dim=16, n_mlp=2, channel_multiplier=1, channel_max=16)


def test_knn_equals_brute_force_across_chunks():
    torch.manual_seed(3)
    bank, queries = torch.randn(700, 24), torch.randn(13, 24)
    for k, bank_chunk, query_chunk in [(10, 64, 8), (1, 700, 100), (10, 7, 5), (60, 300, 16)]:
        dist, idx = knn(queries, bank, k, bank_chunk=bank_chunk, query_chunk=query_chunk)
        ref_d, ref_i = knn_reference(queries, bank, k)
        assert torch.equal(idx, ref_i), (k, bank_chunk)
        torch.testing.assert_close(dist, ref_d, atol=1e-5, rtol=1e-5)
    with pytest.raises(VidanimeError, match="expected 1..700"):
        knn(queries, bank, 701)


def test_hand_built_anchor_is_the_exact_constrained_least_squares_solution():
    # Neighbours span the plane z = 0; the closest affine combination to q is its projection (0.2, 0.3, 0), i.e.
    # beta = (1 - 0.2 - 0.3, 0.2, 0.3) by hand.
    neigh = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]], dtype=torch.float64)
    q = torch.tensor([[0.2, 0.3, 5.0]], dtype=torch.float64)
    beta = anchor_weights(q, neigh)
    torch.testing.assert_close(beta, torch.tensor([[0.5, 0.2, 0.3]], dtype=torch.float64), atol=1e-7, rtol=0)
    neigh, q = neigh.float(), q.float()
    # Same case through a FaceBank whose other codes are far away; W+ queries with 2 identical layers.
    far = torch.full((5, 3), 100.0) + torch.arange(5.0)[:, None]
    bank = FaceBank(torch.cat([far, neigh[0]]))
    w = q[:, None].expand(1, 2, 3)
    anchor, b2, idx = bank.anchor(w, k=3)
    assert sorted(idx[0].tolist()) == [5, 6, 7]
    torch.testing.assert_close(anchor, torch.tensor([[[0.2, 0.3, 0.0]] * 2]), atol=1e-6, rtol=0)
    torch.testing.assert_close(b2.sum(1), torch.ones(1))


def test_weights_match_numpy_lstsq_and_sum_to_one():
    rng = np.random.default_rng(0)
    q, neigh = rng.normal(size=(4, 16)), rng.normal(size=(4, 5, 16))
    beta = anchor_weights(torch.tensor(q), torch.tensor(neigh)).numpy()
    np.testing.assert_allclose(beta.sum(1), 1.0, atol=1e-12)
    for i in range(4):  # eliminate the constraint: beta_0 = 1 - sum(rest), then ordinary least squares
        a = (neigh[i, 1:] - neigh[i, 0]).T
        rest, *_ = np.linalg.lstsq(a, q[i] - neigh[i, 0], rcond=None)
        np.testing.assert_allclose(beta[i], np.concatenate([[1 - rest.sum()], rest]), atol=1e-6)


def test_many_neighbours_on_two_threads_match_one_at_a_time():
    """k = 170 > D (a rank-deficient Gram matrix, 171x171 bordered system) in a batch on two threads: torch 2.14's
    batched CPU LU gave invalid pivots there (the anchor raised).  The anchors must equal those of each query alone
    on one thread — and, 170 neighbours spanning all 128 dimensions, the query itself — with weights summing to one
    (the weights agree only to round-off: with k > D + 1 many weightings give the same anchor)."""
    rng = np.random.default_rng(4)
    q, neigh = torch.tensor(rng.normal(size=(6, 128))), torch.tensor(rng.normal(size=(6, 170, 128)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        batched = anchor_weights(q, neigh)
        torch.set_num_threads(1)
        alone = torch.cat([anchor_weights(q[i : i + 1], neigh[i : i + 1]) for i in range(6)])
    finally:
        torch.set_num_threads(before)
    anchor = (batched[..., None] * neigh).sum(1)
    torch.testing.assert_close(anchor, (alone[..., None] * neigh).sum(1), atol=1e-10, rtol=0)
    torch.testing.assert_close(anchor, q, atol=1e-6, rtol=0)
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(batched.sum(1), torch.ones(6, dtype=torch.float64))


def test_k1_and_duplicate_neighbours():
    q = torch.tensor([[0.3, 0.4]])
    assert torch.equal(anchor_weights(q, torch.tensor([[[1.0, 1.0]]])), torch.ones(1, 1))
    neigh = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]])  # a duplicated neighbour: singular Gram matrix
    beta = anchor_weights(q, neigh)
    assert torch.isfinite(beta).all()
    # the anchor is the projection (0.3, 0); the duplicates share 0.7 (equally, by the ridge's minimum norm)
    torch.testing.assert_close((beta[..., None] * neigh).sum(1), torch.tensor([[0.3, 0.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(beta, torch.tensor([[0.35, 0.35, 0.3]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(beta.sum(1), torch.ones(1))


def test_code_in_bank_returns_itself():
    torch.manual_seed(0)
    codes = torch.randn(300, 16)
    bank = FaceBank(codes)
    w = codes[[5, 123]][:, None].expand(2, 6, 16).clone()
    anchor, beta, idx = bank.anchor(w, k=10)
    assert idx[:, 0].tolist() == [5, 123]
    torch.testing.assert_close(beta[:, 0], torch.ones(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(anchor, w, atol=1e-6, rtol=0)
    torch.testing.assert_close(bank.aggregate(w, alpha=0.0), w, atol=1e-6, rtol=0)
    plus = FaceBank(torch.randn(50, 6, 16))  # a W+ bank: exact hit, exact weights
    w = plus.codes[[7]]
    anchor, beta, idx = plus.anchor(w, k=4)
    assert idx[0, 0] == 7 and torch.equal(beta[0], torch.tensor([1.0, 0, 0, 0])) and torch.equal(anchor, w)


def test_w_bank_equals_the_repeated_w_plus_bank():
    """Storing W (N, D) is exact: same neighbours, weights and anchors as the (N, L, D) bank of repeated codes."""
    torch.manual_seed(1)
    codes = torch.randn(400, 16)
    w_bank, plus_bank = FaceBank(codes), FaceBank(codes[:, None].expand(-1, 6, -1).contiguous())
    w = torch.randn(5, 6, 16)
    a1, b1, i1 = w_bank.anchor(w, k=8)
    a2, b2, i2 = plus_bank.anchor(w, k=8)
    assert torch.equal(i1, i2)
    torch.testing.assert_close(b1, b2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a1, a2, atol=1e-5, rtol=1e-5)
    (j1, d1), (j2, d2) = w_bank.search(w, 8), plus_bank.search(w, 8)
    assert torch.equal(j1, j2)
    torch.testing.assert_close(d1, d2, atol=1e-4, rtol=1e-5)


def test_aggregate_is_eq14_and_checks_alpha():
    torch.manual_seed(2)
    bank = FaceBank(torch.randn(100, 8))
    w = torch.randn(3, 4, 8)
    anchor, _, _ = bank.anchor(w, k=5)
    torch.testing.assert_close(bank.aggregate(w, 0.3, k=5), 0.3 * w + 0.7 * anchor)
    assert bank.aggregate(w, 1.0) is w
    with pytest.raises(VidanimeError, match=r"expected a number in \[0, 1\]"):
        bank.aggregate(w, 1.5)
    with pytest.raises(VidanimeError, match=r"expected \(B, n_latent, 8\)"):
        bank.aggregate(torch.randn(3, 4, 9), 0.5)


def test_anchor_layers_take_the_anchor_alone():
    """Layers named in anchor_layers are w_anchor itself, the others Eq. 14; alpha 1 still leaves w untouched."""
    torch.manual_seed(3)
    bank = FaceBank(torch.randn(100, 8))
    w = torch.randn(3, 4, 8)
    anchor, _, _ = bank.anchor(w, k=5)
    out = bank.aggregate(w, 0.7, k=5, anchor_layers=[3, 1])
    torch.testing.assert_close(out[:, [1, 3]], anchor[:, [1, 3]])
    torch.testing.assert_close(out[:, [0, 2]], 0.7 * w[:, [0, 2]] + 0.3 * anchor[:, [0, 2]])
    assert not torch.allclose(out[:, 1], w[:, 1])
    assert bank.aggregate(w, 1.0, anchor_layers=[3]) is w
    # -1 is the finest layer whatever the generator's size (one recipe for 64 and 128 px)
    torch.testing.assert_close(bank.aggregate(w, 0.7, k=5, anchor_layers=[-1, 1]), out)
    with pytest.raises(VidanimeError, match=r"anchor_layers=\[4\]: expected indices in -4..3"):
        bank.aggregate(w, 0.7, anchor_layers=[4])
    with pytest.raises(VidanimeError, match=r"anchor_layers=\[-5\]"):
        bank.aggregate(w, 0.7, anchor_layers=[-5])


def test_build_is_seeded_mapping_output_and_file_round_trip(tmp_path):
    g = Generator(TINY_G).eval()
    bank = build_facebank(g, n_codes=1500, seed=7, batch_size=256)
    again = build_facebank(g, n_codes=1500, seed=7, batch_size=1000)
    assert torch.equal(bank.codes, again.codes)  # independent of the batch size
    z = torch.randn(1000, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(bank.codes[:3], g.mapping(z[:3]))
    assert not torch.equal(bank.codes, build_facebank(g, n_codes=1500, seed=8).codes)
    assert bank.config.n_latent == g.n_latent and bank.codes.shape == (1500, 16)
    bank.save(tmp_path / "bank.pt")
    loaded = FaceBank.load(tmp_path / "bank.pt")
    assert torch.equal(loaded.codes, bank.codes) and loaded.config == bank.config
    bank.save(tmp_path / "half.pt", dtype="float16")
    half = FaceBank.load(tmp_path / "half.pt")
    assert half.codes.dtype == torch.float16 and half.config.dtype == "float16"
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "bank.pt").stat().st_size
    save_generator(tmp_path / "g.pt", g)
    with pytest.raises(CheckpointError, match="expected 'vidanime.facebank'"):
        FaceBank.load(tmp_path / "g.pt")


def test_cli_build(tmp_path):
    from pipelines.commands.facebank import cli

    save_generator(tmp_path / "g.pt", Generator(TINY_G))
    out = tmp_path / "sub" / "bank.pt"
    r = CliRunner().invoke(cli, ["build", "--generator", str(tmp_path / "g.pt"), "--size", "300", "--seed", "3",
                                 "--out", str(out), "--fp16"])
    assert r.exit_code == 0, r.output
    assert "300 codes" in r.output
    bank = FaceBank.load(out)
    assert len(bank) == 300 and bank.config.seed == 3 and bank.config.generator == "g.pt"
    r = CliRunner().invoke(cli, ["build", "--generator", str(out), "--size", "3", "--out", str(tmp_path / "x.pt")])
    assert isinstance(r.exception, CheckpointError) and "expected a vidanime.stylegan2" in str(r.exception)
