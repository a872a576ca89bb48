"""Image figures for the book: grids of images, rows of images side by side, a decoded latent manifold.

As in :mod:`thesis_lib.publishing.plotting`, every function builds a fresh pyplot-free figure with an Agg canvas
(or draws into a given axes) and importing this module loads no matplotlib. Images are batches
``(B, 784)`` (flattened MNIST), ``(B, H, W)`` or ``(B, 1, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torchvision.utils import make_grid

from thesis_lib.publishing.plotting import _as_cpu_float, _new_figure
from thesis_lib.ground.validation import check_positive_float, check_str_sequence

if TYPE_CHECKING:  # imported for the annotations only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["image_grid", "side_by_side", "manifold_grid"]


def _as_image_batch(images: Tensor) -> Tensor:
    """Return ``images`` as a float tensor ``(B, 1, H, W)``.

    Takes ``(B, D)`` with ``D`` a perfect square (MNIST: 784 = 28^2), ``(B, H, W)`` and
    ``(B, 1, H, W)``.
    """
    x = _as_cpu_float(images)
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        x = x.reshape(x.shape[0], 1, side, side)
    elif x.dim() == 3:
        x = x.unsqueeze(1)
    return x


def _clean_image_axes(ax: Axes) -> None:
    """No ticks and no frame; keeps the y label (``axis('off')`` would hide it)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


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
    x = _as_image_batch(images)
    n = x.shape[0]
    if labels is not None:
        if isinstance(labels, Tensor):
            labels = labels.detach().cpu().reshape(-1).tolist()
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence) or len(labels) != n:
            raise ValueError(f"labels must be None or a sequence of {n} labels (one per image); got {labels!r}")

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
    batches = [_as_image_batch(r) for r in rows]
    n_rows = len(batches)
    n_cols = max(b.shape[0] for b in batches)
    row_titles = check_str_sequence("row_titles", row_titles, n_rows)
    if col_titles is not None:
        col_titles = check_str_sequence("col_titles", col_titles, n_cols)

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
    if span is not None:
        span = check_positive_float("span", span)

    if span is None:
        probs = torch.linspace(0.05, 0.95, grid_size) if grid_size > 1 else torch.tensor([0.5])
        axis = torch.distributions.Normal(0.0, 1.0).icdf(probs)
    else:
        axis = torch.linspace(-span, span, grid_size) if grid_size > 1 else torch.zeros(1)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # rows: z2 from top (high) to bottom
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # (G*G, 2)
    with torch.no_grad():
        out = decode(z)
    images = _as_image_batch(out)

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
