"""train_upscaler on a tiny folder: held-out PSNR beats the bicubic start, the run folder holds a loadable upscaler,
a resumed run is bit-exact with an unbroken one, and the command gives one-line errors."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from vidanime.registry import load_model
from vidanime.train.run_dir import RunDir
from vidanime.train.upscaler import UpscalerTrainConfig, train_upscaler


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """14 blocky 32-px 'drawings' (flat colour cells with hard edges, like line art), as PNG files."""
    root = tmp_path_factory.mktemp("anime")
    rng = np.random.default_rng(0)
    for i in range(14):
        cells = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(np.kron(cells, np.ones((8, 8, 1), np.uint8))).save(root / f"{i:03d}.png")
    return root


def config(faces, steps, **train):
    """The plain-data config of a tiny run."""
    return {
        "name": "up", "runs_root": "unused",
        "model": {"channels": 16, "blocks": 1, "scale": 2, "train_size": 32},
        "data": {"root": str(faces), "val_start": 10, "val_count": 4},
        "train": {"steps": steps, "batch_size": 8, "patch": 8, "lr": 3e-3, "warmup_steps": 0, "log_every": 10,
                  "eval_every": 0, "ckpt_every": 20, "device": "cpu", "threads": 1, **train},
    }


def make(faces, steps, **train):
    from vidanime.config import config_from_dict

    return config_from_dict(config(faces, steps, **train), UpscalerTrainConfig)


def test_training_beats_bicubic_and_exports_a_loadable_upscaler(faces, tmp_path):
    run = train_upscaler(make(faces, 60), run_dir=tmp_path / "run")
    rows = RunDir(run.path).read_metrics()
    final = [r for r in rows if "val_psnr" in r][-1]
    assert final["step"] == 60
    assert final["val_psnr"] > final["val_psnr_bicubic"] + 1.0  # hard edges: bicubic rings, the net learns them
    ckpt = RunDir(run.path).latest_checkpoint("upscaler")
    net = load_model(ckpt, format="vidanime.upscaler")
    assert net.config.channels == 16 and net(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_resume_is_bit_exact(faces, tmp_path):
    """Resuming the step-20 state of a 40-step run (copied out of its folder) ends where the unbroken run ends."""
    import shutil

    whole = train_upscaler(make(faces, 40), run_dir=tmp_path / "whole")  # saves steps 20 and 40
    loose = tmp_path / "loose"
    loose.mkdir()
    mid = shutil.copy(RunDir(whole.path).checkpoint_path(20, "train"), loose)
    cfg = make(faces, 40)
    cfg.runs_root = str(tmp_path / "runs")
    resumed = train_upscaler(cfg, resume=mid)
    assert resumed.path.parent == tmp_path / "runs"
    a = load_model(RunDir(whole.path).latest_checkpoint("upscaler")).state_dict()
    b = load_model(RunDir(resumed.path).latest_checkpoint("upscaler")).state_dict()
    assert RunDir(resumed.path).latest_checkpoint("upscaler").name == "upscaler-0000040.pt"
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_cli_errors_name_the_bad_value(faces, tmp_path):
    """Config errors reach the entry point as a ConfigError (printed there as one line, exit 2), never a crash."""
    from pipelines.cli import main
    from vidanime.errors import ConfigError

    cfg = tmp_path / "up.yaml"
    plain = config(faces, 10)
    plain["runs_root"] = str(tmp_path / "runs")
    cfg.write_text(json.dumps(plain))  # JSON is YAML
    res = CliRunner().invoke(main, ["train-upscaler", "--config", str(cfg), "--set", "train.patch=64"])
    assert isinstance(res.exception, ConfigError) and "train.patch=64" in str(res.exception)
    res = CliRunner().invoke(main, ["train-upscaler", "--config", str(cfg), "--set", "data.val_start=0"])
    assert isinstance(res.exception, ConfigError) and "leaves no training images" in str(res.exception)
    res = CliRunner().invoke(main, ["train-upscaler", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "run folder:" in res.output
