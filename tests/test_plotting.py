"""Tests for thesis_lib.plotting: figure contents, the network diagrams and atomic, reproducible saving."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from torchvision.utils import make_grid

from thesis_lib import plotting
from thesis_lib.plotting import (
    ALGORITHM_2_WIDTHS,
    FIGURE_1_1_WIDTHS,
    FIGURE_2_1_WIDTHS,
    FIGURE_2_2_WIDTHS,
    FIGURE_2_3_WIDTHS,
    function_plot,
    histogram_compare,
    image_grid,
    latent_scatter,
    loss_curves,
    manifold_grid,
    network_diagram,
    save_figure,
    side_by_side,
)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _circles(fig: Figure) -> list[Circle]:
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, Circle)]


def _edges(fig: Figure) -> LineCollection:
    (edges,) = [c for c in fig.axes[0].collections if c.get_gid() == "network_edges"]
    return edges


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# ----------------------------------------------------------------------------- import


def test_import_loads_no_matplotlib() -> None:
    code = "import sys, thesis_lib.plotting; print(any(m.startswith('matplotlib') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_figures_are_not_registered_with_pyplot() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = network_diagram((2, 3))
    assert plt.get_fignums() == before
    assert fig.canvas.__class__.__name__ == "FigureCanvasAgg"
    assert fig._repr_png_().startswith(b"\x89PNG")


# ----------------------------------------------------------------------------- image_grid


@pytest.mark.parametrize("shape", [(10, 784), (10, 28, 28), (10, 1, 28, 28)])
def test_image_grid_equals_make_grid(shape: tuple[int, ...], gen: torch.Generator) -> None:
    images = torch.rand(shape, generator=gen)
    fig = image_grid(images, nrow=4, padding=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    (im,) = fig.axes[0].images
    expected = make_grid(images.reshape(10, 1, 28, 28), nrow=4, padding=2, pad_value=1.0)[0].numpy()
    np.testing.assert_array_equal(np.asarray(im.get_array()), expected)
    assert im.get_cmap().name == "gray" and im.get_clim() == (0.0, 1.0)
    assert fig.axes[0].get_xticks().size == 0 and fig.axes[0].get_yticks().size == 0


def test_image_grid_labels_sit_in_their_tiles(gen: torch.Generator) -> None:
    images = torch.rand(5, 8, 6, generator=gen)
    fig = image_grid(images, nrow=3, padding=1, labels=torch.tensor([7, 1, 2, 3, 4]), title="digits")
    texts = fig.axes[0].texts
    assert [t.get_text() for t in texts] == ["7", "1", "2", "3", "4"]
    x, y = texts[4].get_position()  # image 4: row 1, column 1 -> tile corner (1 + 7, 1 + 9)
    assert (x, y) == (1 + 7 + 0.5, 1 + 9 + 0.5)
    assert fig.axes[0].get_title() == "digits"


def test_image_grid_into_given_axes(gen: torch.Generator) -> None:
    host = plotting._new_figure()
    ax = host.add_subplot(1, 2, 2)
    assert image_grid(torch.rand(3, 784, generator=gen), ax=ax) is host
    assert len(ax.images) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": torch.rand(4, 783)}, "images"),
        ({"images": torch.rand(4, 3, 28, 28)}, "images"),
        ({"images": torch.rand(784)}, "images"),
        ({"images": torch.rand(4, 784) + 1.0}, r"images must have values in \[0, 1\]"),
        ({"images": torch.full((2, 784), float("nan"))}, "images must be finite"),
        ({"images": [[0.0] * 784]}, "images must be a torch.Tensor"),
        ({"images": torch.rand(4, 784), "nrow": 0}, "nrow"),
        ({"images": torch.rand(4, 784), "padding": -1}, "padding"),
        ({"images": torch.rand(4, 784), "labels": [1, 2]}, "labels"),
        ({"images": torch.rand(4, 784), "ax": "left"}, "ax"),
    ],
)
def test_image_grid_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        image_grid(**kwargs)


# ----------------------------------------------------------------------------- side_by_side


def test_side_by_side_originals_and_reconstructions(gen: torch.Generator) -> None:
    x = torch.rand(6, 784, generator=gen)
    x_hat = torch.rand(6, 784, generator=gen)
    fig = side_by_side([x, x_hat], ["original", "reconstruction"])
    assert len(fig.axes) == 12
    images = [ax.images[0] for ax in fig.axes]
    np.testing.assert_array_equal(np.asarray(images[7].get_array()), x_hat[1].reshape(28, 28).numpy())
    assert all(im.get_clim() == (0.0, 1.0) for im in images)
    assert fig.axes[0].get_ylabel() == "original" and fig.axes[6].get_ylabel() == "reconstruction"


def test_side_by_side_operator_check_with_difference_and_colorbar(gen: torch.Generator) -> None:
    image = torch.rand(1, 28, 28, generator=gen)
    ours = torch.randn(1, 26, 26, generator=gen)
    theirs = ours + 1e-7 * torch.randn(1, 26, 26, generator=gen)
    diff = ours - theirs
    fig = side_by_side([image, ours, theirs, diff], ["input", "ours", "torch", "difference"],
                       signed_rows=[3], colorbar=[3], title="convolution")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4 and len(fig.axes) == 5  # + one colour bar
    bound = diff.abs().max().item()
    im = image_axes[3].images[0]
    assert im.get_cmap().name == "RdBu_r"
    assert im.get_clim() == pytest.approx((-bound, bound))
    assert image_axes[1].images[0].get_clim() == pytest.approx((ours.min().item(), ours.max().item()))
    assert "max |·|" in image_axes[3].get_ylabel()


def test_side_by_side_ragged_rows_leave_no_empty_axes(gen: torch.Generator) -> None:
    fig = side_by_side([torch.rand(4, 5, 5, generator=gen), torch.rand(2, 5, 5, generator=gen)], ["a", "b"],
                       col_titles=["0", "1", "2", "3"], colorbar=True)
    assert sum(1 for ax in fig.axes if ax.images) == 6
    assert len(fig.axes) == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": [], "row_titles": []}, "rows"),
        ({"rows": torch.rand(2, 784), "row_titles": ["a"]}, "rows"),
        ({"rows": [torch.rand(2, 5)], "row_titles": ["a"]}, r"rows\[0\]"),
        ({"rows": [torch.rand(2, 784)], "row_titles": ["a", "b"]}, "row_titles"),
        ({"rows": [torch.rand(2, 784)], "row_titles": ["a"], "signed_rows": [1]}, "signed_rows"),
        ({"rows": [torch.rand(2, 784)], "row_titles": ["a"], "colorbar": [2]}, "colorbar"),
        ({"rows": [torch.rand(2, 784)], "row_titles": ["a"], "col_titles": ["x"]}, "col_titles"),
    ],
)
def test_side_by_side_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        side_by_side(**kwargs)


# ----------------------------------------------------------------------------- manifold_grid


def test_manifold_grid_quantiles_and_orientation() -> None:
    calls = []

    def decode(z: torch.Tensor) -> torch.Tensor:  # a tile's brightness encodes its z
        calls.append(z.shape)
        return torch.sigmoid(z[:, :1] + 10 * z[:, 1:]).expand(-1, 16).reshape(-1, 4, 4)

    fig = manifold_grid(decode, grid_size=5)
    assert calls == [(25, 2)] and len(fig.axes) == 1
    expected_axis = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 5))
    assert expected_axis[-1].item() == pytest.approx(1.6448536, abs=1e-5)  # closed form: Phi^-1(0.95)
    z = fig.latent_grid
    torch.testing.assert_close(z[:5, 0], expected_axis)  # first row: z1 increasing
    torch.testing.assert_close(z[::5, 1], expected_axis.flip(0))  # first column: z2 from top (high) down
    grid = np.asarray(fig.axes[0].images[0].get_array())
    assert grid.shape == (20, 20)
    assert grid[0, 0] > grid[-1, 0]  # top-left has the largest z2
    assert grid[-1, -1] > grid[-1, 0]  # z1 grows to the right


def test_manifold_grid_linear_span() -> None:
    fig = manifold_grid(lambda z: torch.full((z.shape[0], 784), 0.5), grid_size=3, span=3.0)
    torch.testing.assert_close(fig.latent_grid[:3, 0], torch.tensor([-3.0, 0.0, 3.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decode": "decoder"}, "decode"),
        ({"decode": lambda z: torch.rand(z.shape[0], 784), "grid_size": 0}, "grid_size"),
        ({"decode": lambda z: torch.rand(z.shape[0], 784), "span": -1.0}, "span"),
        ({"decode": lambda z: torch.rand(3, 784)}, "decode"),
        ({"decode": lambda z: torch.rand(z.shape[0], 10)}, "decode"),
    ],
)
def test_manifold_grid_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        manifold_grid(**kwargs)


# ----------------------------------------------------------------------------- loss_curves


def test_loss_curves_epochs_start_at_one() -> None:
    history = {"train_loss": [3.0, 2.0, 1.5, 1.2], "test_loss": [3.1, 2.2, 1.9, 1.8], "lr": [1e-3] * 4}
    fig = loss_curves(history, keys=["test_loss", "train_loss"], title="MSE")
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["test_loss", "train_loss"]
    np.testing.assert_array_equal(lines[1].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(lines[1].get_ydata(), history["train_loss"])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch" and ax.get_title() == "MSE"
    assert loss_curves({"elbo": [-3.0, -2.0]}, logy=False).axes[0].get_yscale() == "linear"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"history": {}}, "history"),
        ({"history": {"a": []}}, "history"),
        ({"history": {"a": ["x"]}}, "history"),
        ({"history": {"a": [1.0]}, "keys": ["b"]}, "keys"),
        ({"history": {"a": [1.0, -1.0]}}, "logy"),
    ],
)
def test_loss_curves_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        loss_curves(**kwargs)


# ----------------------------------------------------------------------------- latent_scatter


def test_latent_scatter_2d_subsamples_and_colours_by_digit(gen: torch.Generator) -> None:
    z = torch.randn(300, 2, generator=gen)
    labels = torch.arange(300) % 10
    fig = latent_scatter(z, labels, max_points=120)
    ax = fig.axes[0]
    assert len(ax.collections) == 10
    assert sum(len(c.get_offsets()) for c in ax.collections) == 120
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [str(d) for d in range(10)]
    drawn = np.concatenate([c.get_offsets() for c in ax.collections])
    z_np = z.numpy()
    assert all(np.any(np.all(np.isclose(z_np, p), axis=1)) for p in drawn)  # every dot is a real code
    again = latent_scatter(z, labels, max_points=120).axes[0]
    np.testing.assert_array_equal(again.collections[3].get_offsets(), ax.collections[3].get_offsets())


def test_latent_scatter_3d(gen: torch.Generator) -> None:
    fig = latent_scatter(torch.randn(50, 3, generator=gen), torch.randint(0, 10, (50,), generator=gen))
    assert fig.axes[0].name == "3d"
    assert latent_scatter(torch.randn(50, 2, generator=gen)).legends == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"z": torch.randn(10, 4)}, "z"),
        ({"z": torch.randn(10)}, "z"),
        ({"z": torch.randn(10, 2), "labels": torch.zeros(9, dtype=torch.long)}, "labels"),
        ({"z": torch.randn(10, 2), "labels": torch.zeros(10)}, "labels"),
        ({"z": torch.randn(10, 2), "labels": torch.full((10,), 10)}, "labels"),
        ({"z": torch.randn(10, 2), "max_points": 0}, "max_points"),
    ],
)
def test_latent_scatter_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        latent_scatter(**kwargs)


# ----------------------------------------------------------------------------- function_plot


def test_function_plot_matches_torch_activations() -> None:
    funcs = {
        "ReLU": torch.relu,
        "sigmoid": torch.sigmoid,
        "leaky ReLU": lambda t: torch.nn.functional.leaky_relu(t, 0.1),
    }
    fig = function_plot(funcs, x_range=(-2, 3), n=51)
    lines = [line for line in fig.axes[0].get_lines() if line.get_label() in funcs]
    assert len(lines) == 3
    t = np.linspace(-2, 3, 51)
    np.testing.assert_allclose(lines[0].get_xdata(), t, atol=1e-6)
    np.testing.assert_allclose(lines[0].get_ydata(), np.maximum(t, 0), atol=1e-6)
    np.testing.assert_allclose(lines[1].get_ydata(), 1 / (1 + np.exp(-t)), atol=1e-6)
    np.testing.assert_allclose(lines[2].get_ydata(), np.where(t > 0, t, 0.1 * t), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"funcs": {}}, "funcs"),
        ({"funcs": {"f": 3}}, "funcs"),
        ({"funcs": {"sum": torch.sum}}, "funcs"),
        ({"funcs": {"f": torch.relu}, "x_range": (1, -1)}, "x_range"),
        ({"funcs": {"f": torch.relu}, "x_range": (0, math.inf)}, "x_range"),
        ({"funcs": {"f": torch.relu}, "n": 1}, "n"),
    ],
)
def test_function_plot_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        function_plot(**kwargs)


# ----------------------------------------------------------------------------- histogram_compare


def test_histogram_compare_shares_bins_and_matches_numpy(gen: torch.Generator) -> None:
    normal = torch.randn(500, generator=gen).abs()
    anomalous = 2 + torch.randn(80, generator=gen).abs()
    fig = histogram_compare({"normal": normal, "anomalous": anomalous}, bins=20, density=False, threshold=1.5)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and ax.get_ylabel() == "count"
    edges = np.linspace(normal.min().item(), anomalous.max().item(), 21)
    counts, _ = np.histogram(anomalous.double().numpy(), bins=edges)
    xy = ax.patches[1].get_path().vertices  # stepfilled outline: (e0, 0), (e0, c0), (e1, c0), (e1, c1), ...
    np.testing.assert_allclose(xy[0:41:2, 0], edges)  # shared edges, not the group's own range
    np.testing.assert_array_equal(xy[1:40:2, 1], counts)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["normal", "anomalous", "threshold"]
    dens = histogram_compare({"normal": normal}, bins=20).axes[0]
    xy = dens.patches[0].get_path().vertices
    assert dens.get_ylabel() == "density" and xy[:, 1].max() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": {}}, "scores"),
        ({"scores": {"a": torch.rand(3, 2)}}, "scores"),
        ({"scores": {"a": torch.tensor([1.0, float("nan")])}}, "scores"),
        ({"scores": {"a": torch.rand(5)}, "bins": 0}, "bins"),
        ({"scores": {"a": torch.rand(5)}, "threshold": "high"}, "threshold"),
    ],
)
def test_histogram_compare_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        histogram_compare(**kwargs)


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
    fig = network_diagram(ALGORITHM_2_WIDTHS, max_nodes=12)
    drawn = [min(w, 12) for w in ALGORITHM_2_WIDTHS]
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


# ----------------------------------------------------------------------------- save_figure


def test_save_figure_writes_both_formats_and_leaves_no_temp_files(tmp_path) -> None:
    out = tmp_path / "figures" / "ch1"
    paths = save_figure(network_diagram(FIGURE_1_1_WIDTHS), "ch1_figure_1_1", out)
    assert paths == [out / "ch1_figure_1_1.png", out / "ch1_figure_1_1.pdf"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[1].read_bytes().startswith(b"%PDF")
    assert sorted(os.listdir(out)) == ["ch1_figure_1_1.pdf", "ch1_figure_1_1.png"]


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_save_figure_is_deterministic(tmp_path, fmt: str) -> None:
    fig = loss_curves({"train_loss": [1.0, 0.5, 0.25]}, title="t")
    (first,) = save_figure(fig, "curve", tmp_path / "a", formats=(fmt,))
    (second,) = save_figure(fig, "curve", tmp_path / "b", formats=(fmt,))
    assert first.read_bytes() == second.read_bytes()
    if fmt == "pdf":
        assert b"CreationDate" not in first.read_bytes()


def test_save_figure_overwrites_atomically(tmp_path) -> None:
    save_figure(network_diagram((2, 2)), "net", tmp_path)
    small = (tmp_path / "net.png").read_bytes()
    save_figure(network_diagram((5, 6, 5)), "net", tmp_path)
    assert (tmp_path / "net.png").read_bytes() != small
    assert sorted(os.listdir(tmp_path)) == ["net.pdf", "net.png"]


def test_save_figure_failure_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    fig = network_diagram((2, 2))
    (tmp_path / "net.png").write_bytes(b"old")
    real_savefig = fig.savefig

    def savefig_failing_on_pdf(fname, *args, **kwargs):
        real_savefig(fname, *args, **kwargs)  # a real PNG reaches its temp file first...
        if kwargs.get("format") == "pdf":
            with open(fname, "ab") as fh:  # ...then the PDF is half written and the writer dies
                fh.write(b"partial")
            raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", savefig_failing_on_pdf)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, "net", tmp_path)
    assert os.listdir(tmp_path) == ["net.png"]  # no net.pdf, no temporary files
    assert (tmp_path / "net.png").read_bytes() == b"old"  # the set was not half updated


@pytest.mark.parametrize("name", ["Ch3", "_ch3", "ch3-max", "ch3 max", "ch3.png", "", "../ch3", 3])
def test_save_figure_rejects_bad_names(tmp_path, name) -> None:
    with pytest.raises(ValueError, match="name"):
        save_figure(network_diagram((2, 2)), name, tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fig": "figure"}, "fig"),
        ({"formats": ("jpg",)}, "formats"),
        ({"formats": ()}, "formats"),
        ({"formats": ("png", "png")}, "formats"),
        ({"dpi": 0}, "dpi"),
        ({"directory": ""}, "directory"),
    ],
)
def test_save_figure_bad_input(tmp_path, kwargs: dict, match: str) -> None:
    args = {"fig": network_diagram((2, 2)), "name": "net", "directory": tmp_path / "out"} | kwargs
    with pytest.raises(ValueError, match=match):
        save_figure(**args)
    assert not (tmp_path / "out").exists()


def test_loss_curves_skip_epochs_without_a_value():
    nan = float("nan")
    fig = plotting.loss_curves({"train_loss": [4.0, 3.0, 2.0, 1.5], "test_loss": [nan, 3.5, nan, 2.0]})
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["test_loss"].get_xdata()) == [2, 4]
    assert list(lines["test_loss"].get_ydata()) == [3.5, 2.0]
    with pytest.raises(ValueError, match="no finite value"):
        plotting.loss_curves({"test_loss": [nan, nan]})
