"""Tests for thesis_lib.mathematics.metrics: ROC AUC against scipy's Mann-Whitney U and a brute-force pair count,
the ROC curve's area, anomaly scores against the library's negative ELBO and a quadrature, and the
2-d latent grid against the closed forms of a linear Gaussian model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from thesis_lib.mathematics.metrics import (
    anomaly_scores,
    average_ranks,
    latent_activity,
    latent_grid_decomposition,
    roc_auc,
    roc_curve,
)
from thesis_lib.mathematics.vae import VAE, elbo_terms, negative_elbo


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _brute_force_auc(s: torch.Tensor, a: torch.Tensor) -> float:
    diff = a[None, :] - s[:, None]  # every (normal, anomalous) pair
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def _model(seed: int = 0, dtype=torch.float64, **kwargs) -> VAE:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return VAE(**kwargs).to(dtype)


# --------------------------------------------------------------------------- ranks and AUC
def test_average_ranks_match_scipy():
    v = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    np.testing.assert_allclose(average_ranks(v).numpy(), stats.rankdata(v.numpy()))


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True), (3, False)])
def test_roc_auc_matches_mann_whitney_and_pair_count(seed, ties):
    g = _gen(seed)
    s = torch.randn(137, generator=g, dtype=torch.float64)
    a = torch.randn(61, generator=g, dtype=torch.float64) + 0.7
    if ties:  # integer scores: many ties inside and across the groups
        s, a = (3 * s).round(), (3 * a).round()
    u = stats.mannwhitneyu(a.numpy(), s.numpy(), alternative="two-sided").statistic
    got = roc_auc(s, a)
    assert got == pytest.approx(u / (len(s) * len(a)), abs=1e-12)
    assert got == pytest.approx(_brute_force_auc(s, a), abs=1e-12)


def test_roc_auc_extremes_and_symmetry():
    s, a = torch.arange(5.0), torch.arange(5.0) + 10
    assert roc_auc(s, a) == 1.0
    assert roc_auc(a, s) == 0.0
    assert roc_auc(torch.ones(4), torch.ones(7)) == 0.5
    g = _gen(4)
    s, a = torch.randn(50, generator=g), torch.randn(30, generator=g)
    assert roc_auc(s, a) + roc_auc(a, s) == pytest.approx(1.0, abs=1e-12)
    assert roc_auc(s.float(), a.float()) == pytest.approx(roc_auc(s.double(), a.double()), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_runs_corner_to_corner_and_its_area_is_the_auc(ties):
    g = _gen(5)
    s = torch.randn(80, generator=g, dtype=torch.float64)
    a = torch.randn(40, generator=g, dtype=torch.float64) + 1.0
    if ties:
        s, a = (2 * s).round(), (2 * a).round()
    fpr, tpr, thr = roc_curve(s, a)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all() and (thr.diff() < 0).all()
    assert math.isinf(thr[0])
    # each point is the rates at its threshold, counted directly
    for k in (1, len(thr) // 2, len(thr) - 1):
        assert fpr[k] == pytest.approx(float((s >= thr[k]).double().mean()))
        assert tpr[k] == pytest.approx(float((a >= thr[k]).double().mean()))
    assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(roc_auc(s, a), abs=1e-12)


# --------------------------------------------------------------------------- anomaly scores
def test_anomaly_scores_with_one_sample_is_the_negative_elbo():
    model = _model(input_dim=12, hidden=(7,), latent_dim=3)
    x = (torch.rand(9, 12, generator=_gen(6), dtype=torch.float64) > 0.5).double()
    got = anomaly_scores(model, x, n_samples=1, generator=_gen(7))
    torch.testing.assert_close(got, negative_elbo(model, x, generator=_gen(7)))


def test_anomaly_scores_do_not_depend_on_batch_size_and_are_reproducible():
    model = _model(input_dim=10, hidden=(6,), latent_dim=2)
    x = torch.rand(23, 10, generator=_gen(8), dtype=torch.float64)
    a = anomaly_scores(model, x, n_samples=7, generator=_gen(9), batch_size=5)
    b = anomaly_scores(model, x, n_samples=7, generator=_gen(9), batch_size=100)
    assert a.shape == (23,)
    torch.testing.assert_close(a, b)
    model.train()
    anomaly_scores(model, x, n_samples=2, generator=_gen(9))
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="n_samples"):
        anomaly_scores(model, x, n_samples=0)
    with pytest.raises(ValueError, match="VAE"):
        anomaly_scores(torch.nn.Linear(10, 10), x)


def test_anomaly_scores_converge_to_the_expected_negative_elbo():
    """Many samples: the mean negative ELBO approaches E_q[-log p(x|z)] + KL, here by quadrature (1-d latent)."""
    model = _model(seed=1, input_dim=4, hidden=(5,), latent_dim=1)
    x = (torch.rand(3, 4, generator=_gen(10), dtype=torch.float64) > 0.5).double()
    got = anomaly_scores(model, x, n_samples=20000, generator=_gen(11))
    mu, logvar = model.encode(x)
    q = Normal(mu[:, 0], torch.exp(0.5 * logvar[:, 0]))
    grid = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    z = grid.reshape(-1, 1, 1).expand(-1, 3, 1)
    with torch.no_grad():
        e_recon = -(q.log_prob(z[..., 0]).exp() * model.log_likelihood(x, z)).sum(0) * float(grid[1] - grid[0])
        want = e_recon + kl_divergence(q, Normal(0.0, 1.0))
    # Monte Carlo error: sd of -log p(x|z) under q over sqrt(20000)
    terms = torch.stack([elbo_terms(model, x, generator=_gen(100 + i))["reconstruction"] for i in range(200)])
    tol = 5 * terms.std(0).detach() / math.sqrt(20000) + 1e-9
    assert ((got - want).abs() <= tol).all(), (got, want, tol)
    same, se = anomaly_scores(model, x, n_samples=20000, generator=_gen(11), return_stderr=True)
    torch.testing.assert_close(same, got)
    torch.testing.assert_close(se, terms.std(0).detach() / math.sqrt(20000), rtol=0.25, atol=0)  # sd from 200 draws
    with pytest.raises(ValueError, match="at least 2"):
        anomaly_scores(model, x, n_samples=1, return_stderr=True)


# --------------------------------------------------------------------------- exact evidence on a grid
def _linear_gaussian(seed: int = 2, sigma: float = 0.5, latent_dim: int = 2) -> VAE:
    """Identity activations and a Gaussian decoder: x = A z + c + noise, so p(x) and p(z|x) are Gaussian."""
    model = _model(seed=seed, input_dim=3, hidden=(4,), latent_dim=latent_dim, activation="identity",
                   likelihood="gaussian", sigma=sigma)
    with torch.no_grad():  # a broad q(z|x) near the posterior, so that the grid covers both
        for lin in (model.fc_mu, model.fc_logvar):
            lin.weight.mul_(0.1)
        model.fc_logvar.bias.fill_(math.log(0.3))
    return model


def _closed_forms(model: VAE, x: torch.Tensor):
    lin1, lin2 = model.decoder  # two layers, the second with the identity activation
    a = lin2.weight @ lin1.weight  # (D, L)
    c = lin2.weight @ lin1.bias + lin2.bias  # (D,)
    s2 = model.sigma**2
    log_px = MultivariateNormal(c, a @ a.T + s2 * torch.eye(len(c), dtype=a.dtype)).log_prob(x)
    prec = torch.eye(a.shape[1], dtype=a.dtype) + a.T @ a / s2
    cov = torch.linalg.inv(prec)
    post_mean = (x - c) @ a @ cov.T / s2  # (B, L)
    mu, logvar = model.encode(x)
    q = MultivariateNormal(mu, torch.diag_embed(logvar.exp()))
    kl = kl_divergence(q, MultivariateNormal(post_mean, cov.expand(len(x), -1, -1)))
    return log_px, kl


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_latent_grid_matches_the_linear_gaussian_closed_forms(latent_dim):
    model = _linear_gaussian(latent_dim=latent_dim)
    x = torch.randn(4, 3, generator=_gen(12), dtype=torch.float64)
    with torch.no_grad():
        log_px, kl = _closed_forms(model, x)
        got = latent_grid_decomposition(model, x, points=161 if latent_dim == 2 else 2001, half_width=12.0, chunk=999)
    torch.testing.assert_close(got["q_mass"], torch.ones(4, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(got["log_px"], log_px, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["kl_posterior"], kl, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["elbo"], log_px - kl, atol=1e-6, rtol=0)  # log p(x) = ELBO + KL
    assert (got["kl_posterior"] > 0).all()


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_latent_grid_finds_a_posterior_that_the_encoder_misses(latent_dim):
    """q(z|x) narrow and far from p(z|x): the mode search must still put the posterior on the grid."""
    model = _linear_gaussian(latent_dim=latent_dim)
    with torch.no_grad():
        model.fc_mu.bias.add_(3.0)  # q's mean about 3 prior units (many of q's widths) off
        model.fc_logvar.bias.fill_(math.log(0.01))  # q's sd 0.1
    x = torch.randn(3, 3, generator=_gen(20), dtype=torch.float64)
    with torch.no_grad():
        log_px, kl = _closed_forms(model, x)
        got = latent_grid_decomposition(model, x, points=401 if latent_dim == 2 else 4001, half_width=12.0)
    lin1, lin2 = model.decoder  # two layers, the second with the identity activation
    a = lin2.weight @ lin1.weight
    c = lin2.weight @ lin1.bias + lin2.bias
    cov = torch.linalg.inv(torch.eye(latent_dim, dtype=torch.float64) + a.T @ a / model.sigma**2)
    torch.testing.assert_close(got["mode"], (x - c) @ a @ cov.T / model.sigma**2, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["posterior_std"], cov.diagonal().sqrt().expand(3, -1), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(got["q_mass"], torch.ones(3, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(got["log_px"], log_px, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["kl_posterior"], kl, atol=1e-5, rtol=1e-8)
    assert (got["kl_posterior"] > 10).all()  # far off: a loose bound


def test_posterior_mode_leaves_the_model_gradients_alone():
    from thesis_lib.mathematics.metrics import posterior_mode

    model = _model(seed=6, input_dim=6, hidden=(5,), latent_dim=2)
    x = (torch.rand(3, 6, generator=_gen(21), dtype=torch.float64) > 0.5).double()
    mode, std = posterior_mode(model, x, torch.zeros(3, 2, dtype=torch.float64), steps=300)
    assert all(p.grad is None for p in model.parameters())
    with torch.enable_grad():  # the gradient of the log joint vanishes at the mode
        z = mode.clone().requires_grad_(True)
        (g,) = torch.autograd.grad((model.log_likelihood(x, z) - 0.5 * z.pow(2).sum(-1)).sum(), z)
    assert g.abs().max() < 1e-3
    assert torch.isfinite(std).all() and (std > 0).all()


def test_latent_grid_elbo_matches_the_closed_form_kl_estimate():
    model = _model(seed=4, input_dim=6, hidden=(5,), latent_dim=2)
    x = (torch.rand(3, 6, generator=_gen(13), dtype=torch.float64) > 0.5).double()
    got = latent_grid_decomposition(model, x, points=201, half_width=10.0)
    many = anomaly_scores(model, x, n_samples=40000, generator=_gen(14))  # mean negative ELBO
    torch.testing.assert_close(-got["elbo"], many, atol=0.02, rtol=0)
    assert (got["elbo"] <= got["log_px"]).all()


def test_latent_grid_refuses_other_latent_sizes():
    with pytest.raises(ValueError, match="dimension 1 or 2"):
        latent_grid_decomposition(_model(input_dim=4, hidden=(3,), latent_dim=3), torch.rand(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="points"):
        latent_grid_decomposition(_model(input_dim=4, hidden=(3,), latent_dim=2), torch.rand(2, 4, dtype=torch.float64),
                                  points=2)


# --------------------------------------------------------------------------- batched importance sampling
def test_dataset_nll_is_importance_sampled_nll_in_batches():
    from thesis_lib.mathematics.metrics import dataset_nll
    from thesis_lib.mathematics.vae import importance_sampled_nll

    model = _model(seed=5, input_dim=8, hidden=(6,), latent_dim=2)
    x = (torch.rand(11, 8, generator=_gen(15), dtype=torch.float64) > 0.5).double()
    one = dataset_nll(model, x, k=30, batch_size=100, chunk=7, generator=_gen(16))
    torch.testing.assert_close(one, importance_sampled_nll(model, x, k=30, chunk=7, generator=_gen(16)))
    g = _gen(17)
    want = torch.cat([importance_sampled_nll(model, x[:4], k=30, chunk=7, generator=g),
                      importance_sampled_nll(model, x[4:8], k=30, chunk=7, generator=g),
                      importance_sampled_nll(model, x[8:], k=30, chunk=7, generator=g)])
    torch.testing.assert_close(dataset_nll(model, x, k=30, batch_size=4, chunk=7, generator=_gen(17)), want)
    # a tighter bound than the ELBO: the mean over many images lies below the mean negative ELBO
    assert dataset_nll(model, x, k=200, generator=_gen(18)).mean() < anomaly_scores(model, x, 200, _gen(19)).mean()



def test_dataset_nll_curve_is_the_curve_in_batches():
    from thesis_lib.mathematics.metrics import dataset_nll_curve
    from thesis_lib.mathematics.vae import importance_sampled_nll_curve

    model = _model(seed=5, input_dim=8, hidden=(6,), latent_dim=2)
    x = (torch.rand(11, 8, generator=_gen(15), dtype=torch.float64) > 0.5).double()
    g, ks = _gen(20), (1, 5, 30)
    want = torch.cat([importance_sampled_nll_curve(model, xb, ks, chunk=7, generator=g) for xb in x.split(4)], dim=1)
    got = dataset_nll_curve(model, x, ks, batch_size=4, chunk=7, generator=_gen(20))
    assert got.shape == (3, 11)
    torch.testing.assert_close(got, want)

def test_latent_activity_is_the_variance_of_the_encoder_mean_and_finds_a_dead_unit():
    torch.manual_seed(0)
    model = VAE(input_dim=12, hidden=(8,), latent_dim=4)
    with torch.no_grad():  # unit 2's mean ignores the input: a dead unit
        model.fc_mu.weight[2].zero_()
    x = torch.rand(50, 12, generator=torch.Generator().manual_seed(1))
    act = latent_activity(model, x, batch_size=7)
    mu = model.encode(x)[0].detach().numpy().astype(np.float64)
    np.testing.assert_allclose(act.numpy(), mu.var(axis=0), rtol=1e-6, atol=1e-12)  # numpy's population variance
    assert act.shape == (4,) and act[2].item() == 0.0 and (act[[0, 1, 3]] > 0).all()
    with pytest.raises(ValueError, match="model must be a thesis_lib.mathematics.vae.VAE"):
        latent_activity(torch.nn.Linear(2, 2), x)


def test_paired_difference_against_scipy_paired_t_test():
    import scipy.stats

    from thesis_lib.mathematics.metrics import paired_difference

    g = _gen(30)
    shared = torch.randn(500, generator=g, dtype=torch.float64) * 20  # the images' own spread
    a = shared + torch.randn(500, generator=g, dtype=torch.float64)
    b = shared + 0.3 + torch.randn(500, generator=g, dtype=torch.float64)
    mean, se = paired_difference(a, b)
    t = scipy.stats.ttest_rel(a.numpy(), b.numpy()).statistic
    assert mean == pytest.approx((a - b).mean().item()) and mean / se == pytest.approx(t)
    assert se < (a.std() / 500**0.5).item() / 10  # far below the unpaired error
    with pytest.raises(AssertionError, match="a and b must score the same images"):
        paired_difference(a, b[:10])
