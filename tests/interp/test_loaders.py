"""Checkpoint loaders on checkpoints built here in the public layouts (RIFE flownet.pkl, AnimeInterp .pth) and ours."""
from __future__ import annotations

import pytest
import torch

import interp
from interp.animeinterp import AnimeInterp
from interp.ifnet import IFNet, IFNetConfig
from interp.loaders import load_animeinterp, load_ifnet
from vidanime.checkpoint import save_checkpoint
from vidanime.config import config_to_dict
from vidanime.errors import CheckpointError

TINY = IFNetConfig(c0=16, c1=12, c2=8, c_tea=8, ctx=4)


@pytest.fixture(scope="module")
def anime_ckpt(tmp_path_factory):
    torch.manual_seed(1)
    model = AnimeInterp(rfr_iters=1, use_sgm=False)
    path = tmp_path_factory.mktemp("ai") / "anime_interp_full.ckpt"
    sd = {"module." + k: v for k, v in model.net.state_dict().items()}
    torch.save({"model_state_dict": sd, "epoch": 49}, path)  # the public layout
    return model, path


def _rife_file(tmp_path, model):
    path = tmp_path / "flownet.pkl"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    return path


def test_rife_flownet_pkl_layout_loads_and_matches(tmp_path):
    torch.manual_seed(0)
    ref = IFNet(TINY).eval()
    m = interp.load(_rife_file(tmp_path, ref))
    assert isinstance(m, IFNet) and m.config.c0 == 16 and m.config.ctx == 4  # widths read from shapes
    assert not any(p.requires_grad for p in m.parameters())
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(m(a, b), ref(a, b))


def test_our_ifnet_checkpoint_loads(tmp_path):
    ref = IFNet(TINY).eval()
    path = save_checkpoint(tmp_path / "ifnet.pt", format="vidanime.interp.ifnet", config=TINY,
                           state_dict=ref.state_dict(), model_config=config_to_dict(TINY))
    m = load_ifnet(path)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(m.eval()(a, b), ref(a, b))


def test_animeinterp_public_layout_loads_and_matches(anime_ckpt):
    ref, path = anime_ckpt
    m = interp.load(path, use_sgm=False)
    assert isinstance(m, AnimeInterp)
    keys = set(m.net.state_dict())
    for k in ("flownet.fnet.layer2.0.downsample.0.weight", "flownet.update_block.gru.convz1.weight",
              "flownet.update_block.mask.2.weight", "flownet.attention2.prelu1.weight", "feat_ext.prelu6.weight",
              "synnet.upsample_model_15.2.weight", "synnet.residual_model_tail.3.bias"):
        assert k in keys
    m.net.flownet.iters = 1
    a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(m(a, b), ref.eval()(a, b))


def test_wrong_model_checkpoints_are_clear_errors(tmp_path, anime_ckpt):
    _, anime_path = anime_ckpt
    with pytest.raises(CheckpointError, match="animeinterp checkpoint, expected a RIFE IFNet"):
        interp.load(anime_path, kind="ifnet")
    rife = _rife_file(tmp_path, IFNet(TINY))
    with pytest.raises(CheckpointError, match="expected an AnimeInterp"):
        load_animeinterp(rife)
    other = tmp_path / "other.pt"
    torch.save({"module.encoder.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="neither a RIFE IFNet"):
        interp.load(other)
    gan = save_checkpoint(tmp_path / "g.pt", format="vidanime.stylegan2", config={}, state_dict={})
    with pytest.raises(CheckpointError, match="not a frame-interpolation model"):
        interp.load(gan)
    sd = {"module." + k: v for k, v in IFNet(TINY).state_dict().items() if not k.startswith("unet.conv.")}
    torch.save(sd, tmp_path / "cut.pkl")
    with pytest.raises(CheckpointError, match="missing keys: unet.conv.weight"):
        interp.load(tmp_path / "cut.pkl")
    with pytest.raises(CheckpointError, match="classical"):
        interp.load("no-such-model")
