"""Tests for thesis_lib.mathematics.optimizers (thesis section 1.2).

Oracles: torch.optim.Adam and torch.optim.SGD on a real network, hand-written updates, and closed forms
for gradient descent on quadratics (numpy, float64).
"""

from __future__ import annotations

import io
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thesis_lib.mathematics.optimizers import (SCHEDULES, SGD, Adam, GradientDescent, gradient_descent_path,
                                               step_size_schedule)

ATOL = 1e-6  # ours vs torch after 100+ steps, float32 (max abs parameter difference)
N_STEPS = 120
BATCH = 32


# --------------------------------------------------------------------------------------------------
# A real network and a reproducible stream of minibatches
# --------------------------------------------------------------------------------------------------


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    )


def _data(seed: int = 1, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)


def _batch(x: torch.Tensor, y: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(100 + t))[:BATCH]
    return x[idx], y[idx]


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range, data) -> list[float]:
    x, y = data
    losses = []
    for t in steps:
        xb, yb = _batch(x, y, t)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            return loss

        losses.append(float(opt.step(closure).detach()))
    return losses


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def _run_pair(make_ours, make_ref, steps: int = N_STEPS):
    data = _data()
    ours, ref = _mlp(), _mlp()
    assert _max_diff(ours, ref) == 0.0
    o1, o2 = make_ours(ours.parameters()), make_ref(ref.parameters())
    l1 = _train(ours, o1, range(steps), data)
    l2 = _train(ref, o2, range(steps), data)
    return ours, ref, o1, o2, l1, l2


# --------------------------------------------------------------------------------------------------
# Oracle tests against torch
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["single", "foreach", "fused"])
def test_adam_matches_torch_adam(impl: str) -> None:
    """Algorithm 1 written out against each of torch's three implementations of Adam."""
    kw = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
    ours, ref, o1, o2, l1, l2 = _run_pair(
        lambda p: Adam(p, lr=1e-3, betas=(0.9, 0.99), eps=1e-7),
        lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.9, 0.99), eps=1e-7, **kw),
    )
    diff = _max_diff(ours, ref)
    print(f"Adam vs torch.optim.Adam ({impl}) after {N_STEPS} steps: max abs diff {diff:.3e}")
    if impl == "single":  # the same operations in the same order: the same bits
        assert diff == 0.0
    assert diff <= ATOL
    assert l1[-1] < l1[0]  # it learns: the loss falls
    assert _max_diff(ours, _mlp()) > 1e-2  # and the parameters moved
    # same state keys and values as torch, so state dicts are interchangeable in content
    for p, q in zip(ours.parameters(), ref.parameters()):
        s1, s2 = o1.state[p], o2.state[q]
        assert set(s1) == set(s2) == {"step", "exp_avg", "exp_avg_sq"}
        assert s1["step"].item() == s2["step"].item() == N_STEPS
        assert s1["step"].dtype == s2["step"].dtype
        torch.testing.assert_close(s1["exp_avg"], s2["exp_avg"], rtol=0, atol=1e-6)
        torch.testing.assert_close(s1["exp_avg_sq"], s2["exp_avg_sq"], rtol=0, atol=1e-8)


def test_adam_default_hyperparameters_match_torch() -> None:
    ours, ref, *_ = _run_pair(lambda p: Adam(p), lambda p: torch.optim.Adam(p), steps=30)
    assert _max_diff(ours, ref) <= ATOL


@pytest.mark.parametrize("foreach", [True, False])
def test_sgd_matches_torch_sgd(foreach: bool) -> None:
    ours, ref, _, _, l1, l2 = _run_pair(
        lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0, foreach=foreach)
    )
    diff = _max_diff(ours, ref)
    print(f"SGD vs torch.optim.SGD (foreach={foreach}) after {N_STEPS} steps: max abs diff {diff:.3e}")
    assert diff <= ATOL
    assert l1 == pytest.approx(l2, abs=1e-5)
    assert l1[-1] < l1[0]


def test_closure_loss_is_returned_and_step_without_closure_returns_none() -> None:
    model = _mlp()
    x, y = _data(n=8)
    opt = Adam(model.parameters())
    loss = opt.step(lambda: F.cross_entropy(model(x), y))
    assert isinstance(loss, torch.Tensor) and loss.requires_grad  # closure ran with grad enabled
    assert opt.step() is None


