"""Training runs with a validation split: the held-out images are carved from the training set, training
evaluates on them, and the test set is scored once, on the final model."""

from __future__ import annotations

import pytest
import torch

import thesis_lib.runtime.runs as runs
from thesis_lib.runtime import data
from thesis_lib.ground.config import ModelSpec, TrainConfig
from thesis_lib.runtime.runs import Store, train_or_load
from thesis_lib.runtime.training import Loop

SPEC = ModelSpec("fc_autoencoder", {"widths": [32, 8, 3]})


def _x(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 32, generator=torch.Generator().manual_seed(seed))


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_validation_split_is_carved_from_the_training_set_and_the_test_set_scored_once(monkeypatch):
    x, x_test = _x(256, 1), _x(64, 2)
    seen, scored = [], []
    real_fit, real_evaluate = runs.fit, runs.evaluate

    def fit(model, objective, optimizer, config, train, held_out, *a, **k):
        seen.append((len(train[0]), held_out[0], k["loop"].held_out))
        return real_fit(model, objective, optimizer, config, train, held_out, *a, **k)

    def evaluate(model, objective, xs, *a, **k):
        scored.append(xs)
        return real_evaluate(model, objective, xs, *a, **k)

    monkeypatch.setattr(runs, "fit", fit)
    monkeypatch.setattr(runs, "evaluate", evaluate)
    res = train_or_load(SPEC, TrainConfig(epochs=3, batch_size=32, lr=1e-2, validation=64), x, x_test,
                        loop=Loop(progress=False))
    (n_fit, held, key), = seen
    assert n_fit == 192 and torch.equal(held, x[-64:]) and key == "val_loss"
    assert "val_loss" in res.history and "test_loss" not in res.history
    assert len(scored) == 1 and scored[0] is x_test  # the test set, once, after the last epoch
    assert res.provenance["final"]["test_loss"] == pytest.approx(real_evaluate(res.model, runs.make_objective("mse"),
                                                                                x_test))


def test_resuming_a_run_with_a_validation_split_ends_where_the_straight_run_ends(tmp_path):
    x, x_test = _x(256, 1), _x(64, 2)
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, validation=64)
    straight = train_or_load(SPEC, cfg, x, x_test, loop=Loop(progress=False))
    path = tmp_path / "v.pt"
    train_or_load(SPEC, cfg.replace(epochs=2), x, x_test, store=Store(path), loop=Loop(progress=False))
    resumed = train_or_load(SPEC, cfg, x, x_test, store=Store(path), loop=Loop(progress=False))
    assert torch.equal(_flat(straight.model), _flat(resumed.model))
    assert resumed.history["val_loss"] == straight.history["val_loss"]
    loaded = train_or_load(SPEC, cfg, x, x_test, store=Store(path), loop=Loop(progress=False))
    assert not loaded.trained and loaded.provenance["final"]["test_loss"] == straight.provenance["final"]["test_loss"]


def test_bad_validation_sizes_are_refused():
    with pytest.raises(ValueError, match="validation must be a non-negative integer"):
        TrainConfig(validation=-1)
    with pytest.raises(ValueError, match="validation must leave training images: it holds out 8 of 8"):
        data.split_validation(torch.zeros(8, 2), None, 8)
    x, y, xv, yv = data.split_validation(torch.arange(10.0), torch.arange(10), 0)
    assert len(x) == 10 and xv is None and yv is None


def test_a_warm_start_from_weights_fitted_on_other_images_is_refused(tmp_path):
    x, x_test = _x(256, 1), _x(64, 2)
    parent = tmp_path / "parent.pt"
    train_or_load(SPEC, TrainConfig(epochs=1, batch_size=32, lr=1e-2), x, x_test, store=Store(parent),
                  loop=Loop(progress=False))
    with pytest.raises(runs.CheckpointMismatchError, match="another split of the training set.*holds out"):
        train_or_load(SPEC, TrainConfig(epochs=1, batch_size=32, lr=1e-2, validation=64), x, x_test,
                      loop=Loop(progress=False), init=parent)
    same = train_or_load(SPEC, TrainConfig(epochs=1, batch_size=32, lr=1e-2), x, x_test, loop=Loop(progress=False),
                         init=parent)
    assert same.trained


def test_split_training_excludes_then_limits_then_holds_out_the_last_rows():
    x = torch.arange(40, dtype=torch.float32)[:, None]
    y = torch.arange(40) % 10
    config = TrainConfig(exclude_class=3, train_limit=20, validation=5)
    x_fit, y_fit, x_val, y_val = runs.split_training(config, x, y)
    kept = [i for i in range(40) if i % 10 != 3][:20]  # by hand: no 3s, the first 20, the last 5 held out
    assert x_fit[:, 0].tolist() == kept[:15] and x_val[:, 0].tolist() == kept[15:]
    assert y_fit.tolist() == [i % 10 for i in kept[:15]] and y_val.tolist() == [i % 10 for i in kept[15:]]
    everything = runs.split_training(TrainConfig(), x, y)
    assert torch.equal(everything[0], x) and everything[2] is None
