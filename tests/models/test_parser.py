"""Face parsers: public BiSeNet layout import, attention ops vs references, label remaps, a tiny parser overfits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidanime import labels as L
from vidanime.checkpoint import load_checkpoint, save_checkpoint
from vidanime.errors import CheckpointError, ConfigError
from vidanime.models.parser import (
    PARSER_FORMAT,
    ChannelAttention,
    ParserConfig,
    PositionAttention,
    build_parser,
    config_of,
    parser_from_checkpoint,
)


# ------------------------------------------------------------------------------------------- public BiSeNet layout
def public_bisenet_shapes(n_classes: int = 19) -> dict[str, tuple[int, ...]]:
    """Key → shape of face-parsing.PyTorch's BiSeNet(19) state dict, written out from its model.py/resnet.py."""
    s: dict[str, tuple[int, ...]] = {}

    def bn(p: str, c: int) -> None:
        s.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,),
                  f"{p}.num_batches_tracked": ()})

    def cbr(p: str, cin: int, cout: int, k: int) -> None:
        s[f"{p}.conv.weight"] = (cout, cin, k, k)
        bn(f"{p}.bn", cout)

    r = "cp.resnet"
    s[f"{r}.conv1.weight"] = (64, 3, 7, 7)
    bn(f"{r}.bn1", 64)
    cin = 64
    for li, cout in enumerate([64, 128, 256, 512], start=1):
        for b in range(2):
            p = f"{r}.layer{li}.{b}"
            s[f"{p}.conv1.weight"] = (cout, cin if b == 0 else cout, 3, 3)
            bn(f"{p}.bn1", cout)
            s[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            bn(f"{p}.bn2", cout)
            if b == 0 and cin != cout:
                s[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
        cin = cout
    for name, c in (("arm16", 256), ("arm32", 512)):
        cbr(f"cp.{name}.conv", c, 128, 3)
        s[f"cp.{name}.conv_atten.weight"] = (128, 128, 1, 1)
        bn(f"cp.{name}.bn_atten", 128)
    cbr("cp.conv_head32", 128, 128, 3)
    cbr("cp.conv_head16", 128, 128, 3)
    cbr("cp.conv_avg", 512, 128, 1)
    cbr("ffm.convblk", 256, 256, 1)
    s["ffm.conv1.weight"] = (64, 256, 1, 1)
    s["ffm.conv2.weight"] = (256, 64, 1, 1)
    for name, cin_, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        cbr(f"{name}.conv", cin_, mid, 3)
        s[f"{name}.conv_out.weight"] = (n_classes, mid, 1, 1)
    return s


def make_public_checkpoint(path, prefix: str = "") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    sd = {}
    for k, shape in public_bisenet_shapes().items():
        if k.endswith("num_batches_tracked"):
            sd[prefix + k] = torch.tensor(100)
        elif k.endswith("running_var"):
            sd[prefix + k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[prefix + k] = torch.randn(shape, generator=g) * 0.05
    torch.save(sd, path)
    return sd


def test_width_1_bisenet_has_exactly_the_public_keys_and_shapes():
    model = build_parser(ParserConfig(arch="bisenet", width=1.0))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == public_bisenet_shapes()


@pytest.mark.parametrize("prefix", ["", "module."])
def test_import_bisenet_public_layout(tmp_path, prefix):
    from vidanime.importers.bisenet import import_bisenet

    sd = make_public_checkpoint(tmp_path / "79999_iter.pth", prefix)
    model = import_bisenet(tmp_path / "79999_iter.pth")
    got = model.state_dict()
    for k, v in sd.items():
        torch.testing.assert_close(got[k[len(prefix):]], v)
    assert model.config.label_set == "bisenet" and model.config.image_size == 512
    out = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 19, 64, 64) and torch.isfinite(out).all()
    # round trip through our own format
    save_checkpoint(tmp_path / "p.pt", format=PARSER_FORMAT, config=config_of(model), state_dict=model.state_dict())
    again = parser_from_checkpoint(load_checkpoint(tmp_path / "p.pt", format=PARSER_FORMAT))
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(again(x), model(x))


def test_import_bisenet_rejects_wrong_files(tmp_path):
    from vidanime.importers.bisenet import import_bisenet

    sd = make_public_checkpoint(tmp_path / "a.pth")
    del sd["cp.arm16.conv_atten.weight"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="missing keys: cp.arm16.conv_atten.weight"):
        import_bisenet(tmp_path / "missing.pth")
    sd = make_public_checkpoint(tmp_path / "b.pth")
    sd["conv_out.conv_out.weight"] = torch.zeros(17, 256, 1, 1)
    torch.save(sd, tmp_path / "classes.pth")
    with pytest.raises(CheckpointError, match="17 classes, expected 19"):
        import_bisenet(tmp_path / "classes.pth")
    torch.save({"encoder.w": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a face-parsing.PyTorch BiSeNet"):
        import_bisenet(tmp_path / "other.pth")


# ------------------------------------------------------------------------------------------------- DANet attention
def test_position_attention_matches_naive_reference():
    torch.manual_seed(0)
    pam = PositionAttention(16).eval()
    with torch.no_grad():
        pam.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 4)
    out = pam(x)
    q, k, v = pam.query_conv(x), pam.key_conv(x), pam.value_conv(x)
    ref = torch.empty_like(x)
    for b in range(2):
        qf, kf, vf = q[b].flatten(1), k[b].flatten(1), v[b].flatten(1)  # (C', N), (C', N), (C, N)
        for i in range(12):
            w = torch.softmax(qf[:, i] @ kf, dim=0)  # attention of position i over all positions
            ref[b].view(16, -1)[:, i] = vf @ w
    torch.testing.assert_close(out, 0.7 * ref + x, rtol=1e-4, atol=1e-5)


def test_channel_attention_matches_numpy_reference():
    cam = ChannelAttention()
    with torch.no_grad():
        cam.gamma.fill_(0.5)
    x = torch.randn(1, 5, 3, 3, dtype=torch.float64)
    xf = x[0].reshape(5, -1).numpy()
    e = xf @ xf.T
    e = e.max(axis=1, keepdims=True) - e
    a = np.exp(e - e.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    ref = 0.5 * (a @ xf) + xf
    np.testing.assert_allclose(cam(x)[0].reshape(5, -1).detach().numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("arch,label_set,stride", [("danet", "danbooru", 8), ("danet", "bisenet", 16),
                                                   ("bisenet", "danbooru", 8)])
def test_parsers_output_logits_at_input_size(arch, label_set, stride):
    cfg = ParserConfig(arch=arch, label_set=label_set, width=0.125, blocks=[1, 1, 1, 1], output_stride=stride,
                       spatial_path=arch == "bisenet")
    m = build_parser(cfg).train()
    out, aux = m.forward_with_aux(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, L.num_classes(label_set), 64, 48) and len(aux) == 2
    if arch == "bisenet":
        assert any(k.startswith("sp.") for k in m.state_dict())
    m.eval()
    assert m.forward_with_aux(torch.rand(1, 3, 64, 48))[1] == []


def test_bad_parser_config_and_input():
    with pytest.raises(ConfigError, match="width"):
        ParserConfig(width=0)
    with pytest.raises(ConfigError, match="output_stride"):
        ParserConfig(output_stride=4)
    m = build_parser(ParserConfig(width=0.125, blocks=[1, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="at least 32x32"):
        m(torch.rand(1, 3, 16, 16))
    with pytest.raises(CheckpointError, match="expected a 'vidanime.parser'"):
        parser_from_checkpoint({"format": "vidanime.stylegan2", "config": {}, "state_dict": {}})


# --------------------------------------------------------------------------------------------------- label orders
def test_label_order_remaps_round_trip():
    from vidanime.data.parsing import flip_mask, remap_mask

    ids = np.arange(19, dtype=np.uint8)
    to_b = remap_mask(ids, "celebamask", "bisenet")
    # the table in ../shared/assets/faces/MANIFEST.md
    np.testing.assert_array_equal(to_b, [0, 1, 10, 6, 4, 5, 2, 3, 7, 8, 11, 12, 13, 17, 18, 9, 15, 14, 16])
    np.testing.assert_array_equal(remap_mask(to_b, "bisenet", "celebamask"), ids)
    # bisenet -> danbooru merges the lips into the mouth; danbooru -> bisenet -> danbooru is the identity
    d = remap_mask(ids, "bisenet", "danbooru")
    assert d[L.BISENET.index("u_lip")] == d[L.BISENET.index("l_lip")] == L.DANBOORU.index("mouth")
    dids = np.arange(17, dtype=np.uint8)
    np.testing.assert_array_equal(remap_mask(remap_mask(dids, "danbooru", "bisenet"), "bisenet", "danbooru"), dids)
    # the ignore id survives, flips swap sides and round-trip
    m = np.array([[L.BISENET.index("l_eye"), 255, L.BISENET.index("hair")]], dtype=np.uint8)
    f = flip_mask(m, "bisenet")
    np.testing.assert_array_equal(f, [[L.BISENET.index("hair"), 255, L.BISENET.index("r_eye")]])
    np.testing.assert_array_equal(flip_mask(f, "bisenet"), m)
    np.testing.assert_array_equal(remap_mask(m, "bisenet", "danbooru")[0, 1], 255)


# ---------------------------------------------------------------------------------------------------- overfitting
@pytest.mark.slow
def test_tiny_parser_overfits_eight_faces(assets):
    """8 real faces at 96 px: a tiny BiSeNet reaches > 95 % pixel accuracy (eval mode) on them; the loss falls."""
    from vidanime.data.parsing import ParsingDataConfig, ParsingDataset, list_pairs
    from vidanime.train.parser import evaluate_parser, parsing_loss

    torch.set_num_threads(1)  # small convs: a second thread only spins
    ids = [p[0] for p in list_pairs(assets / "faces")[:8]]
    data = ParsingDataConfig(root=str(assets / "faces"), image_size=96, flip=False, scale_jitter=0, color_jitter=0)
    ds = ParsingDataset(data, "bisenet", ids=ids)
    x = torch.stack([ds[i]["image"] for i in range(8)])
    y = torch.stack([ds[i]["labels"] for i in range(8)])
    model = build_parser(ParserConfig(width=0.125, blocks=[1, 1, 1, 1], image_size=96, aux_heads=False)).train()
    steps = 200
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=steps, pct_start=0.15)
    losses = []
    for _ in range(steps):
        loss, _ = parsing_loss(model, x, y, aux_weight=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    scores = evaluate_parser(model, ds, batch_size=8)
    assert scores.overall_accuracy > 0.95, scores.overall_accuracy
