"""The ffmpeg binary is found (PATH or imageio-ffmpeg) and ffmpeg-python commands run with it."""
from __future__ import annotations

import subprocess

import pytest

from vidanime.errors import MediaError
from vidanime.video import ffmpeg as ff
from vidanime.video.io import VideoReader, VideoWriter, probe

from .media import audio_duration, make_clip


def test_binary_found_and_env_override(tmp_path, monkeypatch):
    exe = ff.ffmpeg_exe()
    r = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("ffmpeg version")
    ff.ffmpeg_exe.cache_clear()
    monkeypatch.setenv("VIDANIME_FFMPEG", str(tmp_path / "nope"))
    try:
        with pytest.raises(MediaError, match="VIDANIME_FFMPEG"):
            ff.ffmpeg_exe()
    finally:
        ff.ffmpeg_exe.cache_clear()


def test_remux_audio_with_ffmpeg_python(tmp_path):
    src = make_clip(tmp_path / "src.mp4", n=25, audio="aac")
    silent = tmp_path / "silent.mp4"
    with VideoReader(src) as r, VideoWriter(silent, like=r, preset="ultrafast") as w:
        for f in r:
            w.write(f.image, pts=f.pts)
    assert not probe(silent).has_audio
    out = tmp_path / "with_audio.mp4"
    ff.remux_audio(silent, src, out)
    info = probe(out)
    assert info.audio.codec == "aac" and info.frame_count == 25
    assert abs(audio_duration(out) - audio_duration(src)) < 0.05
    with pytest.raises(MediaError, match="ffmpeg failed"):
        ff.remux_audio(tmp_path / "missing.mp4", src, tmp_path / "x.mp4")


def test_path_binary_preferred_over_bundled(tmp_path, monkeypatch):
    import imageio_ffmpeg

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    monkeypatch.delenv("VIDANIME_FFMPEG", raising=False)
    monkeypatch.setenv("PATH", f"{bindir}:/nonexistent")
    ff.ffmpeg_exe.cache_clear()
    try:
        assert ff.ffmpeg_exe() == str(bindir / "ffmpeg")
        monkeypatch.setenv("PATH", "/nonexistent")  # nothing on PATH: imageio-ffmpeg's bundled binary
        ff.ffmpeg_exe.cache_clear()
        assert ff.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    finally:
        ff.ffmpeg_exe.cache_clear()
