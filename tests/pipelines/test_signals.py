"""Stopping and refusing cleanly: SIGTERM stops `vidanime translate` like Ctrl-C (exit 143, no temporary file, nothing
at the output path); a partial left by a killed earlier run of the same output is removed by the next run; a bad
--device is a usage error before any work."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO


def _partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial*"))


@pytest.mark.slow
def test_sigterm_removes_the_temporary_output(assets, tmp_path):
    clip = assets / "video" / "liveportrait_d3.mp4"
    out = tmp_path / "out.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "translate", str(clip), str(out),
                             "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _partials(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if proc.poll() is not None:
            pytest.fail(f"translate ended before it could be stopped: {proc.communicate()}")
        assert _partials(tmp_path), "no temporary output appeared within 120 s"
        time.sleep(1.0)  # mid-write
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    assert "Terminated (SIGTERM)" in err.decode() and "Traceback" not in err.decode()
    assert not _partials(tmp_path) and not out.exists()


def test_translate_removes_a_stale_partial_of_its_output(tmp_path):
    from pipelines.translate import TranslateOptions, TranslatePipeline
    from vidanime.data.demo_clip import make_demo_clip

    demo_clip = make_demo_clip(tmp_path / "clip" / "demo.mp4", seconds=0.5, size=128)
    out = tmp_path / "out.mp4"
    stale = tmp_path / ".out.k1ll3d.partial.mp4"
    other = tmp_path / ".other.abc.partial.mp4"  # another output's temporary: not ours to remove
    stale.write_bytes(b"half a file")
    other.write_bytes(b"someone else's")
    TranslatePipeline()(demo_clip, out, TranslateOptions(end="3f", progress=False, preset="ultrafast"))
    assert out.is_file() and not stale.exists() and other.exists()


@pytest.mark.parametrize("device, says", [("bogus", "unknown device 'bogus'"),
                                          ("cuda", "CUDA is not available")])
def test_bad_device_is_a_usage_error_before_any_work(device, says, tmp_path):
    """--device is checked when the options are parsed: one line, exit 2, no traceback (no GPU on CI machines)."""
    import torch
    from click.testing import CliRunner

    from pipelines.cli import main

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for args in (["translate", "in.mp4", str(tmp_path / "o.mp4")], ["image", "translate", "a.png", "o.png"],
                 ["parse", "a.png", "o.png"]):
        r = CliRunner().invoke(main, [*args, "--device", device])
        assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, (args, r.output)


def test_bad_preset_is_refused_before_any_work(tmp_path):
    """An x264 preset that does not exist: a usage error in the CLI, a MediaError in the library, before encoding."""
    from click.testing import CliRunner

    from pipelines.cli import main
    from vidanime.errors import MediaError
    from vidanime.video.io import VideoWriter

    for args in (["translate", "in.mp4", str(tmp_path / "o.mp4")], ["transcode", "in.mp4", str(tmp_path / "o.mp4")]):
        r = CliRunner().invoke(main, [*args, "--preset", "bogus"])
        assert r.exit_code == 2 and "'bogus' is not one of" in r.output, r.output
    with pytest.raises(MediaError, match="not an x264 preset"):
        VideoWriter(tmp_path / "o.mp4", fps=25, preset="bogus")
    assert not list(tmp_path.iterdir())


def test_empty_range_names_the_problem_without_none(tmp_path):
    """`--end 0` (no --start): the message says the range is empty, and never 'start=None'."""
    from click.testing import CliRunner

    from pipelines.cli import main
    from vidanime.data.demo_clip import make_demo_clip

    clip = make_demo_clip(tmp_path / "c.mp4", seconds=0.5, size=64)
    r = CliRunner().invoke(main, ["translate", str(clip), str(tmp_path / "o.mp4"), "--end", "0"])
    assert r.exit_code != 0 and "not after the start of the clip" in str(r.output) + str(r.exception)
    assert "None" not in str(r.output) + str(r.exception) and not (tmp_path / "o.mp4").exists()


def test_a_fifo_or_folder_as_input_is_named_as_such(tmp_path):
    """Not 'not found': a FIFO, a folder and a missing file each get their own one-line message."""
    from pipelines.translate import TranslateOptions, TranslatePipeline
    from vidanime.errors import MediaError

    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    cases = {fifo: "is a FIFO (named pipe)", tmp_path: "is a folder", tmp_path / "gone.mp4": "input video not found"}
    for src, says in cases.items():
        with pytest.raises(MediaError, match=re.escape(says)):
            TranslatePipeline.check_inputs(src, tmp_path / "out.mp4", TranslateOptions())
