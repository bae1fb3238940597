"""VideoReader / VideoWriter / probe on real clips (shared assets) and synthetic ones written with PyAV."""
from __future__ import annotations

import hashlib
import os
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from vidanime.errors import MediaError
from vidanime.video.io import VideoReader, VideoWriter, parse_position, probe

from .media import audio_duration, frame_number, luma, make_clip, pattern, psnr

ONEPIECE = "video/realesrgan_onepiece_demo.mp4"


def _decode(path, **kw):
    with VideoReader(path, **kw) as r:
        return list(r)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


# -- probe -------------------------------------------------------------------------------------------------------------
def test_probe_matches_manifest(assets):
    op = probe(assets / ONEPIECE)
    assert (op.width, op.height, op.fps, op.frame_count) == (640, 480, Fraction(1199, 50), 181)
    assert op.frame_count_exact and op.rotation == 0 and abs(op.duration - 7.55) < 0.01
    assert op.audio is not None and (op.audio.codec, op.audio.sample_rate, op.audio.channels) == ("aac", 48000, 2)
    d13 = probe(assets / "video/liveportrait_d13.mp4")  # portrait, no audio
    assert (d13.width, d13.height, d13.fps, d13.frame_count, d13.has_audio) == (720, 1280, 30, 352, False)


def test_parse_position():
    assert parse_position(None) is None
    assert parse_position(2) == (2.0, "s")
    assert parse_position("12.5s") == (12.5, "s")
    assert parse_position("1:02.5") == (62.5, "s")
    assert parse_position("1:00:01") == (3601.0, "s")
    assert parse_position("300f") == (300.0, "f")
    for bad in ("abc", "-3", "1.2.3", -1.0, True):
        with pytest.raises(MediaError):
            parse_position(bad)


# -- real clip round trips ---------------------------------------------------------------------------------------------
def test_roundtrip_real_clip_keeps_frames_fps_duration_audio(assets, tmp_path):
    src = assets / ONEPIECE
    out = tmp_path / "out.mp4"
    with VideoReader(src) as r, VideoWriter(out, like=r, audio_from=src, crf=23, preset="ultrafast") as w:
        for f in r:
            w.write(f.image, pts=f.pts)
    a, b = probe(src), probe(out)
    assert b.frame_count == a.frame_count == 181
    assert b.fps == a.fps and b.time_base == a.time_base
    assert abs(b.duration - a.duration) <= 1 / float(a.fps)
    assert b.audio.codec == "aac"
    assert abs(audio_duration(out) - audio_duration(src)) < 0.05
    assert _leftovers(tmp_path) == []


def test_trimmed_range_exact_frames_and_audio(assets, tmp_path):
    src = assets / ONEPIECE
    ref = _decode(src, end="60f")
    got = _decode(src, start="40f", end="60f")  # seek lands on the keyframe before and decodes forward
    assert [f.index for f in got] == list(range(40, 60))
    assert all(np.array_equal(g.image, ref[g.index].image) for g in got)
    out = tmp_path / "cut.mkv"  # mkv keeps the AAC packets too
    with VideoReader(src, start=1.0, end=2.5) as r:
        assert len(r) == 36
        with VideoWriter(out, like=r, audio_from=src, preset="ultrafast") as w:
            n = 0
            for f in r:
                w.write(f.image, pts=f.pts)
                n += 1
    info = probe(out)
    assert n == 36 and info.audio.codec == "aac"
    assert _decode(out)[0].time == 0.0  # rebased: output starts at 0
    assert abs(audio_duration(out) - 36 / float(info.fps)) < 0.05


def test_identity_transcode_psnr_at_crf18(assets, tmp_path):
    src = assets / "video/liveportrait_d0.mp4"
    frames = _decode(src, end="12f")
    out = tmp_path / "id.mp4"
    with VideoWriter(out, fps=25, crf=18, preset="veryfast") as w:
        for f in frames:
            w.write(f.image)
    back = _decode(out)
    assert len(back) == 12
    worst = min(psnr(a.image, b.image) for a, b in zip(frames, back))
    assert worst > 35, worst


# -- synthetic clips: VFR, rotation, 10-bit / odd sizes, seeking, containers -------------------------------------------
def test_vfr_timestamps_survive(tmp_path):
    tb = Fraction(1, 1000)
    pts = [0, 40, 80, 200, 240, 400, 433, 466, 700, 740]
    src = make_clip(tmp_path / "vfr.mp4", n=len(pts), pts=pts, time_base=tb, fps=25)
    got = _decode(src)
    assert [round(f.time * 1000) for f in got] == pts
    out = tmp_path / "vfr_out.mp4"
    with VideoReader(src) as r, VideoWriter(out, like=r, preset="ultrafast") as w:
        for f in r:
            w.write(f.image, pts=f.pts)
    back = _decode(out)
    assert [round(f.time * 1000) for f in back] == pts
    assert [frame_number(f.image) for f in back] == list(range(len(pts)))


