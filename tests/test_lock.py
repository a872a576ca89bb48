"""The locked environment: pyproject.toml, requirements.lock and environment.yml agree (tools/lock.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
sys.modules["lock_tool"] = lock
_spec.loader.exec_module(lock)


def test_the_committed_files_agree():
    assert lock.disagreements() == []
    pins = lock.pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert "jupyter-book" not in pins and int(pins["sphinx"].split(".")[0]) >= 8  # plain sphinx-build


def _copies(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = []
    for name in ("pyproject.toml", "requirements.lock", "environment.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
        paths.append(tmp_path / name)
    return tuple(paths)


def test_a_requirement_outside_the_lock_is_found(tmp_path):
    pyproject, lockfile, environment = _copies(tmp_path)
    pyproject.write_text(pyproject.read_text().replace('"numpy>=1.24"', '"numpy>=99"'))
    problems = lock.disagreements(pyproject, lockfile, environment)
    assert len(problems) == 1 and "numpy" in problems[0] and "make lock" in problems[0]
    pyproject.write_text(pyproject.read_text().replace('"numpy>=99"', '"numpy>=1.24", "rich>=13"'))
    assert any("rich>=13 (pyproject.toml) is not in requirements.lock" in p
               for p in lock.disagreements(pyproject, lockfile, environment))


def test_a_pin_without_a_hash_and_a_stale_environment_are_found(tmp_path):
    pyproject, lockfile, environment = _copies(tmp_path)
    text = lockfile.read_text()
    start = text.index("\ntqdm==") + 1
    end = text.index("\n", text.index("# via", start))
    lockfile.write_text(text[:start] + text[start:end].split(" \\")[0] + text[end:])
    assert any("without a hash" in p for p in lock.disagreements(pyproject, lockfile, environment))
    _copies(tmp_path)
    environment.write_text(environment.read_text().replace("tqdm==", "tqdm>="))
    problems = lock.disagreements(pyproject, lockfile, environment)
    assert any("environment.yml is not the one derived" in p for p in problems)
