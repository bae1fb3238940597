"""Image-folder dataset: discovery, mode conversion, resize, flips, bad files."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from vidanime.data.images import ImageFolderDataset, list_images, load_image, to_rgb_uint8
from vidanime.errors import MediaError


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_recursive_sorted_by_extension(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    _save(tmp_path / "b.png", rgb)
    _save(tmp_path / "sub" / "a.JPG", rgb)
    (tmp_path / "notes.txt").write_text("not an image")
    files = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["b.png", "sub/a.JPG"]
    assert [p.name for p in list_images(tmp_path, extensions=["png"])] == ["b.png"]


def test_empty_or_missing_folder_names_it(tmp_path):
    with pytest.raises(MediaError, match=str(tmp_path)):
        ImageFolderDataset(tmp_path, 16)
    with pytest.raises(MediaError, match="not found"):
        ImageFolderDataset(tmp_path / "nope", 16)


def test_mode_conversion_values():
    gray = Image.fromarray(np.full((4, 4), 100, np.uint8), mode="L")
    assert to_rgb_uint8(gray).shape == (4, 4, 3) and (to_rgb_uint8(gray) == 100).all()
    # 16-bit: 0xFFFF → 255 and 257·x → x, not clipped at 255.
    a16 = np.array([[0, 257 * 10], [257 * 200, 65535]], np.uint16)
    out = to_rgb_uint8(Image.fromarray(a16))
    assert out[..., 0].tolist() == [[0, 10], [200, 255]] and out.shape == (2, 2, 3)
    # RGBA: fully transparent → white, opaque → the colour.
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (10, 20, 30, 0)
    out = to_rgb_uint8(Image.fromarray(rgba, mode="RGBA"))
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [255, 255, 255]


def test_16bit_png_on_disk(tmp_path):
    a16 = np.full((8, 8), 257 * 128, np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(a16).save(path)
    x = ImageFolderDataset(tmp_path, 8)[0]
    assert x.shape == (3, 8, 8)
    assert torch.allclose(x, torch.full_like(x, 128 / 127.5 - 1), atol=1e-6)


def test_resize_is_antialiased_and_crops_to_square(tmp_path):
    # A 1-px checkerboard downsampled 8x must average to grey (nearest neighbour would keep 0 or 255).
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    _save(tmp_path / "board.png", np.stack([board] * 3, -1))
    x = load_image(tmp_path / "board.png", 8)
    assert x.shape == (8, 8, 3)
    assert abs(float(x.mean()) - 127.5) < 3 and x.std() < 10
    # A wide image: left/right thirds red/blue are cropped away, the green centre square remains.
    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, :30, 0] = 255
    wide[:, 30:60, 1] = 255
    wide[:, 60:, 2] = 255
    _save(tmp_path / "wide.png", wide)
    y = load_image(tmp_path / "wide.png", 16)
    assert y.shape == (16, 16, 3) and y[..., 1].min() > 240 and y[..., 0].max() < 15


def test_values_range_and_flip(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, :8] = 255  # left half white
    _save(tmp_path / "half.png", img)
    ds = ImageFolderDataset(tmp_path, 16, hflip=True, preload=True)
    g = torch.Generator().manual_seed(0)
    batch = ds.sample_batch(64, generator=g)
    assert batch.shape == (64, 3, 16, 16) and batch.dtype == torch.float32
    assert batch.min() == -1 and batch.max() == 1
    left_white = batch[:, 0, 0, 0] > 0
    assert 10 < int(left_white.sum()) < 54  # both orientations occur
    # same generator seed → same batch
    assert torch.equal(batch, ds.sample_batch(64, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(ImageFolderDataset(tmp_path, 16)[0], ImageFolderDataset.to_float(ds.get_uint8(0)))


def test_bad_image_raises_or_is_skipped(tmp_path, caplog):
    _save(tmp_path / "a.png", np.full((8, 8, 3), 7, np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _save(tmp_path / "c.png", np.full((8, 8, 3), 9, np.uint8))
    with pytest.raises(MediaError, match="b.png"):
        ImageFolderDataset(tmp_path, 8, preload=True)
    lazy = ImageFolderDataset(tmp_path, 8)
    with pytest.raises(MediaError, match="b.png"):
        lazy[1]
    with caplog.at_level(logging.WARNING):
        ds = ImageFolderDataset(tmp_path, 8, preload=True, skip_bad=True)
    assert len(ds) == 2 and [p.name for p in ds.bad] == ["b.png"] and "b.png" in caplog.text
    lazy = ImageFolderDataset(tmp_path, 8, skip_bad=True)
    assert int(lazy.get_uint8(1)[0, 0, 0]) == 9  # the next readable file stands in


def test_limit_and_file_list_on_shipped_faces(assets):
    root = assets / "anime"
    ds = ImageFolderDataset(root, 32, limit=4)
    assert [p.name for p in ds.files] == sorted(p.name for p in root.iterdir())[:4]
    x = ds[0]
    assert x.shape == (3, 32, 32) and -1 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.1
    picked = ImageFolderDataset(root, 32, files=[ds.files[2].name])
    assert len(picked) == 1 and torch.equal(picked[0], ds[2])
    with pytest.raises(MediaError, match="missing.jpg"):
        ImageFolderDataset(root, 32, files=["missing.jpg"])
