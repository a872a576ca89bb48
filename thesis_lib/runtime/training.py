r"""One training loop for every model of the book: Algorithm 2 generalised.

The whole data set lives in one tensor on the training device; each epoch draws a random
permutation from a generator seeded by ``(seed, epoch)`` and cuts it into minibatches, so there is no
``DataLoader`` and no per-batch copying beyond one ``index_select``. The loss of each batch is kept
on the device and summed there; the only host synchronisation is once per epoch.

An *objective* is any callable ``objective(model, x, y) -> Tensor`` of per-example losses with shape
``(B,)``; the loop minimises their mean, the empirical risk of Definition 1.2.4 on the minibatch, whose
gradient is the mean of the per-example gradients (Lemma 1.2.6).

Nothing here changes the process: the thread count, the floating-point mode and the allocator are
set by the entry points (:mod:`thesis_lib.runtime.process`).

Thesis: Algorithm 2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from thesis_lib.mathematics import optimizers
from thesis_lib.ground.config import LOSSES, OPTIMIZERS, TrainConfig
from thesis_lib.runtime.cuda_graphs import CapturedSteps, capturable
from thesis_lib.mathematics.losses import reconstruction_objective
from thesis_lib.mathematics.networks import eval_mode
from thesis_lib.ground.validation import check_choice, check_nonnegative_int, check_positive_float, check_positive_int
from thesis_lib.mathematics.vae import elbo_objective, iwae_objective

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]


@dataclass
class History:
    """Per-epoch metrics of a run: ``history.metrics["train_loss"][e]`` is epoch ``e + 1``'s value."""

    metrics: dict[str, list[float]] = field(default_factory=dict)

    def append(self, **values: float) -> None:
        for key, value in values.items():
            self.metrics.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    def __contains__(self, key: str) -> bool:
        return key in self.metrics

    @property
    def epochs(self) -> int:
        return len(self.metrics.get("train_loss", []))

    def last(self, key: str) -> float:
        return self.metrics[key][-1]

    def evaluated(self, key: str) -> list[tuple[int, float]]:
        """``(epoch, value)`` for each epoch at which ``key`` was measured: a metric evaluated every few
        epochs (``eval_every``) holds NaN in between."""
        return [(e + 1, v) for e, v in enumerate(self.metrics[key]) if math.isfinite(v)]

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.metrics.items()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> History:
        return cls({k: [float(x) for x in v] for k, v in d.items()})

    def truncate(self, epochs: int) -> None:
        """Drop everything after epoch ``epochs`` (used when resuming from an earlier checkpoint)."""
        for key in self.metrics:
            del self.metrics[key][epochs:]


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (CPU and CUDA): initial weights and sampling noise."""
    torch.manual_seed(check_nonnegative_int("seed", seed))


def epoch_permutation(n: int, seed: int, epoch: int, device: str | torch.device = "cpu") -> Tensor:
    """The batch order of epoch ``epoch``: a permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Deriving it from the epoch number (rather than from a running generator) is what lets a resumed run
    see exactly the batches that the uninterrupted run would have seen.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


@torch.no_grad()
def evaluate(
    model: nn.Module, objective: Objective, x: Tensor, y: Tensor | None = None, batch_size: int = 4096
) -> float:
    """The mean per-example objective over ``x`` in eval mode, in chunks of ``batch_size``."""
    check_positive_int("batch_size", batch_size)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            yb = None if y is None else y[start : start + batch_size]
            total += objective(model, x[start : start + batch_size], yb).double().sum()
    return float(total) / len(x)


def train_epoch(
    model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer,
    x: Tensor, y: Tensor | None, order: Tensor, batch_size: int,
) -> Tensor:
    """One pass over ``x`` in the batch order ``order``; returns the summed loss as a device tensor."""
    running = torch.zeros((), device=x.device)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yb = None if y is None else y.index_select(0, idx)
        losses = objective(model, x.index_select(0, idx), yb)  # (B,) per-example losses
        loss = losses.mean()  # Eq. (1.4) on the minibatch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.detach() * len(idx)
    return running


Data = Tensor | tuple[Tensor, Tensor | None]  # the inputs x, or (x, y) with the targets of a supervised objective


@dataclass(frozen=True)
class Loop:
    """How :func:`fit` runs, besides the hyperparameters of a :class:`~thesis_lib.ground.config.TrainConfig`.

    ``start_epoch``: the epochs already trained (a resumed run continues after it, its ``history`` holding
    them). ``eval_every``: the held-out loss is measured every so many epochs and at the last (NaN in
    between), under the name ``held_out`` (``"test_loss"``, or ``"val_loss"`` for a validation split).
    ``scheduler`` (a ``torch.optim.lr_scheduler``) steps after every epoch; ``on_epoch_end(epoch, history)``
    is the one hook (checkpointing), with ``epoch`` counted from 1. ``cuda_graphs`` (``None``: whenever the
    data is on a CUDA device and the optimiser is one of torch's) replays each step from a CUDA graph
    (:class:`thesis_lib.runtime.cuda_graphs.CapturedSteps`).
    """

    start_epoch: int = 0
    eval_every: int = 1
    held_out: str = "test_loss"
    progress: bool = True
    scheduler: Any = None
    on_epoch_end: Callable[[int, History], None] | None = None
    cuda_graphs: bool | None = None

    def __post_init__(self) -> None:
        check_nonnegative_int("start_epoch", self.start_epoch)
        check_positive_int("eval_every", self.eval_every)
        if self.cuda_graphs is not None and not isinstance(self.cuda_graphs, bool):
            raise ValueError(f"cuda_graphs must be True, False or None (on a CUDA device); got {self.cuda_graphs!r}")


