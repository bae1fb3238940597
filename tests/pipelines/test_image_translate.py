"""ImageTranslatePipeline and `vidanime image translate`: files and folders, label orders, style mixing, bad input."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipelines.image_translate import ImageTranslatePipeline
from vidanime import labels as label_sets
from vidanime.errors import MediaError, VidanimeError
from vidanime.models.facebank import FaceBank
from vidanime.models.styleanime import StyleAnime, save_styleanime


@pytest.fixture(scope="module")
def model(tiny_styleanime) -> StyleAnime:
    return tiny_styleanime


def _write_pair(folder: Path, name: str, seed: int, size: int = 32) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    img = folder / f"{name}.jpg"
    lab = folder / f"{name}_labels" / f"{name}.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    lab.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(img, quality=95)
    Image.fromarray(rng.integers(0, 19, (size, size), dtype=np.uint8), mode="L").save(lab)
    return img, lab


def _expected(model, img: Path, lab: Path, src_labels: str, **kw) -> np.ndarray:
    image = torch.from_numpy(np.array(Image.open(img))).permute(2, 0, 1)[None].float() / 127.5 - 1
    labels = label_sets.remap(np.asarray(Image.open(lab)).astype(np.int64), src_labels, "bisenet")
    out = model.translate(image, torch.from_numpy(labels)[None], **kw)[0]
    return out.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()


def test_single_image_matches_the_model_and_remaps_labels(tmp_path, model):
    img, lab = _write_pair(tmp_path, "a", 0)
    pipe = ImageTranslatePipeline(model, progress=False)
    out = pipe(img, tmp_path / "out" / "a.png", parsing=lab, parsing_labels="celebamask")
    got = np.asarray(Image.open(out[0]))
    assert got.shape == (32, 32, 3)
    np.testing.assert_array_equal(got, _expected(model, img, lab, "celebamask"))
    assert not np.array_equal(got, _expected(model, img, lab, "bisenet"))  # the order matters
    # reference image → appearance codes from it; FaceBank with alpha
    ref, _ = _write_pair(tmp_path, "ref", 3)
    bank = FaceBank(torch.randn(20, 32))
    pipe = ImageTranslatePipeline(model, facebank=bank, progress=False)
    out = pipe(img, tmp_path / "mixed.png", parsing=lab, reference=ref, alpha=0.5)
    ref_t = torch.from_numpy(np.array(Image.open(ref))).permute(2, 0, 1)[None].float() / 127.5 - 1
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), _expected(
        model, img, lab, "bisenet", reference=ref_t, alpha=0.5, facebank=bank))


def test_folder_is_mirrored(tmp_path, model):
    src, maps = tmp_path / "in", tmp_path / "maps"
    for i, rel in enumerate(["x", "sub/y"]):
        img, lab = _write_pair(tmp_path / "tmp", Path(rel).name, i)
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (maps / rel).parent.mkdir(parents=True, exist_ok=True)
        img.rename(src / f"{rel}.jpg")
        lab.rename(maps / f"{rel}.png")
    written = ImageTranslatePipeline(model, batch_size=1, progress=False)(src, tmp_path / "out", parsing=maps)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["sub/y.jpg", "x.jpg"]
    assert Image.open(tmp_path / "out" / "sub" / "y.jpg").size == (32, 32)


def test_bad_inputs_are_one_line_errors(tmp_path, model):
    img, lab = _write_pair(tmp_path, "a", 0)
    pipe = ImageTranslatePipeline(model, progress=False)
    # grayscale, transparent and 16-bit pictures are photos too (README: Pillow converts them): they translate
    rgb = np.asarray(Image.open(img).convert("RGB"))
    grey = rgb.mean(-1).round().astype(np.uint8)
    for name, picture in [("gray.png", Image.fromarray(grey, mode="L")),
                          ("rgba.png", Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))),
                          ("deep.png", Image.fromarray(grey.astype(np.uint16) * 257))]:
        picture.save(tmp_path / name)
        out = pipe(tmp_path / name, tmp_path / f"o-{name}", parsing=lab)
        assert Image.open(out[0]).mode == "RGB" and Image.open(out[0]).size == (32, 32), name
        drawn = np.asarray(Image.open(out[0])).astype(int)
        grey = np.abs(drawn - drawn.mean(-1, keepdims=True)).max() == 0
        assert grey == (name != "rgba.png"), name  # a black-and-white photo gets a black-and-white drawing
    np.testing.assert_array_equal(  # an opaque RGBA photo is the RGB photo
        np.asarray(Image.open(tmp_path / "o-rgba.png")),
        np.asarray(Image.open(pipe(img, tmp_path / "o-rgb.png", parsing=lab)[0])))
    big, big_lab = _write_pair(tmp_path, "big", 1, size=64)
    with pytest.raises(MediaError, match="expects 32x32"):
        pipe(big, tmp_path / "o.png", parsing=big_lab)
    assert len(pipe(big, tmp_path / "o.png", parsing=big_lab, resize=True)) == 1
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((32, 32), 19, np.uint8), mode="L").save(bad)
    with pytest.raises(VidanimeError, match="outside the 19 classes"):
        pipe(img, tmp_path / "o.png", parsing=bad)
    with pytest.raises(VidanimeError, match="outside the 17 classes"):
        pipe(img, tmp_path / "o.png", parsing=bad, parsing_labels="danbooru")
    color = tmp_path / "color.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(color)
    with pytest.raises(MediaError, match="expected a label PNG"):
        pipe(img, tmp_path / "o.png", parsing=color)
    with pytest.raises(VidanimeError, match="no parsing map given"):
        pipe(img, tmp_path / "o.png")
    with pytest.raises(MediaError, match="is the input file"):
        pipe(img, img, parsing=lab)
    with pytest.raises(VidanimeError, match="needs a FaceBank"):
        pipe(img, tmp_path / "o.png", parsing=lab, alpha=0.3)
    assert not (tmp_path / "o.png").exists() or (tmp_path / "o.png").stat().st_size > 0


def test_cli_translate(tmp_path, model):
    from pipelines.commands.image import cli
    from vidanime.checkpoint import save_checkpoint

    ckpt = save_styleanime(tmp_path / "sa.pt", model)
    img, lab = _write_pair(tmp_path, "a", 0)
    r = CliRunner().invoke(cli, ["translate", str(img), str(tmp_path / "o.png"), "--checkpoint", str(ckpt),
                                 "--parsing", str(lab), "--parsing-labels", "celebamask", "--recolor", "0",
                                 "--upscaler", "none"])
    assert r.exit_code == 0, r.output
    expected = _expected(model, img, lab, "celebamask")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), expected)
    # by default the bundled upscaler doubles the drawing: shrunk back, it is (about) the model-size one
    r = CliRunner().invoke(cli, ["translate", str(img), str(tmp_path / "up.png"), "--checkpoint", str(ckpt),
                                 "--parsing", str(lab), "--parsing-labels", "celebamask", "--recolor", "0"])
    assert r.exit_code == 0, r.output
    up = np.asarray(Image.open(tmp_path / "up.png"))
    assert up.shape == (2 * expected.shape[0], 2 * expected.shape[1], 3)
    back = cv2.resize(up, expected.shape[1::-1], interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(back - expected.astype(int)).mean() < 6
    r = CliRunner().invoke(cli, ["translate", str(img), str(tmp_path / "rc.png"), "--checkpoint", str(ckpt),
                                 "--parsing", str(lab), "--parsing-labels", "celebamask", "--upscaler", "none"])
    # default: recoloured
    assert r.exit_code == 0, r.output
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "rc.png")), np.asarray(Image.open(tmp_path / "o.png")))
    save_checkpoint(tmp_path / "other.pt", format="vidanime.parser", config={}, state_dict={})
    r = CliRunner().invoke(cli, ["translate", str(img), str(tmp_path / "o2.png"), "-c", str(tmp_path / "other.pt"),
                                 "--parsing", str(lab)])
    assert "'vidanime.parser' checkpoint, expected 'vidanime.styleanime'" in str(r.exception)


def test_aligned_crops_get_the_background_fill_of_the_photo_and_video_paths(tmp_path, model):
    """The fill (an option, else the checkpoint's default) reaches E_s on the aligned-crop path too: the output is
    the model's translation of the filled image, computed here by hand, and the option overrides the default."""
    from pipelines.commands.image import cli
    from vidanime.models.face_translator import ANIME_BACKGROUND

    img, lab = _write_pair(tmp_path, "a", 0)
    image = torch.from_numpy(np.array(Image.open(img))).permute(2, 0, 1)[None].float() / 127.5 - 1
    labels = torch.from_numpy(np.asarray(Image.open(lab)).astype(np.int64))[None]
    bg = (labels == 0).unsqueeze(1).float()  # bisenet background
    assert 0 < bg.mean() < 1
    white = torch.tensor(ANIME_BACKGROUND).view(1, 3, 1, 1) * 2 - 1
    half = image * (1 - 0.5 * bg) + white * 0.5 * bg  # moved half way to the paper colour

    def u8(x: torch.Tensor) -> np.ndarray:
        return x[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()

    with torch.no_grad():
        want_half, want_off = u8(model.translate(half, labels)), u8(model.translate(image, labels))
    assert not np.array_equal(want_half, want_off)
    out = ImageTranslatePipeline(model, background_fill=0.5, progress=False)(img, tmp_path / "h.png", parsing=lab)
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), want_half)
    with pytest.raises(VidanimeError, match="background_fill=2"):
        ImageTranslatePipeline(model, background_fill=2, progress=False)
    # the checkpoint's default, and the CLI option over it
    saved = dict(model.inference)
    try:
        model.inference["background_fill"] = 0.5
        ckpt = save_styleanime(tmp_path / "fill.pt", model)
    finally:
        model.inference.clear()
        model.inference.update(saved)
    common = ["--checkpoint", str(ckpt), "--parsing", str(lab), "--recolor", "0", "--upscaler", "none"]
    for name, extra, want in (("d.png", [], want_half), ("o.png", ["--background-fill", "0"], want_off)):
        r = CliRunner().invoke(cli, ["translate", str(img), str(tmp_path / name), *common, *extra])
        assert r.exit_code == 0, r.output
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), want)
    r = CliRunner().invoke(cli, ["translate", str(img), str(tmp_path / "x.png"), *common, "--background-fill", "1.5"])
    assert r.exit_code == 2 and "1.5" in r.output and not (tmp_path / "x.png").exists()