@pytest.mark.parametrize("angle", [90, -90])
def test_rotated_clip_comes_out_upright(tmp_path, angle):
    upright = [pattern(i, 64, 48) for i in range(4)]  # portrait (H=64, W=48), marker block top-left
    k = angle // 90
    src = tmp_path / f"rot{angle}.mp4"
    # Store the frames rotated the other way and tag the stream with a display matrix (PyAV 18: set_display_rotation).
    out = av.open(str(src), "w")
    s = out.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.options = {"crf": "8", "preset": "ultrafast"}
    s.set_display_rotation(angle)
    for img in upright:
        for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(img, k=-k)), format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    info = probe(src)
    assert info.rotation == angle % 360 and (info.width, info.height) == (48, 64)
    got = _decode(src)
    assert got[0].image.shape == (64, 48, 3)
    assert all(psnr(g.image, u) > 30 for g, u in zip(got, upright))
    dst = tmp_path / "upright.mp4"
    with VideoReader(src) as r, VideoWriter(dst, like=r, preset="ultrafast") as w:
        for f in r:
            w.write(f.image, pts=f.pts)
    assert probe(dst).rotation == 0
    assert psnr(_decode(dst)[2].image, upright[2]) > 30


@pytest.mark.parametrize("even", ["pad", "crop"])
def test_ten_bit_odd_size(tmp_path, even):
    src = make_clip(tmp_path / "odd10.mkv", n=5, size=(33, 25), codec="ffv1", pix_fmt="yuv420p10le")
    info = probe(src)
    assert info.pix_fmt == "yuv420p10le" and (info.width, info.height) == (33, 25)
    got = _decode(src)
    assert got[0].image.shape == (25, 33, 3) and got[0].image.dtype == np.uint8
    assert [frame_number(f.image) for f in got] == list(range(5))
    # Luma is stored at full size: close.  Colour is 4:2:0, so the grey blocks' sharp edges bleed; compare it below
    # them.
    assert psnr(luma(got[3].image), luma(pattern(3, 25, 33))) > 40
    assert psnr(got[3].image[16:], pattern(3, 25, 33)[16:]) > 33
    out = tmp_path / f"odd_{even}.mp4"
    with VideoWriter(out, like=info, even=even, preset="ultrafast") as w:
        for f in got:
            w.write(f.image, pts=f.pts)
    back = _decode(out)
    expect = (26, 34) if even == "pad" else (24, 32)
    assert back[0].image.shape[:2] == expect and len(back) == 5
    assert psnr(back[3].image[:24, :32], got[3].image[:24, :32]) > 30
    if even == "pad":  # the added column repeats the last one
        assert np.abs(back[3].image[:24, 33].astype(int) - back[3].image[:24, 32]).mean() < 4


def test_seek_is_exact_with_long_gop(tmp_path):
    src = make_clip(tmp_path / "gop.mp4", n=60, gop=50, fps=25)
    assert [frame_number(f.image) for f in _decode(src, start="37f", end="41f")] == [37, 38, 39, 40]
    got = _decode(src, start=1.2, end=1.4)  # seconds: frames 30..34
    assert [f.index for f in got] == [30, 31, 32, 33, 34] == [frame_number(f.image) for f in got]
    with pytest.raises(MediaError, match="not after"):
        VideoReader(src, start=2.0, end=1.0)


@pytest.mark.parametrize("ext,codec", [("mkv", "aac"), ("mov", "aac"), ("webm", "opus")])
def test_containers_and_audio_reencode(tmp_path, ext, codec):
    src = make_clip(tmp_path / "a.mp4", n=25, fps=25, audio="aac")
    out = tmp_path / f"o.{ext}"
    with VideoReader(src) as r, VideoWriter(out, like=r, audio_from=src, preset="ultrafast") as w:
        for f in r:
            w.write(f.image, pts=f.pts)
    info = probe(out)
    assert info.audio.codec == codec  # webm cannot hold AAC: re-encoded to Opus
    assert len(_decode(out)) == 25
    assert abs(audio_duration(out) - audio_duration(src)) < 0.05


def test_pcm_audio_from_mkv_into_mp4(tmp_path):
    src = make_clip(tmp_path / "pcm.mkv", n=20, fps=20, audio="pcm_s16le", audio_rate=16000)
    out = tmp_path / "pcm.mp4"
    with VideoReader(src, start=0.25) as r, VideoWriter(out, like=r, audio_from=src, preset="ultrafast") as w:
        for f in r:
            w.write(f.image, pts=f.pts)
    assert probe(out).audio is not None
    assert abs(audio_duration(out) - 0.75) < 0.05


