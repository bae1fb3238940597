"""Batch translation of a folder: discovery and output plan, one bad file never stops the rest, resumable manifest
after a SIGKILL, worker processes (a dying worker is recorded), Ray, fine-tune pass-through and the CLI."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pipelines.batch import (
    MANIFEST_NAME,
    BatchOptions,
    BatchPipeline,
    BatchTask,
    PipelineSpec,
    _Job,
    _worker_run,
    discover_videos,
    plan_outputs,
)
from pipelines.translate import TranslateOptions, TranslatePipeline
from vidanime.errors import CheckpointError, ConfigError, MediaError
from vidanime.video.io import VideoReader
from vidanime.video.paste import psnr

REPO = Path(__file__).resolve().parents[2]
FAST = TranslateOptions(progress=False, preset="ultrafast")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny clips: one thread is as fast and leaves the second core to the worker processes."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _opts(**kw):
    return BatchOptions(progress=False, translate=FAST, **kw)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 15-frame 128² clip with a face (the demo astronaut), an 8-frame 64² clip without one, and garbage bytes."""
    import av

    from vidanime.data.demo_clip import make_demo_clip

    root = tmp_path_factory.mktemp("media")
    face = make_demo_clip(root / "face.mp4", seconds=0.6, size=128)
    noface = root / "noface.mp4"
    with av.open(str(noface), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for i in range(8):
            f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 25 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    bad = root / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage, not a video" * 50)
    return {"face": face, "noface": noface, "bad": bad}


def _folder(root: Path, media, layout: dict[str, str]) -> Path:
    for rel, kind in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(media[kind], root / rel)
    return root


def _rows(out_dir: Path) -> list[dict]:
    lines = (out_dir / MANIFEST_NAME).read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.strip()]


def _frames(path):
    with VideoReader(path) as r:
        return [f.image for f in r]


def _partials(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.rglob("*") if ".partial" in p.name]


# -------------------------------------------------------------------------------------------- picklable factories
class _CrashOn:
    """Identity pipeline whose worker process dies (os._exit) on the file called ``name``."""

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, _CrashOn) and other.name == self.name

    def __call__(self):
        return _CrashingPipeline(self.name)


class _CrashingPipeline(TranslatePipeline):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def __call__(self, input, output, options=None):
        if Path(input).name == self.name:
            os._exit(3)
        return super().__call__(input, output, options)


class _NoModel:
    """A model that cannot be loaded: every worker would fail, so the batch stops with the loader's error."""

    def __eq__(self, other):
        return isinstance(other, _NoModel)

    def __call__(self):
        raise CheckpointError("checkpoint not found: nope.pt")


class _StallingPipeline(TranslatePipeline):
    """Identity pipeline that, on the file called ``name``, touches ``marker`` and hangs while its output is open."""

    def __init__(self, name, marker):
        super().__init__()
        self.name, self.marker, self.current = name, Path(marker), None

    def __call__(self, input, output, options=None):
        self.current = Path(input).name
        return super().__call__(input, output, options)

    def _process(self, batch, options, stats, latents):
        if self.current == self.name:
            self.marker.touch()
            time.sleep(600)
        return super()._process(batch, options, stats, latents)


def _stalled_batch(in_dir, out_dir, name, marker):
    """Entry point of the killed subprocess."""
    import torch

    torch.set_num_threads(1)
    BatchPipeline(lambda: _StallingPipeline(name, marker))(in_dir, out_dir, _opts())


