r"""Loss functions, empirical risks and training objectives of the thesis.

Every loss here returns PER-EXAMPLE values: an input batch of shape ``(B, ...)`` gives a
tensor of shape ``(B,)``. The reduction over the batch (the empirical risk, Definition 1.2.4)
is left to the caller, usually the training loop, which averages and calls ``backward``.

An *objective* is a callable ``objective(model, x, y) -> Tensor`` of shape ``(B,)``; the
factories :func:`reconstruction_objective` and :func:`supervised_objective` build them
(and :func:`thesis_lib.mathematics.vae.elbo_objective` for the VAE). An objective checks its settings when
it is built; per batch it checks nothing but an ``assert`` of equal shapes, and never reads a value,
which would make the host wait for the GPU on every batch. The public loss functions check their settings,
and the BCE family checks that targets and probabilities lie in [0, 1] (the erratum to Example 2.2.2).

Sections: 1.2 (supervised losses and risks) and 2.2 (image losses). The information-theoretic
quantities of Section 3.1 are in :mod:`thesis_lib.mathematics.divergences`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thesis_lib.ground.validation import check_choice

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]


# --------------------------------------------------------------------------- private checks
def _check_in_unit_interval(name: str, value: Tensor) -> None:
    if value.numel() and (bool((value < 0).any()) or bool((value > 1).any()) or bool(value.isnan().any())):
        lo, hi = float(value.min()), float(value.max())
        raise ValueError(f"{name} must have all entries in [0, 1]; got values in [{lo}, {hi}]")


def _flat(x: Tensor) -> Tensor:
    """(B, ...) -> (B, n): one row per example."""
    return x.reshape(x.shape[0], -1)


def _assert_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Elementwise losses need equal shapes: ``(B,)`` against ``(B, 1)`` would broadcast to ``(B, B)`` silently."""
    assert a.shape == b.shape, f"{name_b} must have the same shape as {name_a}, {tuple(a.shape)}; got {tuple(b.shape)}"


# --------------------------------------------------------------------------- Section 1.2
def squared_error(y: Tensor, t: Tensor) -> Tensor:
    r"""Squared error loss $L(x, y, t) = \sum_{i=1}^n |y_i - t_i|^2$, per example.

    Thesis: Example 1.2.2.

    ``y`` (true values) and ``t`` (predictions) have the same shape ``(..., n)``; the sum runs
    over the last dimension, so the result has shape ``(...)``, e.g. ``(B,)`` for ``(B, n)``.
    A scalar target (the case $Y = \mathbb{R}$) is a last dimension of size 1.
    """
    _assert_same_shape("y", y, "t", t)
    return (y - t).pow(2).sum(dim=-1)


def linear_error(y: Tensor, t: Tensor) -> Tensor:
    r"""Linear error loss $L(x, y, t) = \sum_{i=1}^n |y_i - t_i|$, per example.

    Thesis: Example 1.2.2.

    Shapes as in :func:`squared_error`: ``(..., n) -> (...)``.
    """
    _assert_same_shape("y", y, "t", t)
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
    per_point = loss(ys, f(xs))
    # the mean below is Eq. (1.4) only over one value per data point
    assert per_point.shape == xs.shape[:1], (
        f"loss must return one value per data point, shape ({xs.shape[0]},); got {tuple(per_point.shape)}"
    )
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
    return _image_mse(x, x_hat, reduction)


def _image_mse(x: Tensor, x_hat: Tensor, reduction: str) -> Tensor:
    """:func:`image_mse` without the check of ``reduction`` (the caller has done it)."""
    _assert_same_shape("x", x, "x_hat", x_hat)
    # (x - x_hat)^2 in one fused kernel (forward and backward), then the sum over each image's pixels
    per_image = F.mse_loss(_flat(x_hat), _flat(x), reduction="none").sum(dim=1)  # (B,)
    if reduction == "mean":
        per_image = per_image / _flat(x).shape[1]
    return per_image


