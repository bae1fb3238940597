"""System errors a user can fix (full disk, permissions, read-only file system) are one line with exit status 1."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import os_error_message

REPO = Path(__file__).resolve().parents[2]


def test_os_error_message_names_the_problem_and_the_file():
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device", "/data/out.mp4")) == \
        "no space left on the device: /data/out.mp4"
    assert os_error_message(OSError(errno.EACCES, "Permission denied")) == "permission denied"
    assert os_error_message(OSError(errno.EROFS, "x", "/ro/o.png")) == "read-only file system: /ro/o.png"
    assert os_error_message(OSError(errno.EIO, "I/O error")) is None  # not the user's to fix: stays a traceback


@pytest.fixture
def full_disk(tmp_path):
    """A 16 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_full_disk_during_encode_is_one_line_and_leaves_nothing(full_disk, tmp_path):
    from vidanime.data.demo_clip import make_demo_clip

    src = make_demo_clip(tmp_path / "in.mp4", seconds=3.0, size=384)
    before = src.read_bytes()
    out = full_disk / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "transcode", str(src), str(out)], capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("transcode", "\r"))]
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert lines[-1].startswith("error: no space left on the device"), r.stderr[-2000:]
    assert os.listdir(full_disk) == []  # no output, no hidden partial
    assert src.read_bytes() == before
