"""Anime-to-portrait: `image translate --direction a2p` and `translate --direction a2p` (anime cascade detector) end to
end on tiny random models; checkpoints recorded for the other direction are refused."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipelines.commands.image import cli as image_cli
from pipelines.commands.translate import cli as translate_cli
from pipelines.translate import TranslateOptions, TranslatePipeline
from tests.pipelines.app_helpers import save_model, save_parser, tiny_parser, tiny_styleanime, write_image
from vidanime import labels as label_sets
from vidanime.errors import CheckpointError
from vidanime.video.faces import FaceConfig
from vidanime.video.io import VideoReader


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("a2p")
    return {
        "a2p": save_model(d / "a2p.pt", tiny_styleanime(direction="a2p", sensitive=True)),
        "p2a": save_model(d / "p2a.pt", tiny_styleanime(direction="p2a")),
        "unrecorded": save_model(d / "old.pt", tiny_styleanime(direction=None)),
        "parser": save_parser(d / "anime_parser.pt", tiny_parser("danbooru", skin_everywhere=True)),
    }


def test_image_translate_a2p_with_anime_parser(tmp_path, ckpts):
    img = write_image(tmp_path / "anime.png", 1)
    out = tmp_path / "portrait.png"
    r = CliRunner().invoke(image_cli, ["translate", str(img), str(out), "-c", str(ckpts["a2p"]), "--parser",
                                       str(ckpts["parser"]), "--direction", "a2p", "--recolor", "0"])
    assert r.exit_code == 0, r.output
    from vidanime.registry import load_model, load_styleanime

    model, parser = load_styleanime(ckpts["a2p"]), load_model(ckpts["parser"], format="vidanime.parser")
    x = torch.from_numpy(np.array(Image.open(img))).permute(2, 0, 1)[None].float() / 127.5 - 1
    labels = label_sets.remap(parser((x + 1) / 2).argmax(1), "danbooru", "bisenet")
    expected = model.translate(x, labels)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    # the other direction's checkpoint is refused; an unrecorded one is accepted
    for ckpt, direction, ok in (("p2a", "a2p", False), ("a2p", "p2a", False), ("unrecorded", "a2p", True)):
        args = ["translate", str(img), str(tmp_path / f"{ckpt}.png"), "-c", str(ckpts[ckpt]), "--parser",
                str(ckpts["parser"]), "--direction", direction]
        r = CliRunner().invoke(image_cli, args)
        assert (r.exit_code == 0) == ok, r.output
        if not ok:
            assert isinstance(r.exception, CheckpointError) and f"direction={direction}" in str(r.exception)


def _anime_clip(path, crop: np.ndarray, n: int = 10, size: int = 192) -> None:
    """An anime face crop sliding 1 px a frame over a grey background (H.264, 10 fps, no audio)."""
    import av

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "12", "preset": "ultrafast"}
        for i in range(n):
            frame = np.full((size, size, 3), 200, np.uint8)
            frame[32:160, 24 + i : 152 + i] = crop
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 10)
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)


def _frames(path):
    with VideoReader(path) as r:
        return np.stack([f.image for f in r])


def test_video_a2p_end_to_end_with_anime_cascade(tmp_path, ckpts, assets):
    xml = assets / "weights" / "lbpcascade_animeface.xml"
    crop = np.array(Image.open(assets / "anime" / "00002.jpg").convert("RGB"))  # listed in anime_detector_checked
    src = tmp_path / "anime.mp4"
    _anime_clip(src, crop)
    face_cfg = FaceConfig(detector="animecascade", detector_weights=str(xml), crop_size=64)
    pipe = TranslatePipeline.from_pretrained(ckpts["a2p"], ckpts["parser"], direction="a2p", face_config=face_cfg)
    res = pipe(src, tmp_path / "out.mp4", TranslateOptions(progress=False, preset="ultrafast"))
    assert res.frames == 10 and res.tracks == 1 and res.frames_with_faces >= 8
    a, b = _frames(src), _frames(tmp_path / "out.mp4")
    diff = np.abs(a.astype(int) - b.astype(int)).mean(-1)  # (T, H, W)
    assert diff[:, 80:120, 75:115].mean() > 10  # the face is translated
    assert diff[:, :20].mean() < 2 and diff[:, 175:].mean() < 2  # far from the face: the input, re-encoded
    with pytest.raises(CheckpointError, match="translates p2a, but direction=a2p"):
        TranslatePipeline.from_pretrained(ckpts["p2a"], ckpts["parser"], direction="a2p", face_config=face_cfg)
    r = CliRunner().invoke(translate_cli, [str(src), str(tmp_path / "cli.mp4"), "--direction", "a2p", "--checkpoint",
                                           str(ckpts["a2p"]), "--parser", str(ckpts["parser"]), "--detector",
                                           "animecascade", "--detector-weights", str(xml), "--preset", "ultrafast",
                                           "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "10 frames" in r.output and "in 1 tracks" in r.output
