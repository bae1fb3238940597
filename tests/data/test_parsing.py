"""Parsing pair folders: layouts, remap on load, flips, resizing and the seeded held-out split."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidanime import labels as L
from vidanime.data.parsing import ParsingDataConfig, ParsingDataset, list_pairs, read_mask, split_ids
from vidanime.errors import ConfigError, MediaError


def _folder(root, masks):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, m in enumerate(masks):
        Image.fromarray(np.full(m.shape + (3,), 40 * i, np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(m).save(root / "masks" / f"s{i}.png")


def test_remap_on_load_and_nearest_resize(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[:, 8:] = L.CELEBAMASK.index("hair")  # 13 in CelebAMask order
    m[0, 0] = 255  # ignore survives
    _folder(tmp_path, [m])
    ds = ParsingDataset(ParsingDataConfig(root=str(tmp_path), mask_labels="celebamask", image_size=32), "bisenet")
    lab = ds[0]["labels"].numpy()
    assert lab.shape == (32, 32)
    assert set(np.unique(lab)) == {0, L.BISENET.index("hair"), 255}  # nearest: no in-between ids
    assert (lab[:, 16:] == 17).all() and lab[0, 0] == 255
    img = ds[0]["image"]
    assert img.shape == (3, 32, 32) and float(img.max()) <= 1.0


def test_flip_augmentation_swaps_left_and_right(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[:, :4] = L.CELEBAMASK.index("l_eye")
    _folder(tmp_path, [m])
    cfg = ParsingDataConfig(root=str(tmp_path), mask_labels="celebamask", image_size=16, flip=True, scale_jitter=0,
                            color_jitter=0)
    ds = ParsingDataset(cfg, "bisenet", augment=True, seed=3)
    seen = {tuple(np.unique(ds[0]["labels"].numpy()[:, 12:])) for _ in range(20)}
    assert (L.BISENET.index("r_eye"),) in seen  # flipped: the eye moved right and became r_eye
    assert (0,) in seen  # unflipped


def test_pairs_csv_layout_and_split(assets):
    pairs = list_pairs(assets / "faces")
    assert len(pairs) == 900
    ids = [p[0] for p in pairs]
    tr, va = split_ids(ids, 0.1, seed=0)
    assert len(va) == 90 and not set(tr) & set(va) and sorted(tr + va) == sorted(ids)
    assert split_ids(list(reversed(ids)), 0.1, seed=0) == (tr, va)  # order of listing does not matter
    assert split_ids(ids, 0.1, seed=1)[1] != va


def test_bad_folders_and_masks(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        list_pairs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="pairs.csv or the folders"):
        list_pairs(tmp_path / "empty")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(MediaError, match="colour image"):
        read_mask(tmp_path / "c.png")
    _folder(tmp_path / "d", [np.full((16, 16), 40, np.uint8)])
    ds = ParsingDataset(ParsingDataConfig(root=str(tmp_path / "d"), mask_labels="celebamask", image_size=16), "bisenet")
    with pytest.raises(MediaError, match="outside the 19 classes"):
        ds[0]
