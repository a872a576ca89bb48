r"""The optimisers of thesis section 1.2: gradient descent, stochastic gradient descent and Adam.

Each is a :class:`torch.optim.Optimizer` written from the thesis line by line, parameter by parameter,
so it plugs into any torch training loop. They are written to be read, not to be fast: the training
loop runs torch's fused Adam (:func:`thesis_lib.runtime.training.make_optimizer`), checked against
:class:`Adam` in the tests. :func:`step_size_schedule` gives the step sizes of Theorem 1.2.5 and
:func:`gradient_descent_path` the iterates of Eq. (1.5). See the book, chapter 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from thesis_lib.ground.validation import check_choice, check_nonnegative_int, check_positive_float, check_unit_interval

#: Names accepted by :func:`step_size_schedule`.
SCHEDULES: tuple[str, ...] = ("constant", "inverse", "inverse_sqrt", "exponential")

Schedule = Callable[[int], float]
Params = Iterable[Tensor] | Iterable[dict[str, Any]]


@dataclass(frozen=True)
class _StepSizeSchedule:
    """A named step-size sequence; a dataclass rather than a closure so that it pickles."""

    name: str
    lr: float
    decay: float | None = None

    def __call__(self, t: int) -> float:
        return _step_size(self.name, self.lr, self.decay, t)


def _step_size(name: str, lr: float, decay: float | None, t: int) -> float:
    r""":math:`\gamma_t` of the schedule called ``name``; its arguments are checked where the schedule is made."""
    if name == "constant":
        return lr
    if name == "inverse":
        return lr / (1 + t)
    if name == "inverse_sqrt":
        return lr / math.sqrt(1 + t)
    return lr * decay**t  # "exponential"


def step_size_schedule(name: str, lr: float, **kw: float) -> Schedule:
    r"""Return the step-size sequence :math:`t \mapsto \gamma_t` (for :math:`t = 0, 1, 2, \dots`) called ``name``.

    Thesis: Theorem 1.2.5, Eq. (1.5).

    * ``"constant"``: :math:`\gamma_t = \mathrm{lr}`;
    * ``"inverse"``: :math:`\gamma_t = \mathrm{lr} / (1 + t)`;
    * ``"inverse_sqrt"``: :math:`\gamma_t = \mathrm{lr} / \sqrt{1 + t}`;
    * ``"exponential"``: :math:`\gamma_t = \mathrm{lr} \cdot \mathrm{decay}^t`, keyword ``decay`` in (0, 1).

    Every schedule starts at :math:`\gamma_0 = \mathrm{lr}`. "constant" breaks Theorem 1.2.5's
    :math:`\gamma_t \to 0` on purpose; "exponential" has :math:`\sum_t \gamma_t < \infty` and stops short
    (the erratum of :class:`GradientDescent`). The returned callable pickles (it is not a closure).
    """
    check_choice("name", name, SCHEDULES)
    lr = check_positive_float("lr", lr)
    wanted = ["decay"] if name == "exponential" else []
    if sorted(kw) != wanted:
        raise ValueError(f"step_size_schedule({name!r}) takes the keywords {wanted}; got {sorted(kw)}")
    if name == "exponential":
        decay = kw["decay"]
        ok = isinstance(decay, (int, float)) and not isinstance(decay, bool) and math.isfinite(decay)
        if not (ok and 0 < decay < 1):
            raise ValueError(f"decay must be a number in the open interval (0, 1); got {decay!r}")
        return _StepSizeSchedule(name, lr, float(decay))
    return _StepSizeSchedule(name, lr)


def _check_betas(betas: Any) -> tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1); got {betas!r}")
    try:
        return check_unit_interval("betas[0]", betas[0]), check_unit_interval("betas[1]", betas[1])
    except ValueError as err:
        raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1): {err}") from None


def _check_schedule(schedule: Any, lr: float, schedule_kw: dict[str, float]) -> str | Schedule:
    """Check ``schedule`` (a name of :data:`SCHEDULES` or a callable with ``schedule(0) == lr``)."""
    if isinstance(schedule, str) or not callable(schedule):
        check_choice("schedule", schedule, SCHEDULES)
        step_size_schedule(schedule, lr, **schedule_kw)  # checks the keywords
        return schedule
    if schedule_kw:
        raise ValueError(f"schedule keywords {sorted(schedule_kw)!r} are only allowed with a named schedule")
    gamma0 = schedule(0)
    if not isinstance(gamma0, (int, float)) or not math.isclose(gamma0, lr, rel_tol=1e-12, abs_tol=0.0):
        raise ValueError(f"schedule must start at the learning rate, schedule(0) == lr == {lr!r}; got {gamma0!r}")
    return schedule


class _CheckedOptimizer(torch.optim.Optimizer):
    """Checks every param group as it is added (in the constructor or later), before any step."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (see :meth:`torch.optim.Optimizer.add_param_group`), checking its settings."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            group["lr"] = check_positive_float("lr", group["lr"])
            self._check_group(group)
            for p in group["params"]:
                if torch.is_complex(p) or not p.is_floating_point():
                    raise ValueError(f"params must be real floating-point tensors; got one of dtype {p.dtype}")
        except ValueError:
            self.param_groups.pop()
            raise

    def _check_group(self, group: dict[str, Any]) -> None:
        """Check (and normalise in place) the optimiser's own settings of ``group``."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Do one iteration with the gradients in ``p.grad``; return ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.step_param(p, self.state[p], group)
        return loss

    def step_param(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Update parameter ``p`` in place with its gradient ``p.grad``, its ``state`` and ``group``'s settings."""
        raise NotImplementedError


