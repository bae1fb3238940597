"""The one training harness: durations, budgets, the step loop's rows, hooks, divergence guard and schedule."""
from __future__ import annotations

import math

import pytest
import torch

from vidanime.errors import ConfigError
from vidanime.train.harness import (
    Budget,
    Every,
    RunningMean,
    TrainLoop,
    check_finite,
    parse_duration,
    resolve_device,
    threads,
    warmup_cosine,
)


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("text,seconds", [("9m", 540), ("150m", 9000), ("1h30m", 5400), ("2.5h", 9000),
                                          ("90s", 90), ("45", 45), (12, 12), ("1m30s", 90)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["9x", "m", "-5", "1h-2m", "soon"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(bad)


def test_budget_counts_down_and_parts_are_capped():
    clock = FakeClock()
    b = Budget(60, clock)
    assert b.remaining() == 60 and not b.expired()
    clock.t += 45
    part = b.part(30)  # asks for 30 s, only 15 s left
    assert part.seconds == 15 and b.remaining() == 15
    clock.t += 15
    assert b.expired() and part.expired() and b.remaining() == 0
    assert Budget(None).remaining() == math.inf and not Budget.parse(None).expired()
    assert Budget.parse("2m").seconds == 120


def test_loop_rows_are_hand_computed_means_and_hooks_fire():
    values = iter([1.0, 3.0, 5.0, 7.0, 9.0])
    calls: list[tuple[str, int]] = []
    loop = TrainLoop(lambda: {"loss": next(values)}, start=0, total=5, log_every=2, progress=False,
                     row_fn=lambda s: {"lr": 0.1 * s},
                     hooks=[Every(lambda s: calls.append(("ckpt", s)), steps=2)])
    result = loop.run()
    assert result.stopped == "done" and result.step == 5
    assert [(r["step"], r["loss"], r["lr"]) for r in result.rows] == [(2, 2.0, 0.2), (4, 6.0, 0.4), (5, 9.0, 0.5)]
    assert all(r["it_per_s"] > 0 for r in result.rows)
    assert calls == [("ckpt", 2), ("ckpt", 4), ("ckpt", 5)]  # every 2 steps, and once at the end


def test_loop_budget_stops_after_the_step_that_spends_it_and_still_saves():
    clock = FakeClock()
    saved: list[int] = []

    def step():
        clock.t += 4.0  # each step takes 4 s of the fake clock
        return {"loss": 1.0}

    loop = TrainLoop(step, start=10, total=1000, log_every=100, budget=Budget(10, clock), progress=False,
                     hooks=[Every(saved.append, steps=500)])
    result = loop.run()
    assert result.stopped == "budget" and result.step == 13  # 12 s > 10 s after the 3rd step
    assert saved == [13] and [r["step"] for r in result.rows] == [13]


def test_loop_runs_min_steps_even_with_a_spent_budget():
    clock = FakeClock()
    b = Budget(1, clock)
    clock.t += 5
    result = TrainLoop(lambda: {"loss": 0.0}, start=0, total=10, budget=b, progress=False).run()
    assert result.step == 1 and result.stopped == "budget"


def test_loop_timer_hook_fires_on_wall_clock(monkeypatch):
    import vidanime.train.harness as H

    now = [0.0]
    monkeypatch.setattr(H.time, "perf_counter", lambda: now[0])
    fired: list[int] = []

    def step():
        now[0] += 25.0
        return {"loss": 0.0}

    TrainLoop(step, start=0, total=7, progress=False, hooks=[Every(fired.append, seconds=60, at_end=False)]).run()
    assert fired == [3, 6]  # 75 s after start, then 75 s after that


def test_loop_divergence_names_the_step():
    values = iter([1.0, float("nan")])
    with pytest.raises(FloatingPointError, match="step 2"):
        TrainLoop(lambda: {"loss": next(values)}, start=0, total=5, progress=False).run()
    check_finite(1, {"loss": 1.0, "other": float("inf")}, keys=("loss",))  # unwatched keys may be inf


def test_loop_with_checkpointed_meter_gives_the_same_rows_after_resume():
    def run(start, total, meter):
        return TrainLoop(lambda: {"loss": 1.0 + len(seen.append(0) or seen)}, start=start, total=total, log_every=4,
                         log_at_end=False, progress=False, meter=meter).run().rows

    seen: list[int] = []
    straight = run(0, 8, RunningMean())
    seen.clear()
    meter = RunningMean()
    first = run(0, 6, meter)
    saved = meter.state_dict()  # a checkpoint at step 6, between two rows
    resumed_meter = RunningMean()
    resumed_meter.load_state_dict(saved)
    second = run(6, 8, resumed_meter)
    key = lambda rows: [(r["step"], r["loss"]) for r in rows]  # noqa: E731
    assert key(first + second) == key(straight) == [(4, 3.5), (8, 7.5)]


def test_nothing_to_do_when_already_done():
    result = TrainLoop(lambda: {"loss": 0.0}, start=5, total=5, progress=False).run()
    assert result.stopped == "nothing" and result.rows == []


def test_warmup_cosine_hand_values():
    assert warmup_cosine(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 1.0, warmup=10, floor=0.2) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 1.0, warmup=10, floor=0.2) == pytest.approx(0.6)  # half way: mean of peak, floor
    assert warmup_cosine(100, 100, 1.0, warmup=10, floor=0.2) == pytest.approx(0.2)


def test_resolve_device_and_threads():
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_channels_last_keeps_the_numbers_and_checkpoints_stay_nchw(tmp_path):
    """A channels-last encoder and discriminator compute what the NCHW ones do (forward and input gradients), and a
    checkpoint saved from one holds plain contiguous tensors."""
    import copy

    from vidanime.checkpoint import load_checkpoint, save_checkpoint
    from vidanime.models.encoders import EncoderConfig, GradualStyleEncoder
    from vidanime.models.stylegan2 import Discriminator, StyleGAN2Config
    from vidanime.train.harness import to_channels_last

    torch.manual_seed(0)
    enc = GradualStyleEncoder(5, ["coarse", "medium", "fine"], EncoderConfig(units=(1, 1, 1, 1), widths=(8, 8, 16, 16)),
                              style_dim=16, image_size=32)
    disc = Discriminator(StyleGAN2Config(size=32, style_dim=16, channel_max=16))
    for model, x in ((enc, torch.randn(2, 5, 32, 32)), (disc, torch.randn(4, 3, 32, 32))):
        nhwc = copy.deepcopy(model)
        assert to_channels_last(False, nhwc) is False
        assert all(p.is_contiguous() for p in nhwc.parameters())
        assert to_channels_last(None, nhwc) is True  # None: on
        convs = [p for p in nhwc.parameters() if p.ndim == 4 and p.shape[2:] != (1, 1)]
        assert convs and all(not p.is_contiguous() for p in convs)
        outs, grads = [], []
        for m in (model, nhwc):
            xi = x.clone().requires_grad_(True)
            out = m(xi)
            (g,) = torch.autograd.grad(out.square().sum(), xi)
            outs.append(out.detach())
            grads.append(g)
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)
    path = save_checkpoint(tmp_path / "d.pt", format="test", config={}, state_dict=nhwc.state_dict())
    state = load_checkpoint(path)["state_dict"]
    assert all(v.is_contiguous() for v in state.values())
    torch.testing.assert_close(state["final_linear.0.weight"], disc.final_linear[0].weight.detach())
