"""A chapter's first and last cells: its parameters checked, the process set up, the device chosen; and
the environment it ran in, as a table.

Every chapter starts with::

    from thesis_lib.publishing.chapter import start_chapter

    ch = start_chapter("04", profile=profile, seed=seed, device=device, data_dir=data_dir,
                       retrain=retrain, figures_dir=figures_dir)
    cfg, dev = ch.cfg, ch.device

and saves each figure with ``ch.figure(fig, "ch4_name")``. The chapter is an entry point of its
own process (a Jupyter kernel), so this is where the process is tuned for training
(:func:`thesis_lib.runtime.process.tune_process`), once, before torch computes anything. Every chapter
ends with ``environment_table(cfg)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thesis_lib.ground.config import ChapterConfig
from thesis_lib.publishing.plotting import save_figure
from thesis_lib.publishing.reads import log_reads
from thesis_lib.runtime.process import resolve_device, tune_process
from thesis_lib.runtime.provenance import environment_info


@dataclass(frozen=True)
class Chapter:
    """A started chapter: its configuration, the torch device it computes on, the process settings."""

    cfg: ChapterConfig
    device: str  # "cpu" or "cuda": cfg.device with "auto" resolved
    process: dict[str, object]  # what tune_process set

    def figure(self, fig: Any, name: str) -> Any:
        """Save ``fig`` as PNG and PDF under the chapter's ``figures_dir`` as ``name``; return ``fig``."""
        save_figure(fig, name, self.cfg.figures_dir)
        return fig


def start_chapter(chapter: str, *, threads: int | None = None, **parameters: Any) -> Chapter:
    """Check a chapter's parameters (those of :meth:`ChapterConfig.from_parameters`), tune the process
    (:func:`~thesis_lib.runtime.process.tune_process` with ``threads``), resolve the device, and log the files the
    chapter reads where the build asks for it (:func:`~thesis_lib.publishing.reads.log_reads`)."""
    cfg = ChapterConfig.from_parameters(chapter=chapter, **parameters)
    device = resolve_device(cfg.device)
    log_reads()
    return Chapter(cfg, device, tune_process(threads))


def format_error(value: float, floor: float = 1e-12, spec: str = ".2e") -> str:
    """``value`` formatted with ``spec``, or ``< floor`` (for example ``< 1e-12``) when it is below ``floor``.

    How a chapter prints a number at rounding level (an error, a residual, a difference from an oracle): its
    digits depend on which kernels the CPU runs, so what a regression test compares is the bound it keeps.
    """
    return f"< {floor:g}" if abs(value) < floor else format(value, spec)


# Labels of the table, in the order they are shown; keys are those of environment_info().
_LABELS = {
    "python": "Python",
    "torch": "torch",
    "device": "device",
    "cpu": "CPU",
    "threads": "torch threads",
    "profile": "profile",
    "seed": "seed",
    "git_commit": "git commit",
    "thesis_lib": "thesis_lib",
    "date": "date",
}


def markdown_table(info: dict[str, str]) -> str:
    """Render ``environment_info()``'s dict as a two-column Markdown table (``|`` escaped)."""
    if not isinstance(info, dict):
        raise ValueError(f"info must be a dict of strings; got {info!r}")
    lines = ["| environment | |", "|---|---|"]
    for key, value in info.items():
        label = _LABELS.get(key, key)
        text = str(value).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {label} | `{text}` |")
    return "\n".join(lines)


def environment_table(cfg: Any = None) -> Any:
    """Return the environment as an :class:`IPython.display.Markdown` table: the last cell of a chapter.

    Displayed by the notebook and rendered by the book as a table; its ``.data`` is the Markdown text.
    """
    from IPython.display import Markdown

    return Markdown(markdown_table(environment_info(cfg)))
