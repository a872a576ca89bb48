"""The CPU settings of training: thread count, subnormal floats on every thread, freed memory kept."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import torch

from thesis_lib.cpu import (
    _openmp_runtime,
    choose_threads,
    flush_denormals,
    flushing_denormals,
    on_every_thread,
    retain_freed_memory,
)

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38
SUBNORMAL_BITS = 0x000AE398  # its float32 bit pattern: written as an integer, no flush mode can zero it


@pytest.fixture
def two_threads():
    """torch with two threads (on any machine), put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _parallel_product_flushed() -> float:
    """Fraction of a parallel kernel's products of subnormals that came out zero (torch's own kernel
    splits 2**18 elements over the pool's threads)."""
    sub = torch.full((2**18,), SUBNORMAL_BITS, dtype=torch.int32).view(torch.float32)
    return float((sub * 1.0).eq(0).float().mean())


def test_choose_threads_takes_the_free_cpus():
    assert choose_threads(cpus=2, load=0.0) == 2
    assert choose_threads(cpus=2, load=0.3) == 2
    assert choose_threads(cpus=2, load=1.0) == 1
    assert choose_threads(cpus=2, load=5.0) == 1  # never zero
    assert choose_threads(cpus=16, load=3.2) == 13
    assert 1 <= choose_threads() <= (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="cpus must be"):
        choose_threads(cpus=0, load=0.0)
    with pytest.raises(ValueError, match="load must be a non-negative number"):
        choose_threads(cpus=2, load=-1.0)


def test_on_every_thread_runs_once_on_each_thread_of_the_pool(two_threads):
    if _openmp_runtime() is None:
        pytest.skip("no OpenMP runtime to drive: only the calling thread runs")
    seen = on_every_thread(threading.get_native_id)
    assert sorted(seen) == [0, 1]
    assert seen[0] == threading.get_native_id()  # thread 0 is the caller
    assert len(set(seen.values())) == 2
    with pytest.raises(KeyError, match="boom"):  # an error on any thread reaches the caller
        on_every_thread(lambda: {}["boom"])


def test_on_every_thread_with_one_thread_calls_the_caller_only():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert on_every_thread(threading.get_native_id) == {0: threading.get_native_id()}
    finally:
        torch.set_num_threads(before)


def test_the_callers_flush_mode_alone_misses_the_other_threads(two_threads):
    """Why flush_denormals sets every thread: torch.set_flush_denormal changes the caller's mode only."""
    if not torch.set_flush_denormal(False) or _openmp_runtime() is None:
        pytest.skip("this CPU cannot flush subnormal floats, or no OpenMP pool")
    assert _parallel_product_flushed() == 0.0  # the pool's threads exist now (a new one copies its creator's mode)
    torch.set_flush_denormal(True)
    try:
        assert 0.0 < _parallel_product_flushed() < 1.0
        assert not flushing_denormals()
    finally:
        torch.set_flush_denormal(False)


def test_flush_denormals_flushes_on_every_thread_and_restores_the_mode(two_threads):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormal floats")
    assert not flushing_denormals() and _parallel_product_flushed() == 0.0
    with flush_denormals():
        assert flushing_denormals() and _parallel_product_flushed() == 1.0
    assert not flushing_denormals() and _parallel_product_flushed() == 0.0
    torch.set_flush_denormal(True)  # a caller that flushes on its own thread gets exactly that back
    try:
        with flush_denormals():
            pass
        assert on_every_thread(lambda: torch.tensor(SUBNORMAL).mul(1.0).item() == 0.0) == (
            {0: True, 1: False} if _openmp_runtime() is not None else {0: True})
    finally:
        torch.set_flush_denormal(False)
    with pytest.raises(RuntimeError):  # restored on an error too
        with flush_denormals():
            raise RuntimeError("boom")
    assert not flushing_denormals()


# A fresh interpreter, so that glibc's thresholds are its defaults: allocate a 4 MiB tensor and say
# whether glibc served it from an mmap of its own (mallinfo2's hblkhd grows) or from the heap.
_PROBE = """
import ctypes, sys, torch
from thesis_lib.cpu import retain_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
retained = retain_freed_memory() if sys.argv[1] == "retain" else None
before = libc.mallinfo2().hblkhd
t = torch.empty(2**20).fill_(1.0)  # 4 MiB
print(retained, libc.mallinfo2().hblkhd > before)
"""


def _probe(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True).stdout.split()


def test_retain_freed_memory_serves_large_tensors_from_the_heap():
    try:
        import ctypes

        ctypes.CDLL(None).mallinfo2  # noqa: B018
    except AttributeError:
        pytest.skip("not glibc 2.33 or later: no mallinfo2 to look with")
    assert _probe("default") == ["None", "True"]  # glibc's default: its own mmap, unmapped when freed
    assert _probe("retain") == ["True", "False"]  # retained: from the heap, whose pages stay mapped
