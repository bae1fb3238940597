"""`vidanime pack-data`: the same command as ``python -m pipelines.pack_data`` (:mod:`pipelines.pack_data`)."""
from __future__ import annotations

from pipelines.pack_data import main as cli

__all__ = ["cli"]
