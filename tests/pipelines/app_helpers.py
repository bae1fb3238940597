"""Tiny random models and checkpoints for the application tests (a2p, editing, manga): seconds on one CPU thread."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vidanime.checkpoint import save_checkpoint
from vidanime.config import load_config
from vidanime.models.parser import PARSER_FORMAT, ParserConfig, build_parser, config_of
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig, save_styleanime

TINY = Path(__file__).resolve().parents[2] / "configs" / "styleanime_tiny.yaml"


def tiny_styleanime(direction: str | None = None, seed: int = 0, sensitive: bool = False) -> StyleAnime:
    """32-px StyleAnime (configs/styleanime_tiny.yaml), random weights, ``config.direction`` set.  ``sensitive``:
    the encoders' map2style linear heads are scaled ×30, so a parsing edit changes the render visibly (a random
    encoder's residual codes are ~0.02, and an edit of 30 % of the map then moves the output by < 1e-3)."""
    torch.manual_seed(seed)
    cfg = load_config(TINY, StyleAnimeConfig)
    cfg.direction = direction
    model = StyleAnime(cfg).eval()
    model.set_latent_avg(torch.randn(cfg.generator.style_dim) * 0.1)
    if sensitive:
        with torch.no_grad():
            for name, p in model.encoder.named_parameters():
                if ".styles." in name and name.endswith("linear.weight"):
                    p.mul_(30.0)
    return model


def tiny_parser(label_set: str = "bisenet", seed: int = 0, skin_everywhere: bool = False) -> torch.nn.Module:
    """BiSeNet at width 0.125, 64 px.  ``skin_everywhere``: the classifier scores only 'skin' (so the paste mask of the
    video pipeline covers the face) — its ReLU features are >= 0, so skin wins wherever any feature is positive."""
    torch.manual_seed(seed)
    net = build_parser(ParserConfig(label_set=label_set, width=0.125, blocks=[1, 1, 1, 1], image_size=64)).eval()
    if skin_everywhere:
        with torch.no_grad():
            w = net.conv_out.conv_out.weight
            w.zero_()
            w[1] = 1.0
    return net


def save_parser(path: Path, net: torch.nn.Module) -> Path:
    return save_checkpoint(path, format=PARSER_FORMAT, config=config_of(net), state_dict=net.state_dict())


def save_model(path: Path, model: StyleAnime) -> Path:
    return save_styleanime(path, model)


def write_image(path: Path, seed: int, size: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def write_labels(path: Path, labels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8), mode="L").save(path)
    return path


def face_labels(size: int = 32) -> np.ndarray:
    """A cartoon face map in BiSeNet order: hair band, skin disc, two eyes, nose, mouth, background elsewhere."""
    yy, xx = np.mgrid[:size, :size] / size
    lab = np.zeros((size, size), np.int64)
    lab[yy < 0.3] = 17
    lab[(yy - 0.55) ** 2 + (xx - 0.5) ** 2 < 0.3**2] = 1
    lab[(abs(yy - 0.45) < 0.05) & (abs(xx - 0.37) < 0.06)] = 4
    lab[(abs(yy - 0.45) < 0.05) & (abs(xx - 0.63) < 0.06)] = 5
    lab[(abs(yy - 0.58) < 0.04) & (abs(xx - 0.5) < 0.03)] = 10
    lab[(abs(yy - 0.72) < 0.03) & (abs(xx - 0.5) < 0.1)] = 11
    return lab
