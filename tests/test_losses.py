"""Tests for thesis_lib.losses: oracles (torch, scipy, closed forms), properties, shapes, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from thesis_lib import losses as L


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
    with pytest.raises(ValueError, match="t must have the same shape as y"):
        L.squared_error(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="t must have the same shape as y"):
        L.linear_error(torch.zeros(3), torch.zeros(4))


def test_empirical_risk_bad_inputs():
    f = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="ys must have as many rows as xs"):
        L.empirical_risk(L.squared_error, f, torch.zeros(3, 2), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="xs must hold k >= 1"):
        L.empirical_risk(L.squared_error, f, torch.zeros(0, 2), torch.zeros(0, 1))
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
        L.image_bce_with_logits(x, small, reduction=reduction), L.image_bce(x, torch.sigmoid(small), reduction=reduction)
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
    with pytest.raises(ValueError, match="x_hat must have the same shape as x"):
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
    with pytest.raises(ValueError, match="y must be a tensor of labels"):
        L.supervised_objective()(model, x, None)


def test_objective_factories_bad_inputs():
    with pytest.raises(ValueError, match="loss must be one of 'mse', 'bce'; got 'l1'"):
        L.reconstruction_objective("l1")
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.reconstruction_objective("mse", reduction="max")
    with pytest.raises(ValueError, match="loss must be one of 'squared', 'linear'; got 'mse'"):
        L.supervised_objective("mse")


def test_objective_rejects_tuple_output():
    class TupleModel(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(ValueError, match="model must return a tensor"):
        L.reconstruction_objective()(TupleModel(), torch.rand(2, 3), None)


# --------------------------------------------------------------------------- Section 3.1, Gaussians
def _random_gaussians(seed: int, b: int = 4, d: int = 3, dtype=torch.float64):
    g = _gen(seed)
    return (torch.randn(b, d, generator=g, dtype=dtype), torch.randn(b, d, generator=g, dtype=dtype))


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = _random_gaussians(10)
    got = L.gaussian_kl(mu, logvar)
    want = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    assert got.shape == (4,)
    torch.testing.assert_close(got, want)


def test_gaussian_kl_general_matches_torch_and_reduces_to_prior_case():
    mu1, lv1 = _random_gaussians(11)
    mu2, lv2 = _random_gaussians(12)
    got = L.gaussian_kl_general(mu1, lv1, mu2, lv2)
    want = kl_divergence(Normal(mu1, torch.exp(0.5 * lv1)), Normal(mu2, torch.exp(0.5 * lv2))).sum(-1)
    torch.testing.assert_close(got, want)
    zeros = torch.zeros_like(mu1)
    torch.testing.assert_close(L.gaussian_kl_general(mu1, lv1, zeros, zeros), L.gaussian_kl(mu1, lv1))


def test_gaussian_kl_properties():
    mu, logvar = _random_gaussians(13, b=200, d=5)
    assert (L.gaussian_kl(mu, logvar) > 0).all()
    assert (L.gaussian_kl_general(mu, logvar, mu.flip(0), logvar.flip(0)) >= 0).all()
    zeros = torch.zeros(3, 5)
    assert L.gaussian_kl(zeros, zeros).abs().max().item() == 0.0  # 0 at the prior
    assert L.gaussian_kl_general(mu, logvar, mu, logvar).abs().max().item() < 1e-12


def test_gaussian_kl_against_monte_carlo():
    mu, logvar = _random_gaussians(14, b=3, d=4)
    p = Normal(mu, torch.exp(0.5 * logvar))
    q = Normal(torch.zeros_like(mu), torch.ones_like(mu))

    def sample_p(n, generator):
        eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    est, se = L.monte_carlo_kl(
        sample_p, lambda s: p.log_prob(s).sum(-1), lambda s: q.log_prob(s).sum(-1), 20000, _gen(15), return_stderr=True
    )
    exact = L.gaussian_kl(mu, logvar)
    assert est.shape == (3,) and se.shape == (3,)
    assert ((est - exact).abs() < 3 * se).all()
    assert (se < 0.05 * exact + 0.05).all()  # the check above is not vacuous


def test_gaussian_entropy_oracles_and_erratum():
    mu, logvar = _random_gaussians(16, d=1)
    got = L.gaussian_entropy(logvar)
    torch.testing.assert_close(got, Normal(mu, torch.exp(0.5 * logvar)).entropy().sum(-1))
    want = [scipy.stats.norm(scale=math.exp(0.5 * v)).entropy() for v in logvar[:, 0].tolist()]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    # Erratum to Definition 3.1.2: negative for s < 1/sqrt(2 pi e) ~ 0.242, zero at the threshold.
    s0 = 1 / math.sqrt(2 * math.pi * math.e)
    for s, sign in ((0.1, -1), (s0, 0), (0.5, 1)):
        h = L.gaussian_entropy(torch.tensor([[2 * math.log(s)]], dtype=torch.float64)).item()
        assert h == pytest.approx(float(scipy.stats.norm(scale=s).entropy()), abs=1e-12)
        assert (h > 1e-12) - (h < -1e-12) == sign


def test_gaussian_cross_entropy_against_monte_carlo_and_negative_case():
    mu1, lv1 = _random_gaussians(17, b=2, d=3)
    mu2, lv2 = _random_gaussians(18, b=2, d=3)
    q = Normal(mu2, torch.exp(0.5 * lv2))
    z = mu1 + torch.exp(0.5 * lv1) * torch.randn((50000, 2, 3), generator=_gen(28), dtype=torch.float64)
    neg_log_q = -q.log_prob(z).sum(-1)  # (n, B)
    est, se = neg_log_q.mean(0), neg_log_q.std(0) / math.sqrt(50000)
    got = L.gaussian_cross_entropy(mu1, lv1, mu2, lv2)
    assert ((got - est).abs() < 3 * se).all()
    # Erratum to Definition 3.1.3: negative for a narrow p = q.
    lv = torch.full((1, 1), 2 * math.log(0.1), dtype=torch.float64)
    assert L.gaussian_cross_entropy(torch.zeros_like(lv), lv, torch.zeros_like(lv), lv).item() < 0


def test_remark_3_1_4_identity_for_gaussians():
    mu1, lv1 = _random_gaussians(19, b=6, d=4)
    mu2, lv2 = _random_gaussians(20, b=6, d=4)
    lhs = L.gaussian_kl_general(mu1, lv1, mu2, lv2)
    rhs = L.gaussian_cross_entropy(mu1, lv1, mu2, lv2) - L.gaussian_entropy(lv1)
    torch.testing.assert_close(lhs, rhs)


# --------------------------------------------------------------------------- Section 3.1, discrete
def _simplex(seed: int, b: int = 5, k: int = 6) -> torch.Tensor:
    return torch.softmax(torch.randn(b, k, generator=_gen(seed), dtype=torch.float64) * 2, dim=-1)


def test_discrete_quantities_against_scipy():
    p, q = _simplex(21), _simplex(22)
    pn, qn = p.numpy(), q.numpy()
    np.testing.assert_allclose(L.discrete_entropy(p).numpy(), [scipy.stats.entropy(r) for r in pn], rtol=1e-12)
    np.testing.assert_allclose(L.discrete_kl(p, q).numpy(), [scipy.stats.entropy(a, b) for a, b in zip(pn, qn)], rtol=1e-10)
    np.testing.assert_allclose(
        L.discrete_cross_entropy(p, q).numpy(), [-(a * np.log(b)).sum() for a, b in zip(pn, qn)], rtol=1e-12
    )


def test_remark_3_1_4_identity_discrete_and_properties():
    p, q = _simplex(23), _simplex(24)
    torch.testing.assert_close(L.discrete_kl(p, q), L.discrete_cross_entropy(p, q) - L.discrete_entropy(p))
    assert (L.discrete_kl(p, q) > 0).all()
    assert L.discrete_kl(p, p).abs().max().item() < 1e-15
    assert (L.discrete_entropy(p) >= 0).all() and (L.discrete_cross_entropy(p, q) >= 0).all()
    # 0 log 0 = 0; support mismatch gives +inf (absolute continuity, erratum to Definition 3.1.1).
    a = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    b = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    assert L.discrete_entropy(a).item() == pytest.approx(math.log(2))
    assert L.discrete_kl(a, b).item() == pytest.approx(scipy.stats.entropy(a.numpy(), b.numpy()))
    assert L.discrete_kl(b, a).item() == math.inf == scipy.stats.entropy(b.numpy(), a.numpy())


def test_discrete_bad_inputs():
    with pytest.raises(ValueError, match="p must sum to 1"):
        L.discrete_entropy(torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="p must have non-negative entries"):
        L.discrete_entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="q must sum to 1"):
        L.discrete_kl(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.4]))
    with pytest.raises(ValueError, match="q must have the same shape as p"):
        L.discrete_cross_entropy(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="p must be a torch.Tensor"):
        L.discrete_entropy([0.5, 0.5])


def test_gaussian_bad_inputs():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="logvar must have the same shape as mu"):
        L.gaussian_kl(z, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mu2 must have the same shape as mu1"):
        L.gaussian_kl_general(z, z, torch.zeros(3), z)
    with pytest.raises(ValueError, match="logvar2 must have the same shape as mu1"):
        L.gaussian_cross_entropy(z, z, z, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="logvar must have a last"):
        L.gaussian_entropy(torch.tensor(0.0))


def test_monte_carlo_kl_bad_inputs():
    f = lambda s: s.sum(-1)  # noqa: E731
    sampler = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    with pytest.raises(ValueError, match="n must be a positive integer"):
        L.monte_carlo_kl(sampler, f, f, 0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        L.monte_carlo_kl(sampler, f, f, 10.0)
    with pytest.raises(ValueError, match="n must be at least 2"):
        L.monte_carlo_kl(sampler, f, f, 1, return_stderr=True)
    with pytest.raises(ValueError, match="log_q must be callable"):
        L.monte_carlo_kl(sampler, f, 3.0, 10)
    with pytest.raises(ValueError, match="one value per sample"):
        L.monte_carlo_kl(sampler, lambda s: s.sum(), f, 10, _gen(0))


def test_monte_carlo_kl_discrete_oracle():
    p, q = _simplex(25, b=1, k=4)[0], _simplex(26, b=1, k=4)[0]

    def sample_p(n, generator):
        return torch.multinomial(p, n, replacement=True, generator=generator)

    est, se = L.monte_carlo_kl(sample_p, lambda s: p.log()[s], lambda s: q.log()[s], 40000, _gen(27), return_stderr=True)
    assert abs(est.item() - L.discrete_kl(p, q).item()) < 3 * se.item()
