r"""The optimisers of thesis section 1.2: gradient descent, stochastic gradient descent and Adam.

Each optimiser is a :class:`torch.optim.Optimizer` subclass written from the thesis, so it plugs into any
torch training loop (``zero_grad``, ``step(closure)``, ``state_dict``/``load_state_dict``, param groups).
The update is done with ``torch._foreach_*`` operations over all parameters of a device and dtype at once
(as torch's own ``foreach`` implementations do) and falls back to a plain loop over the tensors with
``foreach=False`` or when a gradient is sparse.

The step sizes :math:`(\gamma_t)_{t \in \mathbb{N}_0}` of Theorem 1.2.5 come from
:func:`step_size_schedule`; :func:`gradient_descent_path` records the iterates of Eq. (1.5) on a
function given by its gradient, which the book uses to test the claims of Theorem 1.2.5.

See the book, chapter 1, section "Training of neural networks".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from thesis_lib.validation import (
    check_choice,
    check_nonnegative_int,
    check_positive_float,
    check_unit_interval,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Adam",
    "GradientDescent",
    "SGD",
    "gradient_descent_path",
    "make_optimizer",
    "step_size_schedule",
]

#: Names accepted by :func:`make_optimizer`: ours ("adam", "sgd", "gd") and torch's, for comparison.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "gd", "torch_adam", "torch_sgd")

#: Names accepted by :func:`step_size_schedule`.
SCHEDULES: tuple[str, ...] = ("constant", "inverse", "inverse_sqrt", "exponential")

Schedule = Callable[[int], float]


# ----------------------------------------------------------------------------------------------------
# Step-size schedules
# ----------------------------------------------------------------------------------------------------


def _check_decay(decay: Any) -> float:
    """Return ``float(decay)`` if it lies in the open interval (0, 1)."""
    ok = isinstance(decay, (int, float)) and not isinstance(decay, bool) and math.isfinite(decay)
    if not (ok and 0 < decay < 1):
        raise ValueError(f"decay must be a number in the open interval (0, 1); got {decay!r}")
    return float(decay)


@dataclass(frozen=True)
class _StepSizeSchedule:
    """A named step-size sequence; a dataclass rather than a closure so that it pickles."""

    name: str
    lr: float
    decay: float | None = None

    def __call__(self, t: int) -> float:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"t must be a non-negative integer (0, 1, 2, ...); got {t!r}")
        if self.name == "constant":
            return self.lr
        if self.name == "inverse":
            return self.lr / (1 + t)
        if self.name == "inverse_sqrt":
            return self.lr / math.sqrt(1 + t)
        return self.lr * self.decay**t  # "exponential"; decay checked on construction


def step_size_schedule(name: str, lr: float, **kw: float) -> Schedule:
    r"""Return the step-size sequence :math:`t \mapsto \gamma_t` (for :math:`t = 0, 1, 2, \dots`) called ``name``.

    Thesis: Theorem 1.2.5, Eq. (1.5).

    * ``"constant"``: :math:`\gamma_t = \mathrm{lr}`;
    * ``"inverse"``: :math:`\gamma_t = \mathrm{lr} / (1 + t)`;
    * ``"inverse_sqrt"``: :math:`\gamma_t = \mathrm{lr} / \sqrt{1 + t}`;
    * ``"exponential"``: :math:`\gamma_t = \mathrm{lr} \cdot \mathrm{decay}^t`, keyword ``decay`` in (0, 1).

    Every schedule starts at :math:`\gamma_0 = \mathrm{lr}`. Theorem 1.2.5 asks for :math:`\gamma_t \to 0`:
    "constant" does not satisfy it (kept on purpose, the book shows what happens) and "exponential" does
    but has :math:`\sum_t \gamma_t < \infty`, so it stops short of the minimum in general (see the erratum
    of :class:`GradientDescent`); "inverse" and "inverse_sqrt" satisfy :math:`\gamma_t \to 0` and
    :math:`\sum_t \gamma_t = \infty`.

    The returned callable pickles (it is not a closure), so optimiser state dicts holding it can be saved.
    """
    check_choice("name", name, SCHEDULES)
    lr = check_positive_float("lr", lr)
    allowed_kw = ("decay",) if name == "exponential" else ()
    for key in kw:
        if key not in allowed_kw:
            shown = ", ".join(repr(k) for k in allowed_kw) or "none"
            raise ValueError(
                f"step_size_schedule({name!r}) got an unexpected keyword {key!r}; allowed keywords: {shown}"
            )
    if name == "exponential":
        if "decay" not in kw:
            raise ValueError("decay is required for the 'exponential' schedule: a number in (0, 1); got nothing")
        return _StepSizeSchedule(name, lr, _check_decay(kw["decay"]))
    return _StepSizeSchedule(name, lr)


# ----------------------------------------------------------------------------------------------------
# Private helpers shared by the optimisers
# ----------------------------------------------------------------------------------------------------


def _check_foreach(foreach: Any) -> bool | None:
    if foreach is not None and not isinstance(foreach, bool):
        raise ValueError(f"foreach must be True, False or None; got {foreach!r}")
    return foreach


def _check_betas(betas: Any) -> tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1); got {betas!r}")
    try:
        b1 = check_unit_interval("betas[0]", betas[0])
        b2 = check_unit_interval("betas[1]", betas[1])
    except ValueError as err:
        raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1): {err}") from None
    return b1, b2


def _check_schedule(schedule: Any, lr: float, schedule_kw: dict[str, float]) -> str | Schedule:
    """Check ``schedule`` (a name of :data:`SCHEDULES` or a callable with ``schedule(0) == lr``)."""
    if isinstance(schedule, str):
        check_choice("schedule", schedule, SCHEDULES)
        step_size_schedule(schedule, lr, **schedule_kw)  # checks the keywords
        return schedule
    if not callable(schedule):
        shown = ", ".join(repr(s) for s in SCHEDULES)
        raise ValueError(f"schedule must be one of {shown} or a callable t -> gamma_t; got {schedule!r}")
    if schedule_kw:
        raise ValueError(f"schedule keywords {sorted(schedule_kw)!r} are only allowed with a named schedule")
    gamma0 = schedule(0)
    if not isinstance(gamma0, (int, float)) or not math.isclose(gamma0, lr, rel_tol=1e-12, abs_tol=0.0):
        raise ValueError(
            f"schedule must start at the learning rate, schedule(0) == lr == {lr!r}; got schedule(0) = {gamma0!r}"
        )
    return schedule


def _check_real_params(param_groups: list[dict[str, Any]]) -> None:
    for group in param_groups:
        for p in group["params"]:
            if torch.is_complex(p) or not p.is_floating_point():
                raise ValueError(f"params must be real floating-point tensors; got one of dtype {p.dtype}")


def _check_fused(fused: Any, foreach: bool | None) -> bool | None:
    if fused is not None and not isinstance(fused, bool):
        raise ValueError(f"fused must be True, False or None; got {fused!r}")
    if fused and foreach:
        raise ValueError("fused and foreach cannot both be True; choose one implementation")
    return fused


_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _use_fused(fused: bool | None, foreach: bool | None, p: Tensor) -> bool:
    """Whether a bucket of parameters like ``p`` takes the fused kernel.

    ``fused=None`` (the default) means: yes when torch has a fused Adam kernel for ``p``'s device and
    dtype and ``foreach`` was not asked for explicitly (``foreach=True`` or ``False`` picks that code).
    """
    supported = hasattr(torch, "_fused_adam_") and p.device.type in ("cpu", "cuda") and p.dtype in _FUSED_DTYPES
    if fused is None:
        return foreach is None and supported
    if fused and not supported:
        raise ValueError(f"fused=True needs float parameters on the CPU or a CUDA device; got {p.dtype} on {p.device}")
    return fused


def _new_step() -> Tensor:
    # The same representation as torch's Adam (a float32 scalar on the CPU), so state dicts match.
    return torch.zeros((), dtype=torch.float32)


def _buckets(keys: Iterable[tuple[Any, ...]], *columns: list[Any]) -> dict[tuple[Any, ...], list[list[Any]]]:
    """Group the i-th entries of ``columns`` by ``keys[i]`` (device, dtype, ...), keeping the order."""
    out: dict[tuple[Any, ...], list[list[Any]]] = {}
    for i, key in enumerate(keys):
        lists = out.setdefault(key, [[] for _ in columns])
        for lst, col in zip(lists, columns):
            lst.append(col[i])
    return out


# ----------------------------------------------------------------------------------------------------
# Gradient descent and stochastic gradient descent
# ----------------------------------------------------------------------------------------------------


class GradientDescent(torch.optim.Optimizer):
    r"""Gradient descent :math:`\theta^{(t+1)} = \theta^{(t)} - \gamma_t \, \partial_\theta \mathcal{R}(f_{\theta^{(t)}})`.

    Thesis: Theorem 1.2.5, Eq. (1.5); Corollary 1.2.7.

    ``step()`` does one iteration with the gradient stored in ``p.grad``; for gradient descent proper the
    caller computes it on the whole data set (Lemma 1.2.6: the mean of the per-example gradients).

    The step size is :math:`\gamma_t` with ``t`` the number of steps this parameter has taken so far,
    kept in ``state[p]["step"]`` (a float32 scalar tensor, as in torch's Adam) so that it survives
    ``state_dict``/``load_state_dict``. ``schedule`` is a name of :data:`SCHEDULES`, evaluated as
    ``step_size_schedule(schedule, group["lr"], **schedule_kw)`` (so ``lr`` is :math:`\gamma_0` and a torch
    LR scheduler that changes ``group["lr"]`` rescales the sequence), or a callable ``t -> gamma_t`` that
    must start at ``schedule(0) == lr`` (checked). A callable must be picklable (a module-level function or
    the result of :func:`step_size_schedule`, not a lambda) for ``torch.save(opt.state_dict())``.

    Erratum: Theorem 1.2.5 claims that for *any* sequence :math:`\gamma_t \to 0` and any continuous, convex,
    differentiable :math:`f: \mathbb{R}^n \to \mathbb{R}` the iterates of Eq. (1.5) converge to
    :math:`x^* = \operatorname{arg\,min} f`. This is false: (i) :math:`\gamma_t \to 0` is not enough, the
    steps must also satisfy :math:`\sum_t \gamma_t = \infty`, else the iterates stop short: for
    :math:`f(x) = x^2`, :math:`\gamma_t = 1/(t+1)^2`, :math:`x^{(0)} = 1` they converge to
    :math:`\sin(\pi\sqrt{2})/(\pi\sqrt{2}) \approx -0.2170 \neq 0`; (ii) the steps must also be small compared
    with the curvature: for :math:`f(x) = x^4`, :math:`x^{(0)} = 1`, :math:`\gamma_t = 1/(1+t)` (which has
    :math:`\gamma_t \to 0` and :math:`\sum_t \gamma_t = \infty`) the iterates are
    :math:`1, -3, 51, -176817, \dots` and diverge; (iii) a convex function need not have a minimiser
    (:math:`f = \exp`), so :math:`x^*` may not exist; (iv) without strict convexity the arg min is a set,
    not a point. A correct statement: if :math:`f` is convex with an :math:`L`-Lipschitz gradient and a
    minimiser, and :math:`0 < \gamma_t \le 1/L` with :math:`\sum_t \gamma_t = \infty`, then
    :math:`f(x^{(t)}) \to \min f` (and with a constant :math:`\gamma \in (0, 2/L)` the iterates converge to
    a minimiser). The proof only shows that :math:`d(x^*, x^{(t)})` decreases (for "sufficiently small"
    steps, which :math:`\gamma_t \to 0` does not give at finite ``t``), not that its limit is 0. We implement
    Eq. (1.5) as written for any schedule and check no convergence condition; :func:`gradient_descent_path`
    reproduces the counterexamples above.

    Erratum: Corollary 1.2.7 applies Theorem 1.2.5 to the empirical risk of a neural network, but
    :math:`\theta \mapsto \mathcal{R}(f_\theta)` is not convex for a network with a hidden layer (permuting
    hidden units gives distinct minimisers with non-minimal points between them), so the theorem gives no
    guarantee there; the update itself, :math:`\theta^{(t)} = \theta^{(t-1)} - \gamma_{t-1}
    \partial_\theta \mathcal{R}(f_{\theta^{(t-1)}})`, is Eq. (1.5) with the index shifted by one and is
    what ``step()`` computes.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        schedule: str | Schedule = "constant",
        *,
        foreach: bool | None = None,
        **schedule_kw: float,
    ) -> None:
        lr = check_positive_float("lr", lr)
        schedule = _check_schedule(schedule, lr, schedule_kw)
        foreach = _check_foreach(foreach)
        defaults = dict(lr=lr, schedule=schedule, schedule_kw=dict(schedule_kw), foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (see :meth:`torch.optim.Optimizer.add_param_group`), checking its settings."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            group["lr"] = check_positive_float("lr", group["lr"])
            group["schedule"] = _check_schedule(group["schedule"], group["lr"], group["schedule_kw"])
            _check_foreach(group["foreach"])
            group.setdefault("fused", None)
            _check_fused(group["fused"], group["foreach"])
            _check_real_params([group])
        except ValueError:
            self.param_groups.pop()
            raise

    @staticmethod
    def _gamma(group: dict[str, Any], t: int) -> float:
        schedule = group["schedule"]
        if isinstance(schedule, str):
            return step_size_schedule(schedule, group["lr"], **group["schedule_kw"])(t)
        return float(schedule(t))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Do one iteration of Eq. (1.5) with the gradients in ``p.grad``; return ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, steps, keys = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = _new_step()
                t = int(state["step"].item())
                params.append(p)
                grads.append(p.grad)
                steps.append(state["step"])
                keys.append((p.device, p.dtype, t))
            gammas = {}
            for _, _, t in keys:
                if t not in gammas:
                    gammas[t] = self._gamma(group, t)
                    if not math.isfinite(gammas[t]) or gammas[t] < 0:
                        raise ValueError(f"schedule({t}) must be a finite number >= 0; got {gammas[t]!r}")
            use_foreach = group["foreach"] is not False and not any(g.is_sparse for g in grads)
            for (_, _, t), (ps, gs, ts) in _buckets(keys, params, grads, steps).items():
                _descent_update(ps, gs, ts, gammas[t], use_foreach)
        return loss


def _descent_update(params: list[Tensor], grads: list[Tensor], steps: list[Tensor], gamma: float, foreach: bool) -> None:
    """Apply Eq. (1.5) to tensors that share device, dtype and step count ``t``; advance ``t``."""
    if foreach:
        # Eq. (1.5); with the gradient of one example (or a minibatch) this is Eq. (1.6)
        torch._foreach_add_(params, grads, alpha=-gamma)
        torch._foreach_add_(steps, 1)
    else:
        for p, g, s in zip(params, grads, steps):
            # Eq. (1.5); with the gradient of one example (or a minibatch) this is Eq. (1.6)
            p.add_(g, alpha=-gamma)
            s += 1


class SGD(GradientDescent):
    r"""Stochastic gradient descent :math:`\theta^{(t)} = \theta^{(t-1)} - \gamma_{t-1} \partial_{\theta,i} \mathcal{R}(f_{\theta^{(t-1)}})`.

    Thesis: Theorem 1.2.8, Eq. (1.6).

    The update is the one of :class:`GradientDescent`; the difference is that the caller computes
    ``p.grad`` on one example :math:`(x_i, y_i)` (or a minibatch) instead of the whole data set. With the
    constant schedule it equals ``torch.optim.SGD(params, lr=lr, momentum=0)``.

    Erratum: Theorem 1.2.8 is stated as a theorem but only defines the algorithm (there is nothing to
    prove; it should be a definition). It also leaves open how the index :math:`i \in \{1, \dots, k\}` is
    chosen: it must change with the iteration, :math:`i = i_t`, and for
    :math:`\partial_{\theta,i_t} \mathcal{R}` to be an unbiased estimate of :math:`\partial_\theta \mathcal{R}`
    it is drawn uniformly at random, independently of the past (or the data are reshuffled every epoch, as
    in practice and in this library, which also uses minibatches rather than single examples).
    """


# ----------------------------------------------------------------------------------------------------
# Adam
# ----------------------------------------------------------------------------------------------------


class Adam(torch.optim.Optimizer):
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
    :meth:`update_moments` (lines 7-8), :meth:`bias_correction` (lines 9-10), :meth:`update_params`
    (line 11); :meth:`step` is one pass of the loop body (lines 5-11). The bias corrections are folded into
    scalars, :math:`\alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon) = \frac{\alpha}{1 - \beta_1^t} m_t /
    (\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon)`, equal in exact arithmetic and saving two tensors per
    parameter; this is also the order of operations of ``torch.optim.Adam``. The state of each parameter
    has torch's keys, ``"step"``, ``"exp_avg"`` (:math:`m_t`) and ``"exp_avg_sq"`` (:math:`v_t`).

    Erratum: Algorithm 1 uses :math:`\epsilon` in line 11 but does not list it among its inputs ("Require")
    and never gives its value; we take it as the parameter ``eps`` (default :math:`10^{-8}` as in Kingma
    and Ba). Its header defines :math:`g_t := \nabla_\theta f_t(\theta)` while line 6 evaluates it at
    :math:`\theta_{t-1}`, which is the intended meaning. Its loop "while :math:`\theta_t` not converged"
    (line 4) names no convergence criterion: here ``step()`` performs one iteration and the caller decides
    when to stop (a fixed number of epochs in this library).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        lr = check_positive_float("lr", lr)
        betas = _check_betas(betas)
        eps = check_positive_float("eps", eps)
        foreach = _check_foreach(foreach)
        fused = _check_fused(fused, foreach)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, foreach=foreach, fused=fused))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (see :meth:`torch.optim.Optimizer.add_param_group`), checking its settings."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            group["lr"] = check_positive_float("lr", group["lr"])
            group["betas"] = _check_betas(group["betas"])
            group["eps"] = check_positive_float("eps", group["eps"])
            _check_foreach(group["foreach"])
            group.setdefault("fused", None)
            _check_fused(group["fused"], group["foreach"])
            _check_real_params([group])
        except ValueError:
            self.param_groups.pop()
            raise

    @staticmethod
    def init_state(p: Tensor) -> dict[str, Tensor]:
        """Return the initial state of parameter ``p`` (Algorithm 1, lines 1-3)."""
        return {
            # Algorithm 1, line 3
            "step": _new_step(),
            # Algorithm 1, line 1
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            # Algorithm 1, line 2
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
        }

    @staticmethod
    def update_moments(
        exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], grads: list[Tensor], beta1: float, beta2: float, foreach: bool
    ) -> None:
        r"""Update the biased moment estimates in place (Algorithm 1, lines 7-8).

        Line 7 is computed as :math:`m + (1 - \beta_1)(g - m)` (one ``lerp``), which equals
        :math:`\beta_1 m + (1 - \beta_1) g`.
        """
        if foreach:
            # Algorithm 1, line 7
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            # Algorithm 1, line 8
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        else:
            for m, v, g in zip(exp_avgs, exp_avg_sqs, grads):
                # Algorithm 1, line 7
                m.lerp_(g, 1 - beta1)
                # Algorithm 1, line 8
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)

    @staticmethod
    def bias_correction(steps: list[Tensor], lr: float, beta1: float, beta2: float) -> tuple[list[float], list[float]]:
        r"""Return, per parameter, :math:`-\alpha / (1 - \beta_1^t)` and :math:`\sqrt{1 - \beta_2^t}` (Algorithm 1, lines 9-10).

        These scalars turn :math:`m_t, v_t` into :math:`\hat m_t, \hat v_t` inside :meth:`update_params`.
        """
        ts = [s.item() for s in steps]
        # Algorithm 1, line 9
        neg_step_sizes = [-(lr / (1 - beta1**t)) for t in ts]
        # Algorithm 1, line 10
        bias2_sqrts = [(1 - beta2**t) ** 0.5 for t in ts]
        return neg_step_sizes, bias2_sqrts

    @staticmethod
    def update_params(
        params: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        neg_step_sizes: list[float],
        bias2_sqrts: list[float],
        eps: float,
        foreach: bool,
    ) -> None:
        r"""Apply :math:`\theta_t = \theta_{t-1} - \alpha \hat m_t / (\sqrt{\hat v_t} + \epsilon)` in place (Algorithm 1, line 11)."""
        if foreach:
            # sqrt(v_hat_t) + eps, with sqrt(v_hat_t) = sqrt(v_t) / sqrt(1 - beta2^t)
            denoms = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denoms, bias2_sqrts)
            torch._foreach_add_(denoms, eps)
            # Algorithm 1, line 11
            torch._foreach_addcdiv_(params, exp_avgs, denoms, neg_step_sizes)
        else:
            for p, m, v, a, b in zip(params, exp_avgs, exp_avg_sqs, neg_step_sizes, bias2_sqrts):
                denom = (v.sqrt() / b).add_(eps)
                # Algorithm 1, line 11
                p.addcdiv_(m, denom, value=a)

    @staticmethod
    def fused_step(
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        steps: list[Tensor],
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> None:
        r"""Lines 5-11 of Algorithm 1 for all ``params`` at once, with ``torch._fused_adam_``.

        The same update as :meth:`update_moments`, :meth:`bias_correction` and :meth:`update_params`
        (the tests compare the two to within float32 rounding), done in one pass over each tensor
        instead of five: this is the training loop's fast path.
        """
        # Algorithm 1, line 5
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, maximize=False,
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Do one iteration of the loop of Algorithm 1 with the gradients in ``p.grad``; return ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Adam does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state.update(self.init_state(p))
                params.append(p)
                # Algorithm 1, line 6 (the gradient was computed by the caller, at theta_{t-1})
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            foreach = group["foreach"] is not False
            keys = [(p.device, p.dtype) for p in params]
            for ps, gs, ms, vs, ts in _buckets(keys, params, grads, exp_avgs, exp_avg_sqs, steps).values():
                if _use_fused(group["fused"], group["foreach"], ps[0]):
                    if ts[0].device != ps[0].device:  # the CUDA kernel wants its step counts on the device
                        for p in ps:
                            self.state[p]["step"] = self.state[p]["step"].to(p.device)
                        ts = [self.state[p]["step"] for p in ps]
                    # Algorithm 1, lines 5-11 in one vectorised kernel per tensor (torch's fused Adam)
                    self.fused_step(ps, gs, ms, vs, ts, group["lr"], beta1, beta2, group["eps"])
                    continue
                # Algorithm 1, line 5
                if foreach:
                    torch._foreach_add_(ts, 1)
                else:
                    for s in ts:
                        s += 1
                self.update_moments(ms, vs, gs, beta1, beta2, foreach)
                neg_step_sizes, bias2_sqrts = self.bias_correction(ts, group["lr"], beta1, beta2)
                self.update_params(ps, ms, vs, neg_step_sizes, bias2_sqrts, group["eps"], foreach)
        return loss


# ----------------------------------------------------------------------------------------------------
# Factory and the path of gradient descent
# ----------------------------------------------------------------------------------------------------


def make_optimizer(name: str, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float, **kw: Any) -> torch.optim.Optimizer:
    """Return the optimiser ``name`` of :data:`OPTIMIZERS` over ``params`` with learning rate ``lr``.

    "adam", "sgd", "gd" are :class:`Adam`, :class:`SGD`, :class:`GradientDescent`; "torch_adam" and
    "torch_sgd" are ``torch.optim.Adam`` and ``torch.optim.SGD``, for comparison. ``kw`` goes to the
    constructor (``betas``, ``eps``; ``schedule``, ``decay``; ``foreach``; torch's own options).
    """
    check_choice("name", name, OPTIMIZERS)
    lr = check_positive_float("lr", lr)
    if name == "adam":
        return Adam(params, lr=lr, **kw)
    if name == "sgd":
        return SGD(params, lr=lr, **kw)
    if name == "gd":
        return GradientDescent(params, lr=lr, **kw)
    if name == "torch_adam":
        return torch.optim.Adam(params, lr=lr, **kw)
    return torch.optim.SGD(params, lr=lr, **kw)


def gradient_descent_path(f_grad: Callable[[Tensor], Tensor], x0: Tensor, schedule: Schedule, steps: int) -> Tensor:
    r"""Return the iterates :math:`x^{(0)}, \dots, x^{(\mathrm{steps})}` of gradient descent, shape ``(steps + 1, n)``.

    Thesis: Theorem 1.2.5, Eq. (1.5).

    ``f_grad`` maps a point of shape ``(n,)`` to the gradient :math:`\partial_x f` there (same shape);
    ``x0`` is the initial guess, shape ``(n,)`` (use float64 for the book's demonstrations);
    ``schedule`` is the step-size sequence ``t -> gamma_t``, e.g. ``step_size_schedule("inverse", 1.0)`` or
    ``lambda t: 1 / (t + 1) ** 2``. The iterates are computed by :class:`GradientDescent` itself, so this
    shows what the optimiser does. Nothing stops early: a diverging run fills the rest of the path with
    ``inf``/``nan``. The counterexamples to Theorem 1.2.5 in the erratum of :class:`GradientDescent`
    (:math:`x^2` with :math:`\gamma_t = 1/(t+1)^2`, :math:`x^4` with :math:`\gamma_t = 1/(1+t)`,
    :math:`\exp`) are reproduced with this function in the tests and the book.
    """
    if not callable(f_grad):
        raise ValueError(f"f_grad must be a callable mapping a point x of shape (n,) to the gradient at x; got {f_grad!r}")
    if not isinstance(x0, Tensor) or x0.dim() != 1 or x0.numel() == 0 or not x0.is_floating_point():
        shown = f"tensor of shape {tuple(x0.shape)} and dtype {x0.dtype}" if isinstance(x0, Tensor) else repr(x0)
        raise ValueError(f"x0 must be a non-empty 1-D floating-point tensor of shape (n,); got {shown}")
    if isinstance(schedule, str) or not callable(schedule):
        raise ValueError(
            f"schedule must be a callable t -> gamma_t, for example step_size_schedule('inverse', 1.0); got {schedule!r}"
        )
    steps = check_nonnegative_int("steps", steps)
    gamma0 = schedule(0)
    if not isinstance(gamma0, (int, float)) or not math.isfinite(gamma0) or gamma0 <= 0:
        raise ValueError(f"schedule must give a step size gamma_0 > 0; got schedule(0) = {gamma0!r}")

    x = x0.detach().clone()
    opt = GradientDescent([x], lr=float(gamma0), schedule=schedule)
    path = torch.empty((steps + 1, x.numel()), dtype=x.dtype, device=x.device)  # (steps + 1, n)
    path[0] = x
    for t in range(1, steps + 1):
        g = f_grad(x.detach().clone())
        if not isinstance(g, Tensor) or g.shape != x.shape:
            shown = f"shape {tuple(g.shape)}" if isinstance(g, Tensor) else repr(g)
            raise ValueError(f"f_grad must return a tensor of the shape of x0, {tuple(x.shape)}; got {shown}")
        x.grad = g.detach().to(dtype=x.dtype)
        opt.step()
        path[t] = x
    return path
