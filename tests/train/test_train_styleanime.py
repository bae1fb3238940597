"""StyleAnime base training on the tiny config: the loss falls, resume is bit-exact, 2-process DDP (gloo) gives the
averaged gradients of one process on the concatenated batch, the CLI writes a complete, resumable run folder."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from vidanime.config import load_config
from vidanime.data.domains import DomainDataset
from vidanime.errors import ConfigError
from vidanime.train.run_dir import RunDir
from vidanime.train.styleanime import DistInfo, StyleAnimeTrainer, TrainStyleAnimeConfig, _allreduce_grads

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "styleanime_train_tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: on a shared 2-core machine, two OpenMP threads per process mostly wait for each other."""
    torch.set_num_threads(1)
    yield


def _config(assets: Path, **overrides) -> TrainStyleAnimeConfig:
    faces = str(assets / "faces")
    base = {"target.root": faces, "source.root": faces, "target.limit": 16, "source.limit": 16}
    return load_config(TINY, TrainStyleAnimeConfig, overrides={**base, **overrides})


def _trainer(cfg: TrainStyleAnimeConfig, dist_info: DistInfo | None = None) -> StyleAnimeTrainer:
    s, ls = int(cfg.model.image_size), cfg.model.label_set
    return StyleAnimeTrainer(cfg, DomainDataset(cfg.target, ls, s), DomainDataset(cfg.source, ls, s),
                             dist_info=dist_info, device="cpu")


@pytest.mark.slow
def test_reconstruction_loss_falls(assets):
    cfg = _config(assets, **{"loss.lambda_lpips": 0.0, "loss.lambda_da": 0.0, "loss.lambda_adv": 0.0,
                             "train.batch": 2})
    tr = _trainer(cfg)
    rec = [tr.train_step()["rec"] for _ in range(150)]
    first, last = sum(rec[:10]) / 10, sum(rec[-10:]) / 10
    assert last < 0.6 * first, (first, last)


