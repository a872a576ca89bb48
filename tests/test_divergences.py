"""Tests for thesis_lib.mathematics.divergences: KL divergence, entropy and cross-entropy (Section 3.1) against
torch.distributions, scipy, Monte Carlo and closed forms; properties and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import Normal, kl_divergence

from thesis_lib.mathematics import divergences as D


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- Section 3.1, Gaussians
def _random_gaussians(seed: int, b: int = 4, d: int = 3, dtype=torch.float64):
    g = _gen(seed)
    return (torch.randn(b, d, generator=g, dtype=dtype), torch.randn(b, d, generator=g, dtype=dtype))


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = _random_gaussians(10)
    got = D.gaussian_kl(mu, logvar)
    want = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    assert got.shape == (4,)
    torch.testing.assert_close(got, want)


def test_gaussian_kl_general_matches_torch_and_reduces_to_prior_case():
    mu1, lv1 = _random_gaussians(11)
    mu2, lv2 = _random_gaussians(12)
    got = D.gaussian_kl_general(mu1, lv1, mu2, lv2)
    want = kl_divergence(Normal(mu1, torch.exp(0.5 * lv1)), Normal(mu2, torch.exp(0.5 * lv2))).sum(-1)
    torch.testing.assert_close(got, want)
    zeros = torch.zeros_like(mu1)
    torch.testing.assert_close(D.gaussian_kl_general(mu1, lv1, zeros, zeros), D.gaussian_kl(mu1, lv1))


def test_gaussian_kl_properties():
    mu, logvar = _random_gaussians(13, b=200, d=5)
    assert (D.gaussian_kl(mu, logvar) > 0).all()
    assert (D.gaussian_kl_general(mu, logvar, mu.flip(0), logvar.flip(0)) >= 0).all()
    zeros = torch.zeros(3, 5)
    assert D.gaussian_kl(zeros, zeros).abs().max().item() == 0.0  # 0 at the prior
    assert D.gaussian_kl_general(mu, logvar, mu, logvar).abs().max().item() < 1e-12


def test_gaussian_kl_against_monte_carlo():
    mu, logvar = _random_gaussians(14, b=3, d=4)
    p = Normal(mu, torch.exp(0.5 * logvar))
    q = Normal(torch.zeros_like(mu), torch.ones_like(mu))

    def sample_p(n, generator):
        eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    est, se = D.monte_carlo_kl(
        sample_p, lambda s: p.log_prob(s).sum(-1), lambda s: q.log_prob(s).sum(-1), 20000, _gen(15), return_stderr=True
    )
    exact = D.gaussian_kl(mu, logvar)
    assert est.shape == (3,) and se.shape == (3,)
    assert ((est - exact).abs() < 3 * se).all()
    assert (se < 0.05 * exact + 0.05).all()  # the check above is not vacuous


def test_gaussian_entropy_oracles_and_erratum():
    mu, logvar = _random_gaussians(16, d=1)
    got = D.gaussian_entropy(logvar)
    torch.testing.assert_close(got, Normal(mu, torch.exp(0.5 * logvar)).entropy().sum(-1))
    want = [scipy.stats.norm(scale=math.exp(0.5 * v)).entropy() for v in logvar[:, 0].tolist()]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    # Erratum to Definition 3.1.2: negative for s < 1/sqrt(2 pi e) ~ 0.242, zero at the threshold.
    s0 = 1 / math.sqrt(2 * math.pi * math.e)
    for s, sign in ((0.1, -1), (s0, 0), (0.5, 1)):
        h = D.gaussian_entropy(torch.tensor([[2 * math.log(s)]], dtype=torch.float64)).item()
        assert h == pytest.approx(float(scipy.stats.norm(scale=s).entropy()), abs=1e-12)
        assert (h > 1e-12) - (h < -1e-12) == sign


def test_gaussian_cross_entropy_against_monte_carlo_and_negative_case():
    mu1, lv1 = _random_gaussians(17, b=2, d=3)
    mu2, lv2 = _random_gaussians(18, b=2, d=3)
    q = Normal(mu2, torch.exp(0.5 * lv2))
    z = mu1 + torch.exp(0.5 * lv1) * torch.randn((50000, 2, 3), generator=_gen(28), dtype=torch.float64)
    neg_log_q = -q.log_prob(z).sum(-1)  # (n, B)
    est, se = neg_log_q.mean(0), neg_log_q.std(0) / math.sqrt(50000)
    got = D.gaussian_cross_entropy(mu1, lv1, mu2, lv2)
    assert ((got - est).abs() < 3 * se).all()
    # Erratum to Definition 3.1.3: negative for a narrow p = q.
    lv = torch.full((1, 1), 2 * math.log(0.1), dtype=torch.float64)
    assert D.gaussian_cross_entropy(torch.zeros_like(lv), lv, torch.zeros_like(lv), lv).item() < 0


def test_remark_3_1_4_identity_for_gaussians():
    mu1, lv1 = _random_gaussians(19, b=6, d=4)
    mu2, lv2 = _random_gaussians(20, b=6, d=4)
    lhs = D.gaussian_kl_general(mu1, lv1, mu2, lv2)
    rhs = D.gaussian_cross_entropy(mu1, lv1, mu2, lv2) - D.gaussian_entropy(lv1)
    torch.testing.assert_close(lhs, rhs)


# --------------------------------------------------------------------------- Section 3.1, discrete
def _simplex(seed: int, b: int = 5, k: int = 6) -> torch.Tensor:
    return torch.softmax(torch.randn(b, k, generator=_gen(seed), dtype=torch.float64) * 2, dim=-1)


def test_discrete_quantities_against_scipy():
    p, q = _simplex(21), _simplex(22)
    pn, qn = p.numpy(), q.numpy()
    np.testing.assert_allclose(D.discrete_entropy(p).numpy(), [scipy.stats.entropy(r) for r in pn], rtol=1e-12)
    np.testing.assert_allclose(D.discrete_kl(p, q).numpy(), [scipy.stats.entropy(a, b) for a, b in zip(pn, qn)],
                               rtol=1e-10)
    np.testing.assert_allclose(
        D.discrete_cross_entropy(p, q).numpy(), [-(a * np.log(b)).sum() for a, b in zip(pn, qn)], rtol=1e-12
    )


def test_remark_3_1_4_identity_discrete_and_properties():
    p, q = _simplex(23), _simplex(24)
    torch.testing.assert_close(D.discrete_kl(p, q), D.discrete_cross_entropy(p, q) - D.discrete_entropy(p))
    assert (D.discrete_kl(p, q) > 0).all()
    assert D.discrete_kl(p, p).abs().max().item() < 1e-15
    assert (D.discrete_entropy(p) >= 0).all() and (D.discrete_cross_entropy(p, q) >= 0).all()
    # 0 log 0 = 0; support mismatch gives +inf (absolute continuity, erratum to Definition 3.1.1).
    a = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    b = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    assert D.discrete_entropy(a).item() == pytest.approx(math.log(2))
    assert D.discrete_kl(a, b).item() == pytest.approx(scipy.stats.entropy(a.numpy(), b.numpy()))
    assert D.discrete_kl(b, a).item() == math.inf == scipy.stats.entropy(b.numpy(), a.numpy())


def test_monte_carlo_kl_bad_inputs():
    f = lambda s: s.sum(-1)  # noqa: E731
    sampler = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    with pytest.raises(ValueError, match="n must be a positive integer"):
        D.monte_carlo_kl(sampler, f, f, 0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        D.monte_carlo_kl(sampler, f, f, 10.0)
    with pytest.raises(ValueError, match="n must be at least 2"):
        D.monte_carlo_kl(sampler, f, f, 1, return_stderr=True)
    with pytest.raises(ValueError, match="log_q must be callable"):
        D.monte_carlo_kl(sampler, f, 3.0, 10)
    with pytest.raises(AssertionError, match="one value per sample"):
        D.monte_carlo_kl(sampler, lambda s: s.sum(), f, 10, _gen(0))


def test_monte_carlo_kl_discrete_oracle():
    p, q = _simplex(25, b=1, k=4)[0], _simplex(26, b=1, k=4)[0]

    def sample_p(n, generator):
        return torch.multinomial(p, n, replacement=True, generator=generator)

    est, se = D.monte_carlo_kl(sample_p, lambda s: p.log()[s], lambda s: q.log()[s], 40000, _gen(27),
                               return_stderr=True)
    assert abs(est.item() - D.discrete_kl(p, q).item()) < 3 * se.item()
