r"""Figures for the book: image grids, loss curves, latent spaces and network diagrams.

Every function builds a fresh :class:`matplotlib.figure.Figure` (never ``pyplot``), so no
state leaks between calls and nothing depends on the interactive backend. The Agg canvas
is attached inside the functions; importing this module imports neither matplotlib nor
a backend. The returned figures display themselves in a notebook (they have a
``_repr_png_``) and are written to disk with :func:`save_figure` under stable names
such as ``ch2_linear_autoencoder``.
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

from thesis_lib.validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
    check_widths,
)

if TYPE_CHECKING:  # imported for the annotations only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Layer widths of the thesis's network figures (input, hidden..., output).
FIGURE_1_1_WIDTHS = (4, 3, 4, 5, 3, 7, 2)  # Figure 1.1: R^4 -> R^2, hidden 3, 4, 5, 3, 7
FIGURE_2_1_WIDTHS = (5, 4, 3, 2, 3, 4, 5)  # Figure 2.1: autoencoder, bottleneck 2
FIGURE_2_2_WIDTHS = (5, 4, 3, 2)  # Figure 2.2: encoder R^5 -> R^2
FIGURE_2_3_WIDTHS = (2, 3, 4, 5)  # Figure 2.3: decoder R^2 -> R^5
# Algorithm 2: 784 -> 128 -> 64 -> 12 -> bottleneck 3, and back to 784.
ALGORITHM_2_WIDTHS = (784, 128, 64, 12, 3, 12, 64, 128, 784)

SAVE_FORMATS = ("png", "pdf", "svg")
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# NN-SVG's FCNN defaults, which drew the thesis's Figures 1.1 and 2.1-2.3.
_NODE_FACE, _NODE_EDGE, _EDGE_COLOR = "#ffffff", "#333333", "#505050"


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _book_figure_class() -> type:
    """The Figure subclass, built on first use so that importing this module loads no matplotlib."""
    from matplotlib.figure import Figure

    class BookFigure(Figure):
        """A Figure that renders itself as PNG in IPython, with or without the inline backend."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
            return buf.getvalue()

    return BookFigure


def _new_figure(**kwargs: Any) -> Figure:
    """A pyplot-free figure with an Agg canvas attached (the backend is chosen here)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _book_figure_class()(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _check_tensor(name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers; got dtype {value.dtype}")
    return value.detach().to("cpu", torch.float32)


def _as_image_batch(name: str, images: Any, *, unit_range: bool) -> Tensor:
    """Return ``images`` as a float tensor ``(B, 1, H, W)``.

    Accepts ``(B, D)`` with ``D`` a perfect square (MNIST: 784 = 28^2), ``(B, H, W)`` and
    ``(B, 1, H, W)``. With ``unit_range`` the values must lie in [0, 1].
    """
    x = _check_tensor(name, images)
    shape = tuple(x.shape)
    if x.dim() == 2:
        side = math.isqrt(shape[1])
        if shape[1] == 0 or side * side != shape[1]:
            raise ValueError(
                f"{name} of shape {shape} must be (B, D) with D a perfect square such as 784, "
                "(B, H, W) or (B, 1, H, W)"
            )
        x = x.reshape(shape[0], 1, side, side)
    elif x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() != 4 or shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 784), (B, H, W) or (B, 1, H, W); got {shape}")
    if x.numel() == 0:
        raise ValueError(f"{name} must hold at least one non-empty image; got shape {shape}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite; got NaN or infinite values")
    if unit_range and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name} must have values in [0, 1]; got min {x.min().item():.4g}, max {x.max().item():.4g}"
        )
    return x


def _check_optional_str(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None; got {value!r}")


def _check_str_sequence(name: str, value: Any, length: int | None) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a sequence of strings; got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries; got {len(value)}: {list(value)!r}")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must contain strings only; got {list(value)!r}")
    return list(value)


def _check_axes(ax: Any) -> None:
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}")


def _clean_image_axes(ax: Axes) -> None:
    """No ticks and no frame; keeps the y label (``axis('off')`` would hide it)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


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
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"name must match ^[a-z0-9][a-z0-9_]*$ (lower-case letters, digits, underscores, "
            f"e.g. 'ch3_max_pooling'); got {name!r}"
        )
    if not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
        raise ValueError(f"directory must be a non-empty path; got {directory!r}")
    if isinstance(formats, str):
        formats = (formats,)
    if not isinstance(formats, Sequence) or len(formats) == 0:
        raise ValueError(f"formats must be a non-empty sequence of {SAVE_FORMATS}; got {formats!r}")
    for fmt in formats:
        check_choice("formats", fmt, SAVE_FORMATS)
    if len(set(formats)) != len(formats):
        raise ValueError(f"formats must not repeat a format; got {list(formats)!r}")
    dpi = check_positive_float("dpi", dpi)

    import matplotlib

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