# -------------------------------------------------------------------------------------------------------- tests
def test_discovery_and_output_plan(tmp_path):
    src = tmp_path / "in"
    names = ["a.mp4", "sub/b.MOV", "sub/deep/c.mkv", "z.WebM", "dup.mov", "dup.mp4", "x.txt", ".hidden.mp4",
             ".cache/d.mp4", "out/e.mp4", "sub/f.avi", "g.m4v"]
    for n in names:
        (src / n).parent.mkdir(parents=True, exist_ok=True)
        (src / n).write_bytes(b"")
    found = [p.relative_to(src).as_posix() for p in discover_videos(src, exclude=src / "out")]
    assert found == ["a.mp4", "dup.mov", "dup.mp4", "g.m4v", "sub/b.MOV", "sub/deep/c.mkv", "sub/f.avi", "z.WebM"]
    assert "out/e.mp4" in [p.relative_to(src).as_posix() for p in discover_videos(src)]  # only excluded when asked
    tasks = plan_outputs(src, tmp_path / "o", discover_videos(src, exclude=src / "out"))
    outs = {t.key: t.output_key for t in tasks}
    assert outs == {"a.mp4": "a.mp4", "dup.mov": "dup.mov.mp4", "dup.mp4": "dup.mp4.mp4", "g.m4v": "g.mp4",
                    "sub/b.MOV": "sub/b.mp4", "sub/deep/c.mkv": "sub/deep/c.mp4", "sub/f.avi": "sub/f.mp4",
                    "z.WebM": "z.mp4"}
    assert all(Path(t.output) == (tmp_path / "o" / t.output_key).resolve() for t in tasks)
    assert plan_outputs(src, tmp_path / "o", [src / "a.mp4"], ext=".mkv")[0].output_key == "a.mkv"


def test_folder_and_option_errors_are_one_line(tmp_path, media, monkeypatch):
    src = _folder(tmp_path / "in", media, {"a.mp4": "noface"})
    pipe = BatchPipeline()
    cases = [
        ((src, src), MediaError, "is the input folder"),
        ((src, tmp_path), MediaError, "lies inside the output folder"),
        ((tmp_path / "missing", tmp_path / "o"), MediaError, "not found"),
        ((src / "a.mp4", tmp_path / "o"), MediaError, "vidanime translate"),
    ]
    for args, err, msg in cases:
        with pytest.raises(err, match=msg) as info:
            pipe(*args, _opts())
        assert "\n" not in str(info.value)
    _folder(src, media, {"anime/old.mp4": "noface"})  # OUT_DIR inside IN_DIR: its outputs are never inputs
    assert [t.key for t in pipe.plan(src, src / "anime", _opts())] == ["a.mp4"]
    assert [t.key for t in pipe.plan(src, tmp_path / "o", _opts())] == ["a.mp4", "anime/old.mp4"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="no videos found"):
        pipe(tmp_path / "empty", tmp_path / "o", _opts())
    for bad, msg in [(dict(jobs=0), "jobs=0"), (dict(ext=".gif"), "ext='.gif'"), (dict(finetune=-1), "--finetune -1")]:
        with pytest.raises(ConfigError, match=msg):
            pipe(src, tmp_path / "o", _opts(**bad))
    with pytest.raises(ConfigError, match="preview"):
        pipe(src, tmp_path / "o", BatchOptions(translate=TranslateOptions(preview=str(tmp_path / "p.mp4"))))
    with pytest.raises(ConfigError, match="needs a StyleAnime checkpoint"):  # identity model: nothing to fine-tune
        pipe(src, tmp_path / "o", _opts(finetune=5))
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'vidanime\[ray\]'"):
        pipe(src, tmp_path / "o", _opts(ray="auto"))
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    import socket

    with socket.socket() as closed:  # a port nobody listens on: refused at once, not Ray's minutes of retries
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for address, msg in [(f"127.0.0.1:{port}", "cannot reach Ray at"), ("bogus", "expected auto")]:
        with pytest.raises(ConfigError, match=msg):
            pipe(src, tmp_path / "o", _opts(ray=address))
    assert not (tmp_path / "o" / "a.mp4").exists()


