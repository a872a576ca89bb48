r"""Training speed: ``thesis_lib``'s one training loop against the loop a user would otherwise write.

For each model (the thesis's autoencoder, the standard VAE, the convolutional autoencoder) it times,
on the same MNIST files:

- ``reference``: ``torchvision.datasets.MNIST`` with ``ToTensor``, a shuffling ``DataLoader`` and the
  usual loop with ``torch.optim.Adam`` (the pytorch/examples VAE style);
- ``bare``: the whole training set as one tensor, a random permutation cut into batches, forward,
  backward and step with nothing else, in the same process as ``fit``: the floor a training loop can
  reach;
- ``thesis_lib``: :func:`thesis_lib.runtime.training.fit` with the training loop's Adam (torch's fused kernel);
- ``hand-written`` (the thesis AE only): its step written out without autograd
  (:func:`handwritten_steps`), to show how far any eager-PyTorch loop could get towards the bound;

the reference in a fresh process with torch's and glibc's defaults, the other loops together in
another, set up as the library's entry points set up theirs (:mod:`thesis_lib.runtime.process`), their epochs
interleaved so that the machine's drift in speed hits them alike; and prints seconds per epoch and
images per second (median of several epochs after a warm-up), the ratios, the peak resident memory
of each process, and the share
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
from pathlib import Path

import torch

from bound import gemm_shapes, gemm_share_of_step, matmul_bound
from loops import (
    Case,
    bare_runner,
    handwritten_runner,
    interleave,
    library_runner,
    peak_rss_mib,
    reference_runner,
    reset_peak_rss,
)
from thesis_lib.runtime import data
from thesis_lib.ground.config import MALLOC_ENV, ModelSpec
from thesis_lib.runtime.models import build_model
from thesis_lib.ground.paths import default_data_dir
from thesis_lib.runtime.process import malloc_environment, tune_process

HERE = Path(__file__).resolve().parent
BUSY = "import torch\ntorch.set_num_threads(1)\na = torch.randn(256, 256)\nwhile True:\n    a = torch.tanh(a @ a)"

CASES = (
    Case("thesis AE 784-128-64-12-3", ModelSpec("fc_autoencoder", {"widths": [784, 128, 64, 12, 3]}), 512, 3e-4, "mse",
         True, True),
    Case("VAE 784-400-20", ModelSpec("vae", {"input_dim": 784, "hidden": [400], "latent_dim": 20}), 128, 1e-3, "elbo",
         True),
    Case("conv AE (16, 32), latent 3", ModelSpec("conv_autoencoder", {"latent_dim": 3}), 128, 1e-3, "mse", False),
)

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
            "thesis_lib": lambda m: library_runner(case, m, x),
            "hand-written": lambda m: handwritten_runner(case, m, x)}
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
    """:func:`measure_group` in a fresh Python process: the in-memory loops in one set up for training
    as the library's entry points set theirs up (:mod:`thesis_lib.runtime.process`: glibc's allocator settings
    in its environment, subnormals flushed before torch's threads start), the reference in one as a
    user would start it (neither), so that neither inherits the other's settings or memory."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", case.name, group, str(threads),
           "--epochs", str(epochs), "--data-dir", str(root)]
    plain = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    done = subprocess.run(cmd, capture_output=True, text=True,
                          env=plain if group == "reference" else malloc_environment())
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
                row.update(flops_epoch=flops_epoch, bound_epoch=bound_epoch,
                           bound_gflops=flops_epoch / bound_epoch / 1e9, gflops=flops_epoch / row["sec"] / 1e9)
                rows.append(row)
                print(f"  {case.name:30s} {row['variant']:12s} threads={t}  {row['sec']:7.3f} s/epoch",
                      file=sys.stderr, flush=True)
    order = ("reference",) + IN_MEMORY
    return sorted(rows, key=lambda r: (order.index(r["variant"]), r["threads"]))


def table(rows: list[dict]) -> str:
    lines = [
        "| model | loop | threads | s / epoch | images / s | vs reference | loop overhead vs bare | peak RSS (MiB) | "
        "GFLOP/s | matmul bound GFLOP/s | share of bound | time in GEMMs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ref = next(q for q in rows
                   if q["model"] == r["model"] and q["variant"] == "reference" and q["threads"] == r["threads"])
        bare = next((q for q in rows
                     if q["model"] == r["model"] and q["variant"] == "bare" and q["threads"] == r["threads"]), None)
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
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs per variant, after one warm-up epoch (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to try (default: 1 and all cores)")
    parser.add_argument("--models", nargs="+", default=None, help="substrings of model names to run (default: all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"),
                        help="where to write the Markdown table ('-': nowhere)")
    parser.add_argument("--load", type=int, default=0,
                        help="run this many busy single-thread processes beside the timings, to measure a loaded "
                             "machine (default 0)")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "GROUP", "THREADS"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer; got {args.epochs}")
    if args.load < 0:
        parser.error(f"--load must be a non-negative integer; got {args.load}")
    root = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    if args.one:  # the child process of run_isolated: one group's rows, printed as JSON
        name, group, t = args.one
        if group != "reference":
            tune_process(int(t))  # before torch's first parallel kernel, as every entry point does
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
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu}, {cores} logical CPUs, torch {torch.__version__}, "
        f"Python {platform.python_version()}; median of {args.epochs} epochs of 60,000 images after one warm-up "
        "epoch; the reference in a process of its own, the other loops together in another, "
        "one epoch of each in turn (so they share a peak RSS); "
        + (f"**{args.load} busy single-thread process(es) ran beside the timings**. " if args.load
           else "no other work ran. ")
        + "Adam is the training loop's (`torch.optim.Adam(fused=True)`) in `bare`, `thesis_lib` and `hand-written`, "
        "`torch.optim.Adam` (default settings) in `reference`; "
        "the reference's process runs with torch's and glibc's defaults, the others' as the library's entry "
        "points set them up (subnormals flushed, freed memory kept); "
        "`hand-written` is the thesis AE's step written out without autograd (`handwritten_steps`), a "
        "yardstick rather than a loop. "
        "`vs reference` is the speed-up over the DataLoader loop at the same thread count; `share of bound` is "
        "the time fp32 `torch.mm` "
        f"needs for the model's GEMMs ({cores} threads) divided by the measured epoch time; `time in GEMMs` is "
        "the share of a training step's "
        "CPU time that torch's profiler finds in matrix-multiply and convolution kernels (100 steps after 5 "
        "warm-up steps)."
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
