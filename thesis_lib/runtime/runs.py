"""Running a configured training: train a model, or load it when a matching checkpoint exists.

:func:`train_or_load` is what the chapters (through :mod:`thesis_lib.reproduction.experiments`) and the command
line call. It builds the model and optimiser that a :class:`~thesis_lib.ground.config.ModelSpec` and a
:class:`~thesis_lib.ground.config.TrainConfig` name, resumes a matching unfinished checkpoint on the same
trajectory, and saves as it goes (:mod:`thesis_lib.runtime.checkpoints` stores; :mod:`thesis_lib.runtime.training`
trains; :func:`thesis_lib.runtime.data.subset` picks the training rows).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

import thesis_lib
from thesis_lib.runtime.checkpoints import (
    FORMAT,
    CheckpointMismatchError,
    check_matches,
    load_checkpoint,
    parent_record,
    provenance,
    save_checkpoint,
)
from thesis_lib.ground.config import ModelSpec, TrainConfig
from thesis_lib.runtime.data import split_validation, subset
from thesis_lib.runtime.models import build_model
from thesis_lib.ground.validation import check_positive_int
from thesis_lib.runtime.training import (Data, History, Loop, as_pair, evaluate, fit, make_objective, make_optimizer,
                                         seed_everything)


@dataclass
class TrainResult:
    """What :func:`train_or_load` returns: the model (in eval mode), its history and provenance."""

    model: nn.Module
    history: History
    provenance: dict[str, Any]
    trained: bool  # False when everything came from the checkpoint


@dataclass(frozen=True)
class EpochDecay:
    """Step-size factor of epoch ``e + 1``: ``decay ** e`` (a ``LambdaLR`` factor that pickles)."""

    decay: float

    def __call__(self, e: int) -> float:
        return self.decay**e


def step_size_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LambdaLR:
    """The schedule of ``config``: epoch ``e`` (from 1) trains with ``lr * lr_decay ** (e - 1)``."""
    return LambdaLR(optimizer, EpochDecay(config.lr_decay))


def _existing(path: Path | None, retrain: bool, spec: ModelSpec, config: TrainConfig, device: str,
              init_from: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` to load or resume, checked against the configuration; None to start."""
    if path is None or retrain or not path.is_file():
        return None
    ckpt = load_checkpoint(path, map_location=device)
    check_matches(ckpt, spec, config, path)
    if ckpt.get("init_from", {}).get("sha256") != (init_from or {}).get("sha256"):
        raise CheckpointMismatchError(
            f"{path} was trained from the weights {ckpt.get('init_from')}, asked for {init_from}; retrain it"
        )
    if ckpt["epoch"] < config.epochs and ("optimizer" not in ckpt or "scheduler" not in ckpt):
        raise CheckpointMismatchError(f"{path} holds no optimiser or schedule state to resume from; retrain it")
    return ckpt


SPLIT_FIELDS = ("validation", "exclude_class", "train_limit")  # which training images a run fits


def _check_same_split(init_from: dict[str, Any], config: TrainConfig) -> None:
    """A warm start fits the images its parent fitted: else the parent saw images the child holds out."""
    parent = {k: init_from["train_config"].get(k, getattr(TrainConfig(), k)) for k in SPLIT_FIELDS}
    child = {k: getattr(config, k) for k in SPLIT_FIELDS}
    if parent != child:
        raise CheckpointMismatchError(
            f"init {init_from['file']} was trained on another split of the training set ({parent}) than the one "
            f"asked for ({child}): its weights have seen images that this run holds out"
        )


@dataclass
class _Saver:
    """The hook that saves a run as it trains: every ``every`` epochs and at the last one."""

    path: Path | None
    spec: ModelSpec
    config: TrainConfig
    device: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    init_from: dict[str, Any] | None
    wall_before: float  # seconds of the epochs trained before a resume
    every: int
    include_optimizer: bool  # keep the optimiser state in the final checkpoint (to train it further)
    final_test: Callable[[], float] | None = None  # with a validation split: the test loss, scored once at the end
    t0: float = field(default_factory=time.perf_counter)
    test_loss: float | None = None

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    def __call__(self, epoch: int, history: History) -> None:
        if epoch == self.config.epochs and self.final_test is not None:
            self.test_loss = self.final_test()  # the final model's one look at the test set
        if self.path is not None and (epoch % self.every == 0 or epoch == self.config.epochs):
            save_checkpoint(self.path, self.checkpoint(epoch, history))

    def provenance(self, history: History) -> dict[str, Any]:
        record = provenance(self.device, self.wall(), history.metrics)
        if self.test_loss is not None:
            record["final"]["test_loss"] = self.test_loss
        return record

    def checkpoint(self, epoch: int, history: History) -> dict[str, Any]:
        out = {
            "format": FORMAT, "model": self.model.state_dict(), "epoch": epoch,
            "model_spec": self.spec.to_dict(), "train_config": self.config.to_dict(),
            "history": history.to_dict(), "seed": self.config.seed, "rng_state": torch.get_rng_state(),
            "library_version": thesis_lib.__version__,
            "provenance": self.provenance(history),
        }
        if self.init_from is not None:
            out["init_from"] = self.init_from
        if self.include_optimizer or epoch < self.config.epochs:
            out.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict())
        return out


