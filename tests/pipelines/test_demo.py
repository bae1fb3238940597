"""`make demo` on a short range: the astronaut clip is made, translated, and output, preview and still are written."""
import subprocess
import sys

import pytest

from vidanime.video.io import VideoReader


@pytest.mark.slow
def test_demo_short_range(tmp_path):
    """`make demo` as CI can afford it: 6 frames and a 2-iteration per-clip fine-tune of the bundled model."""
    from pipelines.recipes.demo import bundled_model_installed

    r = subprocess.run([sys.executable, "-m", "pipelines.recipes.demo", "--out", str(tmp_path), "--end", "6f",
                        "--finetune", "2"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for line in ("model:", "output:", "preview:", "still:"):
        assert line in r.stdout
    if bundled_model_installed():
        assert "fine-tuned on the clip for 2 iterations" in r.stdout
        assert (tmp_path / "demo_anime.finetune" / "styleanime.pt").is_file()
    with VideoReader(tmp_path / "demo_anime.mp4") as out:
        assert len(list(out)) == 6 and out.info.audio is not None
    assert (tmp_path / "demo_still.png").stat().st_size > 10_000
    assert (tmp_path / "demo_input.mp4").exists()  # the input is kept, never overwritten


def test_report_holds_out_the_parsers_and_encoders_split(assets):
    """The README's held-out numbers use exactly the faces every demo model left out of training."""
    import numpy as np

    from pipelines.recipes.report_demo import heldout_portraits
    from vidanime.data.domains import DomainDataConfig, DomainDataset
    from vidanime.data.parsing import list_pairs, split_ids

    ids, images, masks = heldout_portraits(assets / "faces", limit=0)
    all_ids = [p[0] for p in list_pairs(assets / "faces")]
    assert ids == split_ids(all_ids, 0.1, 0)[1] and len(ids) == 90
    assert images.shape == (90, 256, 256, 3) and masks.max() < 19
    # the encoders' source set (configs/demo_styleanime_p2a.yaml: holdout 0.1, seed 0) excludes them
    cfg = DomainDataConfig(root=str(assets / "faces"), layout="pairs", mask_labels="celebamask", holdout=0.1,
                           limit=None)
    train = DomainDataset(cfg, "bisenet", 32, name="source")
    assert len(train.ids) == 810 and not set(train.ids) & set(ids)
    assert np.isin(np.unique(masks), np.arange(19)).all()


def test_export_names_the_training_parser_by_its_bundled_name():
    """The exported StyleAnime records which bundled parser labelled its anime faces (the fine-tune's L_base and the
    report parse the same way); a path that is no demo parser run is kept as it is."""
    from pipelines.recipes.train_demo import PARSER_NAMES
    from vidanime.train.export import rename_parsers

    cfg = {"target": {"parser": "/x/training/00003-parser_anime_demo/checkpoints/parser-0001500.pt"},
           "warmup": {"parser": "training/00000-parser_demo/checkpoints/parser-0003000.pt"},
           "consistency": {"parser": "/data/my_parser.pt"}, "source": {}}
    rename_parsers(cfg, PARSER_NAMES)
    assert cfg == {"target": {"parser": "parser-anime"}, "warmup": {"parser": "parser-portrait"},
                   "consistency": {"parser": "/data/my_parser.pt"}, "source": {}}


def test_recipe_anime_parser_stage_runs_teacher_pseudo_labels_then_student(tmp_path, monkeypatch):
    """Stage anime_parser: the teacher starts from the portrait parser, its averaged, colour-refined labels go to
    ROOT/anime_pseudo_v2, the student starts from the teacher on them; the encoders then parse anime faces with the
    student (not the portrait parser)."""
    from click.testing import CliRunner

    import pipelines.recipes.train_demo as td

    portrait = tmp_path / "00000-parser_demo" / "checkpoints" / "parser-0003000.pt"
    portrait.parent.mkdir(parents=True)
    portrait.touch()
    gen = tmp_path / "00001-stylegan2_demo" / "checkpoints" / "generator-0008000.pt"
    gen.parent.mkdir(parents=True)
    gen.touch()
    calls: list[tuple[str, ...]] = []

    def fake(*args: str) -> None:  # each command "produces" what the next one looks for
        calls.append(args)
        if "configs/demo_parser_anime_teacher.yaml" in args:
            out = tmp_path / "00002-parser_anime_teacher_demo" / "checkpoints" / "parser-0001200.pt"
        elif "pseudo-label" in args:
            out = tmp_path / "anime_pseudo_v2" / "masks" / "a.png"
        elif "configs/demo_parser_anime.yaml" in args:
            out = tmp_path / "00003-parser_anime_demo" / "checkpoints" / "parser-0000800.pt"
        elif "configs/demo_styleanime_p2a.yaml" in args and not any(a.startswith("init=") for a in args):
            out = tmp_path / "00004-styleanime_demo" / "checkpoints" / "styleanime-0001200.pt"
        else:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch()

    monkeypatch.setattr(td, "_vidanime", fake)
    r = CliRunner().invoke(td.main, ["--stages", "anime_parser,encoders", "--root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    teacher, pseudo, student, encoders, continuation = calls
    assert f"init={portrait}" in teacher
    assert pseudo[:2] == ("parser", "pseudo-label") and "--flip-tta" in pseudo and "--colour-refine" in pseudo
    assert str(tmp_path / "anime_pseudo_v2") in pseudo
    assert pseudo[pseudo.index("--model") + 1].endswith("parser-0001200.pt")
    assert any(a.startswith("init=") and a.endswith("parser-0001200.pt") for a in student)
    assert f"data.root={tmp_path / 'anime_pseudo_v2'}" in student
    assert any(a.startswith("target.parser=") and a.endswith("00003-parser_anime_demo/checkpoints/parser-0000800.pt")
               for a in encoders)
    # the bundled encoders: a second run from the first one's export, same parser
    assert "init=" + str(tmp_path / "00004-styleanime_demo" / "checkpoints" / "styleanime-0001200.pt") in continuation
    assert f"name={td.CONTINUATION}" in continuation and any(a.startswith("target.parser=") for a in continuation)
