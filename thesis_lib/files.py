"""Atomic file writes (a reader, or a process killed mid-write, sees the old file or the new one, never
half), and the record of the files a chapter reads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


#: When set, :func:`record_read` appends the path of every checkpoint and cached metric the process
#: reads to the file it names (``book/build.py`` sets it for each chapter's kernel).
READS_LOG_ENV = "THESIS_READS_LOG"


def record_read(path: str | os.PathLike) -> None:
    """Note that this process read ``path`` (a checkpoint, a cached metric): one line appended to the file
    that ``$THESIS_READS_LOG`` names, when it is set; nothing otherwise.

    ``book/build.py`` sets it for each chapter it executes and keeps the SHA-256 of every file read, so
    that a chapter whose inputs changed (a retrained checkpoint) counts as out of date.
    """
    log = os.environ.get(READS_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{Path(path).resolve()}\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, flush it to disk, then rename it onto ``path``.

    On any exception (a ``KeyboardInterrupt`` included) the temporary file is removed and ``path`` is left
    as it was. The new file gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
