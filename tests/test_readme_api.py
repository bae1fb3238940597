"""The README's "Python API" block runs as written (on a generated clip and photo, in a scratch folder)."""
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_api_block_runs(tmp_path, monkeypatch, capsys):
    from PIL import Image
    from skimage import data

    from vidanime.data.demo_clip import make_demo_clip
    from vidanime.registry import available_models

    if "styleanime-p2a" not in {e.name for e in available_models()}:
        pytest.skip("needs the bundled styleanime-p2a model")
    monkeypatch.chdir(tmp_path)
    make_demo_clip(tmp_path / "in.mp4", seconds=1.2)
    Image.fromarray(data.astronaut()).save(tmp_path / "photo.jpg")
    exec(compile(_api_block(), "README.md (Python API)", "exec"), {})
    printed = capsys.readouterr().out.split("\n")
    assert printed[0].startswith("25 25 ")  # frames, faces (1 s at 25 fps), seconds
    assert printed[1].startswith("vidanime.styleanime ") and "'alpha': 0.7" in printed[1]
    out = np.asarray(Image.open(tmp_path / "photo_anime.png"))
    assert out.shape == (512, 512, 3) and (tmp_path / "out.mp4").is_file()
