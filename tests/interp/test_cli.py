"""``vidanime interp`` run / --video / train / eval through click's CliRunner on tiny inputs."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipelines.commands.interp import cli
from vidanime.errors import VidanimeError

from .helpers import moving_square

REPO = Path(__file__).resolve().parents[2]


def _png(path, t):
    Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


def test_run_writes_the_middle_frame(tmp_path):
    a, mid, b = moving_square()
    _png(tmp_path / "a.png", a)
    _png(tmp_path / "b.png", b)
    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "m.png")).astype(float) / 255
    ref = mid[0].permute(1, 2, 0).numpy()
    avg = (0.5 * (a + b))[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref).mean() < np.abs(avg - ref).mean()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "c.png")
    res = CliRunner().invoke(cli, ["run", str(tmp_path / "a.png"), str(tmp_path / "c.png"), str(tmp_path / "x.png")])
    assert isinstance(res.exception, VidanimeError) and "same size" in str(res.exception)
    assert not (tmp_path / "x.png").exists()


def test_run_video_doubles_the_frame_rate(tmp_path):
    src = tmp_path / "in.mp4"
    with av.open(str(src), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for i in range(6):
            img = np.zeros((32, 48, 3), np.uint8)
            img[8:20, 4 + 4 * i:16 + 4 * i] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    res = CliRunner().invoke(cli, ["run", "--video", str(src), str(tmp_path / "out.mp4")])
    assert res.exit_code == 0, res.output
    with av.open(str(tmp_path / "out.mp4")) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
        assert float(v.average_rate) == pytest.approx(20.0)
    assert n == 11


def test_run_video_keeps_the_audio(tmp_path):
    from vidanime.data.demo_clip import make_demo_clip
    from vidanime.video.io import VideoReader

    src = make_demo_clip(tmp_path / "tone.mp4", seconds=0.6, fps=25, size=64)
    res = CliRunner().invoke(cli, ["run", "--video", "--max-frames", "5", str(src), str(tmp_path / "out.mp4")])
    assert res.exit_code == 0, res.output
    with VideoReader(tmp_path / "out.mp4") as r:
        assert r.info.audio is not None and float(r.info.fps) == pytest.approx(50.0)
        assert len(list(r)) == 9
        # the audio is cut to the 5 input frames (0.2 s), not the whole 0.6 s clip
        assert r.info.audio.duration == pytest.approx(0.2, abs=0.05)


def test_train_then_eval_tiny(tmp_path, assets):
    cfg = str(REPO / "configs" / "interp_ifnet_tiny.yaml")
    sets = ["--set", f"out_dir={tmp_path}", "--set", "data.max_side=64", "--set", "data.max_frames=16",
            "--set", "data.crop=32", "--set", "train.batch=1"]
    res = CliRunner().invoke(cli, ["train", "-c", cfg, "--steps", "2", *sets, "--set", "train.log_every=1",
                                   "--set", "train.ckpt_every=2"])
    assert res.exit_code == 0, res.output
    ckpt = next(tmp_path.glob("00000-*/checkpoints/ifnet-0000002.pt"))
    rows = [json.loads(x) for x in next(tmp_path.glob("00000-*/metrics.jsonl")).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "heldout_average_psnr" in rows[-1]
    res = CliRunner().invoke(cli, ["eval", "-c", cfg, "-m", "classical", "-m", str(ckpt), "--limit", "2", *sets])
    assert res.exit_code == 0, res.output
    assert "| classical |" in res.output and "| average |" in res.output and "| copy_prev |" in res.output
