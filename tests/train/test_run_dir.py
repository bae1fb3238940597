"""Run folders: numbering, config, metrics JSONL, checkpoints, sample grids, resume lookup."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidanime.checkpoint import load_checkpoint
from vidanime.errors import CheckpointError
from vidanime.train.run_dir import RunDir, checkpoint_step, find_latest_run, make_image_grid, resolve_resume


def test_numbering_and_config(tmp_path):
    a = RunDir.create(tmp_path, "demo run", {"lr": 0.002, "size": [1, 2]})
    b = RunDir.create(tmp_path, "demo run")
    assert a.name == "00000-demo_run" and b.name == "00001-demo_run"
    (tmp_path / "00007-other").mkdir()
    assert RunDir.create(tmp_path, "x").name == "00008-x"
    assert a.read_config() == {"lr": 0.002, "size": [1, 2]}


def test_metrics_jsonl(tmp_path):
    run = RunDir.create(tmp_path, "m")
    for step in (10, 20, 30):
        run.log_metrics({"step": step, "loss": torch.tensor(step / 10), "n": np.float32(1.5)})
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 40, "lo')  # torn last line from an interrupted write
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [10, 20, 30] and rows[1]["loss"] == pytest.approx(2.0) and rows[0]["n"] == 1.5
    assert run.truncate_metrics(after_step=20) == 1
    assert [r["step"] for r in run.read_metrics()] == [10, 20]
    with pytest.raises(ValueError, match="step"):
        run.log_metrics({"loss": 1.0})


def test_checkpoints_latest_prune_and_resume_lookup(tmp_path):
    run = RunDir.create(tmp_path, "c", {"a": 1})
    for step in (100, 20, 300):
        run.save_checkpoint(step, format="test.fmt", config={"a": 1}, state_dict={"w": torch.full((2,), float(step))},
                            rng=torch.ByteTensor([1, 2]))
    run.save_checkpoint(5, kind="generator", format="test.gen", config={}, state_dict={})
    assert run.latest_checkpoint().name == "train-0000300.pt"
    assert run.latest_checkpoint("generator").name == "generator-0000005.pt"
    ckpt = load_checkpoint(run.latest_checkpoint(), format="test.fmt")  # weights_only load
    assert ckpt["state_dict"]["w"].tolist() == [300.0, 300.0] and ckpt["config"] == {"a": 1}
    assert [p.name for p in run.prune_checkpoints("train", keep=2)] == ["train-0000020.pt"]
    assert [s for s, _ in run.checkpoints()] == [100, 300]
    assert RunDir.of_checkpoint(run.latest_checkpoint()).path == run.path
    assert checkpoint_step(run.checkpoint_path(1234567, "styleanime")) == 1234567
    with pytest.raises(ValueError, match="my-model.v2.pt"):
        checkpoint_step(tmp_path / "my-model.v2.pt")
    RunDir.create(tmp_path, "c")  # newer run without checkpoints is skipped by the lookup
    assert find_latest_run(tmp_path, name="c") == run.path
    assert resolve_resume("auto", tmp_path, name="c") == run.latest_checkpoint()
    assert resolve_resume(run.path, tmp_path) == run.latest_checkpoint()
    with pytest.raises(CheckpointError, match="no train checkpoint"):
        resolve_resume("auto", tmp_path, name="other")
    with pytest.raises(CheckpointError, match="nope.pt"):
        resolve_resume(tmp_path / "nope.pt", tmp_path)


def test_image_grid_layout_and_png(tmp_path):
    imgs = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 1.0, 0.0, -1.0, 1.0)])
    grid = make_image_grid(imgs, padding=2)
    assert grid.shape == (2 * 6 + 2, 3 * 6 + 2, 3) and grid.dtype == np.uint8
    assert grid[2, 2].tolist() == [0, 0, 0] and grid[2, 8].tolist() == [255, 255, 255]
    assert grid[2, 14].tolist() == [128, 128, 128] and grid[0, 0].tolist() == [0, 0, 0]
    run = RunDir.create(tmp_path, "g")
    path = run.save_image_grid(imgs, step=7)
    assert path.name == "step-0000007.png" and np.array_equal(np.asarray(Image.open(path)), grid)


def test_start_run_new_exact_and_resumed(tmp_path):
    """start_run: a new numbered folder (step 0), an exact folder, or a resumed train checkpoint's folder and step;
    a checkpoint without optimizer state is refused with the fix named."""
    from dataclasses import dataclass

    from vidanime.train.run_dir import start_run

    @dataclass
    class Cfg:
        name: str = "job"
        runs_root: str = str(tmp_path / "runs")

    cfg = Cfg()
    model = torch.nn.Linear(2, 2)
    optim = torch.optim.Adam(model.parameters())
    run, step = start_run(cfg, model, optim, "test.fmt")
    assert step == 0 and run.path.parent == tmp_path / "runs" and run.path.name.endswith("-job")
    exact, step = start_run(cfg, model, optim, "test.fmt", run_dir=tmp_path / "exact")
    assert exact.path == tmp_path / "exact" and (exact.path / "config.yaml").is_file() and step == 0
    run.save_checkpoint(7, kind="train", format="test.fmt", config={}, state_dict=model.state_dict(),
                        optimizer=optim.state_dict(), train_step=7)
    with torch.no_grad():
        model.weight.zero_()
    back, step = start_run(cfg, model, optim, "test.fmt", resume="auto")
    assert back.path == run.path and step == 7 and model.weight.abs().sum() > 0
    run.save_checkpoint(8, kind="train", format="test.fmt", config={}, state_dict=model.state_dict(), train_step=8)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        start_run(cfg, model, optim, "test.fmt", resume=run.path)
