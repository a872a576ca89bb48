r"""Training speed: ``thesis_lib``'s one training loop against the loop a user would otherwise write.

For each model (the thesis's autoencoder, the standard VAE, the convolutional autoencoder) it times,
on the same MNIST files:

- ``reference``: ``torchvision.datasets.MNIST`` with ``ToTensor``, a shuffling ``DataLoader`` and the
  usual loop with ``torch.optim.Adam`` (the pytorch/examples VAE style);
- ``bare``: the whole training set as one tensor, a random permutation cut into batches, forward,
  backward and step with nothing else, under the same CPU settings as ``fit`` (subnormal floats
  flushed to zero, freed memory kept): the floor a training loop can reach;
- ``thesis_lib``: :func:`thesis_lib.training.fit` with the library's Adam (Algorithm 1);
- ``hand-written`` (the thesis AE only): its step written out without autograd
  (:func:`handwritten_steps`), to show how far any eager-PyTorch loop could get towards the bound;

the reference in a fresh process (``fit`` changes process-wide settings of the CPU and the
allocator, which must not leak into it), the other loops together in another, their epochs
interleaved so that the machine's drift in speed hits them alike; and prints seconds per epoch and images per second (median of
several epochs after a warm-up), the ratios, the peak resident memory of each process, and the share
of the machine's matrix-multiply bound: it counts each model's floating-point operations per epoch
(every linear and convolution layer, forward and backward: three GEMMs per layer, two for a layer fed
the data, whose input gradient nobody needs) and times fp32 ``torch.mm`` at exactly those GEMM
shapes, with all of the machine's cores.

Run ``make benchmark`` (or ``.venv/bin/python benchmarks/train_speed.py --help``). The table is written to
``benchmarks/RESULTS.md``, which the book's benchmark appendix includes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from thesis_lib import data
from thesis_lib.config import ModelSpec, default_data_dir
from thesis_lib.models import build_model
from thesis_lib.optimizers import make_optimizer
from thesis_lib.cpu import settings_for_training
from thesis_lib.training import epoch_permutation, fit, make_objective

HERE = Path(__file__).resolve().parent
BUSY = "import torch\ntorch.set_num_threads(1)\na = torch.randn(256, 256)\nwhile True:\n    a = torch.tanh(a @ a)"


@dataclass(frozen=True)
class Case:
    name: str
    spec: ModelSpec
    batch_size: int
    lr: float
    loss: str  # "mse" or "elbo"
    flat: bool  # the model takes (B, 784)
    handwritten: bool = False  # also time handwritten_steps (a fully connected autoencoder with MSE)


CASES = (
    Case("thesis AE 784-128-64-12-3", ModelSpec("fc_autoencoder", {"widths": [784, 128, 64, 12, 3]}), 512, 3e-4, "mse", True, True),
    Case("VAE 784-400-20", ModelSpec("vae", {"input_dim": 784, "hidden": [400], "latent_dim": 20}), 128, 1e-3, "elbo", True),
    Case("conv AE (16, 32), latent 3", ModelSpec("conv_autoencoder", {"latent_dim": 3}), 128, 1e-3, "mse", False),
)


# ---------------------------------------------------------------------------------------------- memory
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


# ----------------------------------------------------------------------------------- the three loops
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
                bce = F.binary_cross_entropy(recon, x, reduction="sum")
                kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
                loss = bce + kld
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
    (the library's Adam, the same CPU settings as ``fit``: settings, not work of the loop) and returns
    its seconds."""
    opt = make_optimizer("adam", model.parameters(), lr=case.lr)
    done = 0

    def epoch() -> float:
        nonlocal done
        done += 1
        model.train()
        with settings_for_training():
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
    """:func:`thesis_lib.training.fit`, one epoch per call (``start_epoch`` carries on the batch order)."""
    opt = make_optimizer("adam", model.parameters(), lr=case.lr)
    objective = make_objective(case.loss)
    done = 0

    def epoch() -> float:
        nonlocal done
        done += 1
        history = fit(model, objective, opt, x, epochs=done, start_epoch=done - 1, batch_size=case.batch_size, progress=False)
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


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::mkldnn_convolution", "aten::convolution_backward")


def gemm_share_of_step(case: Case, model: nn.Module, x: torch.Tensor, steps: int = 100) -> float:
    """Fraction of ``steps`` training steps of :func:`fit`'s kind spent in matrix-multiply and convolution
    kernels, by torch's profiler (self CPU time of the ops in :data:`GEMM_OPS` over the total).

    It tells how far the rest (activations, losses, Adam, autograd's bookkeeping) keeps the loop from the
    bound, and how much slower the GEMMs run inside a training step than in the bound's warm loop.
    """
    from torch.profiler import ProfilerActivity, profile

    objective = make_objective(case.loss)
    opt = make_optimizer("adam", model.parameters(), lr=case.lr)
    batches = epoch_permutation(len(x), 0, 1).split(case.batch_size)
    with settings_for_training():  # as fit trains
        bare_steps(model, objective, opt, x, batches[:5])  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            bare_steps(model, objective, opt, x, batches[5 : 5 + steps])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
    return gemm / total


