"""Process settings: chosen by the entry points, inherited by torch's threads, never changed by `fit`."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from thesis_lib.runtime.process import (
    MALLOC_ENV,
    choose_threads,
    malloc_configured,
    malloc_environment,
    resolve_device,
    tune_process,
)

# Helpers run in a fresh interpreter each, so that the process's state is known at the start.
_COMMON = """
import ctypes, json, sys
import torch
SUBNORMAL_BITS = 0x000AE398  # 1e-39 as float32 bits: an integer, so no flush mode can zero it on the way in

def flushed_fraction():
    # torch's own kernel splits 2**18 products over the pool's threads: the fraction that came out zero
    sub = torch.full((2**18,), SUBNORMAL_BITS, dtype=torch.int32).view(torch.float32)
    return float((sub * 1.0).eq(0).float().mean())

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

def big_block_is_mmapped():
    # whether glibc serves a 16 MiB block from an mmap of its own (its defaults) or from the heap
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    p = libc.malloc(16 * 2**20)
    mmapped = bool(libc.mallinfo2().hblkhd >= 16 * 2**20)
    libc.free(p)
    return mmapped

def heap_is_trimmed(tries=3):
    # whether glibc gives 100 MiB of freed heap back to the kernel (its defaults: beyond at most 64 MiB);
    # a block that another thread leaves above ours can stop one try, so any of three counts
    return any(_heap_trimmed_once() for _ in range(tries))

def _heap_trimmed_once():
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = (ctypes.c_void_p * 1000)()  # allocated once, before the blocks: nothing of ours lies above them
    for i in range(1000):
        blocks[i] = libc.malloc(100 * 2**10)  # below the mmap threshold: from the heap
    peak = libc.mallinfo2().arena
    for i in reversed(range(1000)):
        libc.free(blocks[i])
    return bool(libc.mallinfo2().arena < peak - 50 * 2**20)
"""


def _run(body: str, env: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in (env or os.environ).items() if k not in MALLOC_ENV} | (env or {})
    done = subprocess.run([sys.executable, "-c", _COMMON + body], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _has_mallinfo2() -> bool:
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018
        return True
    except AttributeError:
        return False


def test_choose_threads_takes_the_free_cpus():
    assert choose_threads(cpus=2, load=0.0) == 2
    assert choose_threads(cpus=2, load=0.3) == 2
    assert choose_threads(cpus=2, load=1.0) == 1
    assert choose_threads(cpus=2, load=5.0) == 1  # never zero
    assert choose_threads(cpus=16, load=3.2) == 13
    assert 1 <= choose_threads() <= (os.cpu_count() or 1)


def test_flush_set_before_the_pool_exists_is_inherited_by_every_thread():
    """POSIX threads start with the floating-point environment of the thread that creates them, so
    flushing on the main thread before torch's first parallel kernel covers the whole pool."""
    after = _run("""
from thesis_lib.runtime.process import tune_process
tune_process(2)
print(json.dumps({"flushed": flushed_fraction()}))
""")
    assert after["flushed"] == 1.0
    # the control: once the pool exists, the same call reaches the main thread only
    late = _run("""
torch.set_num_threads(2)
before = flushed_fraction()  # starts the pool
torch.set_flush_denormal(True)
print(json.dumps({"before": before, "flushed": flushed_fraction()}))
""")
    assert late["before"] == 0.0
    assert 0.0 < late["flushed"] < 1.0


def test_tune_process_sets_threads_and_reports_the_allocator():
    out = _run("""
import torch
torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
from thesis_lib.runtime.process import tune_process
out = tune_process(1)
out["flags"] = [torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32]
print(json.dumps(out))
""")
    assert out["threads"] == 1 and out["malloc"] is False
    assert out["tf32"] is False and out["flags"] == [False, False]  # full fp32 on a GPU as on the CPU
    assert out["flush_denormal"] in (True, False)  # False only on a CPU that cannot flush
    with pytest.raises(ValueError, match="threads must be a positive integer, 0"):
        tune_process(-1)


@pytest.mark.skipif(not _has_mallinfo2(), reason="not glibc 2.33 or later: no mallinfo2 to look with")
def test_malloc_settings_come_from_the_environment():
    assert _run("print(json.dumps({'mmapped': big_block_is_mmapped()}))")["mmapped"] is True
    env = malloc_environment()
    assert malloc_configured(env) and not malloc_configured({})
    assert _run("print(json.dumps({'mmapped': big_block_is_mmapped()}))", env)["mmapped"] is False
    assert _run("print(json.dumps({'trimmed': heap_is_trimmed()}))")["trimmed"] is True
    assert _run("print(json.dumps({'trimmed': heap_is_trimmed()}))", env)["trimmed"] is False


def test_fit_changes_no_process_wide_state():
    """fit leaves the thread count, the flush mode of every thread and the allocator as it found them."""
    out = _run("""
from thesis_lib.ground.config import TrainConfig
from thesis_lib.runtime.training import Loop, fit, make_objective
from thesis_lib.mathematics.networks import DeepNetwork
torch.set_num_threads(2)
state = lambda: {"threads": torch.get_num_threads(), "flushed": flushed_fraction(),
                 "main": torch.tensor(1e-39).mul(1.0).item() == 0.0, "trimmed": heap_is_trimmed()}
before = state()
torch.manual_seed(0)
model = DeepNetwork((16, 8, 16), activations=("relu", "sigmoid"))
x = torch.rand(256, 16)
fit(model, make_objective("mse"), torch.optim.Adam(model.parameters(), lr=1e-3, fused=True),
    TrainConfig(epochs=2, batch_size=64), x, loop=Loop(progress=False))
print(json.dumps({"before": before, "after": state()}))
""")
    assert out["before"] == out["after"]
    assert out["before"]["flushed"] == 0.0 and out["before"]["main"] is False
    assert out["before"]["trimmed"] is True


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device must be one of 'auto', 'cpu', 'cuda'; got 'tpu'"):
        resolve_device("tpu")


def test_a_command_line_restarts_itself_with_the_allocator_settings(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text(
        "import os, sys\n"
        "from thesis_lib.runtime.process import restart_with_malloc_settings\n"
        "restart_with_malloc_settings([__file__, *sys.argv[1:]])\n"
        "print(os.environ.get('MALLOC_MMAP_THRESHOLD_'), os.environ.get('MALLOC_TRIM_THRESHOLD_'), sys.argv[1:])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    done = subprocess.run([sys.executable, str(script), "a"], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == [MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"], MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"], "['a']"]
    skipped = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env=env | {"THESIS_NO_RESTART": "1"}, check=True)
    assert skipped.stdout.split() == ["None", "None", "[]"]
