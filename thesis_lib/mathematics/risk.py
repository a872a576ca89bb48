r"""Risks, their gradients and closed-form references for thesis Section 1.2 (chapter 2 of the book).

What the rest of the library lacks for checking Section 1.2 numerically:

* :class:`GaussianLinearTask` and :func:`monte_carlo_risk`: a distribution :math:`P` on
  :math:`\mathbb{R}^d \times \mathbb{R}` whose risk of an affine predictor is known in closed form
  (Definition 1.2.3), and the Monte Carlo estimate of any risk;
* :func:`per_example_gradients` and :func:`risk_gradient`: the two sides of Lemma 1.2.6;
* :func:`affine_least_squares`: the exact minimum of the empirical squared risk of an affine predictor
  and the Lipschitz constant of its gradient, the reference for gradient descent on a convex risk;
* :func:`quadratic_gd_iterates`: the iterates of Eq. (1.5) on a quadratic in closed form;
* :func:`permute_hidden_units` and :func:`risk_on_segment`: the non-convexity of a network's risk
  (the erratum of Corollary 1.2.7, see :class:`thesis_lib.mathematics.optimizers.GradientDescent`).

Objectives are those of :mod:`thesis_lib.mathematics.losses`: ``objective(model, x, y) -> (B,)`` per-example losses.

See the book, chapter 2, "Training of neural networks".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from thesis_lib.mathematics.networks import eval_mode
from thesis_lib.ground.validation import check_choice, check_positive_int

__all__ = [
    "GaussianLinearTask",
    "affine_least_squares",
    "monte_carlo_risk",
    "per_example_gradients",
    "permute_hidden_units",
    "quadratic_gd_iterates",
    "risk_gradient",
    "risk_on_segment",
]

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]


# --------------------------------------------------------------------------- Definition 1.2.3
@dataclass(frozen=True)
class GaussianLinearTask:
    r"""The distribution :math:`P` of :math:`(x, y)` with :math:`x \sim \mathcal N(\mu, \Sigma)` on :math:`\mathbb{R}^d`
    and :math:`y = \langle w^*, x \rangle + b^* + \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, \sigma^2)`
    independent.

    Thesis: Definition 1.2.3, Example 1.2.2.

    ``mu`` has shape ``(d,)``, ``cov`` ``(d, d)`` (symmetric positive definite), ``w_star`` ``(d,)``;
    they are stored as float64. For an affine predictor :math:`f(x) = \langle w, x \rangle + b` the
    residual :math:`r = y - f(x)` is Gaussian with mean :math:`m = \langle w^* - w, \mu \rangle + b^* - b`
    and variance :math:`s^2 = (w^* - w)^\top \Sigma (w^* - w) + \sigma^2`, so both risks of Example 1.2.2
    have closed forms (:meth:`risk`).
    """

    mu: Tensor
    cov: Tensor
    w_star: Tensor
    b_star: float
    noise_std: float

    def __post_init__(self) -> None:
        cov = self.cov.detach().double()
        object.__setattr__(self, "mu", self.mu.detach().double())
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "w_star", self.w_star.detach().double())
        object.__setattr__(self, "b_star", float(self.b_star))
        object.__setattr__(self, "noise_std", float(self.noise_std))
        object.__setattr__(self, "_chol", torch.linalg.cholesky(cov))  # torch refuses a cov not positive definite

    @property
    def dim(self) -> int:
        return self.mu.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` pairs: ``x`` of shape ``(n, d)`` and ``y`` of shape ``(n, 1)``, float64."""
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.mu + z @ self._chol.T  # (n, d)
        eps = torch.randn(n, generator=generator, dtype=torch.float64)
        y = x @ self.w_star + self.b_star + self.noise_std * eps  # (n,)
        return x, y.unsqueeze(1)

    def residual_moments(self, w: Tensor, b: float) -> tuple[float, float]:
        r"""Mean :math:`m` and standard deviation :math:`s` of :math:`y - \langle w, x \rangle - b` under :math:`P`."""
        w = w.detach().double()
        assert w.shape == (self.dim,), f"w must have shape ({self.dim},); got {tuple(w.shape)}"  # no broadcasting
        dw = self.w_star - w
        mean = float(dw @ self.mu) + self.b_star - float(b)
        var = float(dw @ self.cov @ dw) + self.noise_std**2
        return mean, math.sqrt(var)

    def risk(self, w: Tensor, b: float, loss: str = "squared") -> float:
        r"""The risk :math:`\mathcal R_{L,P}(f)` of :math:`f(x) = \langle w, x \rangle + b` in closed form.

        Thesis: Definition 1.2.3, Example 1.2.2.

        ``loss="squared"``: :math:`\mathbb E[r^2] = m^2 + s^2`; ``loss="linear"``: the mean of the folded
        normal, :math:`\mathbb E|r| = s\sqrt{2/\pi}\, e^{-m^2/(2s^2)} + m \operatorname{erf}(m / (s\sqrt 2))`.
        """
        check_choice("loss", loss, ("squared", "linear"))
        m, s = self.residual_moments(w, b)
        if loss == "squared":
            return m * m + s * s
        if s == 0.0:
            return abs(m)
        return s * math.sqrt(2.0 / math.pi) * math.exp(-m * m / (2.0 * s * s)) + m * math.erf(m / (s * math.sqrt(2.0)))


