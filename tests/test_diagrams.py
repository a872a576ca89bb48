"""Tests for thesis_lib.publishing.diagrams: the network diagrams (nodes, edges, labels, wide layers), the thesis's
figure widths and the mirrored autoencoder widths."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from thesis_lib.publishing import plotting
from thesis_lib.mathematics.autoencoders import THESIS_WIDTHS, fully_connected_autoencoder
from thesis_lib.publishing.diagrams import (
    FIGURE_1_1_WIDTHS,
    FIGURE_2_1_WIDTHS,
    FIGURE_2_2_WIDTHS,
    FIGURE_2_3_WIDTHS,
    mirrored,
    network_diagram,
)

ALGORITHM_2 = mirrored(THESIS_WIDTHS)


def _circles(fig: Figure) -> list[Circle]:
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, Circle)]


def _edges(fig: Figure) -> LineCollection:
    (edges,) = [c for c in fig.axes[0].collections if c.get_gid() == "network_edges"]
    return edges


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_import_loads_no_matplotlib() -> None:
    code = "import sys, thesis_lib.publishing.diagrams; print(any(m.startswith('matplotlib') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- mirrored


def test_mirrored_widths() -> None:
    assert ALGORITHM_2 == (784, 128, 64, 12, 3, 12, 64, 128, 784)  # Algorithm 2
    assert mirrored(FIGURE_2_2_WIDTHS) == FIGURE_2_1_WIDTHS  # Figure 2.1 = Figure 2.3 o Figure 2.2
    assert FIGURE_2_3_WIDTHS == FIGURE_2_2_WIDTHS[::-1]
    assert fully_connected_autoencoder().as_network().widths == ALGORITHM_2
    assert mirrored([5, 4, 3, 2]) == FIGURE_2_1_WIDTHS  # a tuple, whatever sequence it is given


# ----------------------------------------------------------------------------- network_diagram


@pytest.mark.parametrize("widths", [(2, 3), (3, 1, 2), FIGURE_1_1_WIDTHS, FIGURE_2_1_WIDTHS,
                                    FIGURE_2_2_WIDTHS, FIGURE_2_3_WIDTHS])
def test_network_diagram_counts_nodes_and_edges(widths: tuple[int, ...]) -> None:
    fig = network_diagram(widths)
    assert [len(col) for col in fig.network_nodes] == list(widths)
    assert len(_circles(fig)) == sum(widths)
    assert len(_edges(fig).get_segments()) == sum(a * b for a, b in zip(widths, widths[1:]))
    assert "⋮" not in _texts(fig)


def test_figure_1_1_geometry() -> None:
    assert FIGURE_1_1_WIDTHS == (4, 3, 4, 5, 3, 7, 2)  # Figure 1.1: input 4, hidden 3, 4, 5, 3, 7, output 2
    fig = network_diagram(FIGURE_1_1_WIDTHS)
    assert len(_circles(fig)) == 28 and len(_edges(fig).get_segments()) == 12 + 12 + 20 + 15 + 21 + 14
    xs = [col[0][0] for col in fig.network_nodes]
    assert xs == sorted(xs) and len(set(np.diff(xs).round(9))) == 1  # equally spaced columns
    for col in fig.network_nodes:
        ys = [y for _, y in col]
        assert sum(ys) == pytest.approx(0.0, abs=1e-9)  # vertically centred
        assert len({x for x, _ in col}) == 1  # one column per layer
        assert all(np.diff(ys) < 0)  # drawn top to bottom, no two nodes on one spot
    texts = _texts(fig)
    assert texts[0].startswith("Input Layer") and texts[-1].startswith("Output Layer")
    assert sum(t.startswith("Hidden Layer") for t in texts) == 5


def test_network_diagram_truncates_wide_layers() -> None:
    fig = network_diagram(ALGORITHM_2, max_nodes=12)
    drawn = [min(w, 12) for w in ALGORITHM_2]
    assert [len(col) for col in fig.network_nodes] == drawn
    assert len(_circles(fig)) == sum(drawn)
    assert len(_edges(fig).get_segments()) == sum(a * b for a, b in zip(drawn, drawn[1:]))
    texts = _texts(fig)
    assert texts.count("⋮") == 6  # 784, 128, 64 on both sides
    assert any("784" in t for t in texts) and any("{128}" in t for t in texts)
    ellipsis = [t for t in fig.axes[0].texts if t.get_text() == "⋮"][0]
    col = fig.network_nodes[0]
    ex, ey = ellipsis.get_position()
    assert ex == col[0][0] and sum(y > ey for _, y in col) == 6 and sum(y < ey for _, y in col) == 6


def test_network_diagram_into_axes_with_labels() -> None:
    host = plotting._new_figure()
    ax = host.add_subplot()
    fig = network_diagram((3, 2), ax=ax, title="encoder", layer_labels=["x", "z"])
    assert fig is host and ax.get_title() == "encoder"
    assert _texts(fig) == [r"x" + "\n" + r"$\in\mathbb{R}^{3}$", "z\n" + r"$\in\mathbb{R}^{2}$"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"widths": (3,)}, "widths"),
        ({"widths": (3, 0)}, "widths"),
        ({"widths": "343"}, "widths"),
        ({"widths": (3, 2.5)}, "widths"),
        ({"widths": (3, 2), "max_nodes": 1}, "max_nodes"),
        ({"widths": (3, 2), "max_nodes": 0}, "max_nodes"),
        ({"widths": (3, 2), "layer_labels": ["x"]}, "layer_labels"),
    ],
)
def test_network_diagram_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        network_diagram(**kwargs)
