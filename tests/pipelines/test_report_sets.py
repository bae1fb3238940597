"""Comparing a model set from `vidanime train-all --out` with the bundled one: `report_demo --set` and
`heldout_montage --set` read the set's own encoders and parsers and keep the bundled measuring instruments."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.recipes.report_demo import set_models
from vidanime.errors import VidanimeError
from vidanime.registry import WEIGHTS_DIR


def _set(folder: Path, files: dict[str, str]) -> Path:
    """A set folder: registry name → the bundled file copied in under that name."""
    folder.mkdir(parents=True)
    bundled = json.loads((WEIGHTS_DIR / "registry.json").read_text())["models"]
    models = {}
    for name, source in files.items():
        shutil.copy(WEIGHTS_DIR / bundled[source]["file"], folder / f"{name}.pt")
        models[name] = {**bundled[source], "file": f"{name}.pt"}
    (folder / "registry.json").write_text(json.dumps({"models": models}))
    return folder


def test_set_models_names_what_is_missing(tmp_path):
    with pytest.raises(VidanimeError, match="no registry.json"):
        set_models(tmp_path)
    (tmp_path / "registry.json").write_text(json.dumps(
        {"models": {"parser-portrait": {"file": "gone.pt", "sha256": "0", "format": "vidanime.parser"}}}))
    with pytest.raises(VidanimeError, match="lacks styleanime-p2a, parser-portrait"):  # a listed file that is absent
        set_models(tmp_path)
    s = _set(tmp_path / "set", {"styleanime-p2a": "styleanime-p2a", "parser-portrait": "parser-portrait"})
    assert set_models(s) == {"styleanime-p2a": str(s / "styleanime-p2a.pt"),
                             "parser-portrait": str(s / "parser-portrait.pt")}


@pytest.mark.slow
def test_report_of_a_set_uses_its_own_parser(assets, tmp_path):
    """A set holding the bundled files measures exactly as the bundled models; the same set with the DANet parser as
    its portrait parser measures differently (its parser is the one used), with the same instruments."""
    from pipelines.recipes.report_demo import measure

    same = _set(tmp_path / "same", {"styleanime-p2a": "styleanime-p2a", "parser-portrait": "parser-portrait",
                                    "parser-anime": "parser-anime"})
    other = _set(tmp_path / "other", {"styleanime-p2a": "styleanime-p2a", "parser-portrait": "parser-portrait-danet",
                                      "parser-anime": "parser-anime"})
    kw = dict(limit=6, anime_count=4, recolor=0.85)
    base, a, b = measure(**kw), measure(model_set=str(same), **kw), measure(model_set=str(other), **kw)
    assert a["model"].endswith("same/styleanime-p2a.pt") and a["training_parser"].endswith("same/parser-anime.pt")
    for key in ("structure_miou", "layout_kept", "hair_colour_specificity", "structure_miou_baseline"):
        assert a[key] == pytest.approx(base[key]), key
    assert a["recon_anime"]["psnr"] == pytest.approx(base["recon_anime"]["psnr"])
    assert b["structure_miou"] != pytest.approx(base["structure_miou"])  # the set's own portrait parser
    assert b["structure_miou_baseline"] == pytest.approx(base["structure_miou_baseline"])  # the same yardstick
    with pytest.raises(VidanimeError, match="not both"):
        measure(model_set=str(same), model_path="styleanime-p2a", **kw)


@pytest.mark.slow
def test_montage_adds_the_set_columns(assets, tmp_path):
    from pipelines.recipes.heldout_montage import montage

    same = _set(tmp_path / "same", {"styleanime-p2a": "styleanime-p2a", "parser-portrait": "parser-portrait"})
    pic = montage([(0.75, 0.0)], count=2, size=32, sets=[str(same)])
    assert pic.shape == (32, 2 * 3 * 32, 3)  # one row of two portraits: input, bundled, set
    left = pic[:, : 3 * 32]
    np.testing.assert_array_equal(left[:, 32:64], left[:, 64:96])  # the same files draw the same