def test_parser_labels_the_image_when_no_map_is_given(tmp_path, model):
    img, lab = _write_pair(tmp_path, "a", 0)
    known = torch.from_numpy(np.array(Image.open(lab)).astype(np.int64))  # read as CelebAMask order below

    class FakeParser(torch.nn.Module):
        config = SimpleNamespace(image_size=32, label_set="celebamask")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.min() >= 0 and x.max() <= 1  # parsers take [0, 1] images
            return torch.nn.functional.one_hot(known, 19).permute(2, 0, 1)[None].float().expand(len(x), -1, -1, -1)

    pipe = ImageTranslatePipeline(model, parser=FakeParser(), parser_labels="celebamask", progress=False)
    out = pipe(img, tmp_path / "parsed.png")
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), _expected(model, img, lab, "celebamask"))


def test_resize_parses_at_the_parsers_size_not_the_models(tmp_path, model):
    """--resize: the parser sees the full 128-px image (its own size), and its probabilities are resized to the
    32-px model size; parsing the shrunk 32-px image instead was the bug."""
    rng = np.random.default_rng(3)
    img = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(img)
    seen: list[tuple[int, ...]] = []
    # Four 64-px quadrants of known classes at 128 px; at the model's 32 px each becomes a 16-px quadrant.
    known = torch.zeros(128, 128, dtype=torch.long)
    known[:64, 64:], known[64:, :64], known[64:, 64:] = 1, 13, 17

    class BigParser(torch.nn.Module):
        config = SimpleNamespace(image_size=128, label_set="bisenet")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape[-2:]))
            return torch.nn.functional.one_hot(known, 19).permute(2, 0, 1)[None].float().expand(len(x), -1, -1, -1)

    pipe = ImageTranslatePipeline(model, parser=BigParser(), parser_labels="bisenet", progress=False)
    out = pipe(img, tmp_path / "o.png", resize=True)
    assert seen == [(128, 128)]
    import cv2

    small = cv2.resize(np.array(Image.open(img)), (32, 32), interpolation=cv2.INTER_AREA)
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    labels[0, :16, 16:], labels[0, 16:, :16], labels[0, 16:, 16:] = 1, 13, 17
    image = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 127.5 - 1
    want = model.translate(image, labels)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), want)