# ------------------------------------------------------------------------------------ the FLOP bound
def gemm_shapes(model: nn.Module, example: torch.Tensor) -> list[tuple[int, int, int, bool]]:
    """(m, k, n, input_needs_grad) of every forward GEMM of one batch: linear layers and convolutions
    (as im2col GEMMs). ``input_needs_grad`` is false for a layer applied to the data itself, whose
    input gradient no training loop computes."""
    shapes: list[tuple[int, int, int, bool]] = []

    def hook(module, inputs, output):
        inp = inputs[0]
        needs = bool(inp.requires_grad)
        if isinstance(module, nn.Conv2d):
            b, cout, ho, wo = output.shape
            cin, k = module.in_channels, module.kernel_size[0] * module.kernel_size[1]
            shapes.append((b * ho * wo, cin * k, cout, needs))
        elif isinstance(module, nn.ConvTranspose2d):
            b, cin, hi, wi = inp.shape  # its forward is a convolution's input gradient
            k = module.kernel_size[0] * module.kernel_size[1]
            shapes.append((b * hi * wi, cin, module.out_channels * k, needs))
        else:  # nn.Linear, thesis_lib's PhiLayer: a weight (out, in) of its own applied to (B, in)
            shapes.append((inp.shape[0], module.weight.shape[1], module.weight.shape[0], needs))

    def has_gemm(m: nn.Module) -> bool:
        w = m._parameters.get("weight")
        return isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or (w is not None and w.dim() == 2)

    handles = [m.register_forward_hook(hook) for m in model.modules() if has_gemm(m)]
    model(example)  # with autograd on, so that requires_grad tells which inputs get a gradient
    for h in handles:
        h.remove()
    if not shapes:
        raise RuntimeError(f"found no linear or convolution layer in {type(model).__name__}")
    return shapes


def matmul_bound(shapes: list[tuple[int, int, int, bool]], reps: int = 20) -> tuple[float, float]:
    """(FLOPs, seconds) of one batch's forward and backward GEMMs, timed with fp32 torch.mm.

    Each forward GEMM (m,k)@(k,n) has a backward GEMM of the same size for the weight gradient, and
    another for the input gradient unless the input is the data (the first layer), which needs none.
    """
    flops, seconds = 0.0, 0.0
    for m, k, n, needs_input_grad in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        g = torch.randn(m, n)
        ops = [(a, b), (a.t(), g)] + ([(g, b.t())] if needs_input_grad else [])
        for x, y in ops:
            torch.mm(x, y)  # warm-up
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                for x, y in ops:
                    torch.mm(x, y)
            best = min(best, (time.perf_counter() - t0) / reps)
        flops += len(ops) * 2.0 * m * k * n
        seconds += best
    return flops, seconds


# ------------------------------------------------------------------------------------------- driver
IN_MEMORY = ("bare", "thesis_lib", "hand-written")


def measure_group(case: Case, group: str, threads: int, root: Path, epochs: int) -> list[dict]:
    """Time a group of loops of one model at one thread count, in this process (see :func:`run_isolated`).

    ``group`` is ``"reference"`` or ``"in-memory"``: ``bare``, ``thesis_lib`` and (where the case has it)
    ``hand-written``, each on its own copy of the same initial model, their epochs interleaved
    (:func:`interleave`), so that the loop overhead compares epochs run side by side. The first
    epoch of each is a warm-up and is dropped; the peak memory is the group's.
    """
    torch.set_num_threads(threads)
    x, _ = data.load("mnist", "train", root)
    x = x if case.flat else x.view(-1, 1, 28, 28)
    variants = ("reference",) if group == "reference" else IN_MEMORY[: 3 if case.handwritten else 2]
    models = {}
    for v in variants:
        torch.manual_seed(0)
        models[v] = build_model(case.spec)
    reset_peak_rss()
    make = {"reference": lambda m: reference_runner(case, m, root), "bare": lambda m: bare_runner(case, m, x),
            "thesis_lib": lambda m: library_runner(case, m, x), "hand-written": lambda m: handwritten_runner(case, m, x)}
    times = interleave({v: make[v](models[v]) for v in variants}, epochs + 1)
    peak = peak_rss_mib()
    rows = []
    for v in variants:
        sec = statistics.median(times[v][1:])  # drop the warm-up epoch
        gemm_share = gemm_share_of_step(case, models[v], x) if v == "thesis_lib" else float("nan")
        rows.append({"model": case.name, "variant": v, "threads": threads, "sec": sec, "img_s": len(x) / sec,
                     "gemm_share": gemm_share, "peak_mib": peak})
    return rows


