r"""Loss functions, risks and information-theoretic quantities of the thesis.

Every loss here returns PER-EXAMPLE values: an input batch of shape ``(B, ...)`` gives a
tensor of shape ``(B,)``. The reduction over the batch (the empirical risk, Definition 1.2.4)
is left to the caller, usually the training loop, which averages and calls ``backward``.

An *objective* is a callable ``objective(model, x, y) -> Tensor`` of shape ``(B,)``; the
factories :func:`reconstruction_objective` and :func:`supervised_objective` build them
(and :func:`thesis_lib.vae.elbo_objective` for the VAE).

Sections: 1.2 (supervised losses and risks), 2.2 (image losses), 3.1 (KL divergence,
entropy, cross-entropy), with Kingma & Welling (2014), Appendix B, for the Gaussian KL.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thesis_lib.validation import check_choice, check_positive_int

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- private checks
def _check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    return value


def _check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor, *, min_dim: int = 1) -> None:
    _check_tensor(name_a, a)
    _check_tensor(name_b, b)
    if a.dim() < min_dim:
        raise ValueError(f"{name_a} must have at least {min_dim} dimension(s); got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the same shape as {name_a}, {tuple(a.shape)}; got {tuple(b.shape)}"
        )


def _check_in_unit_interval(name: str, value: Tensor) -> None:
    if value.numel() and (bool((value < 0).any()) or bool((value > 1).any()) or bool(value.isnan().any())):
        lo, hi = float(value.min()), float(value.max())
        raise ValueError(f"{name} must have all entries in [0, 1]; got values in [{lo}, {hi}]")


def _check_probability_vectors(name: str, p: Tensor) -> None:
    _check_tensor(name, p)
    if p.dim() < 1 or p.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last dimension (the categories); got shape {tuple(p.shape)}")
    if bool((p < 0).any()) or bool(p.isnan().any()):
        raise ValueError(f"{name} must have non-negative entries; got minimum {float(p.min())}")
    atol = 1e-8 if p.dtype == torch.float64 else 1e-4
    total = p.sum(dim=-1)
    if not torch.allclose(total, torch.ones_like(total), atol=atol, rtol=0.0):
        worst = float((total - 1).abs().max())
        raise ValueError(f"{name} must sum to 1 over its last dimension; got a sum off by {worst:.3g}")


def _flat(x: Tensor) -> Tensor:
    """(B, ...) -> (B, n): one row per example."""
    return x.reshape(x.shape[0], -1)


# --------------------------------------------------------------------------- Section 1.2
def squared_error(y: Tensor, t: Tensor) -> Tensor:
    r"""Squared error loss $L(x, y, t) = \sum_{i=1}^n |y_i - t_i|^2$, per example.

    Thesis: Example 1.2.2.

    ``y`` (true values) and ``t`` (predictions) have the same shape ``(..., n)``; the sum runs
    over the last dimension, so the result has shape ``(...)``, e.g. ``(B,)`` for ``(B, n)``.
    A scalar target (the case $Y = \mathbb{R}$) is a last dimension of size 1.
    """
    _check_same_shape("y", y, "t", t)
    return (y - t).pow(2).sum(dim=-1)


def linear_error(y: Tensor, t: Tensor) -> Tensor:
    r"""Linear error loss $L(x, y, t) = \sum_{i=1}^n |y_i - t_i|$, per example.

    Thesis: Example 1.2.2.

    Shapes as in :func:`squared_error`: ``(..., n) -> (...)``.
    """
    _check_same_shape("y", y, "t", t)
    return (y - t).abs().sum(dim=-1)


def empirical_risk(
    loss: Callable[[Tensor, Tensor], Tensor],
    f: Callable[[Tensor], Tensor],
    xs: Tensor,
    ys: Tensor,
) -> Tensor:
    r"""Empirical risk $\mathcal{R}_{L,D}(f) = \frac1k \sum_{i=1}^k L(x_i, y_i, f(x_i))$.

    Thesis: Definition 1.2.4, Eq. (1.4).

    ``loss(y, t)`` returns per-example losses (as :func:`squared_error`), ``f`` maps the batch
    ``xs`` of shape ``(k, ...)`` to predictions, ``ys`` has ``k`` rows. Returns a scalar tensor.
    """
    if not callable(loss):
        raise ValueError(f"loss must be callable loss(y, t); got {loss!r}")
    if not callable(f):
        raise ValueError(f"f must be callable f(xs); got {f!r}")
    _check_tensor("xs", xs)
    _check_tensor("ys", ys)
    if xs.dim() == 0 or xs.shape[0] == 0:
        raise ValueError(f"xs must hold k >= 1 data points along dim 0; got shape {tuple(xs.shape)}")
    if ys.dim() == 0 or ys.shape[0] != xs.shape[0]:
        raise ValueError(f"ys must have as many rows as xs ({xs.shape[0]}); got shape {tuple(ys.shape)}")
    per_point = loss(ys, f(xs))
    if per_point.shape != (xs.shape[0],):
        raise ValueError(f"loss must return one value per data point, shape ({xs.shape[0]},); got {tuple(per_point.shape)}")
    # Eq. (1.4)
    return per_point.mean()


# --------------------------------------------------------------------------- Section 2.2
def image_mse(x: Tensor, x_hat: Tensor, reduction: str = "sum") -> Tensor:
    r"""$L_{MSE}(\psi, f(\psi)) = \sum_{i=1}^M \sum_{j=1}^N \|\psi_{ij} - f(\psi)_{ij}\|^2$ per image.

    Thesis: Example 2.2.2.

    ``x`` and ``x_hat`` have the same shape ``(B, ...)`` (for example ``(B, 1, 28, 28)`` or
    ``(B, 784)``); the result has shape ``(B,)``. ``reduction="sum"`` (the thesis) sums over
    all pixels and channels of an image; ``reduction="mean"`` divides that by the number of
    entries per image, which is what ``torch.nn.MSELoss`` computes for a single image.

    Erratum: Example 2.2.2 calls $L_{MSE}$ the *mean* squared error, but its formula sums over
    the $M N$ pixels with no factor $1/(MN)$ (unlike $L_{BCE}$ in the same example, which has
    one). We implement the formula as written (``reduction="sum"``, the default) and offer the
    per-pixel mean the name suggests as ``reduction="mean"``.
    """
    check_choice("reduction", reduction, ("sum", "mean"))
    _check_same_shape("x", x, "x_hat", x_hat)
    # (x - x_hat)^2 in one fused kernel (forward and backward), then the sum over each image's pixels
    per_image = F.mse_loss(_flat(x_hat), _flat(x), reduction="none").sum(dim=1)  # (B,)
    if reduction == "mean":
        per_image = per_image / _flat(x).shape[1]
    return per_image


def image_bce(x: Tensor, x_hat: Tensor, reduction: str = "mean", eps: float = 1e-7) -> Tensor:
    r"""$L_{BCE}(\psi, f(\psi)) = -\frac{1}{MN}\sum_{i,j} \psi_{ij}\log f(\psi)_{ij} + (1-\psi_{ij})\log(1-f(\psi)_{ij})$.

    Thesis: Example 2.2.2.

    Per image: ``x`` (targets) and ``x_hat`` (probabilities) of the same shape ``(B, ...)``
    with entries in $[0, 1]$ give shape ``(B,)``. ``reduction="mean"`` (the thesis) averages
    over the entries of an image; ``"sum"`` sums them, which is the negative Bernoulli
    log-likelihood the VAE uses. ``x_hat`` is clamped to $[\epsilon, 1 - \epsilon]$ so that
    the logarithms stay finite; prefer :func:`image_bce_with_logits` when logits are at hand.

    The minimum over ``x_hat`` is attained at ``x_hat = x`` but is *not zero* unless ``x`` is
    binary: it is the binary entropy of the grey levels, :func:`image_binary_entropy`. For
    MNIST (grey levels in $\{0, 1/255, \dots, 1\}$) a perfect reconstruction still has a
    positive BCE; subtract :func:`image_binary_entropy` to get a loss that is 0 there.

    Erratum: Example 2.2.2 takes $\psi$ in the image domain $\Psi_\Omega$ with
    $\Psi = \{0, \dots, 255\}$ (Definition 1.3.4), where $1 - \psi_{ij}$ is negative and the
    BCE is meaningless; it needs the normed image domain $\Psi' \subset [0, 1]$
    (Definition 1.3.5) and $f(\psi)_{ij} \in (0, 1)$ (a sigmoid output layer). Its formula also
    treats $\psi_{ij}$ as a scalar, i.e. $d = 1$ channel; for $d > 1$ we average (or sum) over
    channels too. We check that both arguments lie in $[0, 1]$.
    """
    check_choice("reduction", reduction, ("mean", "sum"))
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0 < eps < 0.5):
        raise ValueError(f"eps must be a number in (0, 0.5); got {eps!r}")
    _check_same_shape("x", x, "x_hat", x_hat)
    _check_in_unit_interval("x", x)
    _check_in_unit_interval("x_hat", x_hat)
    p = _flat(x_hat).clamp(eps, 1.0 - eps)
    t = _flat(x)
    per_entry = -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p))  # (B, n)
    return per_entry.mean(dim=1) if reduction == "mean" else per_entry.sum(dim=1)


def image_bce_with_logits(x: Tensor, logits: Tensor, reduction: str = "mean") -> Tensor:
    r"""$L_{BCE}$ of Example 2.2.2 with $f(\psi) = \sigma(\text{logits})$, computed stably.

    Thesis: Example 2.2.2.

    Uses $-[t \log\sigma(l) + (1-t)\log(1-\sigma(l))] = \operatorname{softplus}(l) - t\,l$,
    which never takes the logarithm of a rounded probability. Shapes and ``reduction`` as in
    :func:`image_bce` (``(B, ...) -> (B,)``); ``x`` must lie in $[0, 1]$.
    """
    check_choice("reduction", reduction, ("mean", "sum"))
    _check_same_shape("x", x, "logits", logits)
    _check_in_unit_interval("x", x)
    l, t = _flat(logits), _flat(x)
    per_entry = F.softplus(l) - t * l  # (B, n)
    return per_entry.mean(dim=1) if reduction == "mean" else per_entry.sum(dim=1)


def image_binary_entropy(x: Tensor, reduction: str = "mean") -> Tensor:
    r"""Binary entropy $-\sum_{ij} \psi_{ij}\log\psi_{ij} + (1-\psi_{ij})\log(1-\psi_{ij})$ per image.

    Thesis: Example 2.2.2 (the minimum of $L_{BCE}$); Definition 3.1.2, Eq. (3.2).

    The value of :func:`image_bce` at ``x_hat = x``, i.e. the smallest BCE any reconstruction
    can reach; zero exactly for binary images. ``reduction`` as in :func:`image_bce`.
    """
    check_choice("reduction", reduction, ("mean", "sum"))
    _check_tensor("x", x)
    if x.dim() < 1:
        raise ValueError(f"x must have a batch dimension; got shape {tuple(x.shape)}")
    _check_in_unit_interval("x", x)
    t = _flat(x)
    per_entry = -(torch.xlogy(t, t) + torch.xlogy(1.0 - t, 1.0 - t))
    return per_entry.mean(dim=1) if reduction == "mean" else per_entry.sum(dim=1)


# --------------------------------------------------------------------------- objectives
def _model_output(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    if not isinstance(out, Tensor):
        raise ValueError(
            f"model must return a tensor for this objective; got {type(out).__name__} "
            "(for a VAE use thesis_lib.vae.elbo_objective)"
        )
    return out


def reconstruction_objective(loss: str = "mse", reduction: str | None = None) -> Objective:
    r"""Objective ``(model, x, y=None) -> (B,)`` comparing ``model(x)`` with ``x`` (autoencoders).

    Thesis: Example 2.2.2; Section 2.2.

    ``loss="mse"`` uses :func:`image_mse` (default reduction ``"sum"``, as the thesis),
    ``loss="bce"`` uses :func:`image_bce` (default reduction ``"mean"``, as the thesis; the
    model must output probabilities). ``y`` is ignored. If the model returns the image
    flattened (``(B, 784)`` for ``(B, 1, 28, 28)`` input) it is reshaped to ``x``'s shape.
    """
    check_choice("loss", loss, ("mse", "bce"))
    if reduction is None:
        reduction = "sum" if loss == "mse" else "mean"
    check_choice("reduction", reduction, ("sum", "mean"))
    fn = image_mse if loss == "mse" else image_bce

    def objective(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        x_hat = _model_output(model, x)
        if x_hat.shape != x.shape and x_hat.numel() == x.numel():
            x_hat = x_hat.reshape(x.shape)
        return fn(x, x_hat, reduction=reduction)

    return objective


def supervised_objective(loss: str = "squared") -> Objective:
    r"""Objective ``(model, x, y) -> (B,)`` comparing ``model(x)`` with labels ``y``.

    Thesis: Example 1.2.2; Definition 1.2.1.

    ``loss="squared"`` uses :func:`squared_error`, ``loss="linear"`` :func:`linear_error`;
    both sum over the last dimension. ``y`` must be given and have the model output's shape.
    """
    check_choice("loss", loss, ("squared", "linear"))
    fn = squared_error if loss == "squared" else linear_error

    def objective(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("y must be a tensor of labels for a supervised objective; got None")
        return fn(y, _model_output(model, x))

    return objective


# --------------------------------------------------------------------------- Section 3.1
def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""$D_{KL}(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal N(0, I))$ per example, closed form.

    Thesis: Definition 3.1.1, Eq. (3.1).

    ``mu`` and ``logvar`` ($\log\sigma^2$) have shape ``(..., D)``; the result sums over the
    last dimension: ``(B, D) -> (B,)``, in nats. Closed form from Kingma & Welling (2014),
    Appendix B: $D_{KL} = -\frac12 \sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)$.
    """
    _check_same_shape("mu", mu, "logvar", logvar)
    # Eq. (3.1), closed form: Kingma & Welling (2014), Appendix B
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)


