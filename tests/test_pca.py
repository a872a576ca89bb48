"""Tests for thesis_lib.mathematics.pca: oracles (numpy.linalg, scipy.linalg.subspace_angles), closed forms,
properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from thesis_lib.mathematics import pca as P


def _data(n: int = 300, d: int = 12, seed: int = 0) -> torch.Tensor:
    """Correlated data with distinct variances: x = mean + g A, A fixed with a decaying spectrum."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) * torch.logspace(0, -2, d, dtype=torch.float64)[:, None]
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ a + torch.linspace(-1, 1, d, dtype=torch.float64)


# --------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("method", P.METHODS)
def test_fit_matches_numpy_eigendecomposition(method):
    x = _data()
    fit = P.fit_pca(x, 4, method=method)
    xn = x.numpy()
    cov = np.cov(xn, rowvar=False, bias=True)  # divisor n, as documented
    evals, evecs = np.linalg.eigh(cov)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(fit.mean.numpy(), xn.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.eigenvalues.numpy(), np.clip(evals, 0, None), rtol=1e-9, atol=1e-12)
    for j in range(4):  # same axis up to sign
        assert abs(abs(float(fit.components[j] @ torch.from_numpy(evecs[:, j].copy()))) - 1.0) < 1e-9
    assert fit.k == 4 and fit.dim == 12 and fit.n_samples == 300
    assert fit.components.dtype == torch.float64


def test_methods_agree_and_signs_are_deterministic():
    x = _data(seed=1)
    a, b = P.fit_pca(x, 5, "eigh"), P.fit_pca(x, 5, "svd")
    torch.testing.assert_close(a.components, b.components, rtol=0, atol=1e-9)
    torch.testing.assert_close(a.eigenvalues, b.eigenvalues, rtol=1e-9, atol=1e-12)
    largest = a.components.gather(1, a.components.abs().argmax(dim=1, keepdim=True))
    assert bool((largest > 0).all())


def test_components_are_orthonormal_and_ordered():
    fit = P.fit_pca(_data(seed=2), 7)
    torch.testing.assert_close(fit.components @ fit.components.T, torch.eye(7, dtype=torch.float64), rtol=0, atol=1e-12)
    assert bool((fit.eigenvalues[:-1] >= fit.eigenvalues[1:]).all()) and bool((fit.eigenvalues >= 0).all())
    torch.testing.assert_close(fit.explained_variance, fit.eigenvalues[:7])


def test_truncated_equals_a_fit_with_fewer_components():
    x = _data(seed=11)
    big, small = P.fit_pca(x, 8), P.fit_pca(x, 3)
    cut = big.truncated(3)
    torch.testing.assert_close(cut.components, small.components, rtol=0, atol=1e-12)
    assert cut.k == 3 and cut.discarded_variance == pytest.approx(small.discarded_variance, rel=1e-12)
    with pytest.raises(ValueError, match="at most the number of fitted components 8"):
        big.truncated(9)


def test_float32_input_is_fitted_in_float64():
    x = _data(seed=3)
    a, b = P.fit_pca(x.float(), 3), P.fit_pca(x.float().double(), 3)
    torch.testing.assert_close(a.eigenvalues, b.eigenvalues, rtol=1e-12, atol=1e-14)


def test_fewer_samples_than_dimensions():
    x = _data(n=5, d=12, seed=4)
    for method in P.METHODS:
        fit = P.fit_pca(x, 3, method)
        assert float(fit.eigenvalues[4:].abs().max()) < 1e-12  # rank n - 1 = 4 after centring


# --------------------------------------------------------------------------- closed form of the error
@pytest.mark.parametrize("k", [1, 3, 6, 12])
def test_training_error_is_the_sum_of_discarded_eigenvalues(k):
    x = _data(seed=5)
    fit = P.fit_pca(x, k)
    err = P.reconstruction_error(fit, x)  # (n,), summed over coordinates
    assert err.shape == (300,)
    assert float(err.mean()) == pytest.approx(fit.discarded_variance, rel=1e-9, abs=1e-12)
    assert float(P.reconstruction_error(fit, x, "mean").mean()) == pytest.approx(fit.discarded_variance / 12,
                                                                                 rel=1e-9, abs=1e-13)


