"""The training loops that ``train_speed.py`` times, one epoch at a time, and the memory probes.

Each ``*_runner`` returns a function that trains one more epoch and returns its seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_examples_vae import loss_function  # the recipe's loss, defined once

from thesis_lib.ground.config import ModelSpec, TrainConfig
from thesis_lib.runtime.training import Loop, epoch_permutation, fit, make_objective, make_optimizer


@dataclass(frozen=True)
class Case:
    name: str
    spec: ModelSpec
    batch_size: int
    lr: float
    loss: str  # "mse" or "elbo"
    flat: bool  # the model takes (B, 784)
    handwritten: bool = False  # also time handwritten_steps (a fully connected autoencoder with MSE)


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) of this process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reference_runner(case: Case, model: nn.Module, root: Path) -> Callable[[], float]:
    """What a user writes: torchvision's MNIST, ToTensor, DataLoader, torch.optim.Adam. Returns a
    function that trains one more epoch and returns its seconds."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(ds, batch_size=case.batch_size, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=case.lr)

    def epoch() -> float:
        model.train()
        t0 = time.perf_counter()
        for x, _ in loader:
            if case.flat:
                x = x.view(-1, 784)
            opt.zero_grad()
            if case.loss == "elbo":  # pytorch/examples vae/main.py's loss_function
                recon, mu, logvar = model(x)
                loss = loss_function(recon, x, mu, logvar)
            else:
                loss = F.mse_loss(model(x), x)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return epoch


def bare_steps(model: nn.Module, objective, opt: torch.optim.Optimizer, x: torch.Tensor, batches) -> None:
    """Forward, backward and step for each batch of indices into ``x``, nothing else."""
    for idx in batches:
        loss = objective(model, x.index_select(0, idx), None).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def handwritten_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, batches) -> None:
    r"""The step of a fully connected autoencoder with the MSE loss written out by hand, without autograd.

    Forward with ``addmm`` and in-place activations, the loss's and every layer's gradient by the chain
    rule into preallocated ``.grad`` tensors, then ``opt.step()``: fewer passes over memory and no
    autograd bookkeeping. It is not the library's loop (it knows one architecture and one loss); it
    measures how much of the gap to the matmul bound any loop in eager PyTorch could close.
    ``tests/test_benchmark.py`` checks it against autograd.
    """
    layers = [*model.encoder.layers, *model.decoder.layers]
    acts = [layer.activation_name for layer in layers]
    if any(a not in ("relu", "identity", "sigmoid") for a in acts):
        raise ValueError(f"handwritten_steps knows relu, identity and sigmoid layers; got {acts}")
    for layer in layers:
        for p in (layer.weight, layer.bias):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
    with torch.no_grad():
        for idx in batches:
            xb = x.index_select(0, idx)  # (B, 784)
            hs = [xb]  # every layer's output, the input first
            for layer, act in zip(layers, acts):
                h = torch.addmm(layer.bias, hs[-1], layer.weight.t())  # W h + b, (B, m)
                if act == "relu":
                    h.relu_()
                elif act == "sigmoid":
                    h.sigmoid_()
                hs.append(h)
            d = hs[-1] - xb  # the loss is mean_b |d_b|^2; its gradient in the output is (2 / B) d
            torch.linalg.vecdot(d, d).mean()
            g = torch.ops.aten.sigmoid_backward(d, hs[-1]) if acts[-1] == "sigmoid" else d
            scale = 2.0 / len(xb)
            for i in range(len(layers) - 1, -1, -1):
                torch.addmm(layers[i].weight.grad, g.t(), hs[i], beta=0, alpha=scale, out=layers[i].weight.grad)
                torch.sum(g, 0, out=layers[i].bias.grad).mul_(scale)
                if i > 0:  # the data needs no gradient
                    g = torch.mm(g, layers[i].weight)
                    if acts[i - 1] == "relu":
                        g = torch.ops.aten.threshold_backward(g, hs[i], 0)
                    elif acts[i - 1] == "sigmoid":
                        g = torch.ops.aten.sigmoid_backward(g, hs[i])
            opt.step()


def in_memory_runner(case: Case, model: nn.Module, x: torch.Tensor, steps) -> Callable[[], float]:
    """A function that runs one more epoch of ``steps(model, opt, x, batches)`` over in-memory batches
    (the training loop's Adam, in the same tuned process as ``fit``) and returns its seconds."""
    opt = make_optimizer("adam", model.parameters(), lr=case.lr)
    done = 0

    def epoch() -> float:
        nonlocal done
        done += 1
        model.train()
        t0 = time.perf_counter()
        steps(model, opt, x, epoch_permutation(len(x), 0, done).split(case.batch_size))
        return time.perf_counter() - t0

    return epoch


def bare_runner(case: Case, model: nn.Module, x: torch.Tensor) -> Callable[[], float]:
    """Forward, backward and step over in-memory batches, nothing else (the same objective and optimiser)."""
    objective = make_objective(case.loss)
    return in_memory_runner(case, model, x, lambda m, opt, xs, batches: bare_steps(m, objective, opt, xs, batches))


def handwritten_runner(case: Case, model: nn.Module, x: torch.Tensor) -> Callable[[], float]:
    return in_memory_runner(case, model, x, handwritten_steps)


def library_runner(case: Case, model: nn.Module, x: torch.Tensor) -> Callable[[], float]:
    """:func:`thesis_lib.runtime.training.fit`, one epoch per call (``start_epoch`` carries on the batch order)."""
    opt = make_optimizer("adam", model.parameters(), lr=case.lr)
    objective = make_objective(case.loss)
    done = 0

    def epoch() -> float:
        nonlocal done
        done += 1
        history = fit(model, objective, opt, TrainConfig(epochs=done, batch_size=case.batch_size), x,
                      loop=Loop(start_epoch=done - 1, progress=False))
        return history["seconds"][-1]

    return epoch


def interleave(runners: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call every runner once per round, in turn, and collect each one's results: loops timed this way
    see the same drift of the machine's speed, so their ratio is not at its mercy."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(run())
    return times