def test_bad_file_recorded_others_finish_rerun_skips_and_retries(tmp_path, media):
    src = _folder(tmp_path / "in", media, {"a.mp4": "face", "sub/b.MOV": "noface", "bad.mp4": "bad"})
    out = tmp_path / "out"
    res = BatchPipeline()(src, out, _opts())
    assert [r["input"] for r in res.done] == ["a.mp4", "sub/b.MOV"] and not res.ok
    assert [r["input"] for r in res.failed] == ["bad.mp4"]
    reason = res.failed[0]["reason"]
    assert "bad.mp4" in reason and "\n" not in reason and len(reason) <= 300
    rows = _rows(out)
    assert [(r["input"], r["output"], r["status"]) for r in rows] == [
        ("a.mp4", "a.mp4", "done"), ("bad.mp4", "bad.mp4", "failed"), ("sub/b.MOV", "sub/b.mp4", "done")]
    assert (rows[0]["frames"], rows[0]["faces"], rows[2]["frames"], rows[2]["faces"]) == (15, 15, 8, 0)
    assert rows[1]["frames"] is None and all(r["seconds"] >= 0 for r in rows)
    assert not (out / "bad.mp4").exists() and not _partials(out)
    # identity model: the mirrored outputs are the inputs, re-encoded
    for i, o in [("a.mp4", "a.mp4"), ("sub/b.MOV", "sub/b.mp4")]:
        a, b = _frames(src / i), _frames(out / o)
        assert len(a) == len(b) and min(psnr(x, y) for x, y in zip(a, b)) > 30

    again = BatchPipeline()(src, out, _opts())  # nothing to do: done files skipped, the failure kept
    assert (again.skipped, again.done, again.failed, again.failed_before) == (2, [], [], ["bad.mp4"])
    assert not again.ok and "1 failed earlier" in again.summary() and len(_rows(out)) == 3

    shutil.copy(media["noface"], src / "bad.mp4")  # the user replaces the bad file: tried again, no flag needed
    shutil.copy(media["noface"], src / "a.mp4")  # and replaces a finished input: translated again
    fixed = BatchPipeline()(src, out, _opts())
    assert sorted(r["input"] for r in fixed.done) == ["a.mp4", "bad.mp4"] and fixed.skipped == 1 and fixed.ok
    assert not fixed.failed_before
    assert len(_frames(out / "a.mp4")) == 8 and [r["status"] for r in _rows(out)][-2:] == ["done", "done"]


@pytest.mark.slow
def test_killed_run_resumes_without_partial_outputs(tmp_path, media):
    src = _folder(tmp_path / "in", media, {"a.mp4": "noface", "b.mp4": "noface", "c.mp4": "noface"})
    out, marker = tmp_path / "out", tmp_path / "stalled"
    code = (f"from tests.pipelines.test_batch import _stalled_batch; "
            f"_stalled_batch({str(src)!r}, {str(out)!r}, 'b.mp4', {str(marker)!r})")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the batch never reached the second file"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    assert [(r["input"], r["status"]) for r in _rows(out)] == [("a.mp4", "done")]
    assert not (out / "b.mp4").exists() and _partials(out)  # killed mid-write: only the temporary file is there
    with open(out / MANIFEST_NAME, "a") as f:
        f.write('{"input": "c.mp4", "stat')  # as if killed while appending a row

    res = BatchPipeline()(src, out, _opts())
    assert res.skipped == 1 and [r["input"] for r in res.done] == ["b.mp4", "c.mp4"] and res.ok
    assert not _partials(out) and all(len(_frames(out / n)) == 8 for n in ("a.mp4", "b.mp4", "c.mp4"))
    lines = (out / MANIFEST_NAME).read_text().splitlines()  # the torn line is left alone, new rows start after it
    assert lines[1] == '{"input": "c.mp4", "stat' and len(lines) == 4
    assert [(json.loads(x)["input"], json.loads(x)["status"]) for x in lines[2:]] == [("b.mp4", "done"),
                                                                                       ("c.mp4", "done")]


@pytest.mark.slow
def test_two_jobs_and_a_dying_worker(tmp_path, media):
    src = _folder(tmp_path / "in", media, {"a.mp4": "face", "b.mp4": "noface", "bad.mp4": "bad",
                                           "crash.mp4": "noface"})
    out = tmp_path / "out"
    res = BatchPipeline(_CrashOn("crash.mp4"))(src, out, _opts(jobs=2, threads=1))
    assert sorted(r["input"] for r in res.done) == ["a.mp4", "b.mp4"]
    reasons = {r["input"]: r["reason"] for r in res.failed}
    assert set(reasons) == {"bad.mp4", "crash.mp4"} and "worker process died" in reasons["crash.mp4"]
    assert "bad.mp4" in reasons["bad.mp4"]
    assert sorted((r["input"], r["status"]) for r in _rows(out)) == [
        ("a.mp4", "done"), ("b.mp4", "done"), ("bad.mp4", "failed"), ("crash.mp4", "failed")]
    assert len(_frames(out / "a.mp4")) == 15 and len(_frames(out / "b.mp4")) == 8 and not _partials(out)
    with pytest.raises(CheckpointError, match="nope.pt"):
        BatchPipeline(_NoModel())(src, tmp_path / "out2", _opts(jobs=2, threads=1))
    assert not _rows(tmp_path / "out2")


