r"""Settings of the process that trains: threads, subnormal floats, the allocator, the device.

They belong to the process, not to a model, so no library function changes them: the entry points
(``python -m thesis_lib.reproduction.experiments``, ``book/build.py`` and each chapter's first cell, the
benchmark) call :func:`tune_process` once, where the process starts, and set
:data:`MALLOC_ENV` in the environment of the processes they start. Each setting rests on
measurements of the training loop with ``benchmarks/train_speed.py`` on this project's 2-vCPU machine:

- :func:`choose_threads`: one thread per CPU that no other process is using;
- subnormal floats count as zero (:func:`tune_process`). Adam's first moment of a weight whose
  gradient is mostly zero (an MNIST border pixel, a ReLU unit that rarely fires) shrinks by
  $\beta_1 = 0.9$ a step and spends its last hundred-odd steps as a subnormal number, which x86 CPUs
  process far more slowly: after three epochs of the standard VAE a quarter of its first layer's
  moments are subnormal, and without flushing an epoch then takes 25% longer than the first.
  Flushing them (x86's FTZ/DAZ) changes values below $1.2 \cdot 10^{-38}$ only. The mode belongs to
  a thread, and a POSIX thread starts with the floating-point environment of the thread that created
  it, so setting it on the main thread *before* torch starts its pool of worker threads sets it on
  every thread of the pool;
- freed memory stays in the process (:data:`MALLOC_ENV`, glibc's ``MALLOC_MMAP_THRESHOLD_`` and
  ``MALLOC_TRIM_THRESHOLD_``, read when the process starts). With glibc's default, dynamic
  thresholds a training step's large temporaries are handed back to the kernel when freed and
  faulted back in, page by page, at the next step; with these, each step reuses the last one's pages,
  which makes an epoch of the thesis AE 10% faster and one of the convolutional AE 30% faster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import torch

from thesis_lib.ground.config import DEVICES, MALLOC_ENV
from thesis_lib.ground.validation import check_choice



def choose_threads(cpus: int | None = None, load: float | None = None) -> int:
    """The number of CPU threads to train with: the free CPUs, at least one.

    ``cpus`` defaults to the CPUs this process may run on, ``load`` to the one-minute load average
    (processes already running). The rule follows ``benchmarks/train_speed.py`` on this project's
    2-vCPU machine: on an idle machine two threads beat one for all three benchmark models (1.5x
    for the thesis AE), but next to one busy process two threads are 4 to 30 times slower than one,
    since torch's threads wait for each other at every operation (``benchmarks/RESULTS_load.md``).
    So: one thread per CPU that nobody else uses.

    Results depend on the thread count in the last bits (GEMM blocking), so a run that must be
    bit-reproducible should fix it; checkpoints record the count they were trained with.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, cpus - int(round(load)))


def tune_process(threads: int | None = None) -> dict[str, object]:
    """Set up this process for training, once, at its entry point; return what was set.

    Flushes subnormal floats to zero on the calling thread, which torch's worker threads inherit
    when they are created (so call it before torch's first parallel operation: at the top of a
    script or a notebook), and sets torch's thread count to ``threads`` (``None``: keep torch's
    choice; ``0``: :func:`choose_threads`), and keeps TF32 off for matrix products and convolutions on a
    GPU. Whether :data:`MALLOC_ENV` is in effect is reported, not
    changed: it must come from the environment the process started with (:func:`malloc_environment`).
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be a positive integer, 0 (the free CPUs) or None; got {threads!r}")
        torch.set_num_threads(threads or choose_threads())
    # full fp32 on a GPU too: with TF32, cuDNN's convolutions round their inputs to a 10-bit mantissa,
    # and a GPU run then differs from a CPU run by more than float tolerance
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return {
        "tf32": False,
        "flush_denormal": torch.set_flush_denormal(True),
        "threads": torch.get_num_threads(),
        "malloc": malloc_configured(),
    }


def malloc_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the allocator settings of :data:`MALLOC_ENV` are in ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return all(environ.get(key) == value for key, value in MALLOC_ENV.items())


def malloc_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: this process's) with :data:`MALLOC_ENV` added, for a child process."""
    return {**(os.environ if environ is None else environ), **MALLOC_ENV}


def restart_with_malloc_settings(argv: Sequence[str]) -> None:
    """At a command line's entry point: unless :data:`MALLOC_ENV` is already in effect, replace this
    process by ``python ARGV...`` with it in the environment (glibc reads it only at start-up).

    ``argv`` is what follows the interpreter, for example ``["-m", "thesis_lib.reproduction.experiments", *args]``.
    Set ``THESIS_NO_RESTART=1`` to skip it (the process then runs with glibc's defaults).
    """
    if malloc_configured() or os.environ.get("THESIS_NO_RESTART") == "1" or sys.platform != "linux":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], malloc_environment())


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is present and ``"cpu"`` otherwise; check ``"cuda"``."""
    check_choice("device", device, DEVICES)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    return device
