from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thesis_lib.mathematics.activations import ACTIVATIONS, get_activation, is_activation, leaky_relu, relu, sigmoid


@pytest.fixture
def t() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = 10 * torch.randn(1000, generator=g, dtype=torch.float64)
    return torch.cat([x, torch.tensor([0.0, -0.0, 1e-300, -1e-300, 50.0, -50.0, 700.0, -700.0], dtype=torch.float64)])


def test_relu_matches_torch(t):
    assert torch.equal(relu(t), torch.relu(t))


@pytest.mark.parametrize("alpha", [0.01, 0.2, 0.0, 1.0, -0.5, 3.0])
def test_leaky_relu_matches_torch(t, alpha):
    torch.testing.assert_close(leaky_relu(t, alpha), F.leaky_relu(t, negative_slope=alpha), rtol=0, atol=0)


def test_leaky_relu_special_alphas(t):
    assert torch.equal(leaky_relu(t, 0.0), relu(t))
    assert torch.equal(leaky_relu(t, 1.0), t)  # alpha = 1 is the identity


def test_sigmoid_matches_torch(t):
    torch.testing.assert_close(sigmoid(t), torch.sigmoid(t), rtol=1e-12, atol=1e-300)


def test_sigmoid_float32_and_closed_form():
    x = torch.linspace(-20, 20, 401)
    torch.testing.assert_close(sigmoid(x), torch.sigmoid(x))
    torch.testing.assert_close(sigmoid(torch.tensor([0.0])), torch.tensor([0.5]), rtol=0, atol=0)


@pytest.mark.parametrize("fn, ref", [(relu, torch.relu), (lambda x: leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
                                     (sigmoid, torch.sigmoid)])
def test_gradients_match_torch(fn, ref):
    x = torch.tensor([-800.0, -3.0, -0.0, 0.0, 2.0, 800.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    y = x.detach().clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(ref(y).sum(), y)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, g_ref)


def test_nan_propagates():
    x = torch.tensor([float("nan")])
    assert torch.isnan(relu(x)).all() and torch.isnan(leaky_relu(x)).all() and torch.isnan(sigmoid(x)).all()


def test_activations_tuple():
    assert ACTIVATIONS == ("relu", "leaky_relu", "sigmoid", "tanh", "identity")


@pytest.mark.parametrize(
    "name, ref",
    [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("identity", lambda x: x),
     ("leaky_relu", lambda x: F.leaky_relu(x, 0.01)), ("ELU", F.elu), ("elu", F.elu), ("GELU", F.gelu),
     ("softplus", F.softplus), ("SiLU", F.silu), ("LeakyReLU", lambda x: F.leaky_relu(x, 0.01))],
)
def test_get_activation_computes_the_named_function(name, ref, t):
    module = get_activation(name)
    assert isinstance(module, nn.Module)
    torch.testing.assert_close(module(t), ref(t))


def test_get_activation_kwargs(t):
    torch.testing.assert_close(get_activation("leaky_relu", alpha=0.3)(t), leaky_relu(t, 0.3))
    torch.testing.assert_close(get_activation("elu", alpha=2.0)(t), F.elu(t, alpha=2.0))
    assert get_activation("relu") is not get_activation("relu")  # fresh modules


@pytest.mark.parametrize("name", ["swish", "Softmax", "softmax", "MultiheadAttention", "GLU", "", "RELU"])
def test_get_activation_unknown_name(name):
    with pytest.raises(ValueError, match=r"name must be one of 'relu'.*torch\.nn activation class"):
        get_activation(name)


def test_get_activation_bad_arguments():
    with pytest.raises(ValueError, match="name must be an activation name"):
        get_activation(3)
    with pytest.raises(ValueError, match=r"kwargs \['alpha'\] are not accepted by activation 'relu'"):
        get_activation("relu", alpha=0.1)
    with pytest.raises(ValueError, match=r"kwargs \['beta'\].*'leaky_relu'"):
        get_activation("leaky_relu", beta=0.1)
    with pytest.raises(ValueError, match="alpha must be a finite real number"):
        get_activation("leaky_relu", alpha=float("inf"))
    with pytest.raises(ValueError, match="kwargs .* torch.nn.ELU"):
        get_activation("elu", nonsense=1)


GRID = torch.linspace(-5.0, 5.0, 201)


@pytest.mark.parametrize(
    "phi",
    [relu, sigmoid, torch.tanh, lambda x: x, lambda x: leaky_relu(x, 1.0), lambda x: leaky_relu(x, 0.01),
     torch.sin, lambda x: torch.sigmoid(50 * x), torch.abs, get_activation("GELU")],
)
def test_is_activation_accepts_activations(phi):
    assert is_activation(phi, GRID)


@pytest.mark.parametrize(
    "phi",
    [
        lambda x: torch.zeros_like(x),  # constant
        lambda x: torch.full_like(x, 3.0),  # constant
        lambda x: (x >= 0).to(x.dtype),  # Heaviside: jump at a grid point
        lambda x: (x > 0.123).to(x.dtype),  # jump between grid points
        lambda x: torch.sign(x) + 0.1 * x,  # jump on a non-constant function
        lambda x: torch.floor(x),  # several jumps
        lambda x: 1.0 / x,  # infinite at 0
    ],
)
def test_is_activation_rejects_non_activations(phi):
    assert not is_activation(phi, GRID)


def test_is_activation_bad_input():
    with pytest.raises(ValueError, match="refine must be an integer >= 2"):
        is_activation(relu, GRID, refine=1)
    with pytest.raises(ValueError, match="refine must be a positive integer"):
        is_activation(relu, GRID, refine=2.5)
    with pytest.raises(ValueError, match="atol must be a finite number greater than 0"):
        is_activation(relu, GRID, atol=0.0)
