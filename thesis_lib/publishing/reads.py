"""The files a chapter read, for the book's build: a hook on :func:`thesis_lib.ground.files.record_read`.

``book/build.py`` starts each chapter's kernel with ``$THESIS_READS_LOG`` naming a file; the chapter's first
cell (:func:`thesis_lib.publishing.chapter.start_chapter`) calls :func:`log_reads`, which appends the path of every
checkpoint and cached metric the chapter then reads to that file. The build keeps their SHA-256, so a
chapter whose inputs changed (a retrained checkpoint) counts as out of date. The runtime that reads the
files only calls ``record_read``; it knows nothing of the book.

Torch-free, like :mod:`thesis_lib.ground.config`: ``book/execution.py`` imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from thesis_lib.ground.files import on_read

READS_LOG_ENV = "THESIS_READS_LOG"  # the file the build names for a chapter's kernel


def log_reads(environ: Mapping[str, str] = os.environ) -> Callable[[], None] | None:
    """When ``environ`` names a reads log, append every path that :func:`~thesis_lib.ground.files.record_read` sees
    from now on to it, a line each; return the function that stops it (None when no log is named)."""
    log = environ.get(READS_LOG_ENV)
    if not log:
        return None

    def append(path: Path) -> None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{path}\n")

    return on_read(append)
