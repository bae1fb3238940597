"""Random access (FrameSource): decord and the PyAV fallback agree with sequential decoding; rotation applied."""
from __future__ import annotations

import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from vidanime.errors import MediaError
from vidanime.video.frames import FrameSource
from vidanime.video.io import VideoReader

from .media import frame_number, make_clip, pattern


def test_backends_match_sequential_decode_on_real_clip(assets):
    src = assets / "video/realesrgan_onepiece_demo.mp4"
    seq = [f.image for f in VideoReader(src, end="70f")]
    idx = [61, 60, 62, 3, 4, 2, 69, 0, 61]  # triplets in any order, repeats allowed
    with FrameSource(src, "decord") as a, FrameSource(src, "pyav") as b:
        assert len(a) == len(b) == 181 and a.fps == b.fps == Fraction(1199, 50)
        x, y = a.get_frames(idx), b.get_frames(idx)
    assert x.shape == (9, 480, 640, 3) and x.dtype == np.uint8
    for k, i in enumerate(idx):
        assert np.array_equal(x[k], seq[i]) and np.array_equal(y[k], seq[i])


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_rotation_and_long_gop(tmp_path, backend):
    src = tmp_path / "rot.mp4"
    out = av.open(str(src), "w")
    s = out.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.options = {"crf": "8", "preset": "ultrafast", "g": "40", "bframes": "2"}
    s.set_display_rotation(90)
    for i in range(45):
        for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(pattern(i, 64, 48), -1)),
                                                     format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    with pytest.raises(MediaError, match="rotation"):
        FrameSource(src, "decord")  # decord 0.6 crashes on rotated clips: refused, "auto" falls back to PyAV
    with FrameSource(src, backend) as fs:
        assert fs.backend == "pyav"
        got = fs.get_frames([38, 37, 39, 5, 44])
        assert got.shape == (5, 64, 48, 3)
        assert [frame_number(g) for g in got] == [38, 37, 39, 5, 44]
        with pytest.raises(MediaError, match="out of range"):
            fs.get_frames([45])


def test_fallback_when_decord_missing(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "c.mkv", n=12)
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    fs = FrameSource(src)
    assert fs.backend == "pyav" and len(fs) == 12
    assert [frame_number(f) for f in fs.get_frames([11, 0, 6])] == [11, 0, 6]
    with pytest.raises(MediaError, match="not installed"):
        FrameSource(src, "decord")
