"""Per-clip fine-tune library: Eq. 15/16 losses on hand-made cases, triplet sampling, bit-exact resume, L_base data."""
import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vidanime.config import load_config
from vidanime.errors import ConfigError
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig
from vidanime.train.finetune import (
    BaseLossConfig,
    ClipFinetuner,
    ClipTriplets,
    FinetuneConfig,
    FinetuneOptions,
    TrackFrames,
    base_data_config,
    fic_loss,
    lcsc_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # keep CPU tests light on the shared machine


def test_lcsc_loss_hand_computed():
    w = torch.zeros(2, 3, 4, 5)
    w[:, 0], w[:, 1], w[:, 2] = 1.0, 2.0, 3.0  # linear in time: no second difference
    assert lcsc_loss(w).item() == 0.0
    w[1, 1, :, 0] = 5.0  # middle code off the line by (2 - 5) = -3 in one of 5 dims, all 4 codes of triplet 1
    # triplet 1: each code's second difference has entries (-3, 0, 0, 0, 0) → norm 3; triplet 0: 0 → mean 1.5
    assert lcsc_loss(w).item() == pytest.approx(1.5)
    with pytest.raises(ValueError):
        lcsc_loss(torch.zeros(2, 4, 5))


def test_fic_loss_zero_for_exact_interpolation_and_reaches_all_frames():
    mean = lambda a, b, t: (a + b) / 2  # noqa: E731  (the exact M for frames linear in time)
    x0, x2 = torch.rand(1, 3, 8, 8) - 0.5, torch.rand(1, 3, 8, 8) - 0.5
    frames = torch.stack([x0, (x0 + x2) / 2, x2], dim=1).requires_grad_(True)
    assert fic_loss(frames, mean).item() == pytest.approx(0.0, abs=1e-12)
    bumped = frames.detach().clone()
    bumped[:, 1] += 0.1
    bumped.requires_grad_(True)
    loss = fic_loss(bumped, mean)
    assert loss.item() == pytest.approx(0.01, rel=1e-5)  # MSE of a constant 0.1 offset
    loss.backward()
    assert all(bumped.grad[:, k].abs().sum() > 0 for k in range(3))


def _tiny_model():
    torch.manual_seed(0)
    return StyleAnime(load_config(REPO / "configs" / "styleanime_tiny.yaml", StyleAnimeConfig))


def _synthetic_triplets(frames=(0, 1, 2, 3, 5, 6, 7), s=40, m=32, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (s, s, 3)).astype(np.float32)
    tr = TrackFrames(3)
    for f in frames:
        tr.frames.append(f)
        tr.matrices.append(np.eye(2, 3))
        tr.crops.append(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
        tr.labels.append(torch.from_numpy(rng.integers(0, 19, (m, m)).astype(np.uint8)))
    return ClipTriplets("synthetic.mp4", [tr], crop_size=s, image_size=m)


def test_triplets_skip_gaps_and_batch_layout():
    trip = _synthetic_triplets()
    # frames 0 1 2 3 | 5 6 7: centres at positions 1, 2 (frames 1, 2) and 5 (frame 6); 3 and 5 are not consecutive
    assert trip.centres == [(0, 1), (0, 2), (0, 5)] and trip.cached
    x, lab = trip.batch([2, 0])
    assert x.shape == (6, 3, 32, 32) and lab.shape == (6, 32, 32) and lab.dtype == torch.int64
    assert -1 <= x.min() and x.max() <= 1
    tr = trip.tracks[0]
    assert torch.equal(lab[1], tr.labels[5].long()) and torch.equal(lab[3], tr.labels[0].long())  # (5,6,7), (0,1,2)


def _finetuner(trip, **opts):
    cfg = FinetuneConfig(train=FinetuneOptions(batch=2, lr=1e-3, device="cpu", progress=False, log_every=2, **opts))
    mean = lambda a, b, t: (a + b) / 2  # noqa: E731
    return ClipFinetuner(cfg, _tiny_model(), trip, interp=mean)


def test_finetune_lowers_lcsc_and_keeps_generator_frozen():
    trip = _synthetic_triplets()
    ft = _finetuner(trip)
    g0 = {k: v.clone() for k, v in ft.model.decoder.state_dict().items()}
    e0 = {k: v.clone() for k, v in ft.model.encoder.state_dict().items()}
    before = ft.evaluate()
    rows = ft.train(iterations=10)
    after = ft.evaluate()
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10]
    assert after["lcsc"] < before["lcsc"] and after["fic"] < before["fic"]
    assert all(torch.equal(v, g0[k]) for k, v in ft.model.decoder.state_dict().items())
    # frozen BatchNorm: running statistics unchanged, weights trained
    sd = ft.model.encoder.state_dict()
    assert all(torch.equal(sd[k], e0[k]) for k in sd if "running_" in k)
    assert any(not torch.equal(sd[k], e0[k]) for k in sd if k.endswith("weight"))


def test_resume_is_bit_exact(tmp_path):
    from vidanime.checkpoint import load_checkpoint
    from vidanime.train.finetune import FINETUNE_FORMAT
    from vidanime.train.run_dir import RunDir

    trip = _synthetic_triplets()
    straight = _finetuner(trip)
    straight.train(iterations=4)
    first = _finetuner(trip, checkpoint_every=2)
    run = RunDir(tmp_path)
    first.train(run, iterations=2)
    ckpt = load_checkpoint(run.latest_checkpoint("finetune"), format=FINETUNE_FORMAT)
    second = _finetuner(trip)
    second.load_state_dict(ckpt)
    assert second.step == 2
    second.train(iterations=4)
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "styleanime.pt").is_file()


