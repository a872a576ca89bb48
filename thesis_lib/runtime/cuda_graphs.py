r"""The training step captured in CUDA graphs: an epoch on a GPU as a sequence of graph replays.

The book's models are small: on a GPU one training step of the thesis's autoencoder is a few dozen
kernels of a few microseconds each, and launching them from Python costs more than running them. A
CUDA graph records the kernels of one step (the batch gathered from the resident training set, the
forward and backward passes, the optimiser's update and the running sum of the loss) once, and
replays them with one launch. :class:`CapturedSteps` captures one graph per batch size that an epoch
needs (the full batch and, when the batch size does not divide the training set, the last one), and
:meth:`CapturedSteps.epoch` replaces :func:`thesis_lib.runtime.training.train_epoch`: the same batches in the
same order, the same update, and no host synchronisation inside the epoch.

What capture needs, and how it is met:

- static tensors: the batch's indices live in a buffer per graph, into which each batch's slice of the
  epoch's permutation is copied on the device before the replay; the training set, the parameters,
  their gradients and the optimiser's state keep their addresses for the whole fit;
- an optimiser that can be captured: torch's Adam or SGD with ``capturable=True`` and the learning
  rate a device tensor, so that a scheduler's change of the rate reaches the replays
  (:func:`make_capturable`; torch's schedulers fill such a tensor in place);
- a warm-up before capture, which makes the optimiser allocate its state and the libraries their
  workspaces. It takes real steps, so the model's and the optimiser's values are saved before and
  put back after (:func:`snapshot`, :func:`restore`): the first replay starts where an eager loop would.

Random numbers drawn inside the step (a VAE's noise, the dynamic binarisation of a batch) come from
torch's CUDA generator, which graphs advance as eager code does, though not necessarily to the same
numbers. TF32 is not switched on here: :func:`thesis_lib.runtime.process.tune_process` keeps it off.

Nothing here runs without a GPU except :func:`snapshot`, :func:`restore` and :func:`batch_sizes`, which
the CPU tests check; :func:`thesis_lib.runtime.training.fit` uses this module only for data on a CUDA device.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

Objective = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]
WARMUP_STEPS = 3  # eager steps on a side stream before capture (PyTorch's documentation uses three)


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """The batch sizes of an epoch over ``n >= 1`` examples: ``batch_size``, and the remainder if any."""
    full, rest = divmod(n, batch_size)
    return ([batch_size] if full else []) + ([rest] if rest else [])


def capturable(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` is one of torch's that can be captured (its groups know ``capturable``)."""
    return isinstance(optimizer, torch.optim.Optimizer) and all("capturable" in g for g in optimizer.param_groups)


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Turn on ``capturable`` in every group of ``optimizer`` (one that :func:`capturable` accepts) and make its
    learning rate a 0-d tensor on ``device``."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Copies of the model's state and the optimiser's, to put back with :func:`restore`."""
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return weights, copy.deepcopy(optimizer.state_dict())


@torch.no_grad()
def restore(model: nn.Module, optimizer: torch.optim.Optimizer,
            saved: tuple[dict[str, Tensor], dict[str, Any]]) -> None:
    """Put back the values of :func:`snapshot` *in place*, so that every tensor keeps its address (a
    captured graph reads and writes those addresses). State that the optimiser created after the
    snapshot (its first steps) goes back to zero, the value of a fresh optimiser's."""
    weights, opt_state = saved
    for key, tensor in model.state_dict().items():
        tensor.copy_(weights[key])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        before = opt_state["state"].get(index, {})
        for key, value in optimizer.state.get(param, {}).items():
            if not isinstance(value, Tensor):
                continue
            if key in before:
                value.copy_(before[key])
            else:
                value.zero_()


class CapturedSteps:
    """One CUDA graph per batch size of an epoch, each one training step (see the module's docstring).

    ``x`` lies on a CUDA device and ``optimizer`` is one that :func:`capturable` accepts:
    :func:`thesis_lib.runtime.training.fit`, which builds it, checks both first."""

    def __init__(self, model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, x: Tensor,
                 y: Tensor | None, batch_size: int) -> None:
        make_capturable(optimizer, x.device)
        self.model, self.objective, self.optimizer, self.x, self.y = model, objective, optimizer, x, y
        self.running = torch.zeros((), device=x.device)
        self.indices: dict[int, Tensor] = {}
        self.graphs: dict[int, Any] = {}
        saved = snapshot(model, optimizer)
        for size in batch_sizes(len(x), batch_size):
            self.indices[size] = torch.arange(size, device=x.device)
            self._warm_up(size)
        for size in self.indices:
            self.graphs[size] = self._capture(size)
        restore(model, optimizer, saved)

    def _step(self, size: int) -> None:
        idx = self.indices[size]
        yb = None if self.y is None else self.y.index_select(0, idx)
        loss = self.objective(self.model, self.x.index_select(0, idx), yb).mean()
        loss.backward()
        self.optimizer.step()
        self.running.add_(loss.detach() * size)

    def _warm_up(self, size: int) -> None:
        side = torch.cuda.Stream(self.x.device)
        side.wait_stream(torch.cuda.current_stream(self.x.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.optimizer.zero_grad(set_to_none=True)
                self._step(size)
        torch.cuda.current_stream(self.x.device).wait_stream(side)

    def _capture(self, size: int) -> Any:
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward writes the gradients afresh
        with torch.cuda.graph(graph):
            self._step(size)
        return graph

    def epoch(self, order: Tensor, batch_size: int) -> Tensor:
        """One pass in the batch order ``order``: per batch a copy of its indices and one replay. Returns
        the summed loss as a device tensor (nothing is read back here)."""
        self.running.zero_()
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            self.indices[len(idx)].copy_(idx)
            self.graphs[len(idx)].replay()
        return self.running.clone()
