"""Tests of thesis_lib.runtime.provenance: the environment table that ends every chapter."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from thesis_lib.runtime import provenance
from thesis_lib.publishing.chapter import environment_table, markdown_table
from thesis_lib.runtime.provenance import environment_info, git_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

KEYS = ["python", "torch", "device", "cpu", "threads", "profile", "seed", "git_commit", "thesis_lib", "date"]


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit: a tracked file and a tracked executed notebook."""
    (tmp_path / "book" / "chapters").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "book" / "chapters" / "01_a.ipynb").write_text("{}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "initial")
    return tmp_path


@needs_git
def test_git_commit_matches_git_and_flags_dirty_tracked_changes(repo: Path) -> None:
    full = _git(repo, "rev-parse", "HEAD")
    short = git_commit(cwd=repo)
    assert len(full) == 40 and full.startswith(short) and len(short) >= 7
    assert git_commit(short=False, cwd=repo) == full
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(cwd=repo) == short + "+dirty"


@needs_git
def test_git_commit_ignores_untracked_files_and_build_outputs(repo: Path) -> None:
    clean = git_commit(cwd=repo)
    assert "+dirty" not in clean
    (repo / "untracked.py").write_text("y = 1\n")
    (repo / "book" / "chapters" / "01_a.ipynb").write_text('{"executed": true}\n')
    sub = repo / "book"
    assert git_commit(cwd=repo) == clean
    assert git_commit(cwd=sub) == clean  # asked from a sub-folder, the whole tree still counts
    (repo / "code.py").write_text("x = 3\n")
    assert git_commit(cwd=sub) == clean + "+dirty"


@needs_git
def test_git_commit_is_unknown_outside_a_checkout_and_without_commits(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(cwd=outside) == "unknown"
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert git_commit(cwd=empty) == "unknown"


def test_git_commit_is_unknown_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert git_commit(cwd=tmp_path) == "unknown"


def test_environment_info_without_config_matches_the_running_interpreter() -> None:
    before = dt.datetime.now(dt.timezone.utc).date()
    info = environment_info()
    after = dt.datetime.now(dt.timezone.utc).date()
    assert list(info) == KEYS
    assert all(isinstance(v, str) and v for v in info.values())
    assert info["python"] == platform.python_version()
    assert info["torch"] == torch.__version__
    assert info["threads"] == str(torch.get_num_threads())
    assert info["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert info["profile"] == info["seed"] == "n/a"
    assert info["date"] in {before.isoformat(), after.isoformat()}
    assert info["thesis_lib"] == __import__("thesis_lib").__version__
    assert info["git_commit"] == git_commit()


def test_environment_info_reads_the_chapter_config() -> None:
    from thesis_lib.ground.config import ChapterConfig

    cfg = ChapterConfig.from_parameters(chapter="04", profile="quick", seed=7, device="cpu")
    info = environment_info(cfg)
    assert (info["profile"], info["seed"], info["device"]) == ("quick", "7", "cpu")
    # a duck-typed config: "auto" is resolved here
    auto = environment_info(SimpleNamespace(profile="full", seed=3, device="auto"))
    assert auto["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert (auto["profile"], auto["seed"]) == ("full", "3")


def test_environment_table_is_a_markdown_table_of_every_field() -> None:
    table = environment_table(SimpleNamespace(profile="quick", seed=5, device="cpu"))
    assert type(table).__name__ == "Markdown"
    lines = table.data.splitlines()
    assert len(lines) == 2 + len(KEYS)
    assert lines[1] == "|---|---|"
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[:1] + lines[2:])
    rows = dict(line.strip("| ").split(" | ", 1) for line in lines[2:])
    assert rows["profile"] == "`quick`" and rows["seed"] == "`5`" and rows["device"] == "`cpu`"
    assert set(rows) == {"Python", "torch", "device", "CPU", "torch threads", "profile", "seed",
                         "git commit", "thesis_lib", "date"}


def test_markdown_table_escapes_pipes_and_newlines() -> None:
    text = markdown_table({"cpu": "a|b\nc"})
    assert text.splitlines()[-1] == "| CPU | `a\\|b c` |"
    with pytest.raises(ValueError, match=r"info must be a dict of strings; got \['x'\]"):
        markdown_table(["x"])  # type: ignore[arg-type]


def test_cpu_model_falls_back_without_proc_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_file(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc here")

    monkeypatch.setattr("builtins.open", no_file)
    assert provenance.cpu_model() == (platform.processor() or platform.machine() or "unknown")


def test_import_does_no_work() -> None:
    code = "import sys, thesis_lib.runtime.provenance; print('torch' in sys.modules, 'IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
