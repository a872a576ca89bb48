"""Atomic file writes (a reader, or a process killed mid-write, sees the old file or the new one, never
half), and the hooks told of every checkpoint or cached metric the process reads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


_READ_HOOKS: list[Callable[[Path], None]] = []  # what on_read installed, called by record_read


def on_read(hook: Callable[[Path], None]) -> Callable[[], None]:
    """Call ``hook(path)`` for every :func:`record_read` of this process from now on; return a function that
    removes the hook again. The library does not know who listens: the publishing layer installs one
    (:func:`thesis_lib.publishing.reads.log_reads`)."""
    _READ_HOOKS.append(hook)
    return lambda: _READ_HOOKS.remove(hook)


def record_read(path: str | os.PathLike) -> None:
    """Note that this process read ``path`` (a checkpoint, a cached metric): each hook installed with
    :func:`on_read` gets its resolved path; without a hook nothing happens."""
    resolved = Path(path).resolve()
    for hook in tuple(_READ_HOOKS):
        hook(resolved)


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
