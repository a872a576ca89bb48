"""Tests for thesis_lib.mathematics.losses: oracles (torch, scipy, closed forms), properties, shapes, errors,
and objectives that never read a tensor value per batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from thesis_lib.mathematics import losses as L


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- Section 1.2
def test_squared_and_linear_error_per_example():
    g = _gen(1)
    y, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    se, le = L.squared_error(y, t), L.linear_error(y, t)
    assert se.shape == (5,) and le.shape == (5,)
    for i in range(5):
        assert se[i].item() == pytest.approx(sum((y[i, j].item() - t[i, j].item()) ** 2 for j in range(3)), rel=1e-5)
        assert le[i].item() == pytest.approx(sum(abs(y[i, j].item() - t[i, j].item()) for j in range(3)), rel=1e-5)
    # Oracle: torch's MSELoss/L1Loss with reduction="sum" on one example.
    assert se[2].item() == pytest.approx(F.mse_loss(t[2], y[2], reduction="sum").item(), rel=1e-6)
    assert le[2].item() == pytest.approx(F.l1_loss(t[2], y[2], reduction="sum").item(), rel=1e-6)


def test_scalar_outputs_use_a_last_dim_of_one():
    y, t = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.5], [4.0]])
    assert torch.allclose(L.squared_error(y, t), torch.tensor([0.25, 4.0]))
    assert torch.allclose(L.linear_error(y, t), torch.tensor([0.5, 2.0]))


def test_empirical_risk_is_mean_of_losses():
    g = _gen(2)
    f = nn.Linear(4, 2)
    xs, ys = torch.randn(7, 4, generator=g), torch.randn(7, 2, generator=g)
    risk = L.empirical_risk(L.squared_error, f, xs, ys)
    # Oracle: torch's MSELoss averages over all k*n entries; Eq. (1.4) sums over n, averages over k.
    assert risk.item() == pytest.approx(F.mse_loss(f(xs), ys).item() * 2, rel=1e-5)
    risk_lin = L.empirical_risk(L.linear_error, f, xs, ys)
    assert risk_lin.item() == pytest.approx(F.l1_loss(f(xs), ys).item() * 2, rel=1e-5)


def test_shape_mismatch_raises():
    with pytest.raises(AssertionError, match="t must have the same shape as y"):
        L.squared_error(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(AssertionError, match="t must have the same shape as y"):
        L.linear_error(torch.zeros(3), torch.zeros(4))


def test_empirical_risk_bad_inputs():
    f = nn.Linear(2, 1)
    with pytest.raises(AssertionError, match=r"loss must return one value per data point, shape \(3,\)"):
        L.empirical_risk(lambda y, t: (y - t).pow(2), f, torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="loss must be callable"):
        L.empirical_risk("squared", f, torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="f must be callable"):
        L.empirical_risk(L.squared_error, None, torch.zeros(3, 2), torch.zeros(3, 1))


# --------------------------------------------------------------------------- Section 2.2
@pytest.mark.parametrize("shape", [(4, 1, 5, 6), (4, 30)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_image_mse_matches_torch_per_image(shape, reduction):
    g = _gen(3)
    x, x_hat = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    got = L.image_mse(x, x_hat, reduction=reduction)
    want = torch.stack([F.mse_loss(x_hat[i], x[i], reduction=reduction) for i in range(shape[0])])
    assert got.shape == (shape[0],)
    torch.testing.assert_close(got, want)


def test_image_mse_default_is_the_thesis_sum():
    x, x_hat = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
    assert L.image_mse(x, x_hat).item() == 4.0
    assert L.image_mse(x, x_hat, reduction="mean").item() == 1.0


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_image_bce_matches_torch(reduction):
    g = _gen(4)
    x = torch.rand(3, 1, 4, 4, generator=g)
    x_hat = torch.rand(3, 1, 4, 4, generator=g) * 0.98 + 0.01
    got = L.image_bce(x, x_hat, reduction=reduction)
    want = torch.stack([F.binary_cross_entropy(x_hat[i], x[i], reduction=reduction) for i in range(3)])
    assert got.shape == (3,)
    torch.testing.assert_close(got, want)


def test_image_bce_is_finite_at_saturated_predictions():
    x = torch.tensor([[0.0, 1.0, 1.0]])
    x_hat = torch.tensor([[0.0, 1.0, 0.0]], requires_grad=True)
    val = L.image_bce(x, x_hat, reduction="sum")
    assert torch.isfinite(val).all()
    assert val.item() == pytest.approx(-math.log(1e-7), rel=1e-3)  # one wrong pixel, clamped at eps
    val.sum().backward()
    assert torch.isfinite(x_hat.grad).all()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_image_bce_with_logits_matches_torch_and_is_stable(reduction):
    g = _gen(5)
    x = torch.rand(3, 20, generator=g)
    logits = torch.randn(3, 20, generator=g) * 50  # many saturated logits
    got = L.image_bce_with_logits(x, logits, reduction=reduction)
    want = torch.stack([F.binary_cross_entropy_with_logits(logits[i], x[i], reduction=reduction) for i in range(3)])
    torch.testing.assert_close(got, want)
    # Agrees with the probability version where the sigmoid is not saturated.
    small = logits / 50
    torch.testing.assert_close(
        L.image_bce_with_logits(x, small, reduction=reduction),
        L.image_bce(x, torch.sigmoid(small), reduction=reduction),
    )


def test_bce_minimum_is_the_entropy_not_zero_for_grey_levels():
    g = _gen(6)
    x = torch.randint(0, 256, (2, 1, 6, 6), generator=g).double() / 255  # MNIST-like grey levels
    at_x = L.image_bce(x, x)
    floor = L.image_binary_entropy(x)
    # Oracle: scipy's entropy of the Bernoulli(x_ij) pixel distributions, averaged per image.
    px = x.reshape(2, -1).numpy()
    want = np.array([np.mean([scipy.stats.entropy([v, 1 - v]) for v in row]) for row in px])
    np.testing.assert_allclose(floor.numpy(), want, rtol=1e-10)
    torch.testing.assert_close(at_x, floor, rtol=1e-6, atol=1e-6)
    assert (at_x > 0.05).all()  # far from zero
    # x_hat = x is the minimiser: any perturbation increases the loss.
    for eps in (0.05, -0.05):
        worse = L.image_bce(x, (x + eps).clamp(0.001, 0.999))
        assert (worse > at_x).all()
    # For binary images the minimum is zero.
    xb = (x > 0.5).double()
    assert L.image_binary_entropy(xb).abs().max().item() == 0.0
    assert L.image_bce_with_logits(xb, (xb - 0.5) * 200).abs().max().item() < 1e-30


def test_image_loss_bad_inputs():
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="reduction must be one of 'sum', 'mean'; got 'none'"):
        L.image_mse(x, x, reduction="none")
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.image_bce(x, x, reduction="elementwise")
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.image_bce_with_logits(x, x, reduction="batchmean")
    with pytest.raises(AssertionError, match="x_hat must have the same shape as x"):
        L.image_mse(x, torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"x_hat must have all entries in \[0, 1\]"):
        L.image_bce(x, x + 1.0)
    with pytest.raises(ValueError, match=r"x must have all entries in \[0, 1\]"):
        L.image_bce(x * 255, x)
    with pytest.raises(ValueError, match=r"x must have all entries in \[0, 1\]"):
        L.image_bce_with_logits(x - 2, x)
    with pytest.raises(ValueError, match=r"eps must be a number in \(0, 0.5\); got 0"):
        L.image_bce(x, x, eps=0)


class _Flattening(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x.reshape(x.shape[0], -1) * 2)


def test_reconstruction_objective_defaults_follow_the_thesis():
    g = _gen(7)
    x = torch.rand(3, 1, 4, 4, generator=g)
    model = _Flattening()
    x_hat = model(x).reshape(x.shape)
    mse = L.reconstruction_objective("mse")(model, x, None)
    torch.testing.assert_close(mse, ((x - x_hat) ** 2).sum(dim=(1, 2, 3)))
    bce = L.reconstruction_objective("bce")(model, x, None)
    want = torch.stack([F.binary_cross_entropy(x_hat[i], x[i]) for i in range(3)])
    torch.testing.assert_close(bce, want)
    mse_mean = L.reconstruction_objective("mse", reduction="mean")(model, x, None)
    torch.testing.assert_close(mse_mean, mse / 16)


def test_supervised_objective():
    g = _gen(8)
    model = nn.Linear(3, 2)
    x, y = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    torch.testing.assert_close(L.supervised_objective()(model, x, y), ((model(x) - y) ** 2).sum(1))
    torch.testing.assert_close(L.supervised_objective("linear")(model, x, y), (model(x) - y).abs().sum(1))


def test_objective_factories_bad_inputs():
    with pytest.raises(ValueError, match="loss must be one of 'mse', 'bce'; got 'l1'"):
        L.reconstruction_objective("l1")
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.reconstruction_objective("mse", reduction="max")
    with pytest.raises(ValueError, match="loss must be one of 'squared', 'linear'; got 'mse'"):
        L.supervised_objective("mse")


# --------------------------------------------------------------------------- no host synchronisation per batch
def _forbid_host_reads(monkeypatch) -> None:
    """Make every way of reading a tensor's value on the host raise (on a GPU each would wait for it)."""

    def refuse(*args, **kwargs):
        raise AssertionError("read a tensor value on the host")

    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_reconstruction_objective_does_not_read_tensor_values(loss, monkeypatch):
    x = torch.rand(3, 1, 4, 4, generator=_gen(20))
    model = _Flattening()
    objective = L.reconstruction_objective(loss)
    want = objective(model, x, None)
    with monkeypatch.context() as m:
        _forbid_host_reads(m)
        got = objective(model, x, None)
        with pytest.raises(AssertionError, match="read a tensor value"):  # the guard catches a value check
            L.image_bce(x, model(x).reshape(x.shape))
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_reconstruction_objective_still_checks_shapes():
    class Wrong(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x[:, :2])

    with pytest.raises(AssertionError, match="x_hat must have the same shape as x"):
        L.reconstruction_objective("bce")(Wrong(), torch.rand(2, 3), None)
