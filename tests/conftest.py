"""Shared fixtures: the real media in ../shared/assets (never copied into the repo) and seeded torch.

Markers (declared in pyproject.toml): ``assets`` is added here to every test that uses the ``assets`` fixture, directly
or through another fixture; ``gpu`` (needs CUDA) and ``slow`` (over ~3 s on 2 idle cores) are put on the tests
themselves.  ``make test-fast`` runs ``-m "not slow and not gpu"``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("VIDANIME_ASSETS", REPO.parent / "shared" / "assets"))


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by -m, so that -m sees the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``assets`` every test whose fixture closure holds the ``assets`` fixture (so ``-m "not assets"`` selects
    the tests that run without ../shared/assets)."""
    for item in items:
        if "assets" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.assets)


@pytest.fixture(scope="session")
def assets() -> Path:
    """Path of ../shared/assets; tests needing it are skipped with a reason when it is absent."""
    if not ASSETS.is_dir():
        pytest.skip(f"shared assets not found at {ASSETS} (set VIDANIME_ASSETS)")
    return ASSETS


@pytest.fixture(scope="module", autouse=True)
def _module_threads():
    """Module-scoped fixtures run before the function-scoped ones below: give them a fixed thread count too, so what
    they compute does not depend on the thread count the previous module's last test left (it changes numerics)."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(autouse=True)
def _seed_and_threads():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(min(2, os.cpu_count() or 1))  # undo a test's own set_num_threads: no leak to the next one


@pytest.fixture(scope="module")
def tiny_styleanime():
    """A seeded random StyleAnime of configs/styleanime_tiny.yaml (32 px, 8 codes of 32 dims) in eval mode, with a
    small random latent_avg: for pipeline and refinement tests that need a model, not a trained one."""
    import torch

    from vidanime.config import load_config
    from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig

    torch.manual_seed(0)
    m = StyleAnime(load_config(REPO / "configs" / "styleanime_tiny.yaml", StyleAnimeConfig)).eval()
    m.set_latent_avg(torch.randn(32) * 0.1)
    return m
