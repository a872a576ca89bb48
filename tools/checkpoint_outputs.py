"""SHA-256 of what every committed checkpoint's model computes on a fixed input, one line per checkpoint.

    .venv/bin/python tools/checkpoint_outputs.py > before.txt   # ... refactor ...
    .venv/bin/python tools/checkpoint_outputs.py | diff before.txt -

A refactor of the library must leave every line unchanged on the same machine (the hashes depend on the
CPU's kernels, so they are compared within one machine, never committed).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from thesis_lib.runtime.checkpoints import load_checkpoint
from thesis_lib.runtime.models import build_model
from thesis_lib.ground.config import ModelSpec

ROOT = Path(__file__).resolve().parent.parent


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _tensors(out[k])]
    return [t for v in vars(out).values() for t in _tensors(v)] if hasattr(out, "__dict__") else []


def fingerprint(path: Path) -> str:
    ckpt = load_checkpoint(path)
    model = build_model(ModelSpec.from_dict(ckpt["model_spec"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    params = ckpt["model_spec"]["params"]
    features = params.get("input_dim") or (params["widths"][0] if "widths" in params else None)
    torch.manual_seed(0)  # the input, and a VAE's noise
    x = torch.rand(16, features) if features else torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        out = model(x)
    digest = hashlib.sha256()
    for t in _tensors(out):
        digest.update(t.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    for p in sorted((ROOT / "checkpoints").glob("*.pt")):
        print(p.name, fingerprint(p))
    sys.exit(0)