# --------------------------------------------------------------------------------------------------
# Gradient descent with a schedule vs a hand-written update
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kw", [("inverse", {}), ("inverse_sqrt", {}), ("exponential", {"decay": 0.9})])
def test_gradient_descent_schedule_matches_hand_written_update(name: str, kw: dict) -> None:
    x, y = _data(n=64)
    model = _mlp()
    manual = [p.detach().clone() for p in model.parameters()]
    opt = GradientDescent(model.parameters(), lr=0.2, schedule=name, **kw)
    for t in range(25):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()  # full-batch gradient: gradient descent proper
        gamma = {"inverse": 0.2 / (1 + t), "inverse_sqrt": 0.2 / math.sqrt(1 + t), "exponential": 0.2 * 0.9**t}[name]
        manual = [w - gamma * p.grad for w, p in zip(manual, model.parameters())]
        opt.step()
        for w, p in zip(manual, model.parameters()):
            torch.testing.assert_close(p.detach(), w, rtol=0, atol=1e-6)
    assert all(opt.state[p]["step"].item() == 25 for p in model.parameters())


def test_gradient_descent_callable_schedule_and_parameters_without_grad() -> None:
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = GradientDescent([a, b], lr=0.5, schedule=step_size_schedule("inverse", 0.5))
    for t in range(4):
        a.grad = torch.full((3,), 2.0)  # b never gets a gradient: it is skipped, as in torch
        opt.step()
    # a = 1 - 2 * 0.5 * (1 + 1/2 + 1/3 + 1/4)
    torch.testing.assert_close(a.detach(), torch.full((3,), 1 - (1 + 1 / 2 + 1 / 3 + 1 / 4)))
    assert torch.equal(b.detach(), torch.ones(2)) and len(opt.state[b]) == 0


def test_param_groups_use_their_own_lr() -> None:
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = GradientDescent([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt.step()
    torch.testing.assert_close(a.detach(), torch.full((2,), -0.1))
    torch.testing.assert_close(b.detach(), torch.full((2,), -0.01))


# --------------------------------------------------------------------------------------------------
# State dict round trips: interrupted == uninterrupted, bit for bit
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adam(p, lr=1e-3),
        lambda p: GradientDescent(p, lr=0.1, schedule="inverse_sqrt"),
        lambda p: SGD(p, lr=0.1, schedule="exponential", decay=0.99),
    ],
    ids=["adam", "gd_inverse_sqrt", "sgd_exponential"],
)
def test_state_dict_round_trip_is_bit_exact(make) -> None:
    data = _data()
    full = _mlp()
    _train(full, make(full.parameters()), range(100), data)

    first = _mlp()
    opt = make(first.parameters())
    _train(first, opt, range(50), data)
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)

    resumed = _mlp(seed=123)  # different weights, overwritten by the checkpoint
    resumed.load_state_dict(ckpt["model"])
    opt2 = make(resumed.parameters())
    opt2.load_state_dict(ckpt["optimizer"])
    assert all(opt2.state[p]["step"].item() == 50 for p in resumed.parameters())
    _train(resumed, opt2, range(50, 100), data)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_round_trip_without_loading_state_differs() -> None:
    """The round-trip test can fail: dropping the optimiser state changes the result."""
    data = _data()
    full = _mlp()
    _train(full, Adam(full.parameters()), range(60), data)
    part = _mlp()
    _train(part, Adam(part.parameters()), range(30), data)
    _train(part, Adam(part.parameters()), range(30, 60), data)  # fresh moments, t restarts at 1
    assert _max_diff(full, part) > 1e-4


def test_schedules_pickle() -> None:
    s = step_size_schedule("exponential", 0.3, decay=0.5)
    assert pickle.loads(pickle.dumps(s))(3) == s(3) == 0.3 * 0.125


# --------------------------------------------------------------------------------------------------
# Step-size schedules
# --------------------------------------------------------------------------------------------------


def test_step_size_schedules_closed_forms() -> None:
    ts = range(0, 50)
    assert [step_size_schedule("constant", 0.3)(t) for t in ts] == [0.3] * 50
    assert [step_size_schedule("inverse", 0.3)(t) for t in ts] == pytest.approx([0.3 / (1 + t) for t in ts])
    assert [step_size_schedule("inverse_sqrt", 0.3)(t) for t in ts] == pytest.approx([0.3 / np.sqrt(1 + t) for t in ts])
    assert ([step_size_schedule("exponential", 0.3, decay=0.8)(t) for t in ts]
            == pytest.approx([0.3 * 0.8**t for t in ts]))
    for name in SCHEDULES:
        s = step_size_schedule(name, 0.7, **({"decay": 0.5} if name == "exponential" else {}))
        assert s(0) == 0.7  # every schedule starts at lr
        assert s(np.int64(3)) == s(3)
        vals = [s(t) for t in range(100)]
        assert all(a >= b > 0 for a, b in zip(vals, vals[1:]))  # positive, non-increasing


# --------------------------------------------------------------------------------------------------
# gradient_descent_path and the claims of Theorem 1.2.5, checked numerically
# --------------------------------------------------------------------------------------------------


