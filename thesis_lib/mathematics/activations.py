r"""Activation functions (thesis Section 1.1): Definition 1.1.1 and Example 1.1.2.

The three functions of Example 1.1.2 are written out from their formulas (:func:`relu`,
:func:`leaky_relu`, :func:`sigmoid`); the networks use torch's modules, which compute the same
functions faster. :func:`get_activation` turns a name into such a module and :func:`is_activation`
checks Definition 1.1.1 numerically on a grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules import activation as torch_activations

from thesis_lib.ground.validation import check_finite_float, check_positive_float, check_positive_int

__all__ = ["ACTIVATIONS", "relu", "leaky_relu", "sigmoid", "get_activation", "is_activation"]

#: The names :func:`get_activation` knows from the thesis (Example 1.1.2) plus ``tanh`` and
#: ``identity`` (the output activation Section 1.1 mentions after Definition 1.1.5).
ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "sigmoid", "tanh", "identity")

# torch.nn.modules.activation classes that are not a component-wise map phi: R -> R (they mix
# coordinates, or are not activations at all), so they cannot be the phi-hat of Eq. (1.2).
_NOT_COMPONENTWISE = frozenset({"MultiheadAttention", "GLU", "Softmax", "Softmin", "LogSoftmax", "Softmax2d"})


def relu(t: Tensor) -> Tensor:
    r"""Rectified Linear Unit :math:`\varphi(t) = \max\{0, t\}`, element-wise.

    Thesis: Example 1.1.2.

    NaN stays NaN (as in ``torch.relu``); the derivative at :math:`t = 0` is taken to be 0.
    """
    # Example 1.1.2: max{0, t}
    return torch.where(t <= 0, torch.zeros_like(t), t)


def leaky_relu(t: Tensor, alpha: float = 0.01) -> Tensor:
    r"""Leaky ReLU :math:`\varphi(t) = \alpha t` for :math:`t \le 0` and :math:`t` for :math:`t > 0`.

    Thesis: Example 1.1.2.

    Erratum: Example 1.1.2 does not say which :math:`\alpha` are allowed. Every finite real
    :math:`\alpha` gives an activation function in the sense of Definition 1.1.1 (the branch
    :math:`t > 0` is never constant): :math:`\alpha = 0` is the ReLU and :math:`\alpha = 1` is the
    identity, so the Leaky ReLU differs from the identity only for :math:`\alpha \neq 1` and from the
    ReLU only for :math:`\alpha \neq 0`; the usual choice is a small :math:`0 < \alpha < 1`. Any
    finite real ``alpha`` is accepted here.
    """
    alpha = float(alpha)  # an int alpha too gives a floating-point result
    # Example 1.1.2: alpha * t for t <= 0, t for t > 0
    return torch.where(t > 0, t, alpha * t)


def sigmoid(t: Tensor) -> Tensor:
    r"""Sigmoid :math:`\varphi(t) = 1 / (1 + e^{-t})`, element-wise.

    Thesis: Example 1.1.2.

    Computed as :math:`1/(1+e^{-|t|})` for :math:`t \ge 0` and :math:`e^{-|t|}/(1+e^{-|t|})` for
    :math:`t < 0` (the same function), so that :math:`e^{-t}` never overflows and the gradient is
    finite for every finite :math:`t`.

    Erratum: Example 1.1.2 announces named activation functions but prints the third one,
    :math:`\varphi(t) = 1/(1+e^{-t})`, without a name; it is the (logistic) sigmoid.
    """
    # exp(-|t|) in (0, 1]: no overflow. Not t.abs(): its derivative at 0 is 0, which would make the
    # gradient at t = 0 vanish instead of being 1/4.
    e = torch.exp(torch.where(t >= 0, -t, t))
    # Example 1.1.2: 1 / (1 + exp(-t)), split by the sign of t
    return torch.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _torch_activation_classes() -> dict[str, type[nn.Module]]:
    """Component-wise activation classes of ``torch.nn`` by class name (computed on demand)."""
    found = {}
    for name in torch_activations.__all__:
        cls = getattr(torch.nn, name, None)
        if isinstance(cls, type) and issubclass(cls, nn.Module) and name not in _NOT_COMPONENTWISE:
            found[name] = cls
    return found


def get_activation(name: str, **kwargs: Any) -> nn.Module:
    r"""Return a fresh ``nn.Module`` computing the activation function called ``name``.

    Thesis: Example 1.1.2.

    Thesis names (:data:`ACTIVATIONS`): ``"relu"``, ``"leaky_relu"`` (keyword ``alpha``, default
    0.01), ``"sigmoid"``, ``"tanh"`` and ``"identity"``. Besides these, any component-wise
    activation class of ``torch.nn`` is accepted by its class name or its lower-case class name
    (``"ELU"``/``"elu"``, ``"GELU"``, ``"softplus"``, ...); ``kwargs`` are passed to its constructor.
    Softmax-like classes, ``GLU`` and ``MultiheadAttention`` are refused: they are not a
    component-wise :math:`\widehat\varphi` as in Eq. (1.2).
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be an activation name (str); got {name!r}")
    if name in ACTIVATIONS:
        allowed = {"alpha"} if name == "leaky_relu" else set()
        unexpected = sorted(set(kwargs) - allowed)
        if unexpected:
            shown = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"kwargs {unexpected} are not accepted by activation {name!r} (accepted: {shown})")
        if name == "leaky_relu":
            alpha = check_finite_float("alpha", kwargs.get("alpha", 0.01))
            return nn.LeakyReLU(negative_slope=alpha)
        return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}[name]()
    classes = _torch_activation_classes()
    cls = classes.get(name) or {k.lower(): v for k, v in classes.items()}.get(name)
    if cls is None:
        raise ValueError(
            f"name must be one of {', '.join(repr(a) for a in ACTIVATIONS)} or the name of a "
            f"component-wise torch.nn activation class, as written or in lower case "
            f"(e.g. 'ELU', 'elu', 'GELU', 'softplus'); got {name!r}"
        )
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"kwargs {kwargs!r} are not accepted by torch.nn.{cls.__name__}: {err}") from None


