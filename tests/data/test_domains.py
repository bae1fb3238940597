"""Domain datasets for StyleAnime training: layouts, label remap, flip with l/r swap, on-the-fly parsing, bad input,
and the sharded sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidanime import labels as L
from vidanime.data.domains import DomainDataConfig, DomainDataset, ShardedSampler
from vidanime.errors import ConfigError, MediaError

B = {n: i for i, n in enumerate(L.BISENET)}
C = {n: i for i, n in enumerate(L.CELEBAMASK)}


def _mask(s: int, names: dict[str, int]) -> np.ndarray:
    """A face-like label map in the order ``names``: skin, hair on top, l_eye on the image's right half."""
    m = np.zeros((s, s), np.uint8)
    m[s // 4 :, s // 4 : 3 * s // 4] = names["skin"]
    m[: s // 4] = names["hair"]
    m[s // 2, s // 2 + 2 : s // 2 + 5] = names["l_eye"]
    return m


def _pairs(root, n=3, s=40, names=B, ext=".png"):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (s, s, 3), dtype=np.uint8)).save(root / "images" / f"{i:03d}{ext}")
        Image.fromarray(_mask(s, names)).save(root / "masks" / f"{i:03d}.png")
    return root


def test_pairs_remap_resize_and_flip(tmp_path):
    root = _pairs(tmp_path / "d", names=C)
    ds = DomainDataset(DomainDataConfig(root=str(root), mask_labels="celebamask"), "bisenet", 32)
    assert len(ds) == 3 and ds.ids == ["000", "001", "002"] and ds.layout == "pairs"
    img, lab = ds.get(0)
    assert img.shape == (3, 32, 32) and -1 <= img.min() and img.max() <= 1
    expected = L.resize_labels(_mask(40, B), (32, 32))  # nearest resize, ids now in BiSeNet order
    assert np.array_equal(lab.numpy(), expected)
    fimg, flab = ds.get(0, flip=True)
    assert torch.equal(fimg, img.flip(-1))
    assert int((flab == B["r_eye"]).sum()) == int((lab == B["l_eye"]).sum()) > 0  # left eye became right eye
    assert int((flab == B["l_eye"]).sum()) == 0
    x, y = ds.batch([2, 0], [True, False])
    assert torch.equal(x[0], ds.get(2, True)[0]) and torch.equal(y[1], lab)


def test_celebamask_hq_release_layout(tmp_path):
    root = tmp_path / "CelebAMask-HQ"
    (root / "CelebA-HQ-img").mkdir(parents=True)
    part_dir = root / "CelebAMask-HQ-mask-anno" / "0"
    part_dir.mkdir(parents=True)
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(root / "CelebA-HQ-img" / "1.jpg")
    skin = np.zeros((32, 32), np.uint8)
    skin[8:, 8:24] = 255
    hair = np.zeros((32, 32), np.uint8)
    hair[:12] = 255  # overlaps the skin in rows 8-11: hair (a later part) wins, as in CelebAMask-HQ's g_mask.py
    Image.fromarray(skin).save(part_dir / "00001_skin.png")
    Image.fromarray(hair).save(part_dir / "00001_hair.png")
    ds = DomainDataset(DomainDataConfig(root=str(root)), "bisenet", 32)
    assert ds.layout == "celebamask_hq" and ds.ids == ["1"]
    lab = ds.get(0)[1].numpy()
    assert (lab[:12] == B["hair"]).all() and (lab[12:, 8:24] == B["skin"]).all() and (lab[12:, :8] == 0).all()


def _anime_folder(tmp_path, n: int, side: int, seed: int):
    """(tiny random danbooru-order parser, its checkpoint, a folder of ``n`` random ``side``-px images a0.png …)."""
    from vidanime.checkpoint import save_checkpoint
    from vidanime.models.parser import PARSER_FORMAT, ParserConfig, build_parser

    torch.manual_seed(0)
    pcfg = ParserConfig(arch="bisenet", label_set="danbooru", width=0.25, image_size=32)
    parser = build_parser(pcfg).eval()
    ckpt = save_checkpoint(tmp_path / "parser.pt", format=PARSER_FORMAT, config=pcfg, state_dict=parser.state_dict())
    folder = tmp_path / "anime"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / f"a{i}.png")
    return parser, ckpt, folder


