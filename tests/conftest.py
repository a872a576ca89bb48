"""Test-wide setting: torch uses only the CPUs no other process is busy on.

Next to a busy process, torch's default of one thread per CPU makes every operation wait for the
slowest thread (the suite took 5 minutes instead of 22 s beside a training run); see
:func:`thesis_lib.runtime.process.choose_threads`. No test depends on the thread count.
"""

import torch

from thesis_lib.runtime.process import choose_threads

torch.set_num_threads(choose_threads())
