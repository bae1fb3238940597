"""`vidanime train-gan`: learning on shipped anime faces, bit-exact resume, run folders, config errors, CLI."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from pipelines.commands.train_gan import cli
from pipelines.train_gan import TrainGANPipeline
from vidanime.checkpoint import load_checkpoint
from vidanime.config import config_to_dict, load_config
from vidanime.errors import ConfigError
from vidanime.losses.gan import g_nonsaturating_loss
from vidanime.registry import load_model
from vidanime.train.gan import GANTrainer, TrainGANConfig, build_dataset
from vidanime.train.run_dir import RunDir

SPEED = ("sec_per_iter", "it_per_s", "img_per_s", "peak_mem_gib")  # wall-clock columns differ between runs

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "stylegan2_tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and on a busy machine two spinning threads are much slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(assets: Path, **overrides) -> TrainGANConfig:
    over = {"data.path": str(assets / "anime"), "data.limit": 64, "train.progress": False, **overrides}
    return load_config(TINY, TrainGANConfig, overrides=over)


@pytest.mark.slow
def test_training_lowers_generator_loss_and_samples_are_diverse(assets):
    """200 steps (batch 4) on the first 64 shipped anime faces, seed 0.

    The loss G sees during training rises at first (D learns faster than G from a random start), so the trend is
    measured against one fixed critic: the final discriminator scores snapshots of G taken every 50 steps, and the
    generator's non-saturating loss under that critic must fall at every snapshot (12.x → 2.x on this seed).
    """
    cfg = tiny(assets, **{"train.iterations": 200, "train.batch": 4})
    trainer = GANTrainer(cfg, build_dataset(cfg.data, cfg.model.size))
    snapshots = {0: copy.deepcopy(trainer.G.state_dict())}
    losses: list[float] = []

    def keep(step: int, metrics: dict) -> None:
        losses.append(metrics["g_loss"])
        if step % 50 == 0:
            snapshots[step] = copy.deepcopy(trainer.G.state_dict())

    before = trainer.sample_stats()
    trainer.train(callback=keep)
    after = trainer.sample_stats()
    assert sorted(snapshots) == [0, 50, 100, 150, 200] and len(losses) == 200
    assert torch.isfinite(torch.tensor(losses)).all()

    z = torch.randn(64, cfg.model.style_dim, generator=torch.Generator().manual_seed(99))
    g = copy.deepcopy(trainer.G)
    trend = []
    with torch.no_grad():
        for step in sorted(snapshots):
            g.load_state_dict(snapshots[step])
            trend.append(g_nonsaturating_loss(trainer.D(g([z])[0])).item())
    assert all(later < earlier for earlier, later in zip(trend, trend[1:])), trend
    assert trend[-1] < 0.5 * trend[0], trend

    # The samples approach the data's colour statistics and are images, not a constant or one repeated picture.
    assert after["color_stat_dist"] < 0.6 * before["color_stat_dist"], (before, after)
    samples = trainer.samples()
    assert samples.flatten(1).std(1).min() > 0.1  # per-image pixel std (values in [-1, 1])
    assert (samples - samples.mean(0, keepdim=True)).abs().mean() > 0.05  # differ across z
    assert samples.abs().max() < 5

def _small(assets: Path, **overrides) -> TrainGANConfig:
    """A run exercising every code path (R1, path length, style mixing, augment) in a few cheap steps."""
    over = {"train.iterations": 8, "train.batch": 2, "train.log_every": 2, "train.sample_every": 4,
            "train.checkpoint_every": 4, "train.d_reg_every": 2, "train.g_reg_every": 2, "train.pl_weight": 2.0,
            "train.augment.enabled": True, "train.n_samples": 4, "data.limit": 8, **overrides}
    return tiny(assets, **over)


def _assert_same_state(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for k in a:
        if isinstance(a[k], dict):
            _assert_same_state(a[k], b[k], f"{where}.{k}")
        elif isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), f"{where}.{k} differs"
        else:
            assert a[k] == b[k], f"{where}.{k}: {a[k]!r} != {b[k]!r}"


def test_run_folder_and_bit_exact_resume(assets, tmp_path):
    cfg = _small(assets)
    result = TrainGANPipeline(cfg)(run_dir=tmp_path / "runs")
    run = RunDir(result.run_dir)
    assert run.name == "00000-stylegan2_tiny" and result.step == 8

    # Run folder: resolved config, one metrics row per log interval, sample grids, both checkpoint kinds.
    assert load_config(run.config_path, TrainGANConfig) == cfg
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert {"d_loss", "g_loss", "r1", "pl_penalty", "color_stat_dist", "sample_pixel_std"} <= rows[0].keys()
    assert run.sample_path(4).is_file() and run.sample_path(8).is_file() and run.sample_path(0, "reals").is_file()
    assert [s for s, _ in run.checkpoints("train")] == [4, 8] and [s for s, _ in run.checkpoints("generator")] == [4, 8]
    straight = load_checkpoint(run.checkpoint_path(8), format="vidanime.stylegan2.train")  # weights_only
    assert straight["step"] == 8 and straight["config"] == config_to_dict(cfg)

    # The exported generator loads through the registry and is G_ema.
    g = load_model(run.checkpoint_path(8, "generator"))
    assert g.latent_avg is not None and g.latent_avg.shape == (1, cfg.model.style_dim)
    z = torch.randn(2, cfg.model.style_dim)
    ema = straight["state_dict"]["g_ema"]
    assert all(torch.equal(v, ema[k]) for k, v in g.state_dict().items())
    img, _ = g([z])
    assert img.shape == (2, 3, 32, 32)

    # Resume from step 4 (a new process would start from here) and compare with the straight run bit for bit.
    resumed = TrainGANPipeline(cfg)(run_dir=tmp_path / "runs", resume=run.checkpoint_path(4))
    assert resumed.run_dir == run.path and resumed.step == 8
    again = load_checkpoint(run.checkpoint_path(8), format="vidanime.stylegan2.train")
    for key in ("state_dict", "g_optim", "d_optim", "rng", "mean_path_length", "step"):
        _assert_same_state({key: straight[key]}, {key: again[key]})
    new_rows = run.read_metrics()
    assert [r["step"] for r in new_rows] == [2, 4, 6, 8]
    for a, b in zip(rows, new_rows):
        assert {k: v for k, v in a.items() if k not in SPEED} == {k: v for k, v in b.items() if k not in SPEED}

    # A second run gets the next number; --resume auto picks the latest run with a checkpoint.
    auto = TrainGANPipeline(_small(assets, **{"train.iterations": 9}))(run_dir=tmp_path / "runs", resume="auto")
    assert auto.run_dir == run.path and auto.step == 9


def test_fine_tune_from_exported_generator(assets, tmp_path):
    cfg = _small(assets, **{"train.iterations": 2, "train.checkpoint_every": 2})
    first = TrainGANPipeline(cfg)(run_dir=tmp_path / "a")
    trainer = GANTrainer(cfg, build_dataset(cfg.data, cfg.model.size))
    trainer.init_from(first.generator_checkpoint)
    exported = load_checkpoint(first.generator_checkpoint)["state_dict"]
    assert all(torch.equal(v, exported[k]) for k, v in trainer.G.state_dict().items())
    wider = _small(assets, **{"model.channel_max": 16})
    with pytest.raises(ConfigError, match="channel_max"):
        GANTrainer(wider, trainer.dataset).init_from(first.generator_checkpoint)


def test_config_typo_names_the_key(tmp_path):
    data = yaml.safe_load(TINY.read_text())
    data["train"]["r1_gama"] = 10.0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="r1_gama.*r1_gamma"):
        TrainGANPipeline.from_config_file(bad)
    with pytest.raises(ConfigError, match="bacth"):
        TrainGANPipeline.from_config_file(TINY, {"train.bacth": 4})
    with pytest.raises(ConfigError, match="train.lr"):
        TrainGANPipeline.from_config_file(TINY, {"train.lr": -1.0})


def test_shipped_configs_load():
    for file, name, size in (("stylegan2_tiny", "stylegan2_tiny", 32), ("demo_stylegan2", "stylegan2_demo", 64),
                             ("stylegan2_256", "stylegan2_256", 256)):
        cfg = load_config(REPO / "configs" / f"{file}.yaml", TrainGANConfig)
        assert cfg.model.size == size and cfg.name == name and cfg.train.lr == 0.002


def test_cli_trains_and_resumes(assets, tmp_path):
    runner = CliRunner()
    args = ["--config", str(TINY), "--run-dir", str(tmp_path), "--iterations", "2",
            "--set", f"data.path={assets / 'anime'}", "--set", "data.limit=8", "--set", "train.batch=2",
            "--set", "train.log_every=1", "--set", "train.progress=false"]
    res = runner.invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run = RunDir(tmp_path / "00000-stylegan2_tiny")
    assert f"run folder: {run.path}" in res.output and "generator-0000002.pt" in res.output
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    res = runner.invoke(cli, ["--resume", str(run.path), "--iterations", "3"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3] and run.latest_checkpoint().name == "train-0000003.pt"
    res = runner.invoke(cli, ["--config", str(TINY), "--set", "train.bacth=2"])
    assert isinstance(res.exception, ConfigError) and "bacth" in str(res.exception)
    help_text = runner.invoke(cli, ["--help"]).output
    assert "--resume" in help_text and "KEY=VALUE" in help_text and "Examples" in help_text
