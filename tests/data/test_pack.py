"""The training data pack: built from a tiny fake assets tree, loaded, materialized, read by the real loaders."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from vidanime.data.pack import DEFAULT_CLIPS, FORMAT, MARKER, build_pack, load_pack, materialize
from vidanime.errors import ConfigError, MediaError

REPO = Path(__file__).resolve().parents[2]
IDS = ["00129b5490b5459d813a2f031033635e", "002b92f1277545ed80cae62a1f3fd84c", "00f3cdb789584cd59706977dcb122a3f"]
ANIME = ["00002.jpg", "00003.jpg", "00004.jpg", "00018.jpg"]


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: gradients plus a disc, smooth enough for lossy codecs to keep > 30 dB."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xs / w, ys / h, 0.5 + 0.3 * np.sin(xs / 9 + ys / 13)], -1) * 200 + rng.uniform(0, 40, 3)
    cy, cx = rng.uniform(0.3, 0.7, 2) * (h, w)
    img[(ys - cy) ** 2 + (xs - cx) ** 2 < (min(h, w) / 5) ** 2] = rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


@pytest.fixture(scope="module")
def fake_assets(tmp_path_factory) -> Path:
    """The real assets layout in miniature (first lines of pairs.csv / anime_detector_checked.csv copied)."""
    import cv2

    root = tmp_path_factory.mktemp("assets")
    (root / "anime").mkdir()
    for k, name in enumerate(ANIME):
        Image.fromarray(_smooth(128, 128, k)).save(root / "anime" / name, quality=95)
    (root / "anime_detector_checked.csv").write_text("file,lbp_x,lbp_y,lbp_w,lbp_h\n00002.jpg,22,23,86,86\n"
                                                    "00003.jpg,21,22,84,84\n00018.jpg,23,23,90,90\n")
    faces = root / "faces"
    (faces / "images").mkdir(parents=True)
    (faces / "masks").mkdir()
    rows = ["id,image,mask,label_ids_present"]
    for k, sid in enumerate(IDS):
        Image.fromarray(_smooth(64, 64, 10 + k)).save(faces / "images" / f"{sid}.jpg", quality=95)
        mask = np.zeros((64, 64), np.uint8)
        mask[8:56, 8:56] = 1  # skin
        mask[20:26, 14:22], mask[20:26, 42:50] = 5, 4  # r_eye, l_eye (CelebAMask-HQ ids)
        mask[40:46, 24:40] = 11 + k % 2  # lips
        mask[:8] = 13  # hair
        mask[60:, :] = 18 if k else 255  # cloth, or ignore
        Image.fromarray(mask, mode="L").save(faces / "masks" / f"{sid}.png")
        present = " ".join(str(i) for i in np.unique(mask) if i != 255)
        rows.append(f"{sid},images/{sid}.jpg,masks/{sid}.png,{present}")
    (faces / "pairs.csv").write_text("\n".join(rows) + "\n")
    (faces / "labels.json").write_text(json.dumps({"names": ["background", "skin"], "to_bisenet_order": [0, 1]}))
    (root / "video" / "frames_clip").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(_smooth(80, 120, 20 + i)).save(root / "video" / "frames_clip" / f"{i:04d}.png")
    writer = cv2.VideoWriter(str(root / "video" / "tiny.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    if writer.isOpened():
        for i in range(8):
            writer.write(np.ascontiguousarray(_smooth(64, 96, 30 + i)[..., ::-1]))
        writer.release()
    (root / "MANIFEST.md").write_text("# fake assets\n")
    (root / "LICENSES").mkdir()
    (root / "LICENSES" / "README.md").write_text("licences\n")
    return root


def _clips(assets: Path) -> tuple[str, ...]:
    try:
        import av  # noqa: F401  (building from a video file needs PyAV; frame folders do not)
    except ImportError:
        return ("frames_clip",)
    return ("frames_clip", "tiny.mp4") if (assets / "video" / "tiny.mp4").is_file() else ("frames_clip",)


@pytest.fixture(scope="module")
def built(fake_assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "data.pt"
    info = build_pack(fake_assets, out, clips=_clips(fake_assets), progress=False)
    return out, info


def test_pack_is_one_plain_file_with_counts(built):
    out, info = built
    assert out.is_file() and info.bytes == out.stat().st_size
    d = torch.load(out, weights_only=True)  # no pickled classes
    assert d["format"] == FORMAT and d["version"] == 1
    assert d["info"]["anime"]["count"] == len(ANIME) and d["info"]["faces"]["count"] == len(IDS)
    assert "CelebAMask-HQ" in d["info"]["faces"]["licence"] and d["manifest_md"] == "# fake assets\n"
    assert "anime" in info.summary() and "MiB" in info.summary()


def test_materialize_round_trip(built, fake_assets, tmp_path, monkeypatch):
    from interp.data import TripletSet
    from vidanime.data.images import ImageFolderDataset
    from vidanime.data.parsing import ParsingDataConfig, ParsingDataset, list_pairs, read_mask, split_ids

    monkeypatch.setitem(sys.modules, "av", None)  # the training side must not need PyAV
    monkeypatch.setitem(sys.modules, "decord", None)
    out, _ = built
    pack = load_pack(out)
    paths = materialize(pack, tmp_path / "data")

    # faces: same ids and split, masks byte for byte, images close to the source
    src_pairs, new_pairs = list_pairs(fake_assets / "faces"), list_pairs(paths["faces"])
    assert [p[0] for p in new_pairs] == [p[0] for p in src_pairs] == sorted(IDS)
    assert split_ids([p[0] for p in new_pairs], 0.34, 0) == split_ids(IDS, 0.34, 0)
    for (_, si, sm), (_, ni, nm) in zip(src_pairs, new_pairs):
        assert nm.read_bytes() == sm.read_bytes()
        assert np.array_equal(read_mask(nm), read_mask(sm))
        assert _psnr(np.asarray(Image.open(ni).convert("RGB")), np.asarray(Image.open(si).convert("RGB"))) > 30
    ds = ParsingDataset(ParsingDataConfig(root=str(paths["faces"]), mask_labels="celebamask", image_size=64), "bisenet")
    ref = ParsingDataset(ParsingDataConfig(root=str(fake_assets / "faces"), mask_labels="celebamask", image_size=64),
                         "bisenet")
    assert len(ds) == len(IDS) and np.array_equal(ds.load(1)[1], ref.load(1)[1])
    assert "label_ids_present" in (paths["faces"] / "pairs.csv").read_text().splitlines()[0]

    # anime: the GAN loader reads them, in the source order, close to the source
    anime = ImageFolderDataset(paths["anime"], 128)
    assert [p.stem for p in anime.files] == [Path(n).stem for n in ANIME]
    for p in anime.files:
        src = np.asarray(Image.open(fake_assets / "anime" / f"{p.stem}.jpg").convert("RGB"))
        assert _psnr(anime.get_uint8(anime.files.index(p)).permute(1, 2, 0).numpy(), src) > 30
    det = paths["anime_detector_checked"].read_text().splitlines()
    assert det[0] == "file,lbp_x,lbp_y,lbp_w,lbp_h"
    assert all((paths["anime"] / row.split(",")[0]).is_file() for row in det[1:])

    # video: the config's assets/video/<stem>.mp4 resolves to the frame folder via VIDANIME_ASSETS, without PyAV
    monkeypatch.setenv("VIDANIME_ASSETS", str(paths["root"]))
    names = [f"assets/video/{c if c.endswith('.mp4') else c + '.mp4'}" for c in pack.clips]
    ts = TripletSet.from_clips(names, split="train", held_out_frac=0.2)
    assert [len(c) for c in ts.clips] == pack.frame_counts
    src = np.asarray(Image.open(fake_assets / "video" / "frames_clip" / "0002.png").convert("RGB"))
    assert ts.clips[0].shape[1:] == src.shape and _psnr(ts.clips[0][2], src) > 30
    assert (paths["root"] / "LICENSES" / "README.md").is_file()
    # an absolute <dir>/video/<stem>.mp4 (train_all's "{assets}/video/…") finds the frame folder too
    from interp.data import decode_clip

    assert np.array_equal(decode_clip(paths["video"] / "frames_clip.mp4"), ts.clips[0])


def test_materialize_skips_a_complete_copy_and_refuses_others(built, tmp_path):
    out, _ = built
    dest = tmp_path / "d"
    paths = materialize(out, dest)
    marker = dest / MARKER
    stamp = marker.stat().st_mtime_ns
    assert materialize(out, dest) == paths and marker.stat().st_mtime_ns == stamp
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("not a pack copy")
    with pytest.raises(ConfigError, match="not a complete data pack copy"):
        materialize(out, other)
    marker.write_text(json.dumps({"fingerprint": "0" * 64}))
    with pytest.raises(ConfigError, match="another data pack"):
        materialize(out, dest)


def test_wrong_files_give_one_line_errors(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    foreign = tmp_path / "ckpt.pt"
    torch.save({"format": "vidanime.stylegan2", "version": 1}, foreign)
    newer = tmp_path / "newer.pt"
    torch.save({"format": FORMAT, "version": 99}, newer)
    for path, msg in [(text, "not a vidanime data pack"), (foreign, "not a vidanime data pack"),
                      (newer, "version 99"), (tmp_path / "missing.pt", "not found")]:
        with pytest.raises(MediaError, match=msg) as exc:
            load_pack(path)
        assert "\n" not in str(exc.value)


def test_damaged_pack_is_detected(built, tmp_path):
    d = torch.load(built[0], weights_only=True)
    d["anime"]["blobs"]["data"][10] ^= 0xFF
    bad = tmp_path / "bad.pt"
    torch.save(d, bad)
    with pytest.raises(MediaError, match="damaged"):
        load_pack(bad)


def test_size_cap_and_missing_sections(fake_assets, tmp_path):
    out = tmp_path / "p.pt"
    with pytest.raises(MediaError, match="over the cap"):
        build_pack(fake_assets, out, clips=("frames_clip",), max_bytes=1000, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())  # no partial file left
    with pytest.raises(ConfigError, match="assets folder not found"):
        build_pack(tmp_path / "nowhere", out, progress=False)
    (tmp_path / "a" / "anime").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no faces/"):
        build_pack(tmp_path / "a", out, progress=False)


def test_default_clips_are_the_configs_clips():
    for name in ("demo_interp_ifnet.yaml", "interp_ifnet_tiny.yaml"):
        cfg = yaml.safe_load((REPO / "configs" / name).read_text())
        assert {Path(c).name for c in cfg["data"]["clips"]} <= set(DEFAULT_CLIPS)
        assert all(c.startswith("assets/video/") for c in cfg["data"]["clips"])


@pytest.mark.slow
def test_training_side_imports_no_video_or_lpips():
    code = ("import sys, vidanime.data.pack, interp.data; "
            "bad = {'av', 'decord', 'lpips'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_cli(fake_assets, tmp_path):
    from pipelines.pack_data import main

    out = tmp_path / "p.pt"
    runner = CliRunner()
    r = runner.invoke(main, [str(out), "--assets", str(fake_assets), "--clips", "frames_clip", "-q"])
    assert r.exit_code == 0, r.output
    line = r.output.strip()
    assert "\n" not in line and f"{len(ANIME)} anime" in line and f"{len(IDS)} faces" in line and "MiB" in line
    r = runner.invoke(main, [str(out), "--assets", str(fake_assets), "--clips", "frames_clip", "-q"])
    assert r.exit_code != 0 and "exists" in r.output and "--force" in r.output
    r = runner.invoke(main, [str(out), "--assets", str(fake_assets), "--clips", "frames_clip", "-q", "--force"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, [str(tmp_path / "q.pt"), "--assets", str(tmp_path / "nowhere"), "-q"])
    assert r.exit_code != 0 and r.output.strip().count("\n") == 0 and "assets folder not found" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "q.pt").exists()
