"""Tests for thesis_lib.publishing.image_plots: image grids against torchvision's make_grid, rows side by side,
the decoded latent manifold, and bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from thesis_lib.publishing import plotting
from thesis_lib.publishing.image_plots import image_grid, manifold_grid, side_by_side


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_import_loads_no_matplotlib() -> None:
    code = "import sys, thesis_lib.publishing.image_plots; print(any(m.startswith('matplotlib') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
        ({"images": torch.rand(4, 784), "labels": [1, 2]}, "labels"),
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
        ({"decode": lambda z: torch.rand(z.shape[0], 784), "span": -1.0}, "span"),
    ],
)
def test_manifold_grid_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        manifold_grid(**kwargs)
