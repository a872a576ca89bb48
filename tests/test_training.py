"""The one training loop: it learns, it is deterministic, it equals a hand-written loop."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from thesis_lib.ground.config import TrainConfig
from thesis_lib.runtime.training import (History, Loop, epoch_permutation, evaluate, fit, make_objective,
                                         make_optimizer, seed_everything)


def _data(n=300, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(3, d, generator=g)
    x = torch.sigmoid(torch.randn(n, 3, generator=g) @ basis)  # data near a 3-d manifold in [0,1]^d
    return x


def _model(d=20, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, d))


def mse(model, x, y):
    return ((model(x) - x) ** 2).sum(dim=1)


def test_loss_falls():
    x = _data()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = fit(model, mse, opt, TrainConfig(epochs=30, batch_size=32), x, x[:50], loop=Loop(progress=False))
    assert h.epochs == 30 and len(h["test_loss"]) == 30
    assert h["train_loss"][-1] < 0.3 * h["train_loss"][0]


def test_same_seed_same_weights_and_different_seed_differs():
    x = _data()
    runs = []
    for seed in (0, 0, 1):
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, mse, opt, TrainConfig(epochs=3, batch_size=64, seed=seed), x, loop=Loop(progress=False))
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_equals_a_hand_written_loop():
    """Our loop must compute exactly what the plain loop of Algorithm 2 computes."""
    x = _data(n=250)
    ours, ref = _model(), _model()
    opt_a = torch.optim.SGD(ours.parameters(), lr=0.05)
    opt_b = torch.optim.SGD(ref.parameters(), lr=0.05)
    fit(ours, mse, opt_a, TrainConfig(epochs=3, batch_size=64, seed=5), x, loop=Loop(progress=False))
    for epoch in range(1, 4):
        order = epoch_permutation(len(x), 5, epoch)
        for start in range(0, len(x), 64):
            xb = x[order[start : start + 64]]
            loss = ((ref(xb) - xb) ** 2).sum(dim=1).mean()
            opt_b.zero_grad()
            loss.backward()
            opt_b.step()
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_every_example_seen_once_per_epoch_including_the_last_partial_batch():
    x = torch.arange(10, dtype=torch.float32).reshape(10, 1)
    seen, sizes = [], []
    w = nn.Parameter(torch.zeros(1))

    def recorder(model, xb, yb):
        seen.extend(xb.flatten().tolist())
        sizes.append(len(xb))
        return (xb.flatten() * w) ** 2

    fit(nn.Identity(), recorder, torch.optim.SGD([w], lr=0.1), TrainConfig(epochs=2, batch_size=4), x,
        loop=Loop(progress=False))
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert sizes == [4, 4, 2, 4, 4, 2]
    assert seen[:10] != seen[10:]  # a new order each epoch


def test_epoch_permutation_depends_only_on_seed_and_epoch():
    a = epoch_permutation(100, 3, 7)
    assert torch.equal(a, epoch_permutation(100, 3, 7))
    assert sorted(a.tolist()) == list(range(100))
    assert not torch.equal(a, epoch_permutation(100, 3, 8))
    assert not torch.equal(a, epoch_permutation(100, 4, 7))


def test_evaluate_is_the_mean_objective_and_restores_mode():
    x = _data(n=130)
    model = _model()
    model.train()
    expected = float(mse(model, x, None).detach().mean())
    assert evaluate(model, mse, x, batch_size=7) == pytest.approx(expected, rel=1e-5)
    assert model.training


def test_supervised_targets_are_passed_in_the_same_order():
    x = torch.randn(64, 5)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    model = nn.Linear(5, 1)
    obj = lambda m, xb, yb: (m(xb).squeeze(1) - yb) ** 2  # noqa: E731
    h = fit(model, obj, torch.optim.SGD(model.parameters(), lr=0.05), TrainConfig(epochs=200, batch_size=16), (x, y),
            loop=Loop(progress=False))
    assert h["train_loss"][-1] < 1e-4


def test_history_round_trip_and_truncate():
    h = History()
    for i in range(5):
        h.append(train_loss=1.0 / (i + 1), seconds=0.1)
    h2 = History.from_dict(h.to_dict())
    assert h2.metrics == h.metrics and h2.epochs == 5
    h2.truncate(3)
    assert h2.epochs == 3 and h2.last("train_loss") == pytest.approx(1 / 3)


def test_history_lists_the_epochs_a_sparse_metric_was_measured_at():
    h = History()
    for i in range(5):
        h.append(train_loss=float(i), test_loss=float(10 * i) if i % 2 else math.nan)
    assert h.evaluated("test_loss") == [(2, 10.0), (4, 30.0)]
    assert h.evaluated("train_loss") == [(e, float(e - 1)) for e in range(1, 6)]


def test_divergence_is_reported():
    x = _data()
    model = _model()
    with pytest.raises(FloatingPointError, match="diverged"):
        fit(model, mse, torch.optim.SGD(model.parameters(), lr=1e6), TrainConfig(epochs=20, batch_size=300), x,
            loop=Loop(progress=False))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"start_epoch": 5, "epochs": 2}, "start_epoch"),
     ({"eval_every": 0}, "eval_every")],
)
def test_bad_arguments(kwargs, name):
    args = {"epochs": 1, "batch_size": 4, **kwargs}
    model = _model()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=name):
        config = TrainConfig(**{k: v for k, v in args.items() if k in ("epochs", "batch_size")})
        loop = Loop(progress=False, **{k: v for k, v in args.items() if k not in ("epochs", "batch_size")})
        fit(model, mse, torch.optim.SGD(model.parameters(), lr=0.1), config, _data(), loop=loop)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no work was done


def test_mismatched_targets_rejected():
    with pytest.raises(ValueError, match="y_train"):
        fit(_model(), mse, torch.optim.SGD(_model().parameters(), lr=0.1), TrainConfig(epochs=1, batch_size=4),
            (_data(), torch.zeros(3)), loop=Loop(progress=False))


def test_make_objective_names():
    x = torch.rand(4, 784)
    seed_everything(0)
    from thesis_lib.mathematics.autoencoders import fully_connected_autoencoder

    ae = fully_connected_autoencoder()
    for name in ("mse", "bce"):
        out = make_objective(name)(ae, x, None)
        assert out.shape == (4,) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="loss"):
        make_objective("hinge")
    assert not math.isnan(float(make_objective("mse")(ae, x, None).mean().detach()))


def test_make_optimizer_names():
    from thesis_lib.mathematics import optimizers
    from thesis_lib.ground.config import OPTIMIZERS

    p = [torch.zeros(2, requires_grad=True)]
    built = {name: make_optimizer(name, p, lr=0.01) for name in OPTIMIZERS}
    assert type(built["adam"]) is torch.optim.Adam and built["adam"].param_groups[0]["fused"] is True
    assert type(built["thesis_adam"]) is optimizers.Adam and type(built["sgd"]) is optimizers.SGD
    assert all(o.param_groups[0]["lr"] == 0.01 for o in built.values())
    with pytest.raises(ValueError, match=r"name must be one of 'adam', 'thesis_adam', 'sgd'; got 'rmsprop'"):
        make_optimizer("rmsprop", p, lr=0.1)
    consumed = []

    def params():
        consumed.append(True)
        yield torch.zeros(1, requires_grad=True)

    with pytest.raises(ValueError, match="lr must be"):
        make_optimizer("adam", params(), lr=-1.0)
    assert not consumed  # checked before any work


def test_torch_fused_adam_and_the_thesis_adam_train_the_same_trajectory():
    """The training loop's Adam (torch's fused kernel) is Algorithm 1: the same run with the thesis's
    Adam written out ends at the same weights and losses, to float rounding."""
    from thesis_lib.ground.config import ModelSpec, TrainConfig
    from thesis_lib.runtime.runs import train_or_load

    spec = ModelSpec("fc_autoencoder", {"widths": [64, 16, 4]})
    x = torch.rand(256, 64, generator=torch.Generator().manual_seed(3))
    runs = {name: train_or_load(spec, TrainConfig(epochs=5, batch_size=32, lr=1e-3, optimizer=name), x, x[:64],
                                loop=Loop(progress=False)) for name in ("adam", "thesis_adam")}
    a, b = (torch.cat([p.detach().flatten() for p in r.model.parameters()]) for r in runs.values())
    print(f"fused vs written-out Adam after 40 steps: max abs weight difference {float((a - b).abs().max()):.2e}")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert runs["adam"].history["train_loss"] == pytest.approx(runs["thesis_adam"].history["train_loss"], rel=1e-5)
    assert runs["adam"].history["train_loss"][-1] < runs["adam"].history["train_loss"][0]
