"""The shared pipeline base (pipelines/base.py): every public pipeline has it; ``components`` finds the models however
deep they sit; ``to(device)`` moves every parameter and every recorded device (checked on the meta device, which
needs no GPU)."""
import inspect

import pytest
import torch

from pipelines.base import Pipeline
from pipelines.image_translate import ImageTranslatePipeline
from pipelines.manga import MangaPipeline
from pipelines.parse import ParsePipeline
from pipelines.train_all import TrainAllPipeline
from pipelines.translate import TranslatePipeline
from tests.pipelines.app_helpers import tiny_parser, tiny_styleanime
from vidanime.models.face_translator import StyleAnimeFaceTranslator
from vidanime.models.facebank import FaceBank
from vidanime.video.faces import FaceConfig

META = torch.device("meta")


def _devices(pipe: Pipeline) -> set[torch.device]:
    return {t.device for m in pipe.components.values() for t in [*m.parameters(), *m.buffers()]}


def test_every_public_pipeline_has_the_base():
    import importlib

    names = ("batch", "edit", "evaluate", "finetune", "image_translate", "interp", "manga", "parse", "train_all",
             "train_gan", "transcode", "translate")
    classes = [c for n in names for _, c in inspect.getmembers(importlib.import_module(f"pipelines.{n}"),
                                                                 inspect.isclass)
               if c.__name__.endswith("Pipeline") and c.__module__ == f"pipelines.{n}"]
    assert len(classes) == 14 and all(issubclass(c, Pipeline) for c in classes), classes
    with pytest.raises(NotImplementedError, match="TrainAllPipeline is built from its parts"):
        TrainAllPipeline.from_pretrained("anything")


def test_translate_pipeline_components_and_to_reach_the_models_inside_the_translator():
    model, parser = tiny_styleanime("p2a"), tiny_parser()
    pipe = TranslatePipeline(StyleAnimeFaceTranslator(model, parser), FaceConfig(device="cpu"), model_name="tiny")
    comps = pipe.components
    assert set(comps) >= {"translator.model", "translator.parser"}
    assert comps["translator.model"] is model and comps["translator.parser"] is parser
    assert "translator.model" in repr(pipe)
    assert _devices(pipe) == {torch.device("cpu")}
    assert pipe.to("meta") is pipe
    assert _devices(pipe) == {META}
    assert pipe.translator.device == META  # recorded devices follow, in their own type
    assert pipe.face_config.device == "meta"


def test_image_and_manga_pipelines_move_their_facebank_and_nested_parse_pipeline():
    model = tiny_styleanime("p2a")
    bank = FaceBank(torch.randn(8, model.config.n_latent, model.config.generator.style_dim))
    pipe = ImageTranslatePipeline(model, parser=tiny_parser(), facebank=bank, progress=False)
    assert set(pipe.components) == {"model", "parser"}
    pipe.to("meta")
    assert _devices(pipe) == {META} and pipe.device == "meta"
    assert pipe.facebank.device == META  # its own to(): the working copy the lookups use
    manga = MangaPipeline(tiny_styleanime("a2p"), tiny_parser(), progress=False)
    assert isinstance(manga._parse, ParsePipeline) and "_parse.model" not in manga.components  # one entry per module
    manga.to("meta")
    assert _devices(manga) == {META} and manga._parse.device == META and manga._parse.model is manga.parser
