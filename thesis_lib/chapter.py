"""A chapter's first cell: its parameters checked, the process set up, the device chosen.

Every chapter starts with::

    from thesis_lib.chapter import start_chapter

    ch = start_chapter("04", profile=profile, seed=seed, device=device, data_dir=data_dir,
                       retrain=retrain, figures_dir=figures_dir)
    cfg, dev = ch.cfg, ch.device

and saves each figure with ``ch.figure(fig, "ch4_name")``. The chapter is an entry point of its
own process (a Jupyter kernel), so this is where the process is tuned for training
(:func:`thesis_lib.process.tune_process`), once, before torch computes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thesis_lib.config import ChapterConfig
from thesis_lib.plotting import save_figure
from thesis_lib.process import resolve_device, tune_process


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
    (:func:`~thesis_lib.process.tune_process` with ``threads``) and resolve the device."""
    cfg = ChapterConfig.from_parameters(chapter=chapter, **parameters)
    device = resolve_device(cfg.device)
    return Chapter(cfg, device, tune_process(threads))


def format_error(value: float, floor: float = 1e-12, spec: str = ".2e") -> str:
    """``value`` formatted with ``spec``, or ``< floor`` (for example ``< 1e-12``) when it is below ``floor``.

    How a chapter prints a number at rounding level (an error, a residual, a difference from an oracle): its
    digits depend on which kernels the CPU runs, so what a regression test compares is the bound it keeps.
    """
    return f"< {floor:g}" if abs(value) < floor else format(value, spec)
