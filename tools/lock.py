"""The locked environment: ``requirements.lock`` pins, with hashes, every package that the README's two
commands install, and ``environment.yml`` (for conda users) is derived from it.

    python tools/lock.py check         # do pyproject.toml, requirements.lock and environment.yml agree?
    python tools/lock.py environment   # write environment.yml from requirements.lock

``make lock`` regenerates the lock with pip-tools (``pip-compile --generate-hashes``) and then
environment.yml; ``make setup`` installs from the lock with ``--require-hashes``. The lock is resolved
on this project's machines (Linux x86_64, CPython 3.11) and holds the wheels' hashes for them.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
ENVIRONMENT = ROOT / "environment.yml"
EXTRAS = ("test", "book")  # what the two commands install besides the package itself
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def declared(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The requirements of pyproject.toml: the dependencies and the extras the two commands install."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def pins(lock: Path = LOCK) -> dict[str, str]:
    """``{canonical name: version}`` of every package pinned in the lock file."""
    found = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def hashed(lock: Path = LOCK) -> bool:
    """Whether every pin of the lock carries at least one ``--hash``."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8"))
    return all("--hash=sha256:" in block for block in blocks if PIN.match(block))


def disagreements(pyproject: Path = ROOT / "pyproject.toml", lock: Path = LOCK,
                  environment: Path = ENVIRONMENT) -> list[str]:
    """What does not agree: a requirement the lock lacks or pins outside its range, a pin without a hash,
    an environment.yml that is not the one derived from the lock."""
    locked = pins(lock)
    problems = []
    for req in declared(pyproject):
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req} (pyproject.toml) is not in {lock.name}; run `make lock`")
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{lock.name} pins {name}=={locked[name]}, outside pyproject.toml's {req}; run `make lock`")
    if not hashed(lock):
        problems.append(f"{lock.name} has a pin without a hash; run `make lock`")
    if not environment.is_file() or environment.read_text(encoding="utf-8") != environment_yml(lock):
        problems.append(f"{environment.name} is not the one derived from {lock.name}; run `make lock`")
    return problems


def environment_yml(lock: Path = LOCK) -> str:
    """environment.yml for conda: Python 3.11 and every pin of the lock (exact versions) through pip."""
    lines = [
        f"# Derived from {lock.name} by `python tools/lock.py environment` (`make lock`); do not edit by hand.",
        "# The same exact versions as the lock, which also pins their hashes (the Makefile installs from it).",
        "name: vae-thesis-companion",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {name}=={version}" for name, version in sorted(pins(lock).items())]
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["environment"]:
        ENVIRONMENT.write_text(environment_yml(), encoding="utf-8")
        return 0
    if argv == ["check"]:
        problems = disagreements()
        for problem in problems:
            print(problem, file=sys.stderr)
        if not problems:
            print(f"pyproject.toml, {LOCK.name} and {ENVIRONMENT.name} agree ({len(pins())} pins)")
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
