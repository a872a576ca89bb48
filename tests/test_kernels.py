"""The second set of CPU kernels that ``make nbval-kernels`` runs the committed chapters under.

Each variable of the Makefile's ``SECOND_KERNELS`` must change the results of the kernels it names on this
machine; a variable that changed nothing would leave the re-run of nbval a copy of the first run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tools" / "kernels.py"
# what each variable switches, as tools/kernels.py names the results
SWITCHES = {"ATEN_CPU_CAPABILITY": {"capability", "sigmoid_float32", "softplus_float32", "normal_sampler"},
            "MKL_CBWR": {"matmul_float32", "solve_float64"},
            "ONEDNN_MAX_CPU_ISA": {"conv2d_float32"}}


def second_kernels() -> dict[str, str]:
    line = re.search(r"^SECOND_KERNELS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert line, "the Makefile defines SECOND_KERNELS"
    return dict(item.split("=", 1) for item in line[1].split())


def fingerprint(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    out = subprocess.run([sys.executable, str(PROBE)], env={**env, **extra}, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return json.loads(out)


def test_every_variable_of_the_second_set_changes_its_kernels():
    chosen = second_kernels()
    assert set(chosen) == set(SWITCHES)
    base = fingerprint({})
    if base["capability"] == "DEFAULT":
        pytest.skip("torch runs its default kernels here already")
    for name, value in chosen.items():
        moved = {k for k, v in fingerprint({name: value}).items() if v != base[k]}
        assert moved & SWITCHES[name], (name, value, moved)


def test_the_probe_refuses_the_first_set_when_asked_for_the_second():
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    run = subprocess.run([sys.executable, str(PROBE), "--expect-second"], env=env, capture_output=True, text=True)
    assert run.returncode == 1 and "not the second set" in run.stderr