# ---- photos: faces found, translated and pasted back (--faces detect / auto) ----------------------------------------
def _two_face_photo(assets, path: Path) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Two held-in portraits on a 760x420 gradient canvas (a photo the model never sees as a crop); returns the
    canvas and the portraits' top-left corners."""
    files = sorted((assets / "faces" / "images").glob("*.jpg"))
    canvas = np.full((420, 760, 3), 90, np.uint8)
    canvas[:, :, 2] = np.linspace(40, 200, 760).astype(np.uint8)[None]
    corners = [(80, 60), (120, 440)]
    for f, (y, x) in zip((files[3], files[7]), corners):
        canvas[y : y + 256, x : x + 256] = np.asarray(Image.open(f).convert("RGB").resize((256, 256)))
    Image.fromarray(canvas).save(path)
    return canvas, corners


@pytest.mark.slow
def test_photo_faces_are_found_translated_and_pasted_back(tmp_path, assets, caplog):
    from pipelines.commands.image import translate as translate_cmd

    photo, corners = _two_face_photo(assets, tmp_path / "two.png")
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(noise)
    r = CliRunner().invoke(translate_cmd, [str(tmp_path / "two.png"), str(tmp_path / "out.png")])  # all defaults
    assert r.exit_code == 0, r.output
    got = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert got.shape == photo.shape  # the photo's own size, not the model's
    outside = np.ones(photo.shape[:2], bool)  # farther than the paste mask's feathering (~10 px) from both portraits
    for y, x in corners:
        outside[y - 12 : y + 268, x - 12 : x + 268] = False
        centre = (slice(y + 96, y + 192), slice(x + 80, x + 176))  # eyes to mouth of the aligned portrait
        assert np.abs(got[centre] - photo[centre]).mean() > 20  # both faces drawn anew
    assert np.abs(got[outside] - photo[outside]).max() <= 1  # the background is the photo's (the mask's tail: 1/255)
    # the default draws through the bundled upscaler: sharper than --upscaler none (mean |Laplacian| of the faces)
    r = CliRunner().invoke(translate_cmd, [str(tmp_path / "two.png"), str(tmp_path / "flat.png"), "--upscaler", "none"])
    assert r.exit_code == 0, r.output
    flat = np.asarray(Image.open(tmp_path / "flat.png")).astype(int)
    assert np.abs(flat[outside] - got[outside]).max() <= 1 and np.abs(flat - got).max() > 20
    def sharpness(im):  # mean |Laplacian| inside the two drawn faces
        lap = np.abs(cv2.Laplacian(cv2.cvtColor(im.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32),
                                   cv2.CV_32F))
        return float(np.mean([lap[y + 48 : y + 208, x + 48 : x + 208].mean() for y, x in corners]))

    assert sharpness(got) > 1.2 * sharpness(flat), (sharpness(got), sharpness(flat))
    r = CliRunner().invoke(translate_cmd, [str(tmp_path / "two.png"), str(tmp_path / "x.png"), "--upscaler",
                                           str(tmp_path / "missing.pt")])
    assert r.exit_code != 0 and "missing.pt" in str(r.exception) and not (tmp_path / "x.png").exists()

    # no face: an error with --faces detect, the whole image as a crop with auto (and a warning naming the file)
    r = CliRunner().invoke(translate_cmd, [str(noise), str(tmp_path / "n.png"), "--faces", "detect"])
    assert r.exit_code != 0 and "no face found in" in str(r.exception) and not (tmp_path / "n.png").exists()
    pipe = ImageTranslatePipeline.from_pretrained(
        "styleanime-p2a", parser=__import__("vidanime.registry", fromlist=["x"]).load_model("parser-portrait"),
        progress=False)
    with caplog.at_level("WARNING"):
        out = pipe(noise, tmp_path / "n.png")
    assert np.asarray(Image.open(out[0])).shape == (64, 64, 3) and pipe.pasted == []
    assert "no face found in" in caplog.text and "noise.png" in caplog.text
    # a folder with --faces detect: the photo is written, the faceless image skipped with a warning, the run goes on
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "two.png").write_bytes((tmp_path / "two.png").read_bytes())
    (folder / "noise.png").write_bytes(noise.read_bytes())
    caplog.clear()
    with caplog.at_level("WARNING"):
        written = pipe(folder, tmp_path / "out_dir", faces="detect")
    assert written == [tmp_path / "out_dir" / "two.png"] and pipe.pasted == written
    assert "no face found in 1 of 2 image(s)" in caplog.text and not (tmp_path / "out_dir" / "noise.png").exists()


def test_face_mode_follows_the_options():
    mode = ImageTranslatePipeline.face_mode
    assert mode("auto") == "detect" and mode("aligned") == "aligned" and mode("detect") == "detect"
    assert mode("auto", parsing="m.png") == "aligned" and mode("auto", style_from="s.png") == "aligned"
    with pytest.raises(VidanimeError, match="--reference works on aligned face crops: use --faces aligned"):
        mode("detect", reference="r.png")
    with pytest.raises(VidanimeError, match="--faces 'photo': expected one of auto, detect, aligned"):
        mode("photo")
