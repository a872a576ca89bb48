"""Figures for the book: saving, loss curves, latent spaces, function plots and histograms.

Every function builds a fresh :class:`matplotlib.figure.Figure` (never ``pyplot``), so no state
leaks between calls and nothing depends on the interactive backend. The Agg canvas is attached
inside the functions; importing this module imports neither matplotlib nor a backend, so
matplotlib is imported inside the functions that draw. The figures display themselves in a
notebook (they have a ``_repr_png_``) and are written to disk with :func:`save_figure` under
stable names such as ``ch2_linear_autoencoder``. Images are drawn by :mod:`thesis_lib.publishing.image_plots`
and network diagrams by :mod:`thesis_lib.publishing.diagrams`, with the helpers of this module.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from thesis_lib.ground.validation import check_choice

if TYPE_CHECKING:  # imported for the annotations only
    from matplotlib.figure import Figure

SAVE_FORMATS = ("png", "pdf", "svg")
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")


# --------------------------------------------------------------------------- helpers, shared with image_plots, diagrams


@functools.lru_cache(maxsize=1)
def _book_figure_class() -> type:
    """The Figure subclass, built on first use so that importing this module loads no matplotlib."""
    from matplotlib.figure import Figure  # lazy: see the module docstring

    class BookFigure(Figure):
        """A Figure that renders itself as PNG in IPython, with or without the inline backend."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
            return buf.getvalue()

    return BookFigure


def _new_figure(**kwargs: Any) -> Figure:
    """A pyplot-free figure with an Agg canvas attached (the backend is chosen here)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: see the module docstring

    fig = _book_figure_class()(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _as_cpu_float(value: Tensor) -> Tensor:
    """``value``, a tensor of real numbers, detached and copied to the CPU as float32 (for drawing)."""
    return value.detach().to("cpu", torch.float32)


# --------------------------------------------------------------------------- saving


def save_figure(
    fig: Figure,
    name: str,
    directory: str | os.PathLike,
    formats: Sequence[str] | str = ("png", "pdf"),
    dpi: float = 150,
) -> list[Path]:
    r"""Write ``fig`` to ``<directory>/<name>.<format>`` for each format, atomically.

    Every format is first rendered to a hidden temporary file in ``directory`` and only
    when all of them succeeded are they moved onto their targets with :func:`os.replace`,
    so an error while saving leaves neither a partial file nor a half-updated set.
    ``directory`` is created if missing. ``name`` must match ``^[a-z0-9][a-z0-9_]*$``
    (stable names such as ``ch3_max_pooling`` that the book refers to).

    The output is reproducible: no time stamps or software versions are written into PNG
    metadata, the PDF carries no ``CreationDate`` and a fixed ``Creator``, and SVG ids are
    salted with ``name`` instead of random numbers. Saving the same figure twice gives the
    same bytes. Figures are cropped to their content (``bbox_inches="tight"``).

    Returns the target paths, in the order of ``formats``.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"name must match ^[a-z0-9][a-z0-9_]*$ (lower-case letters, digits, underscores, "
            f"e.g. 'ch3_max_pooling'); got {name!r}"
        )
    if not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
        raise ValueError(f"directory must be a non-empty path; got {directory!r}")
    if isinstance(formats, str):
        formats = (formats,)
    for fmt in formats:
        check_choice("formats", fmt, SAVE_FORMATS)
    dpi = float(dpi)

    import matplotlib  # lazy: see the module docstring

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        "png": {"Software": None},
        "pdf": {"CreationDate": None, "Creator": "thesis_lib"},
        "svg": {"Date": None, "Creator": "thesis_lib"},
    }
    targets = [out_dir / f"{name}.{fmt}" for fmt in formats]
    temps: list[Path] = []
    try:
        for fmt in formats:
            tmp = out_dir / f".{name}.{secrets.token_hex(6)}.{fmt}.tmp"
            temps.append(tmp)
            with matplotlib.rc_context({"svg.hashsalt": name}):
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata[fmt], bbox_inches="tight")
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return targets


# --------------------------------------------------------------------------- curves and scatter


def loss_curves(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    logy: bool = True,
    title: str | None = None,
) -> Figure:
    r"""Per-epoch curves from a training history, epoch 1 first.

    ``history`` maps names such as ``"train_loss"`` and ``"test_loss"`` to one value per
    epoch (curves may have different lengths; an epoch whose value is NaN is skipped, and a
    curve needs one finite value); ``keys`` picks and orders the curves (default: all, in
    ``history``'s order). ``logy`` draws the y axis logarithmically, which needs positive values.
    """
    if keys is None:
        keys = list(history)
    for key in keys:
        check_choice("keys", key, list(history))
    curves = {}
    for key in keys:
        values = history[key]
        if isinstance(values, Tensor):
            values = values.detach().cpu().reshape(-1).tolist()
        if logy and any(v <= 0 for v in values):  # NaN compares False: an epoch without a value
            raise ValueError(
                f"logy=True needs positive values, but history[{key!r}] has min {min(values)!r}; pass logy=False"
            )
        curves[key] = [float(v) for v in values]

    from matplotlib.ticker import MaxNLocator  # lazy: see the module docstring

    fig = _new_figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for key, values in curves.items():
        # Epochs without a value (NaN: a test loss evaluated only every few epochs) are skipped, not
        # drawn as gaps, so that a curve evaluated every 10th epoch is still a line.
        points = [(e, v) for e, v in enumerate(values, start=1) if math.isfinite(v)]
        if not points:
            raise ValueError(f"history[{key!r}] has no finite value to plot")
        epochs, ys = zip(*points)
        ax.plot(epochs, ys, marker="o" if len(ys) <= 30 else None, markersize=3, label=key)
    if logy:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return fig


