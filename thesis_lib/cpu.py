r"""The CPU settings that training runs under: the thread count, subnormal floats, freed memory.

They are settings of the process, not of a model, and each was found by measuring the training loop
with ``benchmarks/train_speed.py`` on this project's 2-vCPU machine:

- :func:`choose_threads`: one thread per CPU that no other process is using;
- :func:`flush_denormals`: subnormal floats count as zero, on every thread of torch's pool;
- :func:`retain_freed_memory`: freed tensors' memory stays with the process for the next batch.

:func:`settings_for_training` applies the last two; :func:`thesis_lib.training.fit` runs inside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import torch

from thesis_lib.validation import check_positive_int

# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit systems
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 2**20
TRIM_THRESHOLD = 2**30


def choose_threads(cpus: int | None = None, load: float | None = None) -> int:
    """The number of CPU threads to train with: the free CPUs, at least one.

    ``cpus`` defaults to the CPUs this process may run on, ``load`` to the one-minute load average
    (processes already running). The rule follows ``benchmarks/train_speed.py`` on this project's
    2-vCPU machine: on an idle machine two threads beat one for all three benchmark models (1.5x
    for the thesis AE), but next to one busy process two threads were 4 to 30 times slower than one,
    since torch's threads wait for each other at every operation (``benchmarks/RESULTS_load.md``).
    So: one thread per CPU that nobody else uses.

    Results depend on the thread count in the last bits (GEMM blocking), so a run that must be
    bit-reproducible should fix it; checkpoints record the count they were trained with.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    check_positive_int("cpus", cpus)
    if isinstance(load, bool) or not isinstance(load, (int, float)) or not load >= 0:
        raise ValueError(f"load must be a non-negative number (a load average); got {load!r}")
    return max(1, cpus - int(round(load)))


# ------------------------------------------------------------------------------- torch's thread pool
_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # void task(void *data), what GOMP_parallel runs


@lru_cache(maxsize=1)
def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime that torch's CPU kernels run on, if this process has loaded one we can drive.

    torch's x86 wheels run ``at::parallel_for`` and MKL on GNU OpenMP (``libgomp``); Intel's and
    LLVM's runtimes export the same ``GOMP_parallel`` entry point. Linux only (it reads
    ``/proc/self/maps``); elsewhere, or without such a runtime, ``None``.
    """
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    torch.ones(1).sum()  # make sure torch's libraries (and their OpenMP runtime) are loaded
    names = ("libgomp", "libiomp", "libomp")
    paths = {line.split()[-1] for line in maps.read_text().splitlines() if any(n in line.rsplit("/", 1)[-1] for n in names)}
    torch_dir = str(Path(torch.__file__).resolve().parent)
    for path in sorted(paths, key=lambda p: (not p.startswith(torch_dir), p)):  # torch's own copy first
        try:
            lib = ctypes.CDLL(path)
            lib.GOMP_parallel  # noqa: B018 (raises AttributeError when missing)
            lib.omp_get_thread_num
        except (OSError, AttributeError):
            continue
        lib.omp_get_thread_num.restype = ctypes.c_int
        lib.GOMP_parallel.argtypes = [_TASK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        lib.GOMP_parallel.restype = None
        return lib
    return None


def on_every_thread(fn: Callable[[], object]) -> dict[int, object]:
    """Call ``fn()`` once on each of the ``torch.get_num_threads()`` threads of torch's CPU pool.

    Returns ``{thread number: fn's result}``; thread 0 is the calling thread. Settings such as x86's
    floating-point control word belong to a thread, and ``torch.set_flush_denormal`` changes only the
    caller's, while torch's kernels run on the pool's threads too. Without a pool that can be driven
    (one thread, no OpenMP runtime found) only the calling thread runs ``fn``.
    """
    n = torch.get_num_threads()
    omp = _openmp_runtime() if n > 1 else None
    if omp is None:
        return {0: fn()}
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def task(_: int | None) -> None:
        try:
            results[omp.omp_get_thread_num()] = fn()
        except BaseException as e:  # noqa: BLE001 (an exception must not cross the C frames)
            errors.append(e)

    callback = _TASK(task)
    omp.GOMP_parallel(callback, None, n, 0)  # ctypes releases the GIL; each thread takes it in turn
    if errors:
        raise errors[0]
    return results


# -------------------------------------------------------------------------------- subnormal floats
def _thread_flushes() -> bool:
    return torch.tensor(1e-39, dtype=torch.float32).mul(1.0).item() == 0.0


def flushing_denormals() -> bool:
    """Whether every thread of torch's pool treats subnormal floats as zero (probed on each thread:
    a subnormal float32 times one)."""
    return all(on_every_thread(_thread_flushes).values())


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    r"""Treat subnormal (denormal) floats as zero on the CPU inside the block, then restore the mode.

    Adam's first moment of a weight whose gradient is mostly zero (an MNIST border pixel, a ReLU unit
    that rarely fires) shrinks by $\beta_1 = 0.9$ a step and spends its last hundred-odd steps as a
    subnormal number, which x86 CPUs process far more slowly: after three epochs of the standard VAE a
    quarter of its first layer's moments were subnormal and an epoch took 25% longer than the first.
    Flushing them to zero (x86's FTZ/DAZ, ``torch.set_flush_denormal``) changes values below
    $1.2 \cdot 10^{-38}$ only.

    The mode belongs to a thread, so it is set on every thread of torch's pool
    (:func:`on_every_thread`) and each gets its own mode back at the end; flushing on the calling
    thread alone left the VAE's epochs at two threads slowing down by 23% over five epochs. Where the
    CPU cannot flush, this does nothing.
    """
    was = on_every_thread(_thread_flushes)
    on_every_thread(lambda: torch.set_flush_denormal(True))
    try:
        yield
    finally:
        on_every_thread(lambda: torch.set_flush_denormal(bool(was.get(_omp_thread(), was[0]))))


def _omp_thread() -> int:
    omp = _openmp_runtime()
    return omp.omp_get_thread_num() if omp is not None else 0


# -------------------------------------------------------------------------------------- freed memory
@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): no mallopt
        return None


def retain_freed_memory() -> bool:
    """Keep the memory of freed tensors in the process for reuse instead of handing it back to the OS.

    With glibc's default (dynamic) thresholds, a training step's large temporaries were returned to
    the kernel when freed and faulted back in, page by page, at the next step: 350 minor page faults
    per step of the thesis AE, 2,600 per step of the convolutional AE. Here glibc serves allocations up
    to 32 MiB (its maximum) from the heap and returns free heap memory only beyond 1 GiB, so each
    step reuses the pages of the last: 0 faults per step, and the thesis AE's epoch 10% faster, the
    convolutional AE's 30%.

    This is process-wide and one-way (glibc has no call to read the old setting back): the process's
    resident memory then stays near its peak. Returns whether the setting took (glibc only).
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@contextlib.contextmanager
def settings_for_training() -> Iterator[None]:
    """The CPU settings :func:`thesis_lib.training.fit` trains under: :func:`retain_freed_memory`
    (kept after the block) and :func:`flush_denormals` (restored after it)."""
    retain_freed_memory()
    with flush_denormals():
        yield
