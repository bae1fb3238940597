"""The drawing upscaler: starts as the bicubic upscale, learns, round-trips through its checkpoint format."""
import pytest
import torch
import torch.nn.functional as F

from vidanime.checkpoint import save_checkpoint
from vidanime.errors import CheckpointError, ConfigError
from vidanime.models.upscaler import UPSCALER_FORMAT, Upscaler, UpscalerConfig
from vidanime.registry import load_model


def test_fresh_upscaler_is_exactly_the_bicubic_upscale():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    for scale in (2, 3):
        net = Upscaler(UpscalerConfig(channels=8, blocks=2, scale=scale))
        want = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        torch.testing.assert_close(net(x), want)


def test_enlarge_clamps_casts_and_keeps_no_graph():
    """What the translators paste: float32 in [-1, 1] whatever the input dtype, no autograd graph."""
    net = Upscaler(UpscalerConfig(channels=8, blocks=2))
    x = torch.ones(1, 3, 4, 8)
    x[..., :4] = -1
    raw = net(x)
    assert raw.max() > 1.2 and raw.min() < -1.2  # bicubic overshoots a step edge (a fresh net is bicubic)
    out = net.enlarge(x.to(torch.bfloat16))
    assert out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out, net(x.to(torch.bfloat16).float()).clamp(-1, 1))
    assert out.max() == 1 and out.min() == -1


def test_loss_falls_on_one_batch():
    """A few Adam steps on one batch of sharp-edged pairs (high = blocky 32 px, low = its area downscale) cut the
    Charbonnier loss well below the bicubic start."""
    torch.manual_seed(0)
    blocks = (torch.rand(4, 3, 8, 8) > 0.5).float() * 2 - 1
    high = F.interpolate(blocks, size=(32, 32), mode="nearest")
    low = F.avg_pool2d(high, 2)
    net = Upscaler(UpscalerConfig(channels=16, blocks=2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = torch.sqrt((net(low) - high) ** 2 + 1e-6).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_checkpoint_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    net = Upscaler(UpscalerConfig(channels=8, blocks=1))
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    path = save_checkpoint(tmp_path / "up.pt", format=UPSCALER_FORMAT, config=net.config,
                           state_dict={k: v.half() for k, v in net.state_dict().items()})  # fp16 storage loads too
    back = load_model(path, format=UPSCALER_FORMAT)
    x = torch.rand(1, 3, 10, 10)
    torch.testing.assert_close(back(x), net(x), atol=2e-3, rtol=0)
    assert back.config == net.config and not back.training
    with pytest.raises(CheckpointError, match="expected 'vidanime.upscaler'"):
        load_model(save_checkpoint(tmp_path / "p.pt", format="vidanime.parser", config={}, state_dict={}),
                   format=UPSCALER_FORMAT)
    bad = save_checkpoint(tmp_path / "bad.pt", format=UPSCALER_FORMAT, config={"channels": 8, "blocks": 1, "scale": 5},
                          state_dict=net.state_dict())
    with pytest.raises(CheckpointError, match="scale=5"):
        load_model(bad)
    with pytest.raises(ConfigError, match="scale=5"):
        UpscalerConfig(scale=5).check()
