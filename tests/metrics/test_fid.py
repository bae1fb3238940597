"""FID/KID: closed forms on hand-built Gaussians, a brute-force KID reference, and the Inception weight loader."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidanime.errors import CheckpointError
from vidanime.metrics.fid import (
    FIDInceptionV3,
    feature_stats,
    fid_from_features,
    frechet_distance,
    kid,
    load_fid_inception,
)


def test_frechet_distance_of_two_gaussians_matches_closed_form():
    # Diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1.0 + 0.0 + 4.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_non_commuting_covariances():
    # 1-D by hand is trivial; for full matrices use Tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2), an equivalent form.
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = x @ x.T + np.eye(4), y @ y.T + np.eye(4)
    r2 = sqrtm(s2).real
    expected = np.trace(s1 + s2 - 2 * sqrtm(r2 @ s1 @ r2).real)
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected, rel=1e-6)


def test_fid_identical_sets_is_zero_and_mean_shift_is_squared_norm():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(400, 8))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([3.0, -1.0, 0, 0, 0, 0, 0, 2.0])
    assert fid_from_features(f, f + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_distance_singular_covariance_is_finite():
    f = np.zeros((10, 3))
    f[:, 0] = np.arange(10)  # rank-1 covariance
    assert np.isfinite(fid_from_features(f, f + 1.0))


def test_feature_stats_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(np.ones((1, 4)))


def _kid_brute(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_unbiased_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 5)), rng.normal(loc=0.5, size=(6, 5))
    mean, std = kid(x, y, n_subsets=3, subset_size=6)  # full sets: every subset is the whole (permuted) set
    assert mean == pytest.approx(_kid_brute(x, y), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_same_distribution_near_zero_and_shift_positive():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, _ = kid(a, b, n_subsets=10, subset_size=100)
    shifted, _ = kid(a, b + 1.0, n_subsets=10, subset_size=100)
    assert abs(same) < 0.05 and shifted > 10 * abs(same) + 0.1


def _public_layout_checkpoint(tmp_path, drop_counters=True):
    """A file in pt_inception's layout: torchvision inception_v3(num_classes=1008, aux_logits=False) names."""
    from torchvision.models.inception import Inception3

    ref = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in ref.state_dict().items():
        if k.endswith("num_batches_tracked"):
            if not drop_counters:
                sd[k] = v
            continue
        if k.endswith("running_var"):
            sd[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:
            sd[k] = 0.05 * torch.randn(v.shape, generator=g)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(sd, path)
    return path, sd


def test_loader_reads_public_layout_and_features_are_deterministic(tmp_path):
    path, sd = _public_layout_checkpoint(tmp_path)
    model = load_fid_inception(path)
    own = model.state_dict()
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight",
              "Mixed_6e.branch7x7dbl_5.bn.running_var"):
        assert torch.equal(own[k], sd[k])
    x = torch.rand(1, 3, 80, 80)
    with torch.no_grad():
        f1, f2 = model(x), model(x)
    assert f1.shape == (1, 2048) and torch.equal(f1, f2)
    # The FID patch: Mixed_7c max-pools its branch pool, unlike torchvision's InceptionE.
    assert model.Mixed_7c.pool == "max" and model.Mixed_7b.pool == "avg"


def test_loader_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDANIME_FID_INCEPTION", raising=False)
    with pytest.raises(CheckpointError, match="pt_inception-2015-12-05"):
        load_fid_inception(None)
    with pytest.raises(CheckpointError, match="not found"):
        load_fid_inception(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, bad)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_fid_inception(bad)


def test_fid_inception_count_include_pad_patch():
    # Mixed_5b's branch pool must average only real pixels: on a constant input, border and centre agree.
    m = FIDInceptionV3()
    blk = m.Mixed_5b
    x = torch.ones(1, 192, 5, 5)
    with torch.no_grad():
        pooled = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        assert torch.allclose(pooled, x)
        out = blk(x)
    assert out.shape == (1, 256, 5, 5)
