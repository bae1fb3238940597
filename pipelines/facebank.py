"""FaceBank job: a generator checkpoint → a bank of its seeded W codes, saved atomically (`vidanime facebank build`)."""
from __future__ import annotations

import os
from pathlib import Path

from vidanime.fileio import check_not_same_file
from vidanime.models.facebank import FaceBank, build_facebank
from vidanime.registry import load_generator

__all__ = ["build_facebank_from_file"]


def build_facebank_from_file(
    generator: str | os.PathLike,
    out: str | os.PathLike,
    n_codes: int = 50_000,
    seed: int = 0,
    fp16: bool = False,
    batch_size: int = 1000,
    device: str = "cpu",
) -> FaceBank:
    """Load a generator checkpoint (ours, a StyleAnime's decoder, or an official StyleAnime / pSp file), build a bank
    of ``n_codes`` seeded W codes and save it atomically to ``out``."""
    check_not_same_file(generator, out)
    g = load_generator(generator).to(device).eval()
    bank = build_facebank(g, n_codes=n_codes, seed=seed, batch_size=batch_size, generator_name=Path(generator).name)
    bank.save(out, dtype="float16" if fp16 else "float32")
    return bank