def monte_carlo_risk(
    loss: Callable[[Tensor, Tensor], Tensor],
    f: Callable[[Tensor], Tensor],
    sample: Callable[[int, torch.Generator | None], tuple[Tensor, Tensor]],
    n: int,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    r"""Monte Carlo estimate of :math:`\mathcal R_{L,P}(f)` and its standard error.

    Thesis: Definition 1.2.3 (estimated by Definition 1.2.4, Eq. (1.4), on a sample of :math:`P`).

    ``sample(n, generator)`` draws ``(x, y)`` from :math:`P` (e.g. :meth:`GaussianLinearTask.sample`);
    ``loss(y, t)`` returns per-example losses, as :func:`thesis_lib.mathematics.losses.squared_error`. The estimate is
    the empirical risk of the sample, :math:`\frac1n \sum_s L(x_s, y_s, f(x_s))`; the standard error is
    :math:`\hat\sigma / \sqrt n` with the unbiased sample standard deviation (needs ``n >= 2``).
    """
    check_positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be at least 2 to estimate a standard error; got {n}")
    x, y = sample(n, generator)
    per_point = loss(y, f(x))
    assert per_point.shape == (n,), f"loss must return one value per sample, shape ({n},); got {tuple(per_point.shape)}"
    per_point = per_point.double()
    # Eq. (1.4) on a sample of P
    return float(per_point.mean()), float(per_point.std(unbiased=True)) / math.sqrt(n)


# --------------------------------------------------------------------------- Lemma 1.2.6
class _ObjectiveModule(nn.Module):
    """``forward(x, y) = objective(model, x, y)``, so that ``torch.func.functional_call`` can swap the parameters."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        return self.objective(self.model, x, y)


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def per_example_gradients(
    model: nn.Module, objective: Objective, x: Tensor, y: Tensor | None = None, method: str = "vmap"
) -> Tensor:
    r"""The gradients :math:`\partial_\theta L(x_i, y_i, f_\theta(x_i))`, one row per example: shape ``(k, P)``.

    Thesis: Lemma 1.2.6.

    ``P`` is the number of trainable parameters; each row is flattened in the order of
    ``model.parameters()`` (as :func:`torch.nn.utils.parameters_to_vector`). ``method="vmap"`` uses
    ``torch.func`` (``vmap`` of ``grad`` over the examples), ``method="loop"`` one ``torch.autograd.grad``
    call per example; both give the same numbers. ``vmap`` needs an objective without data-dependent
    Python control flow (e.g. :func:`~thesis_lib.mathematics.losses.supervised_objective`; the value checks of
    :func:`~thesis_lib.mathematics.losses.image_bce` need ``"loop"``). The model's ``.grad`` fields are not touched.
    """
    check_choice("method", method, ("vmap", "loop"))
    named = _trainable(model)
    if method == "loop":
        rows = []
        for i in range(x.shape[0]):
            yi = None if y is None else y[i : i + 1]
            loss_i = objective(model, x[i : i + 1], yi).sum()
            grads = torch.autograd.grad(loss_i, [p for _, p in named], allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                   for (_, p), g in zip(named, grads)]))
        return torch.stack(rows)  # (k, P)

    wrapper = _ObjectiveModule(model, objective)
    params = {f"model.{name}": p.detach() for name, p in named}

    def loss_one(prm: dict[str, Tensor], xi: Tensor, yi: Tensor | None) -> Tensor:
        yb = None if yi is None else yi.unsqueeze(0)
        return functional_call(wrapper, prm, (xi.unsqueeze(0), yb)).sum()

    grads = vmap(grad(loss_one), in_dims=(None, 0, None if y is None else 0))(params, x, y)
    return torch.cat([grads[f"model.{name}"].reshape(x.shape[0], -1) for name, _ in named], dim=1)  # (k, P)


def risk_gradient(model: nn.Module, objective: Objective, x: Tensor, y: Tensor | None = None) -> Tensor:
    r"""The gradient :math:`\partial_\theta \mathcal R(f_\theta)` of the empirical risk, by autograd on Eq. (1.4).

    Thesis: Lemma 1.2.6; Definition 1.2.4, Eq. (1.4).

    Back-propagates through the mean of ``objective(model, x, y)`` in one pass (no per-example
    gradients) and returns the flat gradient, shape ``(P,)``, in the order of
    :func:`per_example_gradients`. The model's ``.grad`` fields are not touched.
    """
    named = _trainable(model)
    # Eq. (1.4)
    risk = objective(model, x, y).mean()
    grads = torch.autograd.grad(risk, [p for _, p in named], allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for (_, p), g in zip(named, grads)])


# --------------------------------------------------------------------------- Theorem 1.2.5
def affine_least_squares(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float, float]:
    r"""The minimiser of the empirical squared risk of :math:`f(x) = Wx + b`, its value and the gradient's
    Lipschitz constant.

    Thesis: Definition 1.2.4, Eq. (1.4); Example 1.2.2; Theorem 1.2.5 (a convex risk with a known minimum).

    ``x`` is ``(k, d)``, ``y`` is ``(k, m)``; the risk is
    :math:`\mathcal R(W, b) = \frac1k \sum_i \|y_i - W x_i - b\|^2`, convex in :math:`(W, b)`.
    Returns ``(W, b, R_min, L)`` in float64: the minimum-norm minimiser (``torch.linalg.lstsq`` with the
    SVD driver ``gelsd``, which handles rank-deficient data such as MNIST's always-black pixels),
    :math:`\min \mathcal R`, and :math:`L = 2 \lambda_{\max}(\frac1k \tilde X^\top \tilde X)` with
    :math:`\tilde x = (x, 1)`, the Lipschitz constant of :math:`\nabla \mathcal R` (its Hessian is
    :math:`\frac2k \tilde X^\top \tilde X` for each output).
    """
    xa = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)], dim=1)  # (k, d+1)
    yd = y.double()
    sol = torch.linalg.lstsq(xa.cpu(), yd.cpu(), driver="gelsd").solution.to(x.device)  # (d+1, m)
    residual = yd - xa @ sol
    # Eq. (1.4) with the squared error of Example 1.2.2
    r_min = float(residual.pow(2).sum(dim=1).mean())
    lipschitz = 2.0 * float(torch.linalg.eigvalsh(xa.T @ xa / x.shape[0]).max())
    return sol[:-1].T.contiguous(), sol[-1].contiguous(), r_min, lipschitz


def quadratic_gd_iterates(a: Tensor, b: Tensor, x0: Tensor, gammas: Sequence[float]) -> Tensor:
    r"""The iterates of gradient descent on :math:`f(x) = \frac12 x^\top A x - b^\top x` in closed form,
    shape ``(T+1, n)``.

    Thesis: Theorem 1.2.5, Eq. (1.5).

    With :math:`A = Q \Lambda Q^\top` symmetric positive definite and :math:`x^* = A^{-1} b`, Eq. (1.5)
    reads :math:`x^{(t+1)} - x^* = (I - \gamma_t A)(x^{(t)} - x^*)`, so
    :math:`x^{(t)} = x^* + Q \operatorname{diag}\big(\prod_{s<t} (1 - \gamma_s \lambda_j)\big) Q^\top (x^{(0)} - x^*)`.
    Computed in float64 from the eigendecomposition (``torch.linalg.eigh``), independently of
    :func:`~thesis_lib.mathematics.optimizers.gradient_descent_path`;
    ``gammas`` are :math:`\gamma_0, \dots, \gamma_{T-1}`.
    """
    n = b.shape[0]
    a, b, x0 = a.double(), b.double(), x0.double()
    lam, q = torch.linalg.eigh(a)
    x_star = torch.linalg.solve(a, b)
    g = torch.as_tensor([float(v) for v in gammas], dtype=torch.float64)  # (T,)
    factors = torch.cumprod(1.0 - g[:, None] * lam[None, :], dim=0)  # (T, n): prod_{s<t+1} (1 - gamma_s lambda_j)
    factors = torch.cat([torch.ones(1, n, dtype=torch.float64), factors])  # (T+1, n)
    c0 = q.T @ (x0 - x_star)  # (n,)
    return x_star + (factors * c0) @ q.T  # (T+1, n)


# --------------------------------------------------------------------------- Corollary 1.2.7
def permute_hidden_units(net: nn.Module, layer: int, perm: Tensor) -> nn.Module:
    r"""A copy of ``net`` with the output units of ``net.layers[layer]`` permuted by ``perm``; same function,
    other :math:`\theta`.

    Thesis: Corollary 1.2.7 (its erratum: the empirical risk of a network is not convex in :math:`\theta`).

    ``net`` is a :class:`~thesis_lib.mathematics.networks.DeepNetwork` (anything with ``layers``, each with ``weight``
    ``(m, k)`` and ``bias`` ``(m,)``); ``layer`` indexes a hidden layer (not the last), ``perm`` is a
    permutation of ``range(m)``. Row :math:`i` of :math:`W_\ell, b_\ell` becomes row ``perm[i]`` and the
    columns of :math:`W_{\ell+1}` follow, so the copy computes the same function (activations act
    component-wise). The layer must have one shared activation (not, e.g., a per-unit PReLU).
    """
    out = copy.deepcopy(net)
    perm = perm.to(out.layers[layer].weight.device)
    with torch.no_grad():
        out.layers[layer].weight.copy_(net.layers[layer].weight[perm])
        out.layers[layer].bias.copy_(net.layers[layer].bias[perm])
        out.layers[layer + 1].weight.copy_(net.layers[layer + 1].weight[:, perm])
    return out


def risk_on_segment(
    model_a: nn.Module, model_b: nn.Module, objective: Objective, x: Tensor, y: Tensor | None, s: Tensor
) -> Tensor:
    r"""The empirical risk at :math:`\theta_s = (1 - s)\theta_a + s\,\theta_b` for each ``s``: shape ``(len(s),)``,
    float64.

    Thesis: Corollary 1.2.7 (its erratum); Definition 1.2.4, Eq. (1.4).

    ``model_a`` and ``model_b`` have the same architecture. If :math:`\theta \mapsto \mathcal R(f_\theta)`
    were convex, the values would lie on or below the chord between ``s = 0`` and ``s = 1``.
    """
    va = parameters_to_vector(model_a.parameters()).detach()
    vb = parameters_to_vector(model_b.parameters()).detach()
    probe = copy.deepcopy(model_a)
    risks = []
    for si in s.tolist():
        vector_to_parameters((1.0 - si) * va + si * vb, probe.parameters())
        with torch.no_grad(), eval_mode(probe):
            # Eq. (1.4) at theta_s
            risks.append(objective(probe, x, y).double().sum().item() / len(x))
    return torch.tensor(risks, dtype=torch.float64)