class GradientDescent(_CheckedOptimizer):
    r"""Gradient descent
    :math:`\theta^{(t+1)} = \theta^{(t)} - \gamma_t \, \partial_\theta \mathcal{R}(f_{\theta^{(t)}})`.

    Thesis: Theorem 1.2.5, Eq. (1.5); Corollary 1.2.7.

    ``step()`` does one iteration with the gradient stored in ``p.grad``; for gradient descent proper the
    caller computes it on the whole data set (Lemma 1.2.6: the mean of the per-example gradients).

    The step size is :math:`\gamma_t` with ``t`` the number of steps this parameter has taken so far,
    kept in ``state[p]["step"]`` so that it survives ``state_dict``/``load_state_dict``. ``schedule`` is a
    name of :data:`SCHEDULES`, evaluated as ``step_size_schedule(schedule, group["lr"], **schedule_kw)``
    (so ``lr`` is :math:`\gamma_0`), or a picklable callable ``t -> gamma_t`` with ``schedule(0) == lr``.

    Erratum: Theorem 1.2.5 claims convergence to :math:`x^* = \operatorname{arg\,min} f` for *any*
    :math:`\gamma_t \to 0` and any continuous, convex, differentiable :math:`f`. It needs more: the steps
    must also satisfy :math:`\sum_t \gamma_t = \infty` (for :math:`f(x) = x^2`, :math:`\gamma_t =
    1/(t+1)^2`, :math:`x^{(0)} = 1` the iterates stop at :math:`\sin(\pi\sqrt{2})/(\pi\sqrt{2}) \approx
    -0.2170`), be small against the curvature (:math:`f(x) = x^4`, :math:`\gamma_t = 1/(1+t)`: :math:`1,
    -3, 51, -176817, \dots`), :math:`f` must have a minimiser (not :math:`\exp`), and without strict
    convexity the arg min is a set. A correct statement: for convex :math:`f` with an :math:`L`-Lipschitz
    gradient and a minimiser, :math:`0 < \gamma_t \le 1/L` and :math:`\sum_t \gamma_t = \infty` give
    :math:`f(x^{(t)}) \to \min f`. We implement Eq. (1.5) as written for any schedule;
    :func:`gradient_descent_path` reproduces the counterexamples (the book's errata page shows them).

    Erratum: Corollary 1.2.7 applies Theorem 1.2.5 to a network's empirical risk, which is not convex in
    :math:`\theta` once there is a hidden layer (permuting hidden units gives distinct minimisers), so the
    theorem guarantees nothing there; the update itself is Eq. (1.5) and is what ``step()`` computes.
    """

    def __init__(self, params: Params, lr: float, schedule: str | Schedule = "constant", **schedule_kw: float):
        super().__init__(params, dict(lr=lr, schedule=schedule, schedule_kw=dict(schedule_kw)))

    def _check_group(self, group: dict[str, Any]) -> None:
        group["schedule"] = _check_schedule(group["schedule"], group["lr"], group["schedule_kw"])

    @staticmethod
    def gamma(group: dict[str, Any], t: int) -> float:
        r"""The step size :math:`\gamma_t` of ``group``'s schedule, checked when the group was added.

        A named schedule starts from the group's current ``lr``, so a ``torch.optim.lr_scheduler`` rescales it.
        """
        schedule = group["schedule"]
        if isinstance(schedule, str):
            return _step_size(schedule, group["lr"], group["schedule_kw"].get("decay"), t)
        return float(schedule(t))

    def step_param(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """One iteration of Eq. (1.5) for parameter ``p``."""
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32)  # as in torch's optimisers
        gamma = self.gamma(group, int(state["step"].item()))
        # Eq. (1.5); with the gradient of one example (or a minibatch) this is Eq. (1.6)
        p.add_(p.grad, alpha=-gamma)
        state["step"] += 1


