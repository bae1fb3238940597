"""Manga-to-portrait: screen-tone normalisation, parsing of the normalised image, appearance from the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipelines.commands.image import cli
from pipelines.manga import MangaPipeline
from pipelines.parse import ParsePipeline
from tests.pipelines.app_helpers import save_model, save_parser, tiny_parser, tiny_styleanime, write_image
from vidanime.data.manga import MangaConfig, flatten_screentone, manga_to_rgb, normalize_contrast, to_gray
from vidanime.errors import ConfigError, MediaError

TONE = (slice(12, 36), slice(12, 52))  # interior of the screen-tone patch


def _manga(size: int = 64) -> np.ndarray:
    """White page, a patch of 2x2 black dots on a 4-px grid (25 % ink, mean 191), a 4-px black line."""
    img = np.full((size, size), 255, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    dots = (yy % 4 < 2) & (xx % 4 < 2) & (yy >= 8) & (yy < 40) & (xx >= 8) & (xx < 56)
    img[dots] = 0
    img[48:52] = 0
    return img


def test_screentone_is_flattened_and_lines_kept():
    img = _manga()
    flat = flatten_screentone(img)
    assert img[TONE].std() > 100 and flat[TONE].std() < 0.1 * img[TONE].std()
    assert abs(float(flat[TONE].mean()) - 191.25) < 12  # the tone becomes the grey it stands for
    assert flat[50, 10:54].max() < 100 and flat[58:, :].min() > 240 and flat[2, :].min() > 240
    rgb = manga_to_rgb(img)
    assert rgb.shape == (64, 64, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert rgb.min() == 0 and rgb.max() == 255
    colour = np.repeat(img[..., None], 3, axis=2)
    np.testing.assert_array_equal(manga_to_rgb(colour), rgb)  # RGB scans are turned grey first
    np.testing.assert_array_equal(to_gray(img[..., None]), img)


def test_contrast_normalisation_hand_computed():
    g = np.array([[50, 100], [150, 150]], np.uint8)
    np.testing.assert_array_equal(normalize_contrast(g, 0, 100), [[0, 128], [255, 255]])
    flat = np.full((4, 4), 7, np.uint8)
    np.testing.assert_array_equal(normalize_contrast(flat), flat)
    with pytest.raises(ConfigError, match="median=4"):
        MangaConfig(median=4)
    with pytest.raises(MediaError, match="expected"):
        to_gray(np.zeros((8, 8, 2), np.uint8))


def test_reference_style_codes_are_exactly_the_ones_used():
    model, parser = tiny_styleanime(direction="a2p"), tiny_parser("danbooru")
    pipe = MangaPipeline(model, parser, progress=False)
    rng = np.random.default_rng(0)
    ref_a, ref_b = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    manga = _manga()
    res = pipe.translate_array(manga, ref_a, resize=True)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    n_s = model.n_structure_codes
    assert torch.equal(res.latents[:, n_s:], model.encode_appearance(to_t(ref_a)))
    # structure: the anime parser on the screen-tone-normalised grey image, labels remapped to the model's set
    pre = res.preprocessed
    import cv2

    np.testing.assert_array_equal(pre, cv2.resize(manga_to_rgb(manga), (32, 32), interpolation=cv2.INTER_AREA))
    labels = ParsePipeline(parser, output_labels="bisenet")([pre]).labels[0].astype(np.int64)
    np.testing.assert_array_equal(res.parsing, labels)
    assert torch.equal(res.latents[:, :n_s], model.encode_structure(torch.from_numpy(labels)[None]))
    out = model.decode(res.latents)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(res.image, out)
    other = pipe.translate_array(manga, ref_b, resize=True)
    assert torch.equal(other.latents[:, :n_s], res.latents[:, :n_s])  # the reference changes appearance only
    assert not torch.equal(other.latents[:, n_s:], res.latents[:, n_s:])
    with pytest.raises(MediaError, match="--resize"):
        pipe.translate_array(manga, ref_a)


def test_cli_image_manga(tmp_path):
    ckpt = save_model(tmp_path / "a2p.pt", tiny_styleanime(direction="a2p"))
    parser = save_parser(tmp_path / "anime_parser.pt", tiny_parser("danbooru"))
    src = tmp_path / "page.png"
    Image.fromarray(_manga(), mode="L").save(src)
    ref = write_image(tmp_path / "ref.png", 3)
    out = tmp_path / "out" / "page.png"
    r = CliRunner().invoke(cli, ["manga", str(src), str(out), "-r", str(ref), "-c", str(ckpt), "--parser",
                                 str(parser), "--resize", "--save-parsing"])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (32, 32)
    lab = Image.open(out.with_name("page.parsing.png"))
    assert lab.mode == "L" and np.asarray(lab).max() < 19
    r = CliRunner().invoke(cli, ["manga", str(src), str(out), "-r", str(tmp_path / "nope.png"), "-c", str(ckpt),
                                 "--parser", str(parser)])
    assert r.exit_code != 0 and "image not found" in str(r.exception)


def test_manga_folder_is_mirrored(tmp_path):
    pipe = MangaPipeline(tiny_styleanime(), tiny_parser("danbooru"), progress=False)
    (tmp_path / "in" / "ch1").mkdir(parents=True)
    Image.fromarray(_manga(32), mode="L").save(tmp_path / "in" / "a.png")
    Image.fromarray(255 - _manga(32), mode="L").save(tmp_path / "in" / "ch1" / "b.jpg")
    written = pipe(tmp_path / "in", tmp_path / "out", reference=write_image(tmp_path / "ref.png", 1))
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["a.png", "ch1/b.jpg"]
    with pytest.raises(MediaError, match="is the input folder"):
        pipe(tmp_path / "in", tmp_path / "in", reference=tmp_path / "ref.png")
