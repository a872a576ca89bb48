r"""Entropy, cross-entropy and KL divergence (thesis Section 3.1).

Definition 3.1.1 (the KL divergence, Eq. (3.1)), Definition 3.1.2 (entropy, Eq. (3.2)),
Definition 3.1.3 (cross-entropy, Eq. (3.3)) and Remark 3.1.4 (KL = cross-entropy - entropy), in
closed form for diagonal Gaussians (Kingma & Welling (2014), Appendix B, for the KL to the prior)
and for probability vectors, and a Monte Carlo estimate of the KL for any pair of densities.

All quantities are in nats and reduce over the last dimension: ``(..., D) -> (...)``. The arguments are
trusted: the shapes broadcast as in torch, and probability vectors are not checked to be non-negative or
to sum to 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from thesis_lib.ground.validation import check_positive_int

__all__ = [
    "gaussian_kl",
    "gaussian_kl_general",
    "gaussian_entropy",
    "gaussian_cross_entropy",
    "discrete_entropy",
    "discrete_cross_entropy",
    "discrete_kl",
    "monte_carlo_kl",
]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- Section 3.1
def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""$D_{KL}(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal N(0, I))$ per example, closed form.

    Thesis: Definition 3.1.1, Eq. (3.1).

    ``mu`` and ``logvar`` ($\log\sigma^2$) have shape ``(..., D)``; the result sums over the
    last dimension: ``(B, D) -> (B,)``, in nats. Closed form from Kingma & Welling (2014),
    Appendix B: $D_{KL} = -\frac12 \sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)$.
    """
    # Eq. (3.1), closed form: Kingma & Welling (2014), Appendix B
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)


