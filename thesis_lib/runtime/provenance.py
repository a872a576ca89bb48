"""Provenance: where a run happened (Python, torch, device, CPU, threads, git commit, date).

:func:`environment_info` describes the process; checkpoints keep :func:`git_commit` and the CPU model, and
the chapters end with the same description as a table
(:func:`thesis_lib.publishing.chapter.environment_table`).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import thesis_lib

# Changes under these paths are the build's own output, not its input: they do not make a tree "dirty"
# (re-executing chapter 1 rewrites book/chapters/01_*.ipynb before chapter 2 asks for the commit).
_OUTPUT_PATHS = ("book/chapters", "book/_build")


def _repo_root() -> Path:
    """The folder that holds the ``thesis_lib`` package (the checkout, when it is one)."""
    return Path(__file__).resolve().parents[2]


def _git(args: list[str], cwd: Path) -> str | None:
    """Run ``git ARGS`` in ``cwd``; return its stripped stdout, or ``None`` if git fails or is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(short: bool = True, cwd: str | os.PathLike | None = None) -> str:
    """Return the commit checked out in ``cwd`` (default: this library's checkout).

    The hash is abbreviated (``git rev-parse --short``) when ``short`` and gets the suffix
    ``+dirty`` when tracked files have uncommitted changes; untracked files and changes under the
    build's own outputs (``book/chapters/``, ``book/_build/``) do not count. Returns ``"unknown"``
    outside a git checkout, in a repository without commits, or when git is not installed.
    """
    where = _repo_root() if cwd is None else Path(cwd)
    commit = _git(["rev-parse", "--short", "HEAD"] if short else ["rev-parse", "HEAD"], where)
    if not commit:
        return "unknown"
    excludes = [f":(exclude,top){p}" for p in _OUTPUT_PATHS]
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excludes], where)
    return commit + ("+dirty" if status else "")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _device_used(cfg: Any, torch: Any) -> str:
    """The device the chapter used, resolved from ``cfg`` (``"auto"`` becomes cpu or cuda)."""
    if cfg is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = str(cfg.device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def environment_info(cfg: Any = None) -> dict[str, str]:
    """Describe the environment a chapter ran in, as strings keyed by ``python``, ``torch``,
    ``device``, ``cpu``, ``threads``, ``profile``, ``seed``, ``git_commit``, ``thesis_lib``, ``date``.

    ``cfg`` is the chapter's ChapterConfig, or ``None`` (profile and seed are then ``"n/a"`` and the
    device is the one ``"auto"`` would pick). The date is the day of execution in UTC (ISO 8601).
    """
    import torch  # here, not at the top: importing this module must stay cheap (no torch)

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "device": _device_used(cfg, torch),
        "cpu": cpu_model(),
        "threads": str(torch.get_num_threads()),
        "profile": "n/a" if cfg is None else str(cfg.profile),
        "seed": "n/a" if cfg is None else str(cfg.seed),
        "git_commit": git_commit(short=True),
        "thesis_lib": str(getattr(thesis_lib, "__version__", "unknown")),
        "date": _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
    }
