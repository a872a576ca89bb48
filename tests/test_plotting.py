"""Tests for thesis_lib.publishing.plotting: figure contents, atomic and reproducible saving, bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from thesis_lib.publishing.diagrams import FIGURE_1_1_WIDTHS, network_diagram
from thesis_lib.publishing.plotting import (
    function_plot,
    histogram_compare,
    latent_scatter,
    loss_curves,
    save_figure,
)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# ----------------------------------------------------------------------------- import


def test_import_loads_no_matplotlib() -> None:
    code = "import sys, thesis_lib.publishing.plotting; print(any(m.startswith('matplotlib') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_figures_are_not_registered_with_pyplot() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = network_diagram((2, 3))
    assert plt.get_fignums() == before
    assert fig.canvas.__class__.__name__ == "FigureCanvasAgg"
    assert fig._repr_png_().startswith(b"\x89PNG")


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
        ({"history": {"a": []}}, "history"),
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
        ({"funcs": {"f": torch.relu}, "x_range": (1, -1)}, "x_range"),
        ({"funcs": {"f": torch.relu}, "x_range": (0, math.inf)}, "x_range"),
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
        ({"formats": ("jpg",)}, "formats"),
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
    fig = loss_curves({"train_loss": [4.0, 3.0, 2.0, 1.5], "test_loss": [nan, 3.5, nan, 2.0]})
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["test_loss"].get_xdata()) == [2, 4]
    assert list(lines["test_loss"].get_ydata()) == [3.5, 2.0]
    with pytest.raises(ValueError, match="no finite value"):
        loss_curves({"test_loss": [nan, nan]})
