"""Tests for thesis_lib.mathematics.risk (thesis Section 1.2).

Oracles: scipy's folded normal and numeric integration for the closed-form risks, a large Monte Carlo
sample, autograd on a single example, numpy's least squares, and GradientDescent's own iterates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from thesis_lib.mathematics import risk
from thesis_lib.mathematics.losses import linear_error, reconstruction_objective, squared_error, supervised_objective
from thesis_lib.mathematics.networks import DeepNetwork
from thesis_lib.mathematics.optimizers import gradient_descent_path, step_size_schedule


def _task() -> risk.GaussianLinearTask:
    cov = torch.tensor([[1.0, 0.3, 0.0], [0.3, 2.0, -0.4], [0.0, -0.4, 0.5]])
    return risk.GaussianLinearTask(mu=torch.tensor([0.5, -1.0, 2.0]), cov=cov,
                                   w_star=torch.tensor([1.0, -2.0, 0.5]), b_star=0.3, noise_std=0.7)


def _net(seed: int = 0, widths=(6, 5, 3), dtype=torch.float64) -> DeepNetwork:
    torch.manual_seed(seed)
    return DeepNetwork(list(widths), ["tanh"] * (len(widths) - 2) + ["identity"]).to(dtype)


# --------------------------------------------------------------------------- Definition 1.2.3
def test_sample_has_the_stated_moments():
    task = _task()
    x, y = task.sample(200_000, torch.Generator().manual_seed(0))
    assert x.shape == (200_000, 3) and y.shape == (200_000, 1) and x.dtype == torch.float64
    assert torch.allclose(x.mean(0), task.mu, atol=0.02)
    assert torch.allclose(torch.cov(x.T), task.cov, atol=0.03)
    resid = y[:, 0] - x @ task.w_star - task.b_star
    assert resid.std().item() == pytest.approx(0.7, rel=0.01)


@pytest.mark.parametrize("loss", ["squared", "linear"])
def test_closed_form_risk_matches_scipy(loss):
    task = _task()
    w, b = torch.tensor([0.8, -1.5, 0.0]), -0.2
    m, s = task.residual_moments(w, b)
    # Oracle: scipy's normal moments and the folded normal's mean.
    want = scipy.stats.norm(m, s).moment(2) if loss == "squared" else scipy.stats.foldnorm(abs(m) / s, scale=s).mean()
    assert task.risk(w, b, loss) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("loss_name, loss", [("squared", squared_error), ("linear", linear_error)])
def test_monte_carlo_risk_agrees_with_closed_form(loss_name, loss):
    task = _task()
    w, b = torch.tensor([0.8, -1.5, 0.0], dtype=torch.float64), -0.2
    est, se = risk.monte_carlo_risk(loss, lambda x: (x @ w + b).unsqueeze(1), task.sample, 100_000,
                                    torch.Generator().manual_seed(1))
    exact = task.risk(w, b, loss_name)
    assert abs(est - exact) < 4 * se
    assert 0 < se < 0.05 * exact


def test_monte_carlo_risk_is_the_empirical_risk_of_the_sample():
    from thesis_lib.mathematics.losses import empirical_risk

    task = _task()
    f = lambda x: (x @ task.w_star).unsqueeze(1)  # noqa: E731
    est, _ = risk.monte_carlo_risk(squared_error, f, task.sample, 50, torch.Generator().manual_seed(3))
    x, y = task.sample(50, torch.Generator().manual_seed(3))
    assert est == pytest.approx(float(empirical_risk(squared_error, f, x, y)), rel=1e-12)


def test_perfect_predictor_has_the_noise_as_risk():
    task = _task()
    assert task.risk(task.w_star, task.b_star) == pytest.approx(0.49)
    assert task.risk(task.w_star, task.b_star, "linear") == pytest.approx(0.7 * math.sqrt(2 / math.pi))


def test_task_rejects_bad_arguments():
    with pytest.raises(torch.linalg.LinAlgError, match="not positive-definite"):  # torch's Cholesky refuses it
        risk.GaussianLinearTask(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2), 0.0, 1.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        _task().risk(torch.zeros(3), 0.0, "huber")
    with pytest.raises(ValueError, match="at least 2"):
        risk.monte_carlo_risk(squared_error, lambda x: x[:, :1], _task().sample, 1)


# --------------------------------------------------------------------------- Lemma 1.2.6
@pytest.mark.parametrize("method", ["vmap", "loop"])
def test_per_example_gradients_match_autograd_on_single_examples(method):
    net = _net()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 6, generator=g, dtype=torch.float64)
    y = torch.randn(7, 3, generator=g, dtype=torch.float64)
    obj = supervised_objective("squared")
    got = risk.per_example_gradients(net, obj, x, y, method=method)
    assert got.shape == (7, sum(p.numel() for p in net.parameters()))
    for i in (0, 4):
        net.zero_grad()
        # Oracle: torch's MSE with reduction "sum" on one example, through autograd.
        F.mse_loss(net(x[i : i + 1]), y[i : i + 1], reduction="sum").backward()
        want = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        assert torch.allclose(got[i], want, atol=1e-12, rtol=1e-10)


def test_lemma_1_2_6_mean_of_per_example_gradients_is_the_risk_gradient():
    net = _net(1)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 6, generator=g, dtype=torch.float64)
    y = torch.randn(16, 3, generator=g, dtype=torch.float64)
    obj = supervised_objective("linear")
    per = risk.per_example_gradients(net, obj, x, y)
    full = risk.risk_gradient(net, obj, x, y)
    assert torch.allclose(per.mean(0), full, atol=1e-13, rtol=1e-11)
    assert all(p.grad is None for p in net.parameters())  # .grad untouched


def test_per_example_gradients_without_labels():
    torch.manual_seed(0)
    ae = nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 4)).double()
    x = torch.rand(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    obj = reconstruction_objective("mse")
    a = risk.per_example_gradients(ae, obj, x)
    b = risk.per_example_gradients(ae, obj, x, method="loop")
    assert torch.allclose(a, b, atol=1e-13)
    assert torch.allclose(a.mean(0), risk.risk_gradient(ae, obj, x), atol=1e-13)


def test_gradient_functions_reject_bad_arguments():
    net = _net()
    with pytest.raises(ValueError, match="method must be one of"):
        risk.per_example_gradients(net, supervised_objective(), torch.zeros(2, 6), torch.zeros(2, 3), method="jac")


# --------------------------------------------------------------------------- Theorem 1.2.5
def test_affine_least_squares_matches_numpy_and_gradient_vanishes():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(40, 5, generator=g)
    x[:, 2] = 0.0  # a constant-zero feature, as MNIST's border pixels: rank deficient
    y = torch.randn(40, 2, generator=g)
    w, b, r_min, lip = risk.affine_least_squares(x, y)
    xa = np.c_[x.double().numpy(), np.ones(40)]
    sol = np.linalg.lstsq(xa, y.double().numpy(), rcond=None)[0]  # oracle: numpy's minimum-norm solution
    assert np.allclose(w.numpy(), sol[:-1].T, atol=1e-10) and np.allclose(b.numpy(), sol[-1], atol=1e-10)
    assert r_min == pytest.approx(float(((y.double().numpy() - xa @ sol) ** 2).sum(1).mean()), rel=1e-10)
    assert lip == pytest.approx(2 * np.linalg.eigvalsh(xa.T @ xa / 40).max(), rel=1e-10)
    lin = nn.Linear(5, 2).double()
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    grad = risk.risk_gradient(lin, supervised_objective("squared"), x.double(), y.double())
    assert grad.abs().max().item() < 1e-10


@pytest.mark.parametrize("schedule", [step_size_schedule("constant", 0.15), step_size_schedule("inverse", 0.15),
                                      step_size_schedule("exponential", 0.15, decay=0.95)])
def test_quadratic_closed_form_equals_gradient_descent_path(schedule):
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    x0 = torch.tensor([2.0, 2.0], dtype=torch.float64)
    steps = 60
    want = gradient_descent_path(lambda x: a @ x - b, x0, schedule, steps)
    got = risk.quadratic_gd_iterates(a, b, x0, [schedule(t) for t in range(steps)])
    assert got.shape == (steps + 1, 2)
    assert torch.allclose(got, want, atol=1e-12)


# --------------------------------------------------------------------------- Corollary 1.2.7
def test_permuted_network_computes_the_same_function_with_other_parameters():
    net = _net(2, widths=(6, 5, 4, 3))
    perm = torch.tensor([2, 0, 4, 1, 3])
    other = risk.permute_hidden_units(net, 0, perm)
    x = torch.randn(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(net(x), other(x), atol=1e-14)
    assert not torch.equal(net.layers[0].weight, other.layers[0].weight)
    assert torch.equal(net.layers[2].weight, other.layers[2].weight)


def test_risk_on_segment_endpoints_and_convex_case():
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(30, 6, generator=g, dtype=torch.float64), torch.randn(30, 3, generator=g, dtype=torch.float64)
    obj = supervised_objective("squared")
    a, b = nn.Linear(6, 3).double(), nn.Linear(6, 3).double()
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    r = risk.risk_on_segment(a, b, obj, x, y, s)
    assert r[0].item() == pytest.approx(obj(a, x, y).mean().item(), rel=1e-12)
    assert r[-1].item() == pytest.approx(obj(b, x, y).mean().item(), rel=1e-12)
    chord = (1 - s) * r[0] + s * r[-1]
    assert bool((r <= chord + 1e-12).all())  # an affine predictor's squared risk is convex in theta