def test_plain_images_parsed_on_the_fly(tmp_path):
    parser, ckpt, folder = _anime_folder(tmp_path, 3, 32, 1)
    ds = DomainDataset(DomainDataConfig(root=str(folder), parser=str(ckpt)), "bisenet", 32)
    assert ds.layout == "images" and len(ds) == 3
    x = torch.from_numpy(np.array(Image.open(folder / "a1.png"))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = L.remap(parser(x).argmax(1)[0].numpy().astype(np.uint8), "danbooru", "bisenet")
    assert np.array_equal(ds.get(1)[1].numpy(), expected)
    with pytest.raises(ConfigError, match="set target.parser"):
        DomainDataset(DomainDataConfig(root=str(folder)), "bisenet", 32, name="target")


def test_lazy_plain_images_parse_only_what_batches_ask_for(tmp_path, monkeypatch):
    """``lazy``: nothing is parsed up front, a batch parses its new images in one call, and every image and label
    equals the eager dataset's; an unreadable file is stood in for by the next one with ``skip_bad``."""
    _, ckpt, folder = _anime_folder(tmp_path, 6, 40, 2)
    eager = DomainDataset(DomainDataConfig(root=str(folder), parser=str(ckpt)), "bisenet", 32)
    calls = []
    original = DomainDataset._parse
    monkeypatch.setattr(DomainDataset, "_parse",
                        lambda self, p, sq, d: calls.append(len(sq)) or original(self, p, sq, d))
    lazy = DomainDataset(DomainDataConfig(root=str(folder), parser=str(ckpt), lazy=True), "bisenet", 32)
    assert len(lazy) == 6 and lazy.ids == eager.ids and calls == []
    x, y = lazy.batch([4, 1, 4], [False, True, False])
    assert calls == [2]  # images 1 and 4, once each, in one parser call
    ex, ey = eager.batch([4, 1, 4], [False, True, False])
    assert torch.equal(x, ex) and torch.equal(y, ey)
    lazy.batch([1, 4])
    assert calls == [2]  # already parsed
    for i in range(6):
        assert torch.equal(lazy.get(i)[0], eager.get(i)[0]) and torch.equal(lazy.get(i)[1], eager.get(i)[1])

    (folder / "a2.png").write_bytes(b"not an image")
    bad = DomainDataset(DomainDataConfig(root=str(folder), parser=str(ckpt), lazy=True), "bisenet", 32)
    with pytest.raises(MediaError, match="a2.png"):
        bad.get(2)
    skip = DomainDataset(DomainDataConfig(root=str(folder), parser=str(ckpt), lazy=True, skip_bad=True), "bisenet", 32)
    assert torch.equal(skip.get(2)[0], eager.get(3)[0]) and len(skip.skipped) == 1


def test_bad_inputs_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises((ConfigError, MediaError), match="empty"):
        DomainDataset(DomainDataConfig(root=str(empty), parser="x.pt"), "bisenet", 32)
    (empty / "images").mkdir()
    (empty / "masks").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        DomainDataset(DomainDataConfig(root=str(empty)), "bisenet", 32)
    with pytest.raises(ConfigError, match="source.root is empty"):
        DomainDataset(DomainDataConfig(root=""), "bisenet", 32, name="source")

    root = _pairs(tmp_path / "d", n=4)
    (root / "masks" / "001.png").unlink()  # image without mask
    with pytest.raises(MediaError, match=r"images/001\.png has no mask"):
        DomainDataset(DomainDataConfig(root=str(root)), "bisenet", 32)
    ds = DomainDataset(DomainDataConfig(root=str(root), skip_bad=True), "bisenet", 32)
    assert ds.ids == ["000", "002", "003"]

    bad = _mask(40, B)
    bad[0, 0] = 40  # not a BiSeNet id (and not 255 = ignore)
    Image.fromarray(bad).save(root / "masks" / "002.png")
    (root / "images" / "003.png").write_bytes(b"not an image")
    with pytest.raises(MediaError, match=r"masks/002\.png.*id 40"):
        _raise_first_bad(root)
    ds = DomainDataset(DomainDataConfig(root=str(root), skip_bad=True), "bisenet", 32)
    assert ds.ids == ["000"] and len(ds.skipped) == 2
    assert any("003.png" in s for s in ds.skipped)


def _raise_first_bad(root):
    """With the unmatched image restored, the first bad file met is the out-of-range mask 002."""
    Image.fromarray(_mask(40, B)).save(root / "masks" / "001.png")
    try:
        DomainDataset(DomainDataConfig(root=str(root)), "bisenet", 32)
    finally:
        (root / "masks" / "001.png").unlink()


def test_corrupt_image_names_the_file(tmp_path):
    root = _pairs(tmp_path / "d", n=2)
    (root / "images" / "001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(MediaError, match=r"001\.png"):
        DomainDataset(DomainDataConfig(root=str(root)), "bisenet", 32)


def test_sharded_sampler_shards_a_global_batch_and_resumes():
    one = ShardedSampler(10, batch=6, rank=0, world=1, seed=3)
    r0 = ShardedSampler(10, batch=3, rank=0, world=2, seed=3)
    r1 = ShardedSampler(10, batch=3, rank=1, world=2, seed=3)
    seen = []
    for _ in range(5):
        idx, flips = one.next()
        i0, f0 = r0.next()
        i1, f1 = r1.next()
        assert idx == i0 + i1 and flips == f0 + f1
        seen += idx
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))  # each epoch covers all
    state = one.state_dict()
    nxt = one.next()
    again = ShardedSampler(10, batch=6, seed=3)
    again.load_state_dict(state)
    assert again.next() == nxt