def test_pca_beats_any_other_projection_of_the_same_rank():
    x = _data(seed=6)
    fit = P.fit_pca(x, 3)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        q, _ = torch.linalg.qr(torch.randn(12, 3, generator=g, dtype=torch.float64))  # a random 3-d subspace
        xc = x - fit.mean
        other = (xc - xc @ q @ q.T).pow(2).sum(dim=1).mean()
        assert float(other) >= fit.discarded_variance - 1e-12


def test_transform_and_inverse_round_trip():
    x = _data(seed=7)
    full = P.fit_pca(x, 12)  # all axes: the reconstruction is exact
    torch.testing.assert_close(P.reconstruct(full, x), x, rtol=0, atol=1e-10)
    fit = P.fit_pca(x, 4)
    z = P.transform(fit, x)
    assert z.shape == (300, 4)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(z.var(dim=0, unbiased=False), fit.explained_variance, rtol=1e-9, atol=0)
    torch.testing.assert_close(P.transform(fit, P.inverse_transform(fit, z)), z, rtol=0, atol=1e-10)
    assert P.transform(fit, x.float()).dtype == torch.float32
    assert P.inverse_transform(fit, z.float()).dtype == torch.float32


def test_projection_is_idempotent():
    x = _data(seed=8)
    fit = P.fit_pca(x, 5)
    once = P.reconstruct(fit, x)
    torch.testing.assert_close(P.reconstruct(fit, once), once, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- principal angles
@pytest.mark.parametrize("p,q", [(3, 3), (5, 2), (2, 6), (1, 1)])
def test_principal_angles_match_scipy(p, q):
    g = torch.Generator().manual_seed(10 * p + q)
    a = torch.randn(20, p, generator=g, dtype=torch.float64)
    b = torch.randn(20, q, generator=g, dtype=torch.float64)
    ours = P.principal_angles(a, b)
    ref = np.sort(scipy.linalg.subspace_angles(a.numpy(), b.numpy()))
    assert ours.shape == (min(p, q),)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-12)
    assert bool((ours[:-1] <= ours[1:]).all())


def test_small_angles_are_accurate():
    # span{e1} vs span{e1 cos t + e2 sin t}: the angle is t, also for t far below sqrt(eps)
    for t in (1e-3, 1e-9, 1e-13):
        a = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
        b = torch.tensor([[math.cos(t)], [math.sin(t)], [0.0]], dtype=torch.float64)
        assert float(P.principal_angles(a, b)[0]) == pytest.approx(t, rel=1e-9)
        assert float(scipy.linalg.subspace_angles(a.numpy(), b.numpy())[0]) == pytest.approx(t, rel=1e-9)


def test_principal_angles_of_equal_nested_and_orthogonal_spaces():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(10, 3, generator=g, dtype=torch.float64)
    mix = torch.randn(3, 3, generator=g, dtype=torch.float64)  # another basis of the same space
    assert float(P.principal_angles(a, a @ mix).max()) < 1e-12
    assert float(P.principal_angles(a, a[:, :2]).max()) < 1e-12  # nested
    e = torch.eye(6, dtype=torch.float64)
    torch.testing.assert_close(P.principal_angles(e[:, :2], e[:, 2:5]),
                               torch.full((2,), math.pi / 2, dtype=torch.float64))


def test_pca_subspace_is_recovered_from_a_rotated_basis():
    x = _data(seed=9)
    fit = P.fit_pca(x, 4)
    g = torch.Generator().manual_seed(1)
    # what a linear AE's decoder may hold
    basis = fit.components.T @ torch.randn(4, 4, generator=g, dtype=torch.float64)
    assert float(P.principal_angles(basis, fit.components.T).max()) < 1e-10


# --------------------------------------------------------------------------- errors
def test_bad_arguments():
    x = _data()
    with pytest.raises(ValueError, match="k must be at most"):
        P.fit_pca(x, 13)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        P.fit_pca(x, 0)
    with pytest.raises(ValueError, match="method must be one of"):
        P.fit_pca(x, 2, method="qr")
    fit = P.fit_pca(x, 2)
    with pytest.raises(ValueError, match="reduction must be one of"):
        P.reconstruction_error(fit, x, "max")
