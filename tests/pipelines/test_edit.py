"""EditPipeline and `vidanime edit`: unchanged map = unedited output, region-local edits, appearance mixing, PTI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipelines.commands.edit import cli
from pipelines.edit import EditPipeline
from pipelines.image_translate import ImageTranslatePipeline
from tests.pipelines.app_helpers import face_labels, save_model, tiny_styleanime, write_image, write_labels
from vidanime.models.editing import mix_styles


@pytest.fixture(scope="module")
def model():
    return tiny_styleanime(sensitive=True)


@pytest.fixture()
def files(tmp_path):
    lab = face_labels()
    edited = lab.copy()
    edited[lab == 17] = 18  # hair → hat: one region (30 % of the map)
    return {"img": write_image(tmp_path / "face.png", 0), "style": write_image(tmp_path / "style.png", 7),
            "lab": write_labels(tmp_path / "face_labels.png", lab),
            "edited": write_labels(tmp_path / "edited.png", edited), "region": edited != lab}


def test_unchanged_map_reproduces_the_unedited_output(tmp_path, model, files):
    pipe = EditPipeline(model, progress=False)
    res = pipe(files["img"], files["lab"], tmp_path / "out.png", source_parsing=files["lab"])
    plain = ImageTranslatePipeline(model, progress=False)(files["img"], tmp_path / "plain.png", parsing=files["lab"])
    np.testing.assert_array_equal(np.asarray(Image.open(res.output)), np.asarray(Image.open(plain[0])))
    np.testing.assert_array_equal(res.image, res.unedited)
    assert res.locality["region_fraction"] == 0 and res.locality["l2_inside"] is None
    assert res.locality["l2_outside"] == 0


def test_region_local_edit_changes_more_inside_than_outside(tmp_path, model, files):
    pipe = EditPipeline(model, progress=False)
    raw = pipe(files["img"], files["edited"], tmp_path / "raw.png", source_parsing=files["lab"])
    diff = np.abs(raw.image.astype(int) - raw.unedited.astype(int)).mean()
    assert diff > 2  # the edit is visible (the random tiny model's G is global, so no locality is expected here)
    res = pipe(files["img"], files["edited"], tmp_path / "out.png", source_parsing=files["lab"], blend=2)
    loc = res.locality_blended
    assert loc["region_fraction"] == pytest.approx(files["region"].mean())
    assert loc["l2_inside"] == pytest.approx(raw.locality["l2_inside"])  # the edited pixels keep the full edit
    assert loc["l2_ratio"] > 4 and loc["l2_ratio"] > 8 * raw.locality["l2_ratio"]  # measured 5.7 vs 0.49
    # pixels farther than the margin + feather from the changed labels are exactly the unedited render
    far = torch.nn.functional.max_pool2d(torch.from_numpy(files["region"]).float()[None, None], 15, 1, 7)[0, 0] == 0
    far = far.numpy()
    assert far.sum() > 50
    np.testing.assert_array_equal(res.image[far], res.unedited[far])
    assert np.abs(res.image[files["region"]].astype(int) - res.unedited[files["region"]].astype(int)).mean() > 2


def test_style_from_mixes_appearance_codes(tmp_path, model, files):
    res = EditPipeline(model, progress=False)(files["img"], files["lab"], tmp_path / "out.png",
                                              style_from=files["style"], mix=0.5)
    to_t = lambda p: torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa
    lab = torch.from_numpy(face_labels())[None]
    w = mix_styles(model.encode(to_t(files["img"]), lab), model.encode(to_t(files["style"]), lab), 0.5, 6)
    expected = model.decode(w)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(res.image, expected)
    assert res.locality is None  # no source map, no locality numbers


def test_cli_pti_and_locality(tmp_path, model, files):
    ckpt = save_model(tmp_path / "m.pt", model)
    before = ckpt.read_bytes()
    out = tmp_path / "edited_out.png"
    r = CliRunner().invoke(cli, [str(files["img"]), str(out), "-p", str(files["edited"]), "-c", str(ckpt),
                                 "-s", str(files["lab"]), "--pti", "5", "--lpips-backbone", "random",
                                 "--blend", "2"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and "PTI: 5 steps" in r.output and "edit locality" in r.output
    assert "LPIPS inside" in r.output and "blended locality" in r.output
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("extra, message", [
    (["--pti", "3"], "need the unedited parsing"),
    (["--mix", "0.5"], "needs --style-from"),
    (["-s", "face_labels.png", "--pti", "-1"], "--pti -1"),
    (["-s", "missing.png"], "file not found"),
])
def test_cli_bad_inputs_are_one_line_errors(tmp_path, model, files, extra, message):
    ckpt = save_model(tmp_path / "m.pt", model)
    extra = [str(tmp_path / e) if e.endswith(".png") else e for e in extra]
    r = CliRunner().invoke(cli, [str(files["img"]), str(tmp_path / "o.png"), "-p", str(files["edited"]),
                                 "-c", str(ckpt), *extra])
    assert r.exit_code != 0 and isinstance(r.exception, ValueError) and message in str(r.exception)
    assert "\n" not in str(r.exception) and not (tmp_path / "o.png").exists()
