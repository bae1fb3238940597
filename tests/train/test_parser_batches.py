"""The parser's batch stream: the same batches with or without loader worker processes, and after a resume."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidanime.data.parsing import ParsingDataConfig, ParsingDataset
from vidanime.errors import ConfigError
from vidanime.train.parser import ParserTrainOptions, _batches, loader_workers


@pytest.fixture()
def pairs(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "images" / f"{i:03d}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{i:03d}.png"), rng.integers(0, 19, (40, 40), dtype=np.uint8))
    return ParsingDataConfig(root=str(tmp_path), mask_labels="bisenet", image_size=32, anime_style=0.5)


def _take(ds, start, n, workers):
    return list(itertools.islice(_batches(ds, 4, 7, start, workers), n))


def test_workers_and_resume_give_the_same_batches(pairs):
    ds = ParsingDataset(pairs, "bisenet", augment=True)
    here = _take(ds, 0, 5, 0)
    # augmentation is on (flip, zoom, colour, anime redraw): batches differ from the plain pairs and from each other
    plain = ParsingDataset(pairs, "bisenet")
    assert not torch.equal(here[0]["image"], torch.stack([plain[i]["image"] for i in range(4)]))
    assert not torch.equal(here[0]["image"], here[3]["image"][:4])
    resumed = _take(ParsingDataset(pairs, "bisenet", augment=True), 3, 2, 0)  # a run resumed at step 3
    forked = _take(ParsingDataset(pairs, "bisenet", augment=True), 0, 5, 2)  # two worker processes
    for a, b in zip(here[3:], resumed):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["labels"], b["labels"])
    for a, b in zip(here, forked):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["labels"], b["labels"])


def test_loader_workers_auto_and_validation():
    assert loader_workers(-1, torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    assert 0 <= loader_workers(-1, torch.device("cuda")) <= 8
    with pytest.raises(ConfigError, match="loader_workers=-2"):
        ParserTrainOptions(loader_workers=-2)
