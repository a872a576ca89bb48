"""The prepared GPU measurement (benchmarks/gpu.sh, benchmarks/gpu.py), checked on the CPU: the data it
unpacks, the commands it runs, its refusals, and a smoke run of the whole benchmark with --device cpu.
The GPU's timings themselves are measurements (benchmarks/RESULTS_gpu.md), not tests."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thesis_lib.runtime import data
from thesis_lib.ground.paths import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu)
MNIST = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _need_mnist() -> Path:
    raw = default_data_dir() / "MNIST" / "raw"
    if not all((raw / f).is_file() for f in MNIST):
        pytest.skip("MNIST not fetched")
    return raw


def test_gpu_sh_unpacks_mnist_that_the_loader_accepts_and_runs_the_gpu_tests_then_the_benchmark(tmp_path):
    """gpu.sh on a machine without a GPU, its python3 replaced by a stand-in that records each call and
    its environment: the data directory it sets up must pass the loader's checksum verification."""
    raw = _need_mnist()
    work = tmp_path / "repo"
    (work / ".gpu").mkdir(parents=True)
    for name in MNIST:
        with gzip.open(work / ".gpu" / f"{name}.gz", "wb", compresslevel=1) as out:
            out.write((raw / name).read_bytes())
    (work / "benchmarks").mkdir()
    (work / "benchmarks" / "gpu.sh").write_bytes((ROOT / "benchmarks" / "gpu.sh").read_bytes())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    (bin_dir / "python3").write_text(f'#!/bin/sh\necho "$THESIS_DATA_DIR|$PYTHONPATH|$*" >> {calls}\n')
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "benchmarks/gpu.sh", str(tmp_path / "out"), "--ten-thousand"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line.split("|") for line in calls.read_text().splitlines()]
    assert [args.split()[:2] for _, _, args in lines] == [["-c", "import"], ["-m", "pytest"],
                                                          ["benchmarks/gpu.py", "--output"]]
    assert lines[1][2].endswith("tests/test_cuda_graphs.py")
    assert lines[2][2].split()[2:] == [str(tmp_path / "out" / "RESULTS_gpu.md"), "--ten-thousand",
                                       str(tmp_path / "out")]
    data_dir, pythonpath = lines[0][0], lines[0][1]
    assert pythonpath.split(":")[0] == str(work)  # the repository's thesis_lib, not an installed one
    x, y = data.load("mnist", "test", data_dir)  # verifies the pinned checksums
    assert x.shape == (10_000, 784) and y[:3].tolist() == [7, 2, 1]
    assert (tmp_path / "out" / "gpu.log").is_file()


@pytest.mark.parametrize("args, message", [(["--epochs", "0"], "--epochs must be a positive integer"),
                                           (["--images", "0"], "--images must be a positive integer"),
                                           (["--algorithm2-epochs", "-1"], "--algorithm2-epochs must be a positive")])
def test_bad_arguments_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        gpu.main(args + ["--device", "cpu", "--data-dir", "/nonexistent", "--output", "-"])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_with_the_way_out(capsys):
    with pytest.raises(SystemExit) as e:
        gpu.main(["--data-dir", "/nonexistent", "--output", "-"])
    assert e.value.code == 2 and "--device cpu runs the smoke test" in capsys.readouterr().err


def test_a_smoke_run_on_the_cpu_writes_the_table(tmp_path):
    _need_mnist()
    out = tmp_path / "RESULTS_gpu.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--epochs", "1",
                           "--images", "1024", "--algorithm2-epochs", "2", "--output", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "median of 1 epochs of 1,024 images" in text and "TF32 off" in text
    for model in gpu.CASES:
        assert f"| {model} | DataLoader |" in text and f"| {model} | thesis_lib |" in text
    assert "| ae_thesis | 2 |" in text
