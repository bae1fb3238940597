"""ParsePipeline, temporal smoothing, bad images, and the `vidanime parse` / `vidanime parser` commands."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipelines.parse import ParsePipeline, overlay, smooth_probs
from vidanime import labels as L
from vidanime.checkpoint import save_checkpoint
from vidanime.data.parsing import read_image_rgb
from vidanime.errors import MediaError
from vidanime.models.parser import PARSER_FORMAT, ParserConfig, build_parser

TINY = ParserConfig(width=0.125, blocks=[1, 1, 1, 1], image_size=32)


@pytest.fixture
def pipe() -> ParsePipeline:
    return ParsePipeline(build_parser(TINY).eval())


@pytest.fixture
def tiny_ckpt(tmp_path):
    path = tmp_path / "parser.pt"
    save_checkpoint(path, format=PARSER_FORMAT, config=TINY, state_dict=build_parser(TINY).state_dict())
    return path


# -------------------------------------------------------------------------------------------------- smoothing
def test_smooth_probs_hand_case_and_edges():
    p = torch.zeros(3, 2, 1, 1)
    p[:, 0] = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1)
    p[:, 1] = 1 - p[:, 0]
    s = smooth_probs(p, radius=1, sigma=1.0)
    w = np.exp(-0.5)  # weight of a neighbour one frame away
    assert s[1, 0].item() == pytest.approx(2 * w / (1 + 2 * w))  # middle frame: two neighbours say class 0
    assert s[0, 0].item() == pytest.approx(1 / (1 + w))  # edge: window cut and renormalised
    torch.testing.assert_close(s.sum(1), torch.ones(3, 1, 1))


def test_smooth_probs_constant_sequence_unchanged_and_causal_ignores_future():
    p = torch.softmax(torch.randn(1, 5, 4, 4), 1).repeat(6, 1, 1, 1)
    torch.testing.assert_close(smooth_probs(p, radius=2, sigma=1.5), p)
    q = torch.softmax(torch.randn(6, 5, 4, 4), 1)
    q2 = q.clone()
    q2[4:] = torch.softmax(torch.randn(2, 5, 4, 4), 1)
    torch.testing.assert_close(smooth_probs(q, 2, causal=True)[:4], smooth_probs(q2, 2, causal=True)[:4])
    assert not torch.allclose(smooth_probs(q, 2)[3], smooth_probs(q2, 2)[3])
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        smooth_probs(torch.rand(3, 4, 4))


# --------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_labels_at_input_size_and_remap(pipe):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), rng.integers(0, 256, (33, 33, 3), dtype=np.uint8)]
    res = pipe(imgs, return_probs=True)
    assert [lab.shape for lab in res.labels] == [(40, 56), (33, 33)]
    np.testing.assert_array_equal(res.labels[0], res.probs[0].argmax(0).numpy())
    dan = ParsePipeline(pipe.model, output_labels="danbooru")(imgs).labels[0]
    np.testing.assert_array_equal(dan, L.remap(res.labels[0], "bisenet", "danbooru"))
    with pytest.raises(MediaError, match="expected uint8"):
        pipe([np.zeros((40, 40, 3), np.float32)])
    with pytest.raises(MediaError, match="too small"):
        pipe([np.zeros((8, 40, 3), np.uint8)])


def test_overlay_keeps_background_and_blends_foreground():
    img = np.full((2, 2, 3), 100, np.uint8)
    lab = np.array([[0, L.BISENET.index("hair")], [0, 0]], np.uint8)
    out = overlay(img, lab, "bisenet", alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    blend = (100 + L.palette("bisenet")[lab[0, 1]].astype(float)) / 2 + 0.5
    np.testing.assert_array_equal(out[0, 1], blend.astype(np.uint8))


def _bad_and_good_images(folder):
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)).save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (40, 40), dtype=np.uint16)).save(folder / "deep16.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "tiny.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored")


def test_read_image_rgb_converts_modes(tmp_path):
    _bad_and_good_images(tmp_path / "in")
    g = read_image_rgb(tmp_path / "in" / "gray.png")
    assert g.shape == (40, 40, 3) and g.dtype == np.uint8 and (g[..., 0] == g[..., 2]).all()
    Image.fromarray(np.array([[0, 65535]], np.uint16).repeat(20, 0).repeat(10, 1)).save(tmp_path / "d.png")
    d = read_image_rgb(tmp_path / "d.png")
    assert d[0, 0, 0] == 0 and d[0, -1, 0] == 255
    Image.fromarray(np.zeros((20, 20, 4), np.uint8)).save(tmp_path / "clear.png")  # fully transparent → white
    assert (read_image_rgb(tmp_path / "clear.png") == 255).all()
    with pytest.raises(MediaError, match="corrupt"):
        read_image_rgb(tmp_path / "in" / "corrupt.jpg")
    with pytest.raises(MediaError, match="too small"):
        read_image_rgb(tmp_path / "in" / "tiny.png")


def test_parse_paths_folder_skips_bad_files_and_writes_readable_pngs(pipe, tmp_path):
    _bad_and_good_images(tmp_path / "in")
    summary = pipe.parse_paths(tmp_path / "in", tmp_path / "out", overlays=True)
    assert sorted(p.split("/")[-1] for p in summary["failed"]) == ["corrupt.jpg", "tiny.png"]
    for stem in ("gray", "rgba", "deep16"):
        lab = np.array(Image.open(tmp_path / "out" / f"{stem}.png"))
        expected = pipe(read_image_rgb(tmp_path / "in" / f"{stem}.png")).labels[0]
        np.testing.assert_array_equal(lab, expected)
        assert (tmp_path / "out" / f"{stem}_overlay.png").is_file()
    with pytest.raises(MediaError, match="corrupt"):
        pipe.parse_paths(tmp_path / "in" / "corrupt.jpg", tmp_path / "out2")
    with pytest.raises(MediaError, match="input file"):
        pipe.parse_paths(tmp_path / "in" / "gray.png", tmp_path / "in" / "gray.png")


# ---------------------------------------------------------------------------------------------------- commands
def _pairs_folder(root, n=4, size=32):
    rng = np.random.default_rng(2)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"f{i}.jpg")
        Image.fromarray(rng.integers(0, 19, (size, size), dtype=np.uint8)).save(root / "masks" / f"f{i}.png")


def test_parse_command(tiny_ckpt, tmp_path):
    from pipelines.commands.parse import cli

    _bad_and_good_images(tmp_path / "in")
    r = CliRunner().invoke(cli, [str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tiny_ckpt), "--overlay"])
    assert r.exit_code == 0, r.output
    assert "wrote 3 label maps" in r.output and "skipped 2" in r.output
    assert (tmp_path / "out" / "rgba_overlay.png").is_file()


def test_parser_train_and_eval_commands(tmp_path):
    from pipelines.commands.parser import cli

    _pairs_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    args = ["train", "--config", "configs/parser_tiny.yaml", "--set", f"data.root={tmp_path / 'data'}",
            "--set", f"runs_root={runs}", "--set", "train.steps=3", "--set", "train.batch_size=2",
            "--set", "model.image_size=32", "--set", "data.image_size=32", "--set", "data.val_fraction=0.25"]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    ckpt = sorted(runs.glob("*/checkpoints/parser-*.pt"))[-1]
    r = CliRunner().invoke(cli, ["eval", str(ckpt)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "1 images (heldout)" in r.output and "Overall Acc." in r.output and "mIoU" in r.output
    r = CliRunner().invoke(cli, ["eval", str(ckpt), "--data", str(tmp_path / "data"), "--mask-labels", "bisenet",
                                 "--json", str(tmp_path / "s.json")], catch_exceptions=False)
    assert r.exit_code == 0 and "4 images (all)" in r.output
    import json

    assert 0.0 <= json.loads((tmp_path / "s.json").read_text())["miou"] <= 1.0
    # resume continues from the saved step
    r = CliRunner().invoke(cli, args[:-2] + ["--set", "train.steps=4", "--resume", "auto"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert sorted(runs.glob("*/checkpoints/parser-0000004.pt"))


def test_evaluate_needs_the_checkpoint_and_mask_labels(pipe, tmp_path):
    """A parser built in memory has no training data to score on; a labelled folder needs its label order."""
    from vidanime.errors import ConfigError

    with pytest.raises(ConfigError, match="from_pretrained"):
        pipe.evaluate()
    with pytest.raises(ConfigError, match="--mask-labels"):
        pipe.evaluate(tmp_path)


def test_pseudo_label_writes_trainable_folder(pipe, tmp_path):
    from vidanime.data.parsing import ParsingDataConfig, ParsingDataset

    (tmp_path / "anime").mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
            tmp_path / "anime" / f"a{i}.jpg")
    s = pipe.pseudo_label(tmp_path / "anime", tmp_path / "pl", min_confidence=0.0, min_kept_fraction=0.0)
    assert s["kept"] == 3
    ds = ParsingDataset(ParsingDataConfig(root=str(tmp_path / "pl"), mask_labels="bisenet", image_size=32), "bisenet")
    probs = pipe.predict_probs([read_image_rgb(tmp_path / "pl" / "images" / "a0.png")])
    np.testing.assert_array_equal(ds[0]["labels"].numpy(), probs[0].argmax(0).numpy())
    s = pipe.pseudo_label(tmp_path / "anime", tmp_path / "pl2", min_confidence=1.0, min_kept_fraction=0.5)
    assert s["kept"] == 0 and s["dropped"] == 3


def test_pseudo_label_feature_confidence_keeps_only_facial_features(pipe, tmp_path):
    """min_confidence 1 ignores every pixel; feature_confidence 0 then keeps exactly the argmax feature pixels."""
    from pipelines.parse import FEATURE_CLASSES
    from vidanime import labels as L

    (tmp_path / "anime").mkdir()
    noise = np.random.default_rng(5).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "anime" / "a.jpg")
    pipe.pseudo_label(tmp_path / "anime", tmp_path / "pl", min_confidence=1.0, min_kept_fraction=0.0,
                      feature_confidence=0.0)
    mask = np.array(Image.open(tmp_path / "pl" / "masks" / "a.png"))
    argmax = pipe.predict_probs([read_image_rgb(tmp_path / "pl" / "images" / "a.png")])[0].argmax(0).numpy()
    features = np.isin(argmax, L.class_ids(pipe.model_labels, *FEATURE_CLASSES))
    np.testing.assert_array_equal(mask, np.where(features, argmax, 255))
    with pytest.raises(ValueError, match="feature_confidence"):
        pipe.pseudo_label(tmp_path / "anime", tmp_path / "pl3", feature_confidence=2.0)


def test_predict_probs_flip_and_scale_tta_match_hand_average(pipe):
    """flip=True averages p(x) with the mirrored prediction of the mirror image, left/right classes swapped back."""
    img = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    names = L.class_names("bisenet")
    swap = torch.arange(19)  # by hand: the mirrored prediction's l_/r_ channels trade places
    for a, b in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
        swap[names.index(a)], swap[names.index(b)] = names.index(b), names.index(a)
    with torch.no_grad():
        p = torch.softmax(pipe.model(x), 1)
        pf = torch.softmax(pipe.model(x.flip(-1)), 1).flip(-1)[:, swap]
    got = pipe.predict_probs([img], flip=True)
    torch.testing.assert_close(got, (p + pf) / 2, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, p, atol=1e-4)  # the mirror pass changed something
    # scale 2: parsed at 64 px, probabilities resized back to 32 and averaged with the 32-px pass
    with torch.no_grad():
        x2 = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        p2 = torch.nn.functional.interpolate(torch.softmax(pipe.model(x2), 1), size=(32, 32), mode="bilinear",
                                             align_corners=False)
    torch.testing.assert_close(pipe.predict_probs([img], scales=(1.0, 2.0)), (p + p2) / 2, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="scales"):
        pipe.predict_probs([img], scales=(8.0,))


def test_feature_presence_hand_case():
    from pipelines.parse import feature_presence

    names = L.class_names("bisenet")
    m = np.zeros((100, 100), np.uint8)
    m[:50] = names.index("hair")
    m[50:] = names.index("skin")
    m[60, 10:30] = names.index("l_eye")  # 20 px = 0.2 %: present
    m[70, 10:19] = names.index("u_lip")  # 9 px = 0.09 %: below the threshold
    got = feature_presence(m, "bisenet")
    assert got == {"eyes": True, "brows": False, "nose": False, "mouth": False, "hair": True, "skin": True}
    assert feature_presence(m, "bisenet", min_fraction=0.0005)["mouth"] is True


def test_pseudo_label_cli_tta_options(tiny_ckpt, tmp_path):
    from pipelines.cli import main

    (tmp_path / "anime").mkdir()
    noise = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "anime" / "a.jpg")
    r = CliRunner().invoke(main, ["parser", "pseudo-label", str(tmp_path / "anime"), str(tmp_path / "pl"), "--model",
                                  str(tiny_ckpt), "--min-confidence", "0", "--min-kept", "0", "--tta-scales", "1,2",
                                  "--flip-tta"])
    assert r.exit_code == 0, r.output
    assert "masks holding each feature: eyes" in r.output and (tmp_path / "pl" / "masks" / "a.png").is_file()
    r = CliRunner().invoke(main, ["parser", "pseudo-label", str(tmp_path / "anime"), str(tmp_path / "pl2"), "--model",
                                  str(tiny_ckpt), "--tta-scales", "1,x"])
    assert r.exit_code != 0 and "comma-separated" in r.output