def gaussian_kl_general(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    r"""$D_{KL}(\mathcal N(\mu_1, \operatorname{diag}\sigma_1^2) \,\|\,
    \mathcal N(\mu_2, \operatorname{diag}\sigma_2^2))$ per example.

    Thesis: Definition 3.1.1, Eq. (3.1); Remark 3.1.4.

    $\frac12 \sum_j \big(\log\sigma_{2j}^2 - \log\sigma_{1j}^2
    + (\sigma_{1j}^2 + (\mu_{1j} - \mu_{2j})^2)/\sigma_{2j}^2 - 1\big)$, which is
    :func:`gaussian_cross_entropy` minus :func:`gaussian_entropy` (Remark 3.1.4). All four
    tensors have shape ``(..., D)``; the result sums over the last dimension.
    """
    # Eq. (3.1), closed form for two diagonal Gaussians
    ratio = (logvar1.exp() + (mu1 - mu2).pow(2)) / logvar2.exp()
    return 0.5 * (logvar2 - logvar1 + ratio - 1.0).sum(dim=-1)


def gaussian_entropy(logvar: Tensor) -> Tensor:
    r"""Differential entropy $\mathcal H = \frac12\sum_j (\log(2\pi e) + \log\sigma_j^2)$ of
    $\mathcal N(\mu, \operatorname{diag}\sigma^2)$.

    Thesis: Definition 3.1.2, Eq. (3.2).

    ``logvar`` has shape ``(..., D)``; the result sums over the last dimension, in nats.
    It does not depend on the mean.

    Erratum: Definition 3.1.2 calls the entropy a "nonnegative measure", but it is stated for
    probability *density* functions, whose (differential) entropy can be negative: for
    $\mathcal N(0, s^2)$ it is $\frac12\log(2\pi e s^2) < 0$ whenever
    $s < 1/\sqrt{2\pi e} \approx 0.242$. Non-negativity holds for probability mass functions
    (:func:`discrete_entropy`). We return the (possibly negative) value.
    """
    # Eq. (3.2) for a diagonal Gaussian
    return 0.5 * (_LOG_2PI + 1.0 + logvar).sum(dim=-1)


def gaussian_cross_entropy(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    r"""Cross-entropy $\mathcal H_q = \mathbb E_p[-\log q]$ for $p = \mathcal N(\mu_1, \sigma_1^2)$,
    $q = \mathcal N(\mu_2, \sigma_2^2)$.

    Thesis: Definition 3.1.3, Eq. (3.3).

    Closed form $\frac12\sum_j\big(\log(2\pi) + \log\sigma_{2j}^2
    + (\sigma_{1j}^2 + (\mu_{1j}-\mu_{2j})^2)/\sigma_{2j}^2\big)$, diagonal covariances, shapes
    ``(..., D) -> (...)``, in nats.

    Erratum: Definition 3.1.3 calls the cross-entropy "nonnegative", but for densities it can
    be negative (e.g. $p = q = \mathcal N(0, s^2)$ with $s < 1/\sqrt{2\pi e}$, where it equals the
    negative entropy of Definition 3.1.2). It is nonnegative for probability mass functions.
    """
    # Eq. (3.3) for diagonal Gaussians
    ratio = (logvar1.exp() + (mu1 - mu2).pow(2)) / logvar2.exp()
    return 0.5 * (_LOG_2PI + logvar2 + ratio).sum(dim=-1)


def discrete_entropy(p: Tensor) -> Tensor:
    r"""Entropy $\mathcal H(p) = -\sum_i p_i \log p_i$ (with $0 \log 0 = 0$) of probability vectors.

    Thesis: Definition 3.1.2, Eq. (3.2).

    ``p`` has shape ``(..., K)``, non-negative, summing to 1 over the last dimension; the
    result has shape ``(...)``, in nats, and is nonnegative (here the thesis's claim holds).
    """
    # Eq. (3.2) with the integral a sum
    return -torch.xlogy(p, p).sum(dim=-1)


def discrete_cross_entropy(p: Tensor, q: Tensor) -> Tensor:
    r"""Cross-entropy $\mathcal H_q(p) = -\sum_i p_i \log q_i$ of probability vectors.

    Thesis: Definition 3.1.3, Eq. (3.3).

    Shapes ``(..., K) -> (...)``. It is $+\infty$ where some $q_i = 0 < p_i$.
    """
    # Eq. (3.3) with the integral a sum
    return -torch.xlogy(p, q).sum(dim=-1)


def discrete_kl(p: Tensor, q: Tensor) -> Tensor:
    r"""$D_{KL}(p \,\|\, q) = \sum_i p_i \log(p_i / q_i)$ of probability vectors.

    Thesis: Definition 3.1.1, Eq. (3.1); Remark 3.1.4.

    Shapes ``(..., K) -> (...)``, in nats; computed as cross-entropy minus entropy term by term
    (Remark 3.1.4). Returns $+\infty$ where some $q_i = 0 < p_i$.

    Erratum: Remark 3.1.4 writes $D_{KL}(p\|q) = \mathcal H_q(p) - \mathcal H(p)$, while
    Definitions 3.1.2 and 3.1.3 define $\mathcal H(X)$ and $\mathcal H_q(X)$ as functions of the
    random variable $X$ (with $p$ implicit); the consistent statement is
    $D_{KL}(p\|q) = \mathcal H_q(X) - \mathcal H(X)$ with $X \sim p$. The identity itself holds
    whenever $\mathcal H(X)$ is finite. Definition 3.1.1 also omits the condition that $p$ be
    absolutely continuous w.r.t. $q$ ($q = 0 \Rightarrow p = 0$); without it the divergence is
    $+\infty$, which is what we return.
    """
    # Eq. (3.1) with the integral a sum, as H_q(p) - H(p) (Remark 3.1.4)
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=-1)


def monte_carlo_kl(
    sample_p: Callable[[int, torch.Generator | None], Tensor],
    log_p: Callable[[Tensor], Tensor],
    log_q: Callable[[Tensor], Tensor],
    n: int,
    generator: torch.Generator | None = None,
    return_stderr: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Monte Carlo estimate $\frac1n\sum_{s=1}^n \log p(x_s) - \log q(x_s)$, $x_s \sim p$, of $D_{KL}(p\|q)$.

    Thesis: Definition 3.1.1, Eq. (3.1).

    ``sample_p(n, generator)`` returns ``n`` samples stacked along dim 0; ``log_p`` and
    ``log_q`` map them to log-densities of shape ``(n, ...)``. The estimate averages over
    dim 0 and so has shape ``(...)`` (e.g. ``(B,)`` for a batch of distributions). It is
    unbiased but, unlike the KL, can be negative. With ``return_stderr=True`` also returns the
    standard error $\hat s / \sqrt n$ (needs ``n >= 2``).
    """
    for name, fn in (("sample_p", sample_p), ("log_p", log_p), ("log_q", log_q)):
        if not callable(fn):
            raise ValueError(f"{name} must be callable; got {fn!r}")
    check_positive_int("n", n)
    if return_stderr and n < 2:
        raise ValueError(f"n must be at least 2 to estimate a standard error; got {n!r}")
    samples = sample_p(n, generator)
    lp, lq = log_p(samples), log_q(samples)
    # the mean over dim 0 estimates the KL only with one value per sample there
    assert lp.shape[:1] == lq.shape[:1] == (n,), (
        f"log_p and log_q must return one value per sample along dim 0 (n={n}); "
        f"got shapes {tuple(lp.shape)} and {tuple(lq.shape)}"
    )
    diff = lp - lq  # (n, ...)
    # Eq. (3.1) as an expectation under p
    estimate = diff.mean(dim=0)
    if not return_stderr:
        return estimate
    return estimate, diff.std(dim=0, unbiased=True) / math.sqrt(n)
