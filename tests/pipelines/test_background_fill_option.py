"""`--background-fill` on translate and batch: the option reaches the translator (and a per-clip fine-tune, so it
trains on crops filled as they will be translated), the checkpoint's default applies without it, a bad value is one
line before any model loads."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import pipelines.batch
import pipelines.translate
from pipelines.batch import BatchPipeline, PipelineSpec
from pipelines.translate import TranslatePipeline
from tests.pipelines.app_helpers import save_model, save_parser, tiny_parser, tiny_styleanime
from vidanime.errors import VidanimeError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fill")
    model = tiny_styleanime(direction="p2a")
    plain = save_model(d / "plain.pt", model)
    model.inference["background_fill"] = 0.6
    return {"plain": plain, "filled": save_model(d / "filled.pt", model),
            "parser": save_parser(d / "parser.pt", tiny_parser())}


def test_translate_pipeline_takes_the_option_over_the_checkpoint_default(files):
    def fill(**kw):
        return TranslatePipeline.from_pretrained(parser=files["parser"], temporal="off", recolor=0,
                                                 **kw).translator.background_fill

    assert fill(checkpoint=files["plain"]) == 0.0
    assert fill(checkpoint=files["filled"]) == 0.6
    assert fill(checkpoint=files["filled"], background_fill=0) == 0.0
    assert fill(checkpoint=files["plain"], background_fill=0.25) == 0.25
    with pytest.raises(VidanimeError, match="background_fill=1.5"):
        TranslatePipeline.from_pretrained(Path("never-loaded.pt"), files["parser"], background_fill=1.5)


def test_finetune_before_translate_trains_on_the_same_fill(files, monkeypatch, tmp_path):
    seen = {}

    def fake_finetune(input, output, checkpoint, parser, iterations, **kw):
        seen["overrides"] = kw.get("overrides")
        return files["plain"]

    monkeypatch.setattr(pipelines.translate, "finetune_for_translate", fake_finetune)
    pipe = TranslatePipeline.finetuned_on(tmp_path / "clip.mp4", tmp_path / "out.mp4", 5, files["plain"],
                                          files["parser"], temporal="off", recolor=0, background_fill=0.4)
    assert seen["overrides"] == {"background_fill": 0.4} and pipe.translator.background_fill == 0.4
    TranslatePipeline.finetuned_on(tmp_path / "clip.mp4", tmp_path / "out.mp4", 5, files["plain"], files["parser"],
                                   temporal="off", recolor=0)
    assert seen["overrides"] is None  # no option: the fine-tune reads the checkpoint's default itself


def test_finetune_config_checks_the_fill():
    from vidanime.errors import ConfigError
    from vidanime.train.finetune import FinetuneConfig

    assert FinetuneConfig(background_fill=0.5).background_fill == 0.5
    with pytest.raises(ConfigError, match="background_fill = 2"):
        FinetuneConfig(background_fill=2)


def test_batch_carries_the_fill_to_workers_and_fine_tunes(files, monkeypatch):
    spec = BatchPipeline.from_pretrained(files["plain"], files["parser"], background_fill=0.3).factory
    assert spec.background_fill == 0.3 and spec().translator.background_fill == 0.3
    with pytest.raises(VidanimeError, match="background_fill=-1"):
        PipelineSpec(checkpoint=str(files["plain"]), parser=str(files["parser"]), background_fill=-1).check()
    calls = []
    monkeypatch.setattr(pipelines.batch, "finetune_for_translate",
                        lambda *a, **kw: calls.append(kw["overrides"]) or files["plain"])
    monkeypatch.setattr(pipelines.batch, "translate_file", lambda pipe, task, options: {"status": "done"})
    job = pipelines.batch._Job(options=pipelines.translate.TranslateOptions(), finetune=3)
    task = pipelines.batch.BatchTask(input="a.mp4", output="out/a.mp4", key="a.mp4", output_key="a.mp4")
    pipelines.batch.run_file(spec, None, task, job)
    assert calls == [{"background_fill": 0.3}]


def test_cli_option_and_one_line_error(files, monkeypatch, tmp_path):
    from pipelines.commands.batch import cli as batch_cli
    from pipelines.commands.translate import cli as translate_cli

    got = {}
    monkeypatch.setattr(BatchPipeline, "from_pretrained", classmethod(lambda cls, *a, **kw: got.update(kw) or 1 / 0))
    (tmp_path / "in").mkdir()
    r = CliRunner().invoke(batch_cli, [str(tmp_path / "in"), str(tmp_path / "out"), "--background-fill", "0.7"])
    assert got["background_fill"] == 0.7 and isinstance(r.exception, ZeroDivisionError)
    r = CliRunner().invoke(translate_cli, [str(tmp_path / "in.mp4"), str(tmp_path / "o.mp4"), "--background-fill",
                                           "-0.5"])
    assert r.exit_code == 2 and "-0.5" in r.output and "Traceback" not in r.output
    assert "--background-fill" in CliRunner().invoke(translate_cli, ["--help"]).output