def latent_scatter(
    z: Tensor,
    labels: Tensor | None = None,
    title: str | None = None,
    max_points: int = 5000,
    seed: int = 0,
) -> Figure:
    r"""Scatter plot of 2-d or 3-d latent codes, coloured by digit class.

    ``z`` is ``(N, 2)`` (2-d axes) or ``(N, 3)`` (a 3-d axes, e.g. the bottleneck
    :math:`n_b = 3` of Algorithm 2); ``labels`` is ``(N,)`` with integer classes in 0..9,
    drawn in ``tab10`` with one legend entry per class present. At most ``max_points``
    points are drawn: a random subset chosen with ``seed`` (the same subset every call).
    """
    codes = _as_cpu_float(z)
    n, dim = codes.shape
    if labels is not None:
        labels = labels.detach().cpu().long()

    if n > max_points:
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
        codes = codes[keep]
        labels = labels[keep] if labels is not None else None

    from matplotlib import colormaps  # lazy: see the module docstring

    fig = _new_figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.add_subplot(projection="3d" if dim == 3 else None)
    size = 4 if codes.shape[0] > 1000 else 10
    if labels is None:
        ax.scatter(*codes.T.numpy(), s=size, alpha=0.6, color="C0", linewidths=0)
    else:
        cmap = colormaps["tab10"]
        for digit in labels.unique().tolist():
            pts = codes[labels == digit]
            ax.scatter(*pts.T.numpy(), s=size, alpha=0.7, color=cmap(digit), linewidths=0, label=str(digit))
        # A figure legend outside the axes: inside, it hides points (2-d) or the z_3 label (3-d).
        fig.legend(title="digit", markerscale=2.5 if size < 10 else 1.5, fontsize=8, loc="outside right upper")
    ax.set_xlabel(r"$z_1$")
    ax.set_ylabel(r"$z_2$")
    if dim == 3:
        ax.set_zlabel(r"$z_3$")
    if title is not None:
        ax.set_title(title)
    return fig


def function_plot(
    funcs: Mapping[str, Callable[[Tensor], Tensor]],
    x_range: tuple[float, float] = (-4, 4),
    n: int = 401,
    title: str | None = None,
) -> Figure:
    r"""Plot real functions :math:`\varphi:\mathbb{R}\to\mathbb{R}` on one axes, e.g. activations.

    Each function is applied element-wise to ``torch.linspace(*x_range, n)`` and must return
    a tensor of the same shape. The axes through the origin are drawn faintly.

    Thesis: Definition 1.1.1, Example 1.1.2.
    """
    ok = (isinstance(x_range, Sequence) and len(x_range) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in x_range))
    if not ok or x_range[0] >= x_range[1]:
        raise ValueError(f"x_range must be two finite numbers (low, high) with low < high; got {x_range!r}")

    t = torch.linspace(float(x_range[0]), float(x_range[1]), n)
    values = {}
    with torch.no_grad():
        for key, f in funcs.items():
            values[key] = f(t).detach().cpu().float()

    fig = _new_figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0.0, color="0.7", lw=0.8, zorder=0)
    ax.axvline(0.0, color="0.7", lw=0.8, zorder=0)
    for k, (key, y) in enumerate(values.items()):  # line styles tell apart curves that coincide (ReLU, leaky ReLU)
        ax.plot(t.numpy(), y.numpy(), label=key, ls=("-", "--", "-.", ":")[k % 4])
    ax.set_xlim(float(x_range[0]), float(x_range[1]))
    ax.set_xlabel(r"$t$")
    ax.set_ylabel(r"$\varphi(t)$")
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return fig


def histogram_compare(
    scores: Mapping[str, Tensor],
    bins: int = 50,
    title: str | None = None,
    *,
    density: bool = True,
    threshold: float | None = None,
    xlabel: str = "anomaly score",
) -> Figure:
    r"""Overlaid histograms of scores (e.g. reconstruction errors of normal vs. anomalous data).

    All groups share the same ``bins`` bin edges, spanning the smallest to the largest
    score of all groups, so the bars are comparable. With ``density`` (default) each
    histogram integrates to 1, which compares groups of different size; otherwise counts.
    ``threshold`` draws a dashed vertical line (a decision threshold).
    """
    groups = {key: _as_cpu_float(s).double() for key, s in scores.items()}
    everything = torch.cat(list(groups.values()))
    lo, hi = everything.min().item(), everything.max().item()
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64).numpy()
    fig = _new_figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for key, s in groups.items():
        ax.hist(s.numpy(), bins=edges, density=density, alpha=0.5, label=key, histtype="stepfilled",
                edgecolor="none")
    if threshold is not None:
        ax.axvline(float(threshold), color="k", ls="--", lw=1.0, label="threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "count")
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return fig
