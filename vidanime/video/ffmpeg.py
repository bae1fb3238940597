"""Locating the ffmpeg binary and running ffmpeg commands (via ffmpeg-python) where a command is the natural tool.

Decoding and encoding go through PyAV in-process (:mod:`vidanime.video.io`); the ffmpeg *binary* is only needed for
command-style jobs such as a stand-alone audio remux.  It is looked up on ``PATH`` first (``VIDANIME_FFMPEG`` overrides
both), then in ``imageio-ffmpeg``'s bundled static build, so a fresh ``pip install`` works without a system ffmpeg.
``ffprobe`` is optional: imageio-ffmpeg does not ship it, so probing uses PyAV (:func:`vidanime.video.probe.probe`).
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import MediaError

__all__ = ["ffmpeg_exe", "ffprobe_exe", "ffmpeg_version", "remux_audio", "run_ffmpeg"]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: ``$VIDANIME_FFMPEG``, else ``ffmpeg`` on PATH, else imageio-ffmpeg's bundled one."""
    env = os.environ.get("VIDANIME_FFMPEG")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise MediaError(f"VIDANIME_FFMPEG={env} is not an executable file; expected the path of an ffmpeg binary")
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    if imageio_ffmpeg is not None:
        try:
            return imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError as exc:  # imageio-ffmpeg installed without its binary (e.g. a source build)
            log.debug("imageio-ffmpeg has no bundled binary: %s", exc)
    raise MediaError("no ffmpeg binary found: expected `ffmpeg` on PATH or `pip install imageio-ffmpeg`")


def ffprobe_exe() -> str | None:
    """Path of ``ffprobe`` on PATH (or beside :func:`ffmpeg_exe`), or None: imageio-ffmpeg does not bundle one."""
    found = shutil.which("ffprobe")
    if found:
        return found
    try:
        beside = Path(ffmpeg_exe()).with_name("ffprobe")
    except MediaError:
        return None
    return str(beside) if beside.is_file() else None


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version`` for the binary in use (for logs and `vidanime info`)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["unknown"])[0]


def run_ffmpeg(stream, what: str) -> None:
    """Run an ffmpeg-python ``stream`` with our binary; a failure becomes a one-line :class:`MediaError`."""
    import ffmpeg

    try:
        ffmpeg.run(stream, cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, overwrite_output=True,
                   quiet=True)
    except ffmpeg.Error as exc:
        lines = [ln for ln in (exc.stderr or b"").decode("utf-8", "replace").splitlines() if ln.strip()]
        raise MediaError(f"ffmpeg failed to {what}: {lines[-1] if lines else exc}") from None


def remux_audio(
    video_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    out_path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
) -> None:
    """Mux the video stream of ``video_path`` with the audio of ``audio_path`` (seconds ``start``..``end``) into
    ``out_path`` without re-encoding video; audio is copied (``-c:a copy``).  Written atomically.

    The in-process :class:`~vidanime.video.io.VideoWriter` already muxes audio while encoding; this is the command-line
    equivalent for finished files (e.g. re-attaching audio to a video produced elsewhere).
    """
    import ffmpeg

    from ..fileio import atomic_path, check_not_same_file

    check_not_same_file(video_path, out_path)
    check_not_same_file(audio_path, out_path)
    a_kwargs = {}
    if start:
        a_kwargs["ss"] = float(start)
    if end is not None:
        a_kwargs["t"] = float(end) - float(start or 0.0)
    v = ffmpeg.input(str(video_path)).video
    a = ffmpeg.input(str(audio_path), **a_kwargs).audio
    with atomic_path(out_path) as tmp:
        stream = ffmpeg.output(v, a, str(tmp), vcodec="copy", acodec="copy", shortest=None, movflags="+faststart")
        run_ffmpeg(stream, f"remux {video_path} with the audio of {audio_path}")
