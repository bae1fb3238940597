"""`vidanime eval images|video`: pipelines and CLI on tiny hand-built folders and clips."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipelines.commands.eval import cli
from pipelines.evaluate import EvalImagesPipeline, EvalVideoPipeline
from vidanime import labels as L
from vidanime.errors import ConfigError


def _face(seed: int, size: int = 48):
    rng = np.random.default_rng(seed)
    lab = np.full((size, size), L.class_ids("bisenet", "skin")[0], np.uint8)
    lab[: size // 3] = L.class_ids("bisenet", "hair")[0]
    lab[size // 2 : size // 2 + 4, 8:16] = L.class_ids("bisenet", "l_eye")[0]
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return img, lab


@pytest.fixture()
def folders(tmp_path):
    """source/ and pred/ (pred = source, same names), masks for both, real/ (other images)."""
    for sub in ("source", "pred", "real", "source_masks", "pred_masks"):
        (tmp_path / sub).mkdir()
    for i in range(4):
        img, lab = _face(i)
        Image.fromarray(img).save(tmp_path / "source" / f"f{i}.png")
        Image.fromarray(img).save(tmp_path / "pred" / f"f{i}.png")
        Image.fromarray(lab).save(tmp_path / "source_masks" / f"f{i}.png")
        Image.fromarray(lab).save(tmp_path / "pred_masks" / f"f{i}.png")
        Image.fromarray(_face(10 + i)[0]).save(tmp_path / "real" / f"r{i}.png")
    return tmp_path


def test_eval_images_cli_identity_outputs(folders):
    out = folders / "res.json"
    r = CliRunner().invoke(cli, ["images", "--pred", str(folders / "pred"), "--source", str(folders / "source"),
                                 "--source-masks", str(folders / "source_masks"), "--pred-masks",
                                 str(folders / "pred_masks"), "--lpips-backbone", "random", "--lpips-d-pairs", "4",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    m = res["metrics"]
    assert m["lpips_s"]["value"] == pytest.approx(0.0, abs=1e-6)  # outputs equal their sources
    assert m["lpips_d"]["value"] > 0  # the four outputs differ
    assert m["structure_kept"]["value"] == pytest.approx(1.0)
    assert m["appearance_kept"]["value"] == pytest.approx(0.0)
    assert "--inception" in res["skipped"]["fid"] and "--real" in res["skipped"]["kid"]
    assert res["meta"]["lpips_d"]["higher_is_better"] and not res["meta"]["lpips_s"]["higher_is_better"]
    assert "| lpips_s |" in r.output and "skipped" in r.output


def test_eval_images_requested_metric_without_inputs_is_an_error(folders):
    pipe = EvalImagesPipeline(metrics=["fid"])
    with pytest.raises(ConfigError, match="--real DIR"):
        pipe(folders / "pred")
    with pytest.raises(ConfigError, match="unknown metric"):
        EvalImagesPipeline(metrics=["nope"])(folders / "pred")


def test_eval_images_kid_with_public_layout_inception(folders, tmp_path):
    import torch
    from torchvision.models.inception import Inception3

    sd = Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    for k, v in sd.items():  # variance-keeping (He) conv weights so features do not vanish over ~90 layers
        if k.endswith("conv.weight"):
            sd[k] = torch.randn(v.shape) * (2.0 / v[0].numel()) ** 0.5
    path = tmp_path / "pt_inception.pth"
    torch.save(sd, path)
    pipe = EvalImagesPipeline(inception=path, metrics=["kid"], kid_subsets=2, kid_subset_size=3, batch_size=4)
    same = pipe(folders / "pred", real=folders / "source", max_images=3)
    other = pipe(folders / "pred", real=folders / "real", max_images=3)
    assert same.metrics["kid"]["value"] < other.metrics["kid"]["value"]
    assert same.inputs["n_pred"] == 3 and "kid" in same.table()


def _write_clip(path, frames, fps=10):
    from vidanime.video.io import VideoWriter

    with VideoWriter(path, fps=fps, crf=0, preset="ultrafast") as w:
        for f in frames:
            w.write(f)


def _clip(n=6, noise=0.0, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(np.random.default_rng(99).uniform(0, 255, (64, 80, 3)).astype(np.float32), (0, 0), 2)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    return [np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8) if noise else
            base.astype(np.uint8) for _ in range(n)]


def test_eval_video_cli_flicker_and_latents(tmp_path):
    src, same, noisy = tmp_path / "in.mp4", tmp_path / "same.mp4", tmp_path / "noisy.mp4"
    frames = _clip()
    _write_clip(src, frames)
    _write_clip(same, frames)
    _write_clip(noisy, _clip(noise=12))
    codes = np.cumsum(np.ones((6, 2, 4)), 0)  # linear in time → roughness 0
    np.save(tmp_path / "w.npy", codes)
    out = tmp_path / "v.json"
    r = CliRunner().invoke(cli, ["video", "--input", str(src), "--output", str(same), "--latents",
                                 str(tmp_path / "w.npy"), "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["inputs"]["frames"] == 6
    assert res["metrics"]["warp_error"]["value"] < 1e-4
    assert res["metrics"]["latent_roughness"]["value"] == pytest.approx(0.0)
    calm = res["metrics"]["flicker_index"]["value"]
    flick = EvalVideoPipeline()(src, noisy).metrics["flicker_index"]["value"]
    assert flick > calm + 1.0


def test_eval_video_refuses_json_over_input(tmp_path):
    src = tmp_path / "in.mp4"
    _write_clip(src, _clip(n=3))
    r = CliRunner().invoke(cli, ["video", "--input", str(src), "--output", str(src), "--json", str(src)])
    assert r.exit_code != 0 and "is the input" in str(r.exception)
