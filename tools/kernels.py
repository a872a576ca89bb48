#!/usr/bin/env python
"""Which CPU kernels torch runs in this environment, and a fingerprint of their results.

``make nbval-kernels`` (part of ``make test``) re-runs nbval on the committed chapters under a second set of
kernels, the environment in the Makefile's ``SECOND_KERNELS``:

- ``ATEN_CPU_CAPABILITY=default``: torch's own vectorised operators (element-wise maths such as the
  sigmoid and softplus, the normal sampler behind ``torch.randn``) without AVX2/AVX-512;
- ``MKL_CBWR=COMPATIBLE``: MKL's matrix products and LAPACK on their portable code path;
- ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN's convolutions without AVX.

A committed number whose printed digits depend on the kernels then differs from its reference, as it would
on a reader's CPU. numpy's OpenBLAS is left on its own kernels (``OPENBLAS_CORETYPE`` is a workaround for
some CPUs on these machines and is not ours to change).

Usage::

    python tools/kernels.py                     # JSON: the capability and a hash per operation
    python tools/kernels.py --expect-second     # exit 1 unless the second set is in effect
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import torch


def _hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:12]


def fingerprint() -> dict[str, str]:
    """A hash of one result per kind of kernel, on inputs made without a random generator."""
    grid = torch.arange(1, 513 * 257 + 1, dtype=torch.float64)
    a = torch.sin(grid).reshape(513, 257)  # float64 sin: the same on every kernel set
    b = torch.cos(grid[: 257 * 129]).reshape(257, 129)
    spd = a[:50, :50] @ a[:50, :50].T + torch.eye(50, dtype=torch.float64)
    x = 5 * a.float().reshape(-1)[:100_000]
    image, kernel = a.float()[:112, :28].reshape(4, 1, 28, 28), b.float()[:40, :5].reshape(8, 1, 5, 5)
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "matmul_float32": _hash(a.float() @ b.float()),
        "solve_float64": _hash(torch.linalg.solve(spd, spd[:, 0])),
        "sigmoid_float32": _hash(torch.sigmoid(x)),
        "softplus_float32": _hash(torch.nn.functional.softplus(x)),
        "conv2d_float32": _hash(torch.nn.functional.conv2d(image, kernel)),
        "normal_sampler": _hash(torch.empty(1000).normal_(generator=torch.Generator().manual_seed(0))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/kernels.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-second", action="store_true",
                        help="fail unless torch runs its default (not vectorised) kernels")
    args = parser.parse_args(argv)
    prints = fingerprint()
    print(json.dumps(prints, indent=1))
    if args.expect_second and prints["capability"] != "DEFAULT":
        print(f"tools/kernels.py: error: torch runs {prints['capability']} kernels, not the second set "
              "(ATEN_CPU_CAPABILITY=default)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
