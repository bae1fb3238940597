"""The repository stays light: no tracked file over 16 MiB, tracked files under 60 MB in all, no training states."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_FILE = 16 * 2**20  # a remote run returns files of at most this size; a clone should not hold larger ones
MAX_TOTAL = 60_000_000


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / p for p in out.decode().split("\0") if p]


def test_tracked_files_are_small_and_few_megabytes_in_all():
    files = [p for p in _tracked() if p.is_file()]
    sizes = {p.relative_to(REPO).as_posix(): p.stat().st_size for p in files}
    big = {k: v for k, v in sizes.items() if v > MAX_FILE}
    assert not big, f"tracked files over 16 MiB: {big}"
    total = sum(sizes.values())
    assert total < MAX_TOTAL, f"tracked files total {total / 1e6:.1f} MB, limit {MAX_TOTAL / 1e6:.0f} MB"


def test_no_training_states_are_tracked():
    """Resumable states (optimizer, step, RNG) belong under the runs root; training/ keeps provenance only."""
    states = [p.relative_to(REPO).as_posix() for p in _tracked()
              if p.suffix == ".pt" and not p.is_relative_to(REPO / "vidanime" / "weights")]
    assert not states, f"checkpoints tracked outside vidanime/weights: {states}"
