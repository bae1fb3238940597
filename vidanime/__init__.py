"""vidanime: StyleAnime parsing-conditioned anime translation for images and videos.

Importing the package is cheap and has no side effects; heavy modules (torch models, video) are imported by the
modules that need them.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
