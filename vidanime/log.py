"""Logging set-up, done once by the CLI (library modules only call ``logging.getLogger(__name__)``)."""
from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger: ``verbosity`` -1 = warnings, 0 = info, 1+ = debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname).1s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("matplotlib", "PIL", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