# --------------------------------------------------------------------------- images


def image_grid(
    images: Tensor,
    nrow: int = 8,
    title: str | None = None,
    labels: Sequence[Any] | Tensor | None = None,
    padding: int = 2,
    ax: Axes | None = None,
    pad_value: float = 1.0,
) -> Figure:
    r"""Tile greyscale images with :func:`torchvision.utils.make_grid` and show them.

    ``images`` is ``(B, 784)`` (flattened MNIST), ``(B, H, W)`` or ``(B, 1, H, W)`` with
    values in [0, 1]; ``nrow`` images per row, ``padding`` pixels of ``pad_value`` between
    them. ``labels`` (one per image, e.g. the digit classes or predictions) are written into
    the top-left corner of each tile. Drawn with ``vmin=0, vmax=1`` so that grey levels are
    comparable between figures; no ticks.

    The figure is new unless ``ax`` is given, in which case it is drawn into ``ax`` and
    ``ax``'s figure is returned.
    """
    x = _as_image_batch("images", images, unit_range=True)
    nrow = check_positive_int("nrow", nrow)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer; got {padding!r}")
    _check_optional_str("title", title)
    _check_axes(ax)
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, float)) or not 0 <= pad_value <= 1:
        raise ValueError(f"pad_value must be a number in [0, 1]; got {pad_value!r}")
    n = x.shape[0]
    if labels is not None:
        if isinstance(labels, Tensor):
            labels = labels.detach().cpu().reshape(-1).tolist()
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence) or len(labels) != n:
            raise ValueError(f"labels must be None or a sequence of {n} labels (one per image); got {labels!r}")

    from torchvision.utils import make_grid

    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=float(pad_value))[0]  # (H', W')
    if ax is None:
        height, width = grid.shape
        scale = min(12.0 / width, 12.0 / height, 1 / 40)  # inches per pixel, at most 12 in
        fig = _new_figure(figsize=(max(width * scale, 1.0), max(height * scale, 1.0) + (0.3 if title else 0)),
                          layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    _clean_image_axes(ax)
    if title is not None:
        ax.set_title(title)
    if labels is not None:
        h, w = x.shape[-2:]
        ncol = min(nrow, n)
        for k, label in enumerate(labels):
            top = (k // ncol) * (h + padding) + padding
            left = (k % ncol) * (w + padding) + padding
            ax.text(left + 0.5, top + 0.5, str(label), color="#ffd700", fontsize=7,
                    ha="left", va="top", fontweight="bold")
    return fig


def side_by_side(
    rows: Sequence[Tensor],
    row_titles: Sequence[str],
    *,
    col_titles: Sequence[str] | None = None,
    signed_rows: Sequence[int] = (),
    colorbar: bool | Sequence[int] = False,
    title: str | None = None,
    cell_size: float = 1.1,
) -> Figure:
    r"""Show rows of images one above the other, one axes per image, columns aligned.

    Typical uses: originals over reconstructions, or, for an image operator, the input,
    our result, torch's result and their difference. Each entry of ``rows`` is a batch
    ``(B, 784)``, ``(B, H, W)`` or ``(B, 1, H, W)``; rows may differ in ``B`` and in image
    size (e.g. a 28x28 input over a 26x26 convolution output).

    Each row has one colour scale for all its images: rows whose values lie in [0, 1]
    are shown in grey on [0, 1], other rows on their own [min, max]. Rows listed in
    ``signed_rows`` (differences) use a diverging map symmetric about 0, scaled to the
    row's largest absolute value, which is added to the row title. ``colorbar`` is
    ``True`` for a colour bar beside every row, or the indices of the rows that get one.
    """
    if isinstance(rows, Tensor) or isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or not rows:
        raise ValueError(f"rows must be a non-empty sequence of image tensors; got {type(rows).__name__}")
    batches = [_as_image_batch(f"rows[{i}]", r, unit_range=False) for i, r in enumerate(rows)]
    n_rows = len(batches)
    n_cols = max(b.shape[0] for b in batches)
    row_titles = _check_str_sequence("row_titles", row_titles, n_rows)
    if col_titles is not None:
        col_titles = _check_str_sequence("col_titles", col_titles, n_cols)

    def _indices(name: str, value: Any) -> set[int]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_rows for i in value
        ):
            raise ValueError(f"{name} must be row indices in 0..{n_rows - 1}; got {value!r}")
        return set(value)

    signed = _indices("signed_rows", signed_rows)
    if isinstance(colorbar, bool):
        with_bar = set(range(n_rows)) if colorbar else set()
    else:
        with_bar = _indices("colorbar", colorbar)
    _check_optional_str("title", title)
    cell_size = check_positive_float("cell_size", cell_size)

    fig = _new_figure(figsize=(cell_size * n_cols + (0.9 if with_bar else 0) + 0.5,
                               cell_size * n_rows + (0.4 if title else 0) + (0.3 if col_titles else 0)),
                      layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, batch in enumerate(batches):
        lo, hi = batch.min().item(), batch.max().item()
        label = row_titles[i]
        if i in signed:
            bound = max(abs(lo), abs(hi))
            label = f"{label}\nmax |·| = {bound:.2g}"
            cmap, vmin, vmax = "RdBu_r", -(bound or 1.0), bound or 1.0
        elif lo >= 0 and hi <= 1:
            cmap, vmin, vmax = "gray", 0.0, 1.0
        else:
            cmap, vmin, vmax = "gray", lo, (hi if hi > lo else lo + 1.0)
        image = None
        for j in range(n_cols):
            ax = axes[i, j]
            if j >= batch.shape[0]:
                ax.remove()
                continue
            image = ax.imshow(batch[j, 0].numpy(), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            _clean_image_axes(ax)
            if i == 0 and col_titles is not None:
                ax.set_title(col_titles[j], fontsize=9)
        axes[i, 0].set_ylabel(label, fontsize=9)
        if i in with_bar:
            fig.colorbar(image, ax=list(axes[i, : batch.shape[0]]), shrink=0.9, aspect=12, pad=0.02)
    if title is not None:
        fig.suptitle(title)
    return fig


def manifold_grid(
    decode: Callable[[Tensor], Tensor],
    grid_size: int = 15,
    span: float | None = None,
    *,
    title: str | None = None,
) -> Figure:
    r"""Decode a regular grid of 2-d latent points and tile the images (the learned manifold).

    With ``span=None`` (default) the grid runs through the standard normal quantiles
    :math:`z_k = \Phi^{-1}(p_k)`, :math:`p_k` evenly spaced in [0.05, 0.95], so that equal
    steps carry equal prior mass; with a number it is evenly spaced in ``[-span, span]``.
    ``decode`` maps ``(grid_size**2, 2)`` latent points to images ``(N, 784)``,
    ``(N, H, W)`` or ``(N, 1, H, W)`` with values in [0, 1]; it runs under
    ``torch.no_grad()`` (put a module in ``eval()`` mode first). :math:`z_1` grows to the
    right and :math:`z_2` upwards. The latent points, in tile order, are stored as
    ``fig.latent_grid`` (``(grid_size**2, 2)``).
    """
    if not callable(decode):
        raise ValueError(f"decode must be callable (latent points -> images); got {decode!r}")
    grid_size = check_positive_int("grid_size", grid_size)
    if span is not None:
        span = check_positive_float("span", span)
    _check_optional_str("title", title)

    if span is None:
        probs = torch.linspace(0.05, 0.95, grid_size) if grid_size > 1 else torch.tensor([0.5])
        axis = torch.distributions.Normal(0.0, 1.0).icdf(probs)
    else:
        axis = torch.linspace(-span, span, grid_size) if grid_size > 1 else torch.zeros(1)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # rows: z2 from top (high) to bottom
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # (G*G, 2)
    with torch.no_grad():
        out = decode(z)
    images = _as_image_batch("decode(z)", out, unit_range=True)
    if images.shape[0] != z.shape[0]:
        raise ValueError(f"decode(z) must return one image per latent point ({z.shape[0]}); got {images.shape[0]}")

    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=grid_size, padding=0)[0]
    h, w = images.shape[-2:]
    fig = _new_figure(figsize=(6.5, 6.5 + (0.3 if title else 0)), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    step = max(1, grid_size // 5)
    ticks = list(range(0, grid_size, step))
    ax.set_xticks([(k + 0.5) * w - 0.5 for k in ticks], [f"{axis[k]:.2f}" for k in ticks], fontsize=8)
    ax.set_yticks([(k + 0.5) * h - 0.5 for k in ticks], [f"{axis.flip(0)[k]:.2f}" for k in ticks], fontsize=8)
    ax.set_xlabel(r"$z_1$")
    ax.set_ylabel(r"$z_2$")
    if title is not None:
        ax.set_title(title)
    fig.latent_grid = z
    return fig


# --------------------------------------------------------------------------- curves and scatter


def loss_curves(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    logy: bool = True,
    title: str | None = None,
) -> Figure:
    r"""Per-epoch curves from a training history, epoch 1 first.

    ``history`` maps names such as ``"train_loss"`` and ``"test_loss"`` to one value per
    epoch (curves may have different lengths; NaN shows as a gap); ``keys`` picks and orders
    the curves (default: all, in ``history``'s order). ``logy`` draws the y axis
    logarithmically, which needs positive values.
    """
    if not isinstance(history, Mapping) or len(history) == 0:
        raise ValueError(f"history must be a non-empty mapping of name -> per-epoch values; got {history!r}")
    if keys is None:
        keys = list(history)
    keys = _check_str_sequence("keys", keys, None)
    if not keys:
        raise ValueError("keys must name at least one curve; got []")
    for key in keys:
        check_choice("keys", key, list(history))
    if not isinstance(logy, bool):
        raise ValueError(f"logy must be True or False; got {logy!r}")
    _check_optional_str("title", title)
    curves = {}
    for key in keys:
        values = history[key]
        if isinstance(values, Tensor):
            values = values.detach().cpu().reshape(-1).tolist()
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise ValueError(f"history[{key!r}] must be a non-empty sequence of numbers; got {values!r}")
        if logy and any(v <= 0 for v in values):  # NaN compares False and is kept as a gap
            raise ValueError(
                f"logy=True needs positive values, but history[{key!r}] has min {min(values)!r}; pass logy=False"
            )
        curves[key] = [float(v) for v in values]

    from matplotlib.ticker import MaxNLocator

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
    codes = _check_tensor("z", z)
    if codes.dim() != 2 or codes.shape[1] not in (2, 3) or codes.shape[0] == 0:
        raise ValueError(f"z must have shape (N, 2) or (N, 3) with N >= 1; got {tuple(codes.shape)}")
    if not torch.isfinite(codes).all():
        raise ValueError("z must be finite; got NaN or infinite values")
    n, dim = codes.shape
    if labels is not None:
        if not isinstance(labels, Tensor) or tuple(labels.shape) != (n,):
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"labels must be None or a tensor of shape ({n},); got {shape}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must have an integer dtype; got {labels.dtype}")
        if labels.min() < 0 or labels.max() > 9:
            lo, hi = labels.min().item(), labels.max().item()
            raise ValueError(f"labels must be digit classes in 0..9; got values {lo}..{hi}")
        labels = labels.detach().cpu().long()
    _check_optional_str("title", title)
    max_points = check_positive_int("max_points", max_points)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}")

    if n > max_points:
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
        codes = codes[keep]
        labels = labels[keep] if labels is not None else None

    from matplotlib import colormaps

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
    if not isinstance(funcs, Mapping) or len(funcs) == 0:
        raise ValueError(f"funcs must be a non-empty mapping of name -> function; got {funcs!r}")
    for key, f in funcs.items():
        if not isinstance(key, str) or not callable(f):
            raise ValueError(f"funcs must map names (str) to callables; got {key!r}: {f!r}")
    ok = (isinstance(x_range, Sequence) and len(x_range) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in x_range))
    if not ok or x_range[0] >= x_range[1]:
        raise ValueError(f"x_range must be two finite numbers (low, high) with low < high; got {x_range!r}")
    n = check_positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be at least 2 points; got {n}")
    _check_optional_str("title", title)

    t = torch.linspace(float(x_range[0]), float(x_range[1]), n)
    values = {}
    with torch.no_grad():
        for key, f in funcs.items():
            y = f(t)
            if not isinstance(y, Tensor) or y.shape != t.shape:
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(f"funcs[{key!r}] must return a tensor of shape ({n},) element-wise; got {got}")
            values[key] = y.detach().cpu().float()

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
    if not isinstance(scores, Mapping) or len(scores) == 0:
        raise ValueError(f"scores must be a non-empty mapping of name -> 1-d tensor; got {scores!r}")
    groups = {}
    for key, s in scores.items():
        if not isinstance(key, str):
            raise ValueError(f"scores keys must be strings; got {key!r}")
        s = _check_tensor(f"scores[{key!r}]", s)
        if s.dim() != 1 or s.numel() == 0:
            raise ValueError(f"scores[{key!r}] must be a non-empty 1-d tensor; got shape {tuple(s.shape)}")
        if not torch.isfinite(s).all():
            raise ValueError(f"scores[{key!r}] must be finite; got NaN or infinite values")
        groups[key] = s.double()
    bins = check_positive_int("bins", bins)
    _check_optional_str("title", title)
    if not isinstance(density, bool):
        raise ValueError(f"density must be True or False; got {density!r}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number or None; got {threshold!r}")
    if not isinstance(xlabel, str):
        raise ValueError(f"xlabel must be a string; got {xlabel!r}")

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


# --------------------------------------------------------------------------- network diagrams


def _default_layer_label(i: int, n_layers: int) -> str:
    if i == 0:
        return "Input Layer"
    return "Output Layer" if i == n_layers - 1 else "Hidden Layer"


def network_diagram(
    widths: Sequence[int],
    ax: Axes | None = None,
    title: str | None = None,
    layer_labels: Sequence[str] | None = None,
    max_nodes: int = 12,
) -> Figure:
    r"""Draw a fully connected network in the style of NN-SVG's FCNN figures.

    One column of circles per layer (``widths[0]`` the input :math:`d_1`, ``widths[-1]``
    the output :math:`d_{L+1}`), each column centred vertically, every node joined to every
    node of the next layer by a thin line, since each layer :math:`H_i(x) =
    \widehat\varphi(W_i x + b_i)` uses every input. A layer wider than ``max_nodes`` is drawn
    with ``max_nodes`` circles, half above and half below a vertical ellipsis "⋮". Under
    every column is its label (default "Input Layer", "Hidden Layer", "Output Layer", as in
    NN-SVG) and its true width as :math:`\in\mathbb{R}^{d}`.

    The drawn node centres are stored as ``fig.network_nodes`` (one list of ``(x, y)``
    per layer); the edges are one ``LineCollection`` with gid ``"network_edges"``.
    ``FIGURE_1_1_WIDTHS`` ... ``FIGURE_2_3_WIDTHS`` and ``ALGORITHM_2_WIDTHS`` redraw the
    thesis's figures and the autoencoder of Algorithm 2.

    Thesis: Definition 1.1.5, Eq. (1.3), Figure 1.1, Figure 2.1, Figure 2.2, Figure 2.3.
    """
    widths = check_widths("widths", widths)
    _check_axes(ax)
    _check_optional_str("title", title)
    if layer_labels is not None:
        layer_labels = _check_str_sequence("layer_labels", layer_labels, len(widths))
    max_nodes = check_positive_int("max_nodes", max_nodes)
    if max_nodes < 2:
        raise ValueError(f"max_nodes must be at least 2 (circles above and below the ellipsis); got {max_nodes}")

    from matplotlib.collections import LineCollection
    from matplotlib.patches import Circle

    dx, radius = 3.4, 0.32  # column spacing and node radius, in units of the node spacing
    drawn = [min(w, max_nodes) for w in widths]
    slots = [m + (1 if w > max_nodes else 0) for w, m in zip(widths, drawn)]  # +1: the ellipsis
    tallest = max(slots)
    label_gap, label_room = 0.8, 1.3
    x_lo, x_hi = -dx / 2, (len(widths) - 1) * dx + dx / 2
    y_hi = (tallest - 1) / 2 + 0.7
    y_lo = -(tallest - 1) / 2 - label_gap - label_room

    if ax is None:
        inches = 0.3  # per unit of node spacing
        fig = _new_figure(figsize=((x_hi - x_lo) * inches, (y_hi - y_lo) * inches + (0.4 if title else 0.0)),
                          layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    nodes: list[list[tuple[float, float]]] = []
    for i, (w, m, k) in enumerate(zip(widths, drawn, slots)):
        x = i * dx
        ys = [(k - 1) / 2 - s for s in range(k)]
        if w > max_nodes:
            gap = (m + 1) // 2  # the top half gets the extra circle when m is odd
            ax.text(x, ys[gap], "⋮", ha="center", va="center", fontsize=11, color=_NODE_EDGE)
            ys = ys[:gap] + ys[gap + 1:]
        nodes.append([(x, y) for y in ys])

    segments = [[a, b] for left, right in zip(nodes, nodes[1:]) for a in left for b in right]
    densest = max(a * b for a, b in zip(drawn, drawn[1:]))
    edges = LineCollection(segments, colors=_EDGE_COLOR, linewidths=0.5 if densest <= 50 else 0.3, zorder=1)
    edges.set_gid("network_edges")
    ax.add_collection(edges)
    for column in nodes:
        for x, y in column:
            ax.add_patch(Circle((x, y), radius, facecolor=_NODE_FACE, edgecolor=_NODE_EDGE, linewidth=0.9, zorder=2))

    for i, w in enumerate(widths):
        name = layer_labels[i] if layer_labels is not None else _default_layer_label(i, len(widths))
        text = f"{name}\n" + rf"$\in\mathbb{{R}}^{{{w}}}$" if name else rf"$\in\mathbb{{R}}^{{{w}}}$"
        ax.text(i * dx, -(tallest - 1) / 2 - label_gap, text, ha="center", va="top", fontsize=8,
                linespacing=1.4)

    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_aspect("equal")
    ax.axis("off")
    if title is not None:
        ax.set_title(title)
    fig.network_nodes = nodes
    return fig