def image_bce(x: Tensor, x_hat: Tensor, reduction: str = "mean", eps: float = 1e-7) -> Tensor:
    r"""$L_{BCE}(\psi, f(\psi)) = -\frac{1}{MN}\sum_{i,j} \psi_{ij}\log f(\psi)_{ij}
    + (1-\psi_{ij})\log(1-f(\psi)_{ij})$.

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
    _check_in_unit_interval("x", x)
    _check_in_unit_interval("x_hat", x_hat)
    return _image_bce(x, x_hat, reduction, eps)


def _image_bce(x: Tensor, x_hat: Tensor, reduction: str, eps: float = 1e-7) -> Tensor:
    """:func:`image_bce` without the argument checks; the values are not read, so nothing waits for a GPU."""
    _assert_same_shape("x", x, "x_hat", x_hat)
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
    _assert_same_shape("x", x, "logits", logits)
    _check_in_unit_interval("x", x)
    z, t = _flat(logits), _flat(x)  # z: the logits l
    per_entry = F.softplus(z) - t * z  # (B, n)
    return per_entry.mean(dim=1) if reduction == "mean" else per_entry.sum(dim=1)


def image_binary_entropy(x: Tensor, reduction: str = "mean") -> Tensor:
    r"""Binary entropy $-\sum_{ij} \psi_{ij}\log\psi_{ij} + (1-\psi_{ij})\log(1-\psi_{ij})$ per image.

    Thesis: Example 2.2.2 (the minimum of $L_{BCE}$); Definition 3.1.2, Eq. (3.2).

    The value of :func:`image_bce` at ``x_hat = x``, i.e. the smallest BCE any reconstruction
    can reach; zero exactly for binary images. ``reduction`` as in :func:`image_bce`.
    """
    check_choice("reduction", reduction, ("mean", "sum"))
    _check_in_unit_interval("x", x)
    t = _flat(x)
    per_entry = -(torch.xlogy(t, t) + torch.xlogy(1.0 - t, 1.0 - t))
    return per_entry.mean(dim=1) if reduction == "mean" else per_entry.sum(dim=1)


# --------------------------------------------------------------------------- objectives
def reconstruction_objective(loss: str = "mse", reduction: str | None = None) -> Objective:
    r"""Objective ``(model, x, y=None) -> (B,)`` comparing ``model(x)`` with ``x`` (autoencoders).

    Thesis: Example 2.2.2; Section 2.2.

    ``loss="mse"`` uses :func:`image_mse` (default reduction ``"sum"``, as the thesis),
    ``loss="bce"`` uses :func:`image_bce` (default reduction ``"mean"``, as the thesis; the
    model must output probabilities). ``y`` is ignored. If the model returns the image
    flattened (``(B, 784)`` for ``(B, 1, 28, 28)`` input) it is reshaped to ``x``'s shape.

    The settings are checked here, once. Per batch the objective checks nothing (an ``assert`` keeps
    ``x_hat`` and ``x`` of one shape): unlike :func:`image_bce` it does not check that the values lie in
    [0, 1], which would read them and make the host wait for the GPU on every batch (check the data
    once, before training). The model must return a tensor (a VAE's tuple needs
    :func:`thesis_lib.mathematics.vae.elbo_objective`).
    """
    check_choice("loss", loss, ("mse", "bce"))
    if reduction is None:
        reduction = "sum" if loss == "mse" else "mean"
    check_choice("reduction", reduction, ("sum", "mean"))
    fn = _image_mse if loss == "mse" else _image_bce

    def objective(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        x_hat = model(x)
        if x_hat.shape != x.shape and x_hat.numel() == x.numel():
            x_hat = x_hat.reshape(x.shape)
        return fn(x, x_hat, reduction)

    return objective


def supervised_objective(loss: str = "squared") -> Objective:
    r"""Objective ``(model, x, y) -> (B,)`` comparing ``model(x)`` with labels ``y``.

    Thesis: Example 1.2.2; Definition 1.2.1.

    ``loss="squared"`` uses :func:`squared_error`, ``loss="linear"`` :func:`linear_error`;
    both sum over the last dimension. ``y`` must be given and have the model output's shape; per batch
    only an ``assert`` of that shape runs.
    """
    check_choice("loss", loss, ("squared", "linear"))
    fn = squared_error if loss == "squared" else linear_error

    def objective(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        return fn(y, model(x))

    return objective