def split_training(config: TrainConfig, x: torch.Tensor, y: torch.Tensor | None):
    """The training images a run of ``config`` fits and those it holds out for validation:
    :func:`~thesis_lib.runtime.data.subset` (``exclude_class``, ``train_limit``), then
    :func:`~thesis_lib.runtime.data.split_validation` (the last ``validation`` rows). Returns
    ``(x_fit, y_fit, x_val, y_val)``; the likelihoods and the chapters carve the same images this way."""
    x, y = subset(x, y, exclude_class=config.exclude_class, limit=config.train_limit)
    return split_validation(x, y, config.validation)


@dataclass(frozen=True)
class Store:
    """Where :func:`train_or_load` keeps a run: the checkpoint ``path``, whether to ``retrain`` even when a
    finished checkpoint is there, the epochs between saves (``every``), and whether the final checkpoint
    keeps the optimiser state (``include_optimizer``, to train it further)."""

    path: str | os.PathLike
    retrain: bool = False
    every: int = 50
    include_optimizer: bool = True

    def __post_init__(self) -> None:
        check_positive_int("checkpoint_every", self.every)


def train_or_load(
    spec: ModelSpec, config: TrainConfig, train: Data, test: Data | None = None, *,
    store: Store | None = None, device: str = "cpu", loop: Loop = Loop(), init: str | os.PathLike | None = None,
) -> TrainResult:
    """Load the model from ``store.path`` when a matching, finished checkpoint is there; otherwise train it.

    ``train`` and ``test`` are the images ``x``, or ``(x, y)``, as for :func:`~thesis_lib.runtime.training.fit`;
    ``loop`` says how often to evaluate and whether to show progress (its schedule and hook are this
    function's). A matching checkpoint with fewer epochs is resumed on the same trajectory; one with
    another configuration is refused (:class:`~thesis_lib.runtime.checkpoints.CheckpointMismatchError`).
    With ``store=None`` nothing is saved. ``init`` names a checkpoint of the same architecture to start
    from (a warm start, recorded by SHA-256 and refused if that file changes).
    """
    (x_train, y_train), (x_test, y_test) = as_pair(train), as_pair(test)
    path = None if store is None else Path(store.path)
    retrain = store is not None and store.retrain
    objective = make_objective(config.loss, config.beta, config.binarize, config.iw_samples)
    init_from, init_weights = parent_record(init, spec) if init is not None else (None, None)
    if init_from is not None:
        _check_same_split(init_from, config)
    ckpt = _existing(path, retrain, spec, config, device, init_from)
    seed_everything(config.seed)
    model = build_model(spec).to(device)
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr=config.lr)
    scheduler = step_size_scheduler(optimizer, config)
    history, start, wall_before = History(), 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        history, start = History.from_dict(ckpt["history"]), ckpt["epoch"]
        wall_before = float(ckpt.get("provenance", {}).get("wall_seconds", 0.0))
        if start >= config.epochs:
            return TrainResult(model.eval(), history, dict(ckpt.get("provenance", {})), trained=False)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        history.truncate(start)
        torch.set_rng_state(ckpt["rng_state"])
    elif init_weights is not None:
        model.load_state_dict(init_weights)
    x_train, y_train, x_val, y_val = split_training(config, x_train, y_train)
    final_test = None
    if config.validation and x_test is not None:
        def final_test() -> float:
            return evaluate(model, objective, x_test, y_test)
    every, keep = (store.every, store.include_optimizer) if store is not None else (1, True)
    saver = _Saver(path, spec, config, device, model, optimizer, scheduler, init_from, wall_before, every, keep,
                   final_test)
    held_out = (x_val, y_val, "val_loss") if config.validation else (x_test, y_test, "test_loss")
    loop = replace(loop, start_epoch=start, held_out=held_out[2], scheduler=scheduler, on_epoch_end=saver)
    history = fit(model, objective, optimizer, config, (x_train, y_train), held_out[:2], loop=loop, history=history)
    return TrainResult(model.eval(), history, saver.provenance(history), trained=True)
