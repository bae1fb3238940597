"""Bad input found by a newcomer audit (2026-12-03), each a one-line error before any work or a file that is kept:
outputs that are folders, unknown output formats, broken or escaping model registries, nan/inf options,
option combinations that cannot work, colliding output names, and a folder with an unreadable image."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

from pipelines.commands.options import FINITE_FLOAT, FiniteFloatRange
from vidanime.errors import CheckpointError, ConfigError, MediaError, VidanimeError
from vidanime.fileio import atomic_path

REPO = Path(__file__).resolve().parents[2]


def _vidanime(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                                     "PATH": "/usr/bin:/bin"})


def test_an_output_path_that_is_a_folder_is_refused_before_writing(tmp_path, assets):
    (tmp_path / "taken").mkdir()
    with pytest.raises(MediaError, match="it is a folder"):
        with atomic_path(tmp_path / "taken"):
            raise AssertionError("the block must not run")
    from pipelines.translate import TranslateOptions, TranslatePipeline

    clip = assets / "video" / "liveportrait_s32.mp4"
    (tmp_path / "out.report.json").mkdir()
    with pytest.raises(MediaError, match="report path .*out.report.json is a folder"):
        TranslatePipeline.check_inputs(clip, tmp_path / "out.mp4", TranslateOptions(report=True))
    TranslatePipeline.check_inputs(clip, tmp_path / "other.mp4", TranslateOptions(report=True))  # fine
    r = _vidanime("eval", "video", "--input", str(clip), "--output", str(clip), "--json", str(tmp_path / "taken"))
    assert r.returncode != 0 and "JSON output path" in r.stderr and "Traceback" not in r.stderr, r.stderr[-500:]


def test_avi_and_unknown_image_outputs_are_refused(tmp_path):
    from pipelines.interp import InterpImagePipeline, InterpVideoPipeline
    from vidanime.video.io import check_video_output

    with pytest.raises(MediaError, match="'.avi' container cannot keep the frame timing"):
        check_video_output(tmp_path / "x.avi")
    a = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(a)
    pipe = InterpImagePipeline.from_pretrained("classical")
    for bad in ("m.xyz", "m.mp4"):
        with pytest.raises(MediaError, match="not an image file name"):
            pipe(a, a, tmp_path / bad)
    assert pipe(a, a, tmp_path / "m.jpg").is_file()
    with pytest.raises(MediaError, match="container cannot hold|unknown suffix"):
        InterpVideoPipeline(pipe.model)(REPO / "README.md", tmp_path / "v.png")


def _registry(folder: Path, content) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "registry.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a model registry"),
    ([1, 2], "expected"),
    ({"models": {"m": {"file": "m.pt"}}}, "entry 'm' needs file, sha256 and format"),
    ({"models": {"m": {"file": "../__init__.py", "sha256": "0", "format": "x"}}}, "must be a plain file name"),
    ({"models": {"m": {"file": "/etc/passwd", "sha256": "0", "format": "x"}}}, "must be a plain file name"),
])
def test_a_broken_or_escaping_registry_is_refused(tmp_path, content, message):
    from vidanime.registry import install_set

    src = _registry(tmp_path / "set", content)
    dest = tmp_path / "weights"
    dest.mkdir()
    with pytest.raises(CheckpointError, match=message):
        install_set(src, dest=dest)
    assert list(dest.iterdir()) == []


def test_nan_and_inf_are_not_numbers_an_option_accepts():
    positive = FiniteFloatRange(min=0, min_open=True)
    for value in ("nan", "inf", "-inf"):
        with pytest.raises(click.BadParameter):
            positive.convert(value, None, None)
        with pytest.raises(click.BadParameter):
            FINITE_FLOAT.convert(value, None, None)
    assert positive.convert("1e-4", None, None) == 1e-4
    with pytest.raises(click.BadParameter, match="not in the range"):
        FiniteFloatRange(0, 1).convert("2", None, None)
    # --help shows a range only where there is one (click printed "x<=None" for an unbounded float)
    assert FINITE_FLOAT._describe_range() == "" and FiniteFloatRange(0, 1)._describe_range() == "0<=x<=1"


@pytest.mark.slow
def test_cli_refuses_nan_learning_rate_and_crop_with_preview(tmp_path, assets):
    clip = str(assets / "video" / "liveportrait_s32.mp4")
    r = _vidanime("finetune", clip, "--out", str(tmp_path / "ft"), "--lr", "nan")
    assert r.returncode == 2 and "not a finite number" in r.stderr and not (tmp_path / "ft").exists()
    r = _vidanime("translate", clip, str(tmp_path / "c.mp4"), "--crop", "--preview", str(tmp_path / "p.mp4"))
    assert r.returncode != 0 and "--crop does not make" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "c.mp4").exists()


def test_translate_options_crop_with_preview():
    from pipelines.translate import TranslateOptions, TranslatePipeline

    with pytest.raises(ConfigError, match="--preview shows the pasted-back video"):
        TranslatePipeline.check_options(TranslateOptions(crop=True, preview="p.mp4"))
    TranslatePipeline.check_options(TranslateOptions(crop=True, report=True))  # a crop run still has a report


def test_parse_label_names_never_collide():
    from pipelines.parse import label_names

    files = [Path("f/x.jpg"), Path("f/x.png"), Path("f/y.jpg")]
    assert label_names(files) == ["x.jpg.png", "x.png.png", "y.png"]


def test_parse_refuses_a_non_png_label_file(tmp_path):
    from pipelines.parse import ParsePipeline

    face = tmp_path / "face.jpg"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(face)
    with pytest.raises(MediaError, match="label maps are written as PNG"):
        ParsePipeline.check_paths(face, tmp_path / "opt.jpg")
    assert not (tmp_path / "opt.jpg").exists()


def test_edit_blend_wider_than_the_image_is_refused(tmp_path, tiny_styleanime):
    from pipelines.edit import EditPipeline

    s = tiny_styleanime.image_size
    pipe = EditPipeline(tiny_styleanime)
    image = np.zeros((s, s, 3), np.uint8)
    labels = np.zeros((s, s), np.int64)
    with pytest.raises(VidanimeError, match=f"blend=100000 px: expected a margin of at most the image side, {s} px"):
        pipe.edit_array(image, labels, source_parsing=labels, blend=100000)


def test_image_folder_skips_an_unreadable_image_and_its_own_output(tmp_path, monkeypatch, tiny_styleanime):
    from pipelines.image_translate import ImageTranslatePipeline

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((40, 40, 3), 99, np.uint8)).save(src / f"{name}.png")
    (src / "broken.png").write_bytes(b"not a picture")
    import torch

    class Background(torch.nn.Module):  # a parser that calls everything background: only needed to pass the checks
        def forward(self, x):
            return torch.zeros(len(x), 19, *x.shape[-2:])

    pipe = ImageTranslatePipeline(tiny_styleanime, parser=Background(), progress=False)
    monkeypatch.setattr(pipe, "_translate_photo", lambda image, *a: 255 - image)  # the face stage is not tested here
    written = pipe(src, src / "out")
    assert sorted(p.name for p in written) == ["a.png", "b.png"] and pipe.failed == [src / "broken.png"]
    assert np.asarray(Image.open(src / "out" / "a.png")).max() == 156
    (src / "broken.png").unlink()
    written = pipe(src, src / "out")  # a second run does not translate the first run's outputs
    assert sorted(p.relative_to(src).as_posix() for p in written) == ["out/a.png", "out/b.png"] and not pipe.failed


def test_parse_folder_in_batches_matches_one_by_one(tmp_path, assets):
    """`vidanime parse --batch-size` now batches a folder's images (it parsed one per call whatever the option):
    same label maps as one at a time, for images of different sizes, with an unreadable file skipped."""
    from pipelines.parse import ParsePipeline

    src = tmp_path / "in"
    src.mkdir()
    faces = sorted((assets / "faces" / "images").iterdir())[:3]
    for i, f in enumerate(faces):
        Image.open(f).convert("RGB").resize((256 + 32 * i, 256)).save(src / f"{i}.png")
    (src / "z.png").write_bytes(b"broken")
    got = {}
    for bs in (1, 3):
        pipe = ParsePipeline.for_domain("portrait", batch_size=bs)
        summary = pipe.parse_paths(src, tmp_path / f"out{bs}")
        assert summary["failed"] == [str(src / "z.png")] and len(summary["written"]) == 3
        got[bs] = [np.asarray(Image.open(tmp_path / f"out{bs}" / f"{i}.png")) for i in range(3)]
    for a, b in zip(got[1], got[3]):
        assert a.shape == b.shape and (a == b).mean() > 0.999