def gaussian_kl_general(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    r"""$D_{KL}(\mathcal N(\mu_1, \operatorname{diag}\sigma_1^2) \,\|\, \mathcal N(\mu_2, \operatorname{diag}\sigma_2^2))$ per example.

    Thesis: Definition 3.1.1, Eq. (3.1); Remark 3.1.4.

    $\frac12 \sum_j \big(\log\sigma_{2j}^2 - \log\sigma_{1j}^2
    + (\sigma_{1j}^2 + (\mu_{1j} - \mu_{2j})^2)/\sigma_{2j}^2 - 1\big)$, which is
    :func:`gaussian_cross_entropy` minus :func:`gaussian_entropy` (Remark 3.1.4). All four
    tensors have shape ``(..., D)``; the result sums over the last dimension.
    """
    _check_same_shape("mu1", mu1, "logvar1", logvar1)
    _check_same_shape("mu1", mu1, "mu2", mu2)
    _check_same_shape("mu1", mu1, "logvar2", logvar2)
    # Eq. (3.1), closed form for two diagonal Gaussians
    ratio = (logvar1.exp() + (mu1 - mu2).pow(2)) / logvar2.exp()
    return 0.5 * (logvar2 - logvar1 + ratio - 1.0).sum(dim=-1)


def gaussian_entropy(logvar: Tensor) -> Tensor:
    r"""Differential entropy $\mathcal H = \frac12\sum_j (\log(2\pi e) + \log\sigma_j^2)$ of $\mathcal N(\mu, \operatorname{diag}\sigma^2)$.

    Thesis: Definition 3.1.2, Eq. (3.2).

    ``logvar`` has shape ``(..., D)``; the result sums over the last dimension, in nats.
    It does not depend on the mean.

    Erratum: Definition 3.1.2 calls the entropy a "nonnegative measure", but it is stated for
    probability *density* functions, whose (differential) entropy can be negative: for
    $\mathcal N(0, s^2)$ it is $\frac12\log(2\pi e s^2) < 0$ whenever
    $s < 1/\sqrt{2\pi e} \approx 0.242$. Non-negativity holds for probability mass functions
    (:func:`discrete_entropy`). We return the (possibly negative) value.
    """
    _check_tensor("logvar", logvar)
    if logvar.dim() < 1:
        raise ValueError(f"logvar must have a last (latent) dimension; got shape {tuple(logvar.shape)}")
    # Eq. (3.2) for a diagonal Gaussian
    return 0.5 * (_LOG_2PI + 1.0 + logvar).sum(dim=-1)


def gaussian_cross_entropy(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    r"""Cross-entropy $\mathcal H_q = \mathbb E_p[-\log q]$ for $p = \mathcal N(\mu_1, \sigma_1^2)$, $q = \mathcal N(\mu_2, \sigma_2^2)$.

    Thesis: Definition 3.1.3, Eq. (3.3).

    Closed form $\frac12\sum_j\big(\log(2\pi) + \log\sigma_{2j}^2 + (\sigma_{1j}^2 + (\mu_{1j}-\mu_{2j})^2)/\sigma_{2j}^2\big)$,
    diagonal covariances, shapes ``(..., D) -> (...)``, in nats.

    Erratum: Definition 3.1.3 calls the cross-entropy "nonnegative", but for densities it can
    be negative (e.g. $p = q = \mathcal N(0, s^2)$ with $s < 1/\sqrt{2\pi e}$, where it equals the
    negative entropy of Definition 3.1.2). It is nonnegative for probability mass functions.
    """
    _check_same_shape("mu1", mu1, "logvar1", logvar1)
    _check_same_shape("mu1", mu1, "mu2", mu2)
    _check_same_shape("mu1", mu1, "logvar2", logvar2)
    # Eq. (3.3) for diagonal Gaussians
    ratio = (logvar1.exp() + (mu1 - mu2).pow(2)) / logvar2.exp()
    return 0.5 * (_LOG_2PI + logvar2 + ratio).sum(dim=-1)


def discrete_entropy(p: Tensor) -> Tensor:
    r"""Entropy $\mathcal H(p) = -\sum_i p_i \log p_i$ (with $0 \log 0 = 0$) of probability vectors.

    Thesis: Definition 3.1.2, Eq. (3.2).

    ``p`` has shape ``(..., K)``, non-negative, summing to 1 over the last dimension; the
    result has shape ``(...)``, in nats, and is nonnegative (here the thesis's claim holds).
    """
    _check_probability_vectors("p", p)
    # Eq. (3.2) with the integral a sum
    return -torch.xlogy(p, p).sum(dim=-1)


def discrete_cross_entropy(p: Tensor, q: Tensor) -> Tensor:
    r"""Cross-entropy $\mathcal H_q(p) = -\sum_i p_i \log q_i$ of probability vectors.

    Thesis: Definition 3.1.3, Eq. (3.3).

    Shapes ``(..., K) -> (...)``. It is $+\infty$ where some $q_i = 0 < p_i$.
    """
    _check_same_shape("p", p, "q", q)
    _check_probability_vectors("p", p)
    _check_probability_vectors("q", q)
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
    _check_same_shape("p", p, "q", q)
    _check_probability_vectors("p", p)
    _check_probability_vectors("q", q)
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
    for name, val in (("log_p", lp), ("log_q", lq)):
        if not isinstance(val, Tensor) or val.dim() == 0 or val.shape[0] != n:
            got = tuple(val.shape) if isinstance(val, Tensor) else type(val).__name__
            raise ValueError(f"{name} must return one value per sample along dim 0 (n={n}); got {got}")
    diff = lp - lq  # (n, ...)
    # Eq. (3.1) as an expectation under p
    estimate = diff.mean(dim=0)
    if not return_stderr:
        return estimate
    return estimate, diff.std(dim=0, unbiased=True) / math.sqrt(n)
