"""Where things live: the repository, the data cache, the committed checkpoints, the figures.

The ground floor of the library, with :mod:`thesis_lib.ground.validation` and :mod:`thesis_lib.ground.files`:
it imports nothing else of ``thesis_lib`` and nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """Where the data sets are cached: ``$THESIS_DATA_DIR``, else ``~/.cache/thesis-companion``."""
    env = os.environ.get("THESIS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "thesis-companion"


def default_checkpoint_dir() -> Path:
    """Committed checkpoints of the ``full`` profile live in ``checkpoints/`` at the repository root."""
    return REPO_ROOT / "checkpoints"


def default_figures_dir() -> Path:
    """Figures are written as PNG and PDF to ``book/_build/figures/``."""
    return REPO_ROOT / "book" / "_build" / "figures"