def is_activation(
    phi: Callable[[Tensor], Tensor],
    grid: Tensor,
    *,
    refine: int = 16,
    atol: float = 1e-6,
) -> bool:
    r"""Check numerically whether ``phi`` is an activation function (non-constant and continuous).

    Thesis: Definition 1.1.1.

    ``phi`` maps a 1-D tensor to a tensor of the same shape, element-wise. On ``grid``, a 1-D tensor of
    :math:`n \ge 2` increasing finite points :math:`x_1 < \dots < x_n`:

    * *non-constant*: the values :math:`\varphi(x_i)` spread by more than the tolerance;
    * *continuous*: a jump between neighbouring grid points is fine if it shrinks when the grid is
      refined. Each interval :math:`[x_i, x_{i+1}]` is cut into ``refine`` pieces; the interval
      fails if the spread of :math:`\varphi` on one piece is more than half the spread on the whole
      interval (a jump discontinuity keeps its full size however fine the grid; a continuous
      function's spread shrinks roughly in proportion to the piece).

    The tolerance is ``atol * max(1, max |phi|)``; spreads below it are rounding noise. Non-finite
    values make ``phi`` fail. The check is a heuristic at the grid's resolution: a function that
    rises within less than one piece looks like a jump, and features between grid points can be
    missed, so use a fine grid over the region of interest.
    """
    grid = torch.as_tensor(grid, dtype=torch.float64) if not isinstance(grid, Tensor) else grid.double()
    check_positive_int("refine", refine)
    if refine < 2:
        raise ValueError(f"refine must be an integer >= 2; got {refine!r}")
    atol = check_positive_float("atol", atol)

    # Points of the refined grid: (n-1) intervals x (refine+1) points each, both ends included.
    s = torch.linspace(0.0, 1.0, refine + 1, dtype=torch.float64)
    fine = grid[:-1, None] + (grid[1:] - grid[:-1])[:, None] * s  # (n-1, refine+1)
    with torch.no_grad():
        values = phi(fine.reshape(-1))
    values = torch.as_tensor(values).double().reshape(fine.shape)
    if not bool(torch.isfinite(values).all()):
        return False
    tol = atol * max(1.0, float(values.abs().max()))
    if float(values.max() - values.min()) <= tol:  # constant on the grid
        return False
    spread = values.max(dim=1).values - values.min(dim=1).values  # (n-1,)
    pieces = torch.maximum(values[:, 1:], values[:, :-1]) - torch.minimum(values[:, 1:], values[:, :-1])
    worst_piece = pieces.max(dim=1).values  # (n-1,)
    jumps = (spread > tol) & (worst_piece > 0.5 * spread)
    return not bool(jumps.any())
