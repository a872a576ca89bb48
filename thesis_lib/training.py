r"""One training loop for every model of the book: Algorithm 2 generalised.

The whole data set lives in one tensor on the training device; each epoch draws a random
permutation from a generator seeded by ``(seed, epoch)`` and cuts it into minibatches, so there is no
``DataLoader`` and no per-batch copying beyond one ``index_select``. The loss of each batch is kept
on the device and summed there; the only host synchronisation is once per epoch.

An *objective* is any callable ``objective(model, x, y) -> Tensor`` of per-example losses with shape
``(B,)``; the loop minimises their mean, the empirical risk of Definition 1.2.4 on the minibatch, whose
gradient is the mean of the per-example gradients (Lemma 1.2.6).

Thesis: Algorithm 2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from thesis_lib.cpu import settings_for_training
from thesis_lib.validation import check_nonnegative_int, check_positive_int

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
    """Seed torch's global generators (CPU and CUDA) and ask for deterministic kernels."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


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
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        total += objective(model, xb, yb).double().sum()
    model.train(was_training)
    return float(total) / len(x)


def fit(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    x_train: Tensor,
    y_train: Tensor | None = None,
    x_test: Tensor | None = None,
    y_test: Tensor | None = None,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    start_epoch: int = 0,
    history: History | None = None,
    progress: bool = True,
    eval_every: int = 1,
    on_epoch_end: Callable[[int, History], None] | None = None,
) -> History:
    r"""Train ``model`` by minibatch optimisation of the mean of ``objective`` and return the history.

    Runs epochs ``start_epoch + 1 .. epochs``. Per epoch it records ``train_loss`` (the mean
    per-example objective over the epoch's batches, as the weights moved), ``test_loss`` (the mean
    over ``x_test`` after the epoch, every ``eval_every`` epochs and always at the last one, when
    ``x_test`` is given) and ``seconds`` (wall time of the epoch's training steps).
    It runs under :func:`thesis_lib.cpu.settings_for_training`: subnormal floats flushed to zero on
    every thread (the mode is restored after) and freed memory kept for the next batch.

    The data must already be on the model's device. ``on_epoch_end(epoch, history)`` is the single
    hook (checkpointing, logging); ``epoch`` counts from 1.

    Thesis: Algorithm 2 (generalised to any model, objective and optimiser).
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_nonnegative_int("start_epoch", start_epoch)
    check_positive_int("eval_every", eval_every)
    if start_epoch > epochs:
        raise ValueError(f"start_epoch must be at most epochs={epochs}; got {start_epoch}")
    if len(x_train) == 0:
        raise ValueError("x_train must hold at least one example; got an empty tensor")
    if y_train is not None and len(y_train) != len(x_train):
        raise ValueError(f"y_train must have as many rows as x_train ({len(x_train)}); got {len(y_train)}")
    history = history if history is not None else History()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=start_epoch, desc="epochs", unit="epoch", leave=False)
    try:
        with settings_for_training():  # subnormals flushed, freed memory reused: see thesis_lib.cpu
            _epochs(model, objective, optimizer, x_train, y_train, x_test, y_test, epochs, batch_size, seed,
                    start_epoch, history, bar, eval_every, on_epoch_end)
    finally:
        if bar is not None:
            bar.close()
    return history


def _epochs(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    x_train: Tensor,
    y_train: Tensor | None,
    x_test: Tensor | None,
    y_test: Tensor | None,
    epochs: int,
    batch_size: int,
    seed: int,
    start_epoch: int,
    history: History,
    bar: Any,
    eval_every: int,
    on_epoch_end: Callable[[int, History], None] | None,
) -> None:
    """The epochs of :func:`fit` (its arguments, checked there)."""
    n = len(x_train)
    steps = math.ceil(n / batch_size)
    device = x_train.device
    model.train()
    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        order = epoch_permutation(n, seed, epoch, device)
        running = torch.zeros((), device=device)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            xb = x_train.index_select(0, idx)
            yb = None if y_train is None else y_train.index_select(0, idx)
            losses = objective(model, xb, yb)  # (B,) per-example losses
            loss = losses.mean()  # Eq. (1.4) on the minibatch
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * len(idx)
        train_loss = float(running) / n  # the one host synchronisation per epoch
        seconds = time.perf_counter() - t0
        record: dict[str, float] = {"train_loss": train_loss, "seconds": seconds}
        if x_test is not None and (epoch % eval_every == 0 or epoch == epochs):
            record["test_loss"] = evaluate(model, objective, x_test, y_test)
        elif x_test is not None:
            record["test_loss"] = float("nan")
        history.append(**record)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch}: train_loss = {train_loss}")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train_loss=f"{train_loss:.4g}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        model.train()


def make_objective(loss: str, beta: float = 1.0, binarize: bool = False, iw_samples: int = 1) -> Objective:
    """The objective that a :class:`~thesis_lib.config.TrainConfig`'s ``loss`` names.

    With ``binarize`` every batch is replaced by Bernoulli draws with the pixel values as
    probabilities (dynamic binarisation, as in Burda et al. 2015), drawn from torch's global generator.
    """
    from thesis_lib.validation import check_choice

    check_choice("loss", loss, ("mse", "bce", "elbo", "iwae"))
    if loss == "iwae":
        from thesis_lib.vae import iwae_objective

        if beta != 1.0:
            raise ValueError(f"beta must be 1.0 for loss 'iwae' (the bound has no KL weight); got {beta!r}")
        base = iwae_objective(k=iw_samples)
    elif loss == "elbo":
        from thesis_lib.vae import elbo_objective

        base = elbo_objective(beta=beta)
    else:
        from thesis_lib.losses import reconstruction_objective

        base = reconstruction_objective(loss)
    if not binarize:
        return base

    def binarized(model: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
        return base(model, torch.bernoulli(x), y)

    return binarized


def describe(model: nn.Module) -> dict[str, Any]:
    """A short summary for printing: the class and the number of trainable parameters."""
    return {
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