def test_base_data_config_sources_and_errors(tmp_path):
    base = BaseLossConfig()
    with pytest.raises(ConfigError, match="records no target-domain training data.*--base-data"):
        base_data_config(None, base, "bisenet", source="tiny.pt")
    with pytest.raises(ConfigError, match="not found"):
        base_data_config({"target": {"root": str(tmp_path / "gone")}}, base, "bisenet")
    tc = {"target": {"root": str(tmp_path / "gone"), "mask_labels": "celebamask", "limit": 5},
          "loss": {"lambda_rec": 3.0, "lpips_backbone": ""}}
    data, loss = base_data_config(tc, BaseLossConfig(data=str(tmp_path), loss={"lpips_backbone": "random"}), "bisenet")
    assert data.root == str(tmp_path) and data.mask_labels == "celebamask" and data.limit == 5
    assert loss.lambda_rec == 3.0 and loss.lpips_backbone == "random"


def test_lbase_uses_the_saved_discriminators_and_the_clips_colours(assets, tmp_path):
    """An exported StyleAnime carries D1/D2; the fine-tune's L_base then holds all of Eq. 10 with the clip as the
    source domain (L_da^E on the clip's codes, L_adv^E on reconstruction + clip translations) plus L_cp of each clip
    translation against its frame; the discriminators stay frozen."""
    from vidanime.checkpoint import read_torch_file
    from vidanime.data.domains import DomainDataset
    from vidanime.losses.styleanime import StyleAnimeLoss
    from vidanime.models.styleanime import styleanime_from_checkpoint
    from vidanime.train.run_dir import RunDir
    from vidanime.train.styleanime import StyleAnimeTrainer, TrainStyleAnimeConfig, discriminators_from_checkpoint

    faces = str(assets / "faces")
    cfg = load_config(REPO / "configs" / "styleanime_train_tiny.yaml", TrainStyleAnimeConfig,
                      overrides={"target.root": faces, "source.root": faces, "target.limit": 4, "source.limit": 4,
                                 "train.batch": 2, "loss.lambda_lpips": 0.0})
    tr = StyleAnimeTrainer(cfg, DomainDataset(cfg.target, "bisenet", 32), DomainDataset(cfg.source, "bisenet", 32),
                           device="cpu")
    tr.train(RunDir.create(tmp_path, "t", cfg), iterations=1)
    data = read_torch_file(RunDir.open(next(tmp_path.iterdir())).latest_checkpoint("styleanime"))
    model = styleanime_from_checkpoint(data)
    d1, d2 = discriminators_from_checkpoint(data, model)
    assert torch.equal(d1.mlp[0].weight, tr.D1.mlp[0].weight) and not d2.final_linear[1].weight.requires_grad
    assert discriminators_from_checkpoint({"format": "vidanime.styleanime"}, model) is None

    def finetuner(adversarial: bool) -> ClipFinetuner:
        ft_cfg = FinetuneConfig(train=FinetuneOptions(batch=2, base_batch=2, device="cpu", progress=False),
                                base=BaseLossConfig(adversarial=adversarial))
        return ClipFinetuner(ft_cfg, model, _synthetic_triplets(), interp=lambda a, b, t: (a + b) / 2,
                             base=DomainDataset(cfg.target, "bisenet", 32),
                             base_loss=StyleAnimeLoss(cfg.loss, "bisenet"), discriminators=(d1, d2))

    default = finetuner(False).train_step()  # the image-adversarial term is opt-in; D1's and the clip's L_cp are on
    assert "base_adv" not in default and default["base_da"] > 0 and default["base_clip_cp"] > 0
    ft = finetuner(True)
    d2_before = d2.final_linear[1].weight.clone()
    m = ft.train_step()
    lam = cfg.loss
    want = (lam.lambda_rec * m["base_rec"] + lam.lambda_cp * m["base_cp"] + lam.lambda_da * m["base_da"]
            + lam.lambda_adv * m["base_adv"] + lam.lambda_cp * m["base_clip_cp"])
    assert m["base"] == pytest.approx(want, rel=1e-5) and m["base_da"] > 0 and m["base_adv"] > 0
    assert torch.equal(d2_before, d2.final_linear[1].weight)