def run_isolated(case: Case, group: str, threads: int, root: Path, epochs: int) -> list[dict]:
    """:func:`measure_group` in a fresh Python process, so that the reference does not inherit the
    in-memory loops' process-wide settings (``fit``'s allocator setting is one-way) or their memory."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", case.name, group, str(threads),
           "--epochs", str(epochs), "--data-dir", str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case.name} / {group} / {threads} threads failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_case(case: Case, x_flat: torch.Tensor, root: Path, epochs: int, threads: list[int]) -> list[dict]:
    """Every loop of ``case`` at every thread count (the reference in a process of its own, the
    in-memory loops together in another), and the matmul bound (measured here, with all cores)."""
    torch.set_num_threads(os.cpu_count() or 1)
    x = x_flat if case.flat else x_flat.view(-1, 1, 28, 28)
    torch.manual_seed(0)
    shapes = gemm_shapes(build_model(case.spec), x[: case.batch_size])
    flops_batch, bound_batch = matmul_bound(shapes)
    batches = len(x) / case.batch_size
    flops_epoch, bound_epoch = flops_batch * batches, bound_batch * batches
    rows = []
    for group in ("reference", "in-memory"):
        for t in threads:
            for row in run_isolated(case, group, t, root, epochs):
                row.update(flops_epoch=flops_epoch, bound_epoch=bound_epoch, bound_gflops=flops_epoch / bound_epoch / 1e9,
                           gflops=flops_epoch / row["sec"] / 1e9)
                rows.append(row)
                print(f"  {case.name:30s} {row['variant']:12s} threads={t}  {row['sec']:7.3f} s/epoch", file=sys.stderr, flush=True)
    order = ("reference",) + IN_MEMORY
    return sorted(rows, key=lambda r: (order.index(r["variant"]), r["threads"]))


def table(rows: list[dict]) -> str:
    lines = [
        "| model | loop | threads | s / epoch | images / s | vs reference | loop overhead vs bare | peak RSS (MiB) | GFLOP/s | matmul bound GFLOP/s | share of bound | time in GEMMs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ref = next(q for q in rows if q["model"] == r["model"] and q["variant"] == "reference" and q["threads"] == r["threads"])
        bare = next((q for q in rows if q["model"] == r["model"] and q["variant"] == "bare" and q["threads"] == r["threads"]), None)
        overhead = f"{100 * (r['sec'] / bare['sec'] - 1):+.1f}%" if r["variant"] == "thesis_lib" and bare else ""
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['threads']} | {r['sec']:.3f} | {r['img_s']:,.0f} | "
            f"{ref['sec'] / r['sec']:.2f}x | {overhead} | {r['peak_mib']:.0f} | {r['gflops']:.1f} | "
            f"{r['bound_gflops']:.1f} | {100 * r['bound_epoch'] / r['sec']:.0f}% | "
            + (f"{100 * r['gemm_share']:.0f}% |" if math.isfinite(r["gemm_share"]) else " |")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant, after one warm-up epoch (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts to try (default: 1 and all cores)")
    parser.add_argument("--models", nargs="+", default=None, help="substrings of model names to run (default: all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"), help="where to write the Markdown table ('-': nowhere)")
    parser.add_argument("--load", type=int, default=0,
                        help="run this many busy single-thread processes beside the timings, to measure a loaded machine (default 0)")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "GROUP", "THREADS"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer; got {args.epochs}")
    if args.load < 0:
        parser.error(f"--load must be a non-negative integer; got {args.load}")
    root = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    if args.one:  # the child process of run_isolated: one group's rows, printed as JSON
        name, group, t = args.one
        print(json.dumps(measure_group(next(c for c in CASES if c.name == name), group, int(t), root, args.epochs)))
        return 0
    cores = os.cpu_count() or 1
    threads = args.threads or sorted({1, cores})
    if any(t < 1 for t in threads):
        parser.error(f"--threads must be positive integers; got {threads}")
    x, _ = data.load("mnist", "train", root)  # raises a clear error when the data is missing
    cases = [c for c in CASES if not args.models or any(m.lower() in c.name.lower() for m in args.models)]
    rows = []
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    try:
        for case in cases:
            rows.extend(run_case(case, x, root, args.epochs, threads))
    finally:
        for p in busy:
            p.kill()
            p.wait()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), platform.processor())
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu}, {cores} logical CPUs, torch {torch.__version__}, "
        f"Python {platform.python_version()}; median of {args.epochs} epochs of 60,000 images after one warm-up epoch; the reference in a process of its own, the other loops together in another, "
        "one epoch of each in turn (so they share a peak RSS); "
        + (f"**{args.load} busy single-thread process(es) ran beside the timings**. " if args.load else "no other work ran. ")
        + "Adam is thesis_lib's (fused kernel) in `bare`, `thesis_lib` and `hand-written`, `torch.optim.Adam` (default settings) in `reference`; "
        "`hand-written` is the thesis AE's step written out without autograd (`handwritten_steps`), a yardstick rather than a loop. "
        "`vs reference` is the speed-up over the DataLoader loop at the same thread count; `share of bound` is the time fp32 `torch.mm` "
        f"needs for the model's GEMMs ({cores} threads) divided by the measured epoch time; `time in GEMMs` is the share of a training step's "
        "CPU time that torch's profiler finds in matrix-multiply and convolution kernels (100 steps after 5 warm-up steps)."
    )
    text = header + "\n\n" + table(rows) + "\n"
    print(text)
    if args.output != "-":
        out = Path(args.output)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
