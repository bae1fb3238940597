"""`make demo` on a short range: the astronaut clip is made, translated, and output, preview and still are written."""
import subprocess
import sys

from vidanime.video.io import VideoReader


def test_demo_short_range(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipelines.demo", "--out", str(tmp_path), "--end", "6f"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for line in ("model:", "output:", "preview:", "still:"):
        assert line in r.stdout
    with VideoReader(tmp_path / "demo_anime.mp4") as out:
        assert len(list(out)) == 6 and out.info.audio is not None
    assert (tmp_path / "demo_still.png").stat().st_size > 10_000
    assert (tmp_path / "demo_input.mp4").exists()  # the input is kept, never overwritten