class SGD(GradientDescent):
    r"""Stochastic gradient descent
    :math:`\theta^{(t)} = \theta^{(t-1)} - \gamma_{t-1} \partial_{\theta,i} \mathcal{R}(f_{\theta^{(t-1)}})`.

    Thesis: Theorem 1.2.8, Eq. (1.6).

    The update is the one of :class:`GradientDescent`; the difference is that the caller computes
    ``p.grad`` on one example :math:`(x_i, y_i)` (or a minibatch) instead of the whole data set. With the
    constant schedule it equals ``torch.optim.SGD(params, lr=lr, momentum=0)``.

    Erratum: Theorem 1.2.8 only defines the algorithm (it should be a definition), and leaves open how
    the index is chosen: it must change with the iteration, :math:`i = i_t`, drawn uniformly at random for
    an unbiased gradient (or the data reshuffled every epoch, as here, with minibatches).
    """


class Adam(_CheckedOptimizer):
    r"""Adam, the adaptive moment estimation of Kingma and Ba.

    Thesis: Algorithm 1.

    With :math:`g_t = \nabla_\theta f_t(\theta_{t-1})` and :math:`g_t^2 = g_t \odot g_t`:

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
        \hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad
        \hat v_t = \frac{v_t}{1 - \beta_2^t}, \quad
        \theta_t = \theta_{t-1} - \alpha \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.

    One method per stage, as in labml_nn's annotated Adam: :meth:`init_state` (lines 1-3),
    :meth:`update_moments` (7-8), :meth:`bias_correction` (9-10), :meth:`update_params` (11); :meth:`step`
    is one pass of the loop body (5-11), parameter by parameter. The bias corrections are folded into
    scalars, :math:`\alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon) = \frac{\alpha}{1 - \beta_1^t} m_t /
    (\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon)`, torch's order of operations; the state has torch's
    keys (``"step"``, ``"exp_avg"`` :math:`= m_t`, ``"exp_avg_sq"`` :math:`= v_t`).

    Erratum: Algorithm 1 uses :math:`\epsilon` in line 11 but neither requires nor gives it; here it is
    ``eps`` (default :math:`10^{-8}`, Kingma and Ba). Its header defines :math:`g_t` at :math:`\theta`,
    line 6 at :math:`\theta_{t-1}` (the intended one). "While not converged" (line 4) names no criterion:
    ``step()`` does one iteration and the caller decides when to stop.
    """

    def __init__(
        self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    def _check_group(self, group: dict[str, Any]) -> None:
        group["betas"] = _check_betas(group["betas"])
        group["eps"] = check_positive_float("eps", group["eps"])

    @staticmethod
    def init_state(p: Tensor) -> dict[str, Tensor]:
        """Return the initial state of parameter ``p`` (Algorithm 1, lines 1-3)."""
        return {
            # Algorithm 1, line 3 (a float32 scalar on the CPU, as in torch's Adam, so state dicts match)
            "step": torch.zeros((), dtype=torch.float32),
            # Algorithm 1, line 1
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            # Algorithm 1, line 2
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
        }

    @staticmethod
    def update_moments(m: Tensor, v: Tensor, g: Tensor, beta1: float, beta2: float) -> None:
        r"""Update the biased moment estimates in place (Algorithm 1, lines 7-8).

        Line 7 is computed as :math:`m + (1 - \beta_1)(g - m)` (one ``lerp``), which equals
        :math:`\beta_1 m + (1 - \beta_1) g`.
        """
        # Algorithm 1, line 7
        m.lerp_(g, 1 - beta1)
        # Algorithm 1, line 8
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)

    @staticmethod
    def bias_correction(t: float, lr: float, beta1: float, beta2: float) -> tuple[float, float]:
        r"""Return :math:`-\alpha / (1 - \beta_1^t)` and :math:`\sqrt{1 - \beta_2^t}` (Algorithm 1, lines 9-10).

        These scalars turn :math:`m_t, v_t` into :math:`\hat m_t, \hat v_t` inside :meth:`update_params`.
        """
        # Algorithm 1, line 9
        neg_step_size = -(lr / (1 - beta1**t))
        # Algorithm 1, line 10
        bias2_sqrt = (1 - beta2**t) ** 0.5
        return neg_step_size, bias2_sqrt

    @staticmethod
    def update_params(p: Tensor, m: Tensor, v: Tensor, neg_step_size: float, bias2_sqrt: float, eps: float) -> None:
        r"""Apply :math:`\theta_t = \theta_{t-1} - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)` in place
        (line 11)."""
        # sqrt(v_hat_t) + eps, with sqrt(v_hat_t) = sqrt(v_t) / sqrt(1 - beta2^t)
        denom = (v.sqrt() / bias2_sqrt).add_(eps)
        # Algorithm 1, line 11
        p.addcdiv_(m, denom, value=neg_step_size)

    def step_param(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """One pass of the loop of Algorithm 1 (lines 5-11) for parameter ``p``."""
        if len(state) == 0:
            state.update(self.init_state(p))
        beta1, beta2 = group["betas"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        # Algorithm 1, line 5
        state["step"] += 1
        # Algorithm 1, line 6 (the gradient was computed by the caller, at theta_{t-1})
        g = p.grad
        self.update_moments(m, v, g, beta1, beta2)
        neg_step_size, bias2_sqrt = self.bias_correction(state["step"].item(), group["lr"], beta1, beta2)
        self.update_params(p, m, v, neg_step_size, bias2_sqrt, group["eps"])


def gradient_descent_path(f_grad: Callable[[Tensor], Tensor], x0: Tensor, schedule: Schedule, steps: int) -> Tensor:
    r"""Return the iterates :math:`x^{(0)}, \dots, x^{(\mathrm{steps})}` of gradient descent, shape ``(steps + 1, n)``.

    Thesis: Theorem 1.2.5, Eq. (1.5).

    ``f_grad`` maps a point of shape ``(n,)`` to the gradient :math:`\partial_x f` there; ``x0`` is the
    initial guess, shape ``(n,)``; ``schedule`` is ``t -> gamma_t``, e.g. ``step_size_schedule("inverse",
    1.0)``. The iterates are computed by :class:`GradientDescent` itself. Nothing stops early: a diverging
    run fills the rest of the path with ``inf``/``nan``.
    """
    steps = check_nonnegative_int("steps", steps)
    x = x0.detach().clone()
    opt = GradientDescent([x], lr=float(schedule(0)), schedule=schedule)  # checks x0's dtype and gamma_0 > 0
    path = torch.empty((steps + 1, x.numel()), dtype=x.dtype, device=x.device)  # (steps + 1, n)
    path[0] = x
    for t in range(1, steps + 1):
        x.grad = f_grad(x.detach().clone()).detach().to(dtype=x.dtype)  # torch refuses a gradient of another shape
        opt.step()
        path[t] = x
    return path
