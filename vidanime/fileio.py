"""Atomic file output: write to a temporary name beside the target, rename when complete.

An interrupted run therefore never leaves a file that looks finished, and an existing file is only replaced once the
new one is whole.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "check_not_same_file", "remove_stale_partials",
           "check_input_file", "check_output_path"]

# errno of a folder that cannot hold new files (missing, not a folder, a pseudo file system like /proc): a user error
# named in one line; a full disk or missing permissions stay OSErrors (the CLI's os_error_message maps them)
_NOT_A_PLACE = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL, errno.ENAMETOOLONG}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` if the block succeeds, else delete it.

    ``suffix`` keeps an extension on the temporary name (containers like mp4 are chosen from it); by default the
    target's own suffix is kept.
    """
    from .errors import MediaError

    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    if path.is_dir():  # os.replace cannot put a file there: say so before any work is done in the block
        raise MediaError(f"cannot write {path}: it is a folder; expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{suffix}", dir=path.parent)
    except OSError as exc:
        if exc.errno not in _NOT_A_PLACE:
            raise
        raise MediaError(f"cannot write {path}: {exc.strerror or exc} in {path.parent}; expected a writable folder"
                         ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the permissions a plain open() would have
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _special_kind(mode: int) -> str | None:
    """What a non-regular file of ``st_mode`` ``mode`` is, in words (a FIFO, a device, a socket), else None."""
    import stat

    return ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else None)


def check_input_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a Path if it is a regular file; else a one-line :class:`~vidanime.errors.MediaError` saying whether
    it is missing or something else (a folder, a FIFO, a device), since a pipe or device cannot be read twice."""
    import stat

    from .errors import MediaError

    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise MediaError(f"{what} not found: {p}") from None
    except OSError as exc:
        raise MediaError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return p
    kind = "a folder" if stat.S_ISDIR(mode) else _special_kind(mode)
    raise MediaError(f"{what} {p} is " + (f"{kind}, not a regular file" if kind else "not a regular file"))


def check_output_path(path: str | os.PathLike, what: str = "output", folder: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written: a file output must not be an existing folder, device or
    FIFO (``folder``: a folder output must not be a file), and the nearest existing folder above it must accept new
    files (probed by creating and deleting a hidden temporary file, since a pseudo file system such as /proc refuses
    files even to root).  Returns ``path`` as a Path; a one-line :class:`~vidanime.errors.MediaError` otherwise."""
    import stat

    from .errors import MediaError

    p = Path(path)
    try:
        mode = p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:
        raise MediaError(f"cannot write {what} {p}: {exc.strerror or exc}") from None
    if mode is not None:
        if folder and not stat.S_ISDIR(mode):
            raise MediaError(f"{what} {p} is a file; expected a folder")
        if not folder and stat.S_ISDIR(mode):
            raise MediaError(f"{what} path {p} is a folder; expected a file name")
        if not folder and not stat.S_ISREG(mode):
            kind = _special_kind(mode) or "a special file"
            raise MediaError(f"{what} {p} is {kind}, not a regular file; expected a file name")
    place = (p if folder else p.parent).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise MediaError(f"cannot write {what} {p}: {place} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidanime-write-check.", dir=place)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MediaError(f"cannot write {what} {p}: {place} does not accept new files ({exc.strerror or exc}); "
                         "expected a writable folder") from None
    return p


def check_not_same_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Raise :class:`~vidanime.errors.MediaError` when ``dst`` would overwrite the input ``src``."""
    from .errors import MediaError

    s, d = Path(src), Path(dst)
    if s.resolve() == d.resolve() or (d.exists() and s.exists() and os.path.samefile(s, d)):
        raise MediaError(f"output path {dst} is the input file; choose another output name")


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an earlier, killed run left for ``path`` (``.<stem>.*.partial<suffix>`` beside it,
    see :func:`atomic_path`); returns what was removed.  Call it before writing ``path`` again."""
    import glob
    import logging

    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.*.partial{glob.escape(path.suffix)}"):
        logging.getLogger(__name__).info("removing the partial output of an interrupted run: %s", stale)
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