def as_pair(data: Data | None) -> tuple[Tensor | None, Tensor | None]:
    """``(x, y)`` of ``x``, ``(x, y)`` or None (then ``(None, None)``)."""
    return tuple(data) if isinstance(data, (tuple, list)) else (data, None)


def fit(
    model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, config: TrainConfig,
    train: Data, held_out: Data | None = None, *, loop: Loop = Loop(), history: History | None = None,
) -> History:
    r"""Train ``model`` by minibatch optimisation of the mean of ``objective``; return the history.

    ``config`` gives the epochs, the batch size and the seed of the batch order (the objective and the
    optimiser come built: :func:`thesis_lib.runtime.runs.train_or_load` builds them from the same
    config). ``train`` and ``held_out`` are the images ``x``, or ``(x, y)`` for a supervised objective,
    already on the model's device. Runs epochs ``loop.start_epoch + 1 .. config.epochs`` and records per
    epoch ``train_loss`` (the mean objective over the epoch's batches, as the weights moved), ``seconds``
    (the epoch's training steps) and, with ``held_out``, its loss as :class:`Loop` says.

    Thesis: Algorithm 2 (generalised to any model, objective and optimiser).
    """
    (x_train, y_train), (x_test, y_test) = as_pair(train), as_pair(held_out)
    epochs, batch_size, seed = config.epochs, config.batch_size, config.seed
    if loop.start_epoch > epochs:
        raise ValueError(f"start_epoch must be at most epochs={epochs}; got {loop.start_epoch}")
    if len(x_train) == 0:
        raise ValueError("x_train must hold at least one example; got an empty tensor")
    if y_train is not None and len(y_train) != len(x_train):
        raise ValueError(f"y_train must have as many rows as x_train ({len(x_train)}); got {len(y_train)}")
    graphed = _use_cuda_graphs(loop.cuda_graphs, x_train, optimizer)
    history = history if history is not None else History()
    epoch_range = range(loop.start_epoch + 1, epochs + 1)
    bar = tqdm(epoch_range, desc="epochs", unit="epoch", leave=False, disable=not loop.progress)
    model.train()
    steps = CapturedSteps(model, objective, optimizer, x_train, y_train, batch_size) \
        if graphed and len(epoch_range) else None
    for epoch in bar:
        t0 = time.perf_counter()
        order = epoch_permutation(len(x_train), seed, epoch, x_train.device)
        running = steps.epoch(order, batch_size) if steps is not None else \
            train_epoch(model, objective, optimizer, x_train, y_train, order, batch_size)
        record = {"train_loss": float(running) / len(x_train)}  # the one host synchronisation per epoch
        record["seconds"] = time.perf_counter() - t0
        if x_test is not None:
            due = epoch % loop.eval_every == 0 or epoch == epochs
            record[loop.held_out] = evaluate(model, objective, x_test, y_test) if due else math.nan
        history.append(**record)
        if not math.isfinite(record["train_loss"]):
            raise FloatingPointError(f"training diverged at epoch {epoch}: train_loss = {record['train_loss']}")
        bar.set_postfix(train_loss=f"{record['train_loss']:.4g}")
        if loop.scheduler is not None:
            loop.scheduler.step()
        if loop.on_epoch_end is not None:
            loop.on_epoch_end(epoch, history)
    return history


def _use_cuda_graphs(cuda_graphs: bool | None, x: Tensor, optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`fit` captures its steps in CUDA graphs; ``True`` where that cannot be is refused."""
    possible = x.device.type == "cuda" and capturable(optimizer)
    if cuda_graphs and not possible:
        raise ValueError(f"cuda_graphs=True needs the data on a CUDA device (got {x.device}) and one of "
                         f"torch.optim's optimisers (got {type(optimizer).__name__})")
    return possible if cuda_graphs is None else cuda_graphs


def make_objective(loss: str, beta: float = 1.0, binarize: bool = False, iw_samples: int = 1) -> Objective:
    """The objective that a :class:`~thesis_lib.ground.config.TrainConfig`'s ``loss`` names, with its ``beta``
    (``"elbo"``) or ``iw_samples`` (``"iwae"``); the TrainConfig checked their combination.

    With ``binarize`` every batch is replaced by Bernoulli draws with the pixel values as
    probabilities (dynamic binarisation, as in Burda et al. 2015), drawn from torch's global generator.
    """
    check_choice("loss", loss, LOSSES)
    if loss == "iwae":
        base = iwae_objective(k=iw_samples)
    elif loss == "elbo":
        base = elbo_objective(beta=beta)
    else:
        base = reconstruction_objective(loss)
    if not binarize:
        return base

    def binarized(model: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
        return base(model, torch.bernoulli(x), y)

    return binarized


def make_optimizer(name: str, params: Iterable[Tensor], lr: float) -> torch.optim.Optimizer:
    """The optimiser that a :class:`~thesis_lib.ground.config.TrainConfig`'s ``optimizer`` names.

    ``"adam"`` is ``torch.optim.Adam(fused=True)``: Algorithm 1 in one kernel per tensor, the fast path;
    ``"thesis_adam"`` is :class:`thesis_lib.mathematics.optimizers.Adam`, Algorithm 1 written out (the same update to
    float rounding, several times slower); ``"sgd"`` is :class:`thesis_lib.mathematics.optimizers.SGD`.
    """
    check_choice("name", name, OPTIMIZERS)
    lr = check_positive_float("lr", lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "thesis_adam":
        return optimizers.Adam(params, lr=lr)
    return optimizers.SGD(params, lr=lr)


def describe(model: nn.Module) -> dict[str, Any]:
    """A short summary for printing: the class and the number of trainable parameters."""
    return {
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