# -- atomic output and bad input ---------------------------------------------------------------------------------------
def test_interrupted_write_leaves_no_file(tmp_path):
    out = tmp_path / "never.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, fps=25, preset="ultrafast") as w:
            for i in range(5):
                w.write(pattern(i, 48, 64))
            raise RuntimeError("boom")
    assert not out.exists() and _leftovers(tmp_path) == []
    out.write_bytes(b"old")  # an existing output is not replaced by an aborted run
    w = VideoWriter(out, fps=25, preset="ultrafast")
    w.write(pattern(0, 48, 64))
    w.abort()
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []
    with pytest.raises(MediaError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", fps=25):
            pass
    assert not (tmp_path / "empty.mp4").exists()


def _bad_inputs(tmp_path, assets):
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes((assets / "video/liveportrait_d3.mp4").read_bytes()[:600_000])
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("aac", rate=44100)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.int16), format="s16", layout="mono")
        f.sample_rate, f.pts = 44100, 0
        for p in [*s.encode(f), *s.encode(None)]:
            c.mux(p)
    image = tmp_path / "image.mp4"
    from PIL import Image

    Image.fromarray(pattern(0, 32, 32)).save(tmp_path / "x.png")
    image.write_bytes((tmp_path / "x.png").read_bytes())
    return {"zero": zero, "trunc": trunc, "audio": audio_only, "image": image, "missing": tmp_path / "nope.mp4"}


def test_truncated_clip_says_how_many_frames_came_out(tmp_path, caplog):
    """A faststart mp4 cut in half (an interrupted download): its header still lists every frame; the frames that
    decode come out, and the damage warning says how many of them (before: only "1 corrupt packet")."""
    path = tmp_path / "full.mp4"
    with VideoWriter(path, fps=25) as w:
        for i in range(40):
            w.write(np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    reader = VideoReader(cut)
    with caplog.at_level("WARNING", logger="vidanime.video.io"):
        n = sum(1 for _ in reader)
    assert len(reader) == 40 and 5 < n < 30
    warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warnings) == 1 and f"only {n} of the 40 frames its header lists" in warnings[0], warnings
    with caplog.at_level("WARNING", logger="vidanime.video.io"):
        caplog.clear()
        assert sum(1 for _ in VideoReader(path)) == 40 and not caplog.records  # an intact clip: no word


def test_bad_inputs_one_line_errors(tmp_path, assets):
    expect = {"zero": "empty", "trunc": "cannot read", "audio": "no video stream", "image": "is an image",
              "missing": "does not exist"}
    for name, path in _bad_inputs(tmp_path, assets).items():
        with pytest.raises(MediaError, match=expect[name]) as ei:
            VideoReader(path)
        assert "\n" not in str(ei.value) and str(path) in str(ei.value)


def test_cli_bad_input_and_output_paths(tmp_path, assets, monkeypatch, capsys):
    from pipelines import cli

    monkeypatch.setitem(cli.COMMANDS, "info", ("info", "Show streams."))
    monkeypatch.setitem(cli.COMMANDS, "transcode", ("transcode", "Re-encode a clip."))

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["vidanime", *args])
        with pytest.raises(SystemExit) as ei:
            cli.run()
        return ei.value.code, capsys.readouterr().err

    for path in _bad_inputs(tmp_path, assets).values():
        code, err = run("info", str(path))
        assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    src = make_clip(tmp_path / "in.mp4", n=5)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, msg in [(src, "is the input"), (blocker / "out.mp4", "cannot write"),
                     (tmp_path / "o.xyz", "cannot write")]:
        code, err = run("transcode", str(src), str(out))
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(MediaError, match="cannot write"):
            VideoWriter(ro / "out.mp4", fps=25)
    finally:
        ro.chmod(0o700)


def test_info_command_prints_what_the_reader_sees(assets):
    import json

    from click.testing import CliRunner

    from pipelines.commands.info import cli

    r = CliRunner().invoke(cli, [str(assets / "video/liveportrait_d3.mp4")])
    assert r.exit_code == 0, r.output
    assert "512x512" in r.output and "30.000 fps" in r.output and "354 frames" in r.output
    assert "aac 44100 Hz, 2 ch" in r.output
    r = CliRunner().invoke(cli, [str(assets / "video/liveportrait_d13.mp4"), "--json"])
    d = json.loads(r.output)
    assert (d["width"], d["height"], d["fps"], d["audio"], d["rotation"]) == (720, 1280, "30", None, 0)