def test_worker_reports_a_model_that_cannot_load(tmp_path):
    task = BatchTask(str(tmp_path / "a.mp4"), str(tmp_path / "o.mp4"), "a.mp4", "o.mp4")
    out = _worker_run(_NoModel(), task, _Job(FAST))
    assert isinstance(out["fatal"], CheckpointError)  # the driver stops the batch with this one-line error
    with pytest.raises(CheckpointError, match="not found"):
        BatchPipeline.from_pretrained(checkpoint=tmp_path / "nope.pt")


def test_finetune_is_passed_per_clip(tmp_path, media, monkeypatch):
    import pipelines.batch

    calls = []

    def fake_finetune(input, output, checkpoint, parser, iterations, **kw):
        run = Path(kw["run_dir"])
        run.mkdir(parents=True)
        calls.append((Path(input).name, Path(output).name, checkpoint, iterations, run.name, kw["progress"]))
        return run / "styleanime.pt"

    built = []
    monkeypatch.setattr(pipelines.batch, "finetune_for_translate", fake_finetune)
    monkeypatch.setattr(PipelineSpec, "__call__", lambda self: built.append(self.checkpoint) or TranslatePipeline())
    src = _folder(tmp_path / "in", media, {"a.mp4": "noface", "s/b.mp4": "noface"})
    spec = PipelineSpec(checkpoint="base.pt", parser="p.pt")
    res = BatchPipeline(spec)(src, tmp_path / "out", _opts(finetune=7))
    assert res.ok and len(res.done) == 2
    assert calls == [("a.mp4", "a.mp4", "base.pt", 7, "a.finetune", False),
                     ("b.mp4", "b.mp4", "base.pt", 7, "b.finetune", False)]
    assert built == [str(tmp_path / "out" / "a.finetune" / "styleanime.pt"),
                     str(tmp_path / "out" / "s" / "b.finetune" / "styleanime.pt")]
    assert not list((tmp_path / "out").rglob("*.finetune"))  # removed once each clip is done


def test_cli_exit_status_and_summary(tmp_path, media, monkeypatch):
    from click.testing import CliRunner

    from pipelines.commands.batch import cli

    monkeypatch.setattr(PipelineSpec, "check", lambda self: self)
    monkeypatch.setattr(PipelineSpec, "__call__", lambda self: TranslatePipeline())
    src = _folder(tmp_path / "in", media, {"a.mp4": "noface", "bad.mp4": "bad"})
    args = [str(src), str(tmp_path / "out"), "--preset", "ultrafast", "--no-progress"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert "failed: bad.mp4:" in r.output and "batch: 1 done, 1 failed, 0 already done" in r.output
    # through the console-script entry point too (it runs click without standalone mode): exit status 1
    import sys

    from pipelines.cli import run

    monkeypatch.setattr(sys, "argv", ["vidanime", "batch", *args])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 1
    (src / "bad.mp4").unlink()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "0 done, 0 failed, 1 already done" in r.output


@pytest.mark.slow
def test_ray_local_cluster(tmp_path, media):
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install .[ray]")
    src = _folder(tmp_path / "in", media, {"a.mp4": "face", "bad.mp4": "bad"})
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        res = BatchPipeline()(src, tmp_path / "out", _opts(ray="local"))
    finally:
        ray.shutdown()
    assert [r["input"] for r in res.done] == ["a.mp4"] and [r["input"] for r in res.failed] == ["bad.mp4"]
    assert [(r["input"], r["status"], r["faces"]) for r in _rows(tmp_path / "out")] == [
        ("a.mp4", "done", 15), ("bad.mp4", "failed", None)]
    assert len(_frames(tmp_path / "out" / "a.mp4")) == 15