def test_full_step_updates_all_parts_and_resume_is_bit_exact(assets, tmp_path):
    cfg = _config(assets, **{"loss.r1_every": 2, "train.checkpoint_every": 2, "train.sample_every": 100,
                             "train.log_every": 1, "train.batch": 2, "loss.lambda_lpips": 0.0})
    tr = _trainer(cfg)
    before = {k: v.clone() for k, v in [("enc", tr.model.encoder.encoder_2.input_layer[0].weight),
                                         ("d1", tr.D1.mlp[0].weight), ("d2", tr.D2.final_linear[1].weight),
                                         ("g", tr.model.decoder.conv1.conv.weight)]}
    run = RunDir.create(tmp_path, "resume", cfg)
    losses: dict[int, float] = {}
    rows = tr.train(run, iterations=4, callback=lambda step, m: losses.__setitem__(step, m["loss"]))
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and "r1" in rows[0] and "d1_loss" in rows[0]
    assert not torch.equal(before["enc"], tr.model.encoder.encoder_2.input_layer[0].weight)
    assert not torch.equal(before["d1"], tr.D1.mlp[0].weight)
    assert not torch.equal(before["d2"], tr.D2.final_linear[1].weight)
    assert torch.equal(before["g"], tr.model.decoder.conv1.conv.weight)  # the generator is frozen
    assert [s for s, _ in run.checkpoints("train")] == [2, 4] and run.latest_checkpoint("styleanime") is not None

    from vidanime.checkpoint import load_checkpoint

    tr2 = _trainer(cfg)
    tr2.load_state_dict(load_checkpoint(run.checkpoint_path(2), format="vidanime.styleanime.train"))
    resumed: dict[int, float] = {}
    tr2.train(None, iterations=4, callback=lambda step, m: resumed.__setitem__(step, m["loss"]))
    assert resumed == {3: losses[3], 4: losses[4]}  # bit-exact: the same next-step losses
    for (k, a), b in zip(tr.model.state_dict().items(), tr2.model.state_dict().values()):
        assert torch.equal(a, b), k

    from vidanime.registry import load_styleanime

    exported = load_styleanime(run.latest_checkpoint("styleanime"))
    x, p = tr.target.batch([0])
    # the trained encoders are channels-last, the loaded ones NCHW: equal to float32 rounding
    torch.testing.assert_close(exported.translate(x, p), tr.model.eval().translate(x, p), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------- DDP
def _grads(tr: StyleAnimeTrainer, world: int) -> dict[str, torch.Tensor]:
    """Gradients of one step's three backward passes (D1+D2, R1, encoders), averaged over ranks by DDP."""
    y, yp, x, xp = tr.next_batches()
    tr._encoders_train()
    fwd = tr.forward(y, yp, x, xp)
    out = {}
    d_loss, _ = tr.d_loss(y, fwd)
    d_loss.backward()
    out.update({f"d1.{k}": p.grad.clone() for k, p in tr.D1.named_parameters()})
    out.update({f"d2.{k}": p.grad.clone() for k, p in tr.D2.named_parameters()})
    tr.D2.zero_grad(set_to_none=True)
    r1, _ = tr.r1_loss(y)
    r1.backward()
    if world > 1:
        _allreduce_grads(tr.D2, world)
    out.update({f"r1.{k}": (p.grad if p.grad is not None else torch.zeros_like(p)).clone()
                for k, p in tr.D2.named_parameters()})
    e_loss, _ = tr.e_loss(y, yp, fwd)
    e_loss.backward()
    out.update({f"enc.{k}": (p.grad if p.grad is not None else torch.zeros_like(p)).clone()
                for k, p in tr.model.encoder.named_parameters()})
    return out


def _ddp_overrides(batch: int) -> dict:
    return {"train.batch": batch, "train.freeze_bn": True, "train.mbstd_group": 1, "loss.lambda_lpips": 0.0}


def _ddp_worker(rank: int, port: int, faces: str, out: str) -> None:
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        cfg = _config(Path(faces).parent, **_ddp_overrides(2))
        grads = _grads(_trainer(cfg, DistInfo(rank, 2, rank)), 2)
        if rank == 0:
            torch.save(grads, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process_on_the_concatenated_batch(assets, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp_grads.pt"
    mp.spawn(_ddp_worker, args=(port, str(assets / "faces"), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    ref = _grads(_trainer(_config(assets, **_ddp_overrides(4))), 1)
    assert set(ddp) == set(ref)
    for k in ref:
        assert torch.allclose(ddp[k], ref[k], rtol=1e-4, atol=1e-6), (k, (ddp[k] - ref[k]).abs().max())
    assert any(ref[k].abs().sum() > 0 for k in ref if k.startswith("enc.encoder_1"))  # E_p gets gradients too


# ---------------------------------------------------------------------------------------------------------- CLI
def test_cli_run_folder_and_resume(assets, tmp_path):
    from click.testing import CliRunner

    from pipelines.commands.train import cli

    faces = str(assets / "faces")
    args = ["--config", str(TINY), "--set", f"target.root={faces}", "--set", f"source.root={faces}",
            "--set", "target.limit=4", "--set", "source.limit=4", "--set", f"run_dir={tmp_path}",
            "--set", "train.iterations=2", "--set", "train.batch=2", "--set", "train.log_every=1",
            "--lpips-backbone", "random", "--skip-bad"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run = RunDir(next(tmp_path.glob("00000-styleanime_tiny")))
    cfg = run.read_config()
    assert cfg["target"]["skip_bad"] is True and cfg["loss"]["lpips_backbone"] == "random"
    assert (run.path / "samples" / "step-0000002.png").is_file()
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    res = CliRunner().invoke(cli, ["--resume", str(run.path), "--set", "train.iterations=3"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    assert run.latest_checkpoint("train").name == "train-0000003.pt"


def test_config_errors(assets):
    with pytest.raises(ConfigError, match="generator is empty"):
        _trainer(_config(assets, generator=""))
    with pytest.raises(ConfigError, match="train.batch"):
        _config(assets, **{"train.batch": 0})
    with pytest.raises(ConfigError, match="unknown key 'lamda_rec'"):
        _config(assets, **{"loss.lamda_rec": 1.0})


def test_init_from_exported_checkpoint_loads_encoders_and_discriminators(assets, tmp_path):
    """`init:` starts the encoders and, when the file carries them, D1/D2 from an exported StyleAnime (a fine-tune that
    began with fresh discriminators would first move the encoders by noise)."""
    cfg = _config(assets, **{"train.batch": 2, "train.sample_every": 100, "train.checkpoint_every": 1,
                             "loss.lambda_lpips": 0.0})
    tr = _trainer(cfg)
    run = RunDir.create(tmp_path, "src", cfg)
    tr.train(run, iterations=1)
    exported = run.latest_checkpoint("styleanime")
    fresh = _trainer(_config(assets, **{"train.seed": 7}))
    assert not torch.equal(fresh.D1.mlp[0].weight, tr.D1.mlp[0].weight)
    started = _trainer(_config(assets, **{"train.seed": 7, "init": str(exported)}))
    for a, b in zip(started.model.encoder.state_dict().values(), tr.model.encoder.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(started.D1.mlp[0].weight, tr.D1.mlp[0].weight)
    assert torch.equal(started.D2.final_linear[1].weight, tr.D2.final_linear[1].weight)


def test_channels_last_trains_the_same_numbers(assets):
    """Encoders and D2 in channels-last order (the default) give the losses and weights of the NCHW layout."""
    runs = {}
    for on in (True, False):
        cfg = _config(assets, **{"train.channels_last": on, "train.batch": 2, "loss.lambda_lpips": 0.0,
                                 "loss.r1_every": 2})
        tr = _trainer(cfg)
        conv = tr.model.encoder.encoder_2.input_layer[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == on
        assert tr.model.decoder.conv1.conv.weight.is_contiguous()  # G stays NCHW (grouped convolutions)
        runs[on] = ([tr.train_step()["loss"] for _ in range(3)], conv.detach().clone())
    torch.testing.assert_close(torch.tensor(runs[True][0]), torch.tensor(runs[False][0]), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(runs[True][1], runs[False][1], rtol=1e-4, atol=1e-6)