def test_recorded_data_is_found_from_any_folder_and_if_missing_is_checked(tmp_path, monkeypatch):
    """A training config records its data relative to the repository ('../shared/assets/anime'); the fine-tune finds
    it from any working directory under the assets root ($VIDANIME_ASSETS here), and says so when it is absent."""
    from vidanime.train.finetune import base_data_found, resolve_recorded_data

    assets = tmp_path / "assets"
    (assets / "anime").mkdir(parents=True)
    monkeypatch.setenv("VIDANIME_ASSETS", str(assets))
    monkeypatch.chdir(tmp_path)  # ../shared/assets/anime does not exist from here
    assert resolve_recorded_data("../shared/assets/anime") == str(assets / "anime")
    assert resolve_recorded_data("../shared/assets/nothing") == "../shared/assets/nothing"  # unchanged: not found
    assert resolve_recorded_data(str(tmp_path)) == str(tmp_path)  # an existing path stays as written
    tc = {"target": {"root": "../shared/assets/anime"}}
    assert base_data_found(tc, BaseLossConfig()) and not base_data_found({"target": {"root": "gone"}}, BaseLossConfig())
    assert not base_data_found(None, BaseLossConfig())
    assert base_data_config(tc, BaseLossConfig(), "bisenet")[0].root == str(assets / "anime")
    with pytest.raises(ConfigError, match="base.if_missing='maybe': expected 'error' or 'off'"):
        BaseLossConfig(if_missing="maybe")


def test_triplets_fill_the_background_as_the_translator_does():
    from vidanime.models.face_translator import fill_background

    plain = _synthetic_triplets()
    filled = _synthetic_triplets()
    filled.background_fill, filled.label_set = 0.7, "bisenet"
    (x0, lab0), (x1, lab1) = plain.batch([0, 2]), filled.batch([0, 2])
    assert torch.equal(lab0, lab1) and (lab0 == 0).any()
    torch.testing.assert_close(x1, fill_background(x0, lab0, "bisenet", 0.7))
    assert not torch.allclose(x0, x1)
