"""User-facing error types.

Every error a user can cause (bad config, wrong checkpoint, bad media) derives from :class:`VidanimeError`; the CLI
turns these into a one-line message and a non-zero exit instead of a traceback.  They also subclass ``ValueError`` so
library callers can catch them the usual way (diffusers-style ``check_inputs``).
"""
from __future__ import annotations


class VidanimeError(ValueError):
    """Base class for errors caused by user input; the message is shown as is, on one line."""


class ConfigError(VidanimeError):
    """A config file or value is invalid (unknown key, wrong type, missing file)."""


class CheckpointError(VidanimeError):
    """A checkpoint file is missing, truncated, of another format, or does not fit the model."""


class MediaError(VidanimeError):
    """An image or video cannot be read or written (missing, corrupt, unsupported)."""