def _quadratic(seed: int = 0, eigs=(1.0, 1.25, 1.5)):
    """f(x) = x^T A x / 2 with A symmetric positive definite of the given eigenvalues; grad f = A x."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    a = q @ np.diag(eigs) @ q.T
    x0 = rng.standard_normal(len(eigs))
    return a, q, np.asarray(eigs), x0


def test_path_shape_dtype_and_first_row() -> None:
    x0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    path = gradient_descent_path(lambda x: 2 * x, x0, step_size_schedule("constant", 0.1), 7)
    assert path.shape == (8, 2) and path.dtype == torch.float64
    assert torch.equal(path[0], x0)
    torch.testing.assert_close(path[1], 0.8 * x0)
    assert gradient_descent_path(lambda x: 2 * x, x0, step_size_schedule("constant", 0.1), 0).shape == (1, 2)


def test_path_converges_on_strictly_convex_quadratic_with_inverse_schedule() -> None:
    a, q, eigs, x0 = _quadratic()
    steps = 2000
    sched = step_size_schedule("inverse", 1.0)
    at = torch.from_numpy(a)
    path = gradient_descent_path(lambda x: at @ x, torch.from_numpy(x0), sched, steps).numpy()
    # closed form: x_T = Q diag(prod_t (1 - gamma_t lambda_i)) Q^T x0
    factors = np.prod([1 - sched(t) * eigs for t in range(steps)], axis=0)
    expected = q @ (factors * (q.T @ x0))
    np.testing.assert_allclose(path[-1], expected, rtol=1e-9, atol=1e-14)
    norms = np.linalg.norm(path, axis=1)
    assert norms[-1] < 2e-3 * norms[0]  # -> the minimiser 0, at rate about 1/t
    f = 0.5 * np.einsum("ti,ij,tj->t", path, a, path)
    assert np.all(np.diff(f) <= 1e-15)  # gamma_t * lambda_max <= 1.5 < 2: f decreases


def test_path_diverges_with_constant_step_too_large() -> None:
    a, q, eigs, x0 = _quadratic()
    gamma = 2.2 / eigs.max()  # |1 - gamma * lambda_max| = 1.2 > 1
    at = torch.from_numpy(a)
    path = gradient_descent_path(lambda x: at @ x, torch.from_numpy(x0), step_size_schedule("constant", gamma),
                                 100).numpy()
    growth = np.linalg.norm(path[-1]) / np.linalg.norm(path[0])
    assert growth > 1e6
    expected = q @ ((1 - gamma * eigs) ** 100 * (q.T @ x0))
    np.testing.assert_allclose(path[-1], expected, rtol=1e-8)
    # while a constant step below 2 / lambda_max converges
    ok = gradient_descent_path(lambda x: at @ x, torch.from_numpy(x0), step_size_schedule("constant", 1.0), 100)
    assert ok[-1].norm() < 1e-9


def test_summable_steps_stop_short_of_the_minimum() -> None:
    """gamma_t = 1/(t+1)^2 -> 0 but sum gamma_t < inf: on f = x^2 the limit is sin(pi sqrt 2)/(pi sqrt 2) * x0."""
    steps = 4000
    path = gradient_descent_path(lambda x: 2 * x, torch.tensor([1.0], dtype=torch.float64), lambda t: 1 / (t + 1) ** 2,
                                 steps)
    partial = np.prod([1 - 2 / n**2 for n in range(1, steps + 1)])
    assert path[-1].item() == pytest.approx(partial, rel=1e-12)
    limit = math.sin(math.pi * math.sqrt(2)) / (math.pi * math.sqrt(2))
    assert path[-1].item() == pytest.approx(limit, rel=5e-3)
    assert abs(path[-1].item()) > 0.2  # nowhere near the minimiser 0
    assert abs(path[-1].item() - path[-1000].item()) < 1e-3  # and no longer moving


def test_vanishing_non_summable_steps_can_still_diverge() -> None:
    """gamma_t = 1/(1+t) on f = x^4 from x0 = 1: 1, -3, 51, -176817, ... (Theorem 1.2.5 claims convergence)."""
    path = gradient_descent_path(lambda x: 4 * x**3, torch.tensor([1.0], dtype=torch.float64),
                                 step_size_schedule("inverse", 1.0), 10)
    assert path[:4].flatten().tolist() == [1.0, -3.0, 51.0, -176817.0]
    absx = path.flatten().abs()
    assert torch.all(absx[1:7] > absx[:6] ** 2)  # super-exponential growth
    assert not torch.isfinite(path[-1]).any()
    # the same schedule heads to the minimiser 0 (slowly: f is flat there) from a small start,
    # where gamma_t * f''(x) = 12 x^2 / (1 + t) stays below 2
    small = gradient_descent_path(lambda x: 4 * x**3, torch.tensor([0.3], dtype=torch.float64),
                                  step_size_schedule("inverse", 1.0), 200)
    assert torch.all(small.flatten().diff() < 0) and 0 < small[-1].item() < 0.15


def test_convex_function_without_minimiser() -> None:
    """f = exp is convex with no minimiser: the iterates decrease for ever, the gradient never vanishes."""
    steps = 500
    path = gradient_descent_path(torch.exp, torch.tensor([0.0], dtype=torch.float64),
                                 step_size_schedule("inverse", 1.0), steps)
    x = path.flatten().numpy()
    ref = [0.0]
    for t in range(steps):
        ref.append(ref[-1] - math.exp(ref[-1]) / (1 + t))
    np.testing.assert_allclose(x, ref, rtol=1e-12)
    assert np.all(np.diff(x) < 0) and x[-1] < -1.5


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def _p() -> list[torch.Tensor]:
    return [torch.zeros(3, requires_grad=True)]


@pytest.mark.parametrize("lr", [0, -1e-3, float("nan"), float("inf"), "0.1", True])
@pytest.mark.parametrize("cls", [Adam, GradientDescent, SGD])
def test_bad_lr(cls, lr) -> None:
    with pytest.raises(ValueError, match="lr must be"):
        cls(_p(), lr=lr)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.9), (0.9,), (0.9, 0.9, 0.9), "ab", 0.9,
                                   (0.9, float("nan"))])
def test_bad_betas(betas) -> None:
    with pytest.raises(ValueError, match=r"betas must be a pair"):
        Adam(_p(), betas=betas)


@pytest.mark.parametrize("eps", [0, -1e-8, float("nan")])
def test_bad_eps(eps) -> None:
    with pytest.raises(ValueError, match="eps must be"):
        Adam(_p(), eps=eps)


def test_bad_param_group() -> None:
    opt = Adam(_p())
    with pytest.raises(ValueError, match="eps must be"):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "eps": -1.0})
    assert len(opt.param_groups) == 1  # the bad group was not kept
    with pytest.raises(ValueError, match="params must be real floating-point"):
        Adam([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])


@pytest.mark.parametrize(
    "schedule,kw,match",
    [
        ("bogus", {}, r"schedule must be one of 'constant', 'inverse', 'inverse_sqrt', 'exponential'"),
        (3, {}, "schedule must be one of"),
        ("exponential", {}, r"step_size_schedule\('exponential'\) takes the keywords \['decay'\]; got \[\]"),
        ("exponential", {"decay": 1.0}, r"decay must be a number in the open interval \(0, 1\)"),
        ("constant", {"decay": 0.5}, r"takes the keywords \[\]; got \['decay'\]"),
        (lambda t: 1.0 / (1 + t), {}, r"schedule\(0\) == lr"),  # gamma_0 = 1 but lr = 0.1
        (step_size_schedule("inverse", 0.1), {"decay": 0.5}, "only allowed with a named schedule"),
    ],
)
def test_bad_schedule(schedule, kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        GradientDescent(_p(), lr=0.1, schedule=schedule, **kw)


def test_bad_step_size_schedule() -> None:
    with pytest.raises(ValueError, match=r"name must be one of 'constant', 'inverse', 'inverse_sqrt', "
                                         r"'exponential'; got 'cosine'"):
        step_size_schedule("cosine", 0.1)
    with pytest.raises(ValueError, match="lr must be"):
        step_size_schedule("inverse", 0.0)
    for decay in (0, 0.0, 1, -0.5, 1.5, "0.5"):
        with pytest.raises(ValueError, match="decay must be"):
            step_size_schedule("exponential", 0.1, decay=decay)
    with pytest.raises(ValueError, match=r"takes the keywords \['decay'\]; got \['decay', 'gamma'\]"):
        step_size_schedule("exponential", 0.1, decay=0.5, gamma=2)


def test_bad_gradient_descent_path() -> None:
    x0 = torch.zeros(2, dtype=torch.float64)
    s = step_size_schedule("inverse", 0.1)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        gradient_descent_path(lambda x: x, x0, s, -1)
    # x0 and gamma_0 = schedule(0) are checked by the GradientDescent optimiser that takes the steps
    with pytest.raises(ValueError, match="params must be real floating-point tensors; got one of dtype torch.int64"):
        gradient_descent_path(lambda x: x, torch.zeros(2, dtype=torch.int64), s, 3)
    with pytest.raises(ValueError, match="lr must be a finite number greater than 0; got 0.0"):
        gradient_descent_path(lambda x: x, x0, lambda t: 0.0, 3)
    with pytest.raises(RuntimeError, match="attempting to assign a gradient of size"):  # torch refuses it
        gradient_descent_path(lambda x: x[:1], x0, s, 3)
