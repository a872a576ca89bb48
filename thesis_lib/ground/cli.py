"""What the command lines share: one-line usage errors, and checks of the paths a user passes.

Every entry point (``book/build.py`` and ``python -m thesis_lib.{data,experiments,likelihoods,reproduce}``)
refuses a bad argument with exit status 2 and a single line on stderr, ``PROG: error: MESSAGE``, where the
message names the parameter and what it allows; never with a traceback, and before any work starts.

Torch-free, like :mod:`thesis_lib.ground.config`: ``book/build.py`` imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``PROG: error: MESSAGE (see PROG --help)``.

    Its sub-command parsers are of the same class (argparse makes them with ``type(self)``).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@contextlib.contextmanager
def usage_errors(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Turn a ``ValueError`` raised while the arguments are checked into the parser's one-line error.

    Wrap only the checks of what the user passed (building configurations from the arguments), never the
    work itself: a ``ValueError`` from deep inside a computation is a bug and keeps its traceback.
    """
    try:
        yield
    except ValueError as exc:
        parser.error(str(exc))


def _why_not(path: Path) -> str:
    return "is a file, not a folder" if path.exists() else "does not exist"


def existing_dir(name: str, value: str | os.PathLike) -> Path:
    """``value`` as a path if it is an existing folder; otherwise ``ValueError`` naming ``name``."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"{name} must be an existing folder; {value} {_why_not(path)}")
    return path


def folder_to_write(name: str, value: str | os.PathLike) -> Path:
    """``value`` as a path, created (with its parents) if missing: a folder the command is about to write into.

    Raises ``ValueError`` naming ``name`` when the path is a file or the folder cannot be created.
    """
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a folder; {value} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} must be a folder that can be created; {value}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{name} must be a folder that can be written; {value} is not writable")
    return path


def folder_target(name: str, value: str | os.PathLike) -> Path:
    """``value`` as a path that is a folder or can become one (nothing is created): not a file, and the
    nearest part of it that exists is a folder. Otherwise ``ValueError`` naming ``name``."""
    path = Path(value).expanduser()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies inside the file {existing}"
        raise ValueError(f"{name} must be a folder; {value} {where}")
    return path


def existing_file(name: str, value: str | os.PathLike) -> Path:
    """``value`` as a path if it is an existing regular file; otherwise ``ValueError`` naming ``name``."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{name} must be an existing file; {value} "
                         f"{'is a folder' if path.is_dir() else 'does not exist'}")
    return path


def check_scheduler(name: str, address: str, timeout: float = 3.0) -> str:
    """``address`` if a TCP server answers there (a Dask scheduler's ``tcp://host:port`` or ``host:port``).

    Addresses of other protocols are returned unchecked. Raises ``ValueError`` naming ``name`` when nothing
    listens there, within ``timeout`` seconds.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return address
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ValueError(f"{name} must be a scheduler address such as tcp://HOST:PORT; got {address!r}")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{name}: no scheduler answers at {address} ({reason}); start one with `dask scheduler`, "
                         "or leave the option out for a local cluster") from None
    return address
