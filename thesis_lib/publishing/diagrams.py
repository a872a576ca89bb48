r"""Network diagrams for the book in the style of NN-SVG's FCNN figures (thesis Figures 1.1 and 2.1-2.3).

:func:`network_diagram` draws a fully connected network from its widths; the ``FIGURE_*_WIDTHS``
constants redraw the thesis's figures, and :func:`mirrored` turns an encoder's widths into the
autoencoder's, e.g. ``mirrored(thesis_lib.mathematics.autoencoders.THESIS_WIDTHS)`` for Algorithm 2's
784-128-64-12-3-12-64-128-784. As in :mod:`thesis_lib.publishing.plotting`, importing this module loads no
matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from thesis_lib.publishing.plotting import _new_figure
from thesis_lib.ground.validation import check_str_sequence, check_widths

if TYPE_CHECKING:  # imported for the annotations only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_1_1_WIDTHS",
    "FIGURE_2_1_WIDTHS",
    "FIGURE_2_2_WIDTHS",
    "FIGURE_2_3_WIDTHS",
    "mirrored",
    "network_diagram",
]

# Layer widths of the thesis's network figures (input, hidden..., output).
FIGURE_1_1_WIDTHS = (4, 3, 4, 5, 3, 7, 2)  # Figure 1.1: R^4 -> R^2, hidden 3, 4, 5, 3, 7
FIGURE_2_1_WIDTHS = (5, 4, 3, 2, 3, 4, 5)  # Figure 2.1: autoencoder, bottleneck 2
FIGURE_2_2_WIDTHS = (5, 4, 3, 2)  # Figure 2.2: encoder R^5 -> R^2
FIGURE_2_3_WIDTHS = (2, 3, 4, 5)  # Figure 2.3: decoder R^2 -> R^5

# NN-SVG's FCNN defaults, which drew the thesis's Figures 1.1 and 2.1-2.3.
_NODE_FACE, _NODE_EDGE, _EDGE_COLOR = "#ffffff", "#333333", "#505050"


def mirrored(widths: Sequence[int]) -> tuple[int, ...]:
    r"""An encoder's widths followed by its mirrored decoder's: :math:`d_1, \dots, d_{L+1}, d_L, \dots, d_1`.

    Thesis: Algorithm 2, Definition 2.1.5.

    The widths of the autoencoder :math:`f_d \circ f_e` whose decoder reverses the encoder's widths
    as in Algorithm 2, the bottleneck :math:`d_{L+1}` once: ``mirrored((5, 4, 3, 2)) == FIGURE_2_1_WIDTHS``.
    """
    widths = tuple(widths)
    return widths + widths[-2::-1]


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
    ``FIGURE_1_1_WIDTHS`` ... ``FIGURE_2_3_WIDTHS`` and ``mirrored(THESIS_WIDTHS)``
    (:data:`thesis_lib.mathematics.autoencoders.THESIS_WIDTHS`) redraw the thesis's figures and the
    autoencoder of Algorithm 2.

    Thesis: Definition 1.1.5, Eq. (1.3), Figure 1.1, Figure 2.1, Figure 2.2, Figure 2.3.
    """
    widths = check_widths("widths", widths)
    if layer_labels is not None:
        layer_labels = check_str_sequence("layer_labels", layer_labels, len(widths))
    if max_nodes < 2:
        raise ValueError(f"max_nodes must be at least 2 (circles above and below the ellipsis); got {max_nodes}")

    from matplotlib.collections import LineCollection  # lazy: see the module docstring
    from matplotlib.patches import Circle  # lazy: see the module docstring

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
