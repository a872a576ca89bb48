"""Checkpoints: a plain dict on disk, written atomically, loaded with ``weights_only=True``.

The dict has the shape Lightning uses::

    {"format", "model", "optimizer", "scheduler", "epoch", "model_spec", "train_config", "history",
     "seed", "rng_state", "library_version", "provenance", "init_from" (warm starts only)}

A checkpoint is only used for the configuration it was trained with: :func:`check_matches` refuses
any other, naming every field that differs. This module stores and checks; training and resuming
are :mod:`thesis_lib.runtime.runs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from thesis_lib.ground.config import ModelSpec, TrainConfig
from thesis_lib.ground.files import atomic_write, record_read
from thesis_lib.runtime.provenance import cpu_model

FORMAT = 1
REQUIRED_KEYS = ("format", "model", "epoch", "model_spec", "train_config", "history", "seed", "library_version")


class CheckpointMismatchError(ValueError):
    """A checkpoint was trained with another configuration than the one asked for."""


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically: a killed process leaves the old file or the new one.

    The dict is written to a temporary file in the same directory, flushed to disk, then renamed.
    :func:`load_checkpoint` refuses a file whose dict lacks one of ``REQUIRED_KEYS``.
    """
    return atomic_write(path, lambda fh: torch.save(checkpoint, fh))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code is unpickled) and check its keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    record_read(path)
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(REQUIRED_KEYS)
    if missing:
        raise ValueError(f"{path} is not a thesis_lib checkpoint: it lacks {missing}")
    if ckpt["format"] != FORMAT:
        raise ValueError(f"{path} has checkpoint format {ckpt['format']}; this library reads format {FORMAT}")
    return ckpt


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_matches(ckpt: dict[str, Any], spec: ModelSpec, config: TrainConfig, path: Any = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` unless ``ckpt`` was trained with ``spec`` and ``config``.

    Every field must agree except ``epochs``, where the checkpoint may have fewer (it is resumed) but
    not more (a longer run is another run).
    """
    diffs = []
    want_spec = spec.to_dict()
    if ckpt["model_spec"] != want_spec:
        diffs.append(f"model_spec: checkpoint has {ckpt['model_spec']}, asked for {want_spec}")
    want = config.to_dict()
    # A field added to TrainConfig after a checkpoint was written has its default there: defaults keep
    # the behaviour that older checkpoints were trained with.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    have = {**{k: v for k, v in defaults.items() if k not in ckpt["train_config"]}, **ckpt["train_config"]}
    for key in sorted(set(want) | set(have)):
        if key != "epochs" and have.get(key) != want.get(key):
            diffs.append(f"{key}: checkpoint has {have.get(key)!r}, asked for {want.get(key)!r}")
    if have.get("epochs") != want["epochs"] and ckpt["epoch"] > want["epochs"]:
        diffs.append(f"epochs: checkpoint was trained for {ckpt['epoch']} epochs, asked for {want['epochs']}")
    if diffs:
        raise CheckpointMismatchError(
            f"{path} does not match the configuration asked for; retrain (retrain=True) or fix the "
            "configuration:\n  " + "\n  ".join(diffs)
        )


def parent_record(path: str | os.PathLike, spec: ModelSpec) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A warm start's starting checkpoint: what the new checkpoint records of it (file name, SHA-256,
    epochs, train config) and its weights. Refused unless it holds the architecture ``spec``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"init must be an existing checkpoint to start from; no file at {path} (train it first)"
        )
    parent = load_checkpoint(path)
    if parent["model_spec"] != spec.to_dict():
        raise CheckpointMismatchError(
            f"init {path} holds another architecture: {parent['model_spec']}, asked for {spec.to_dict()}"
        )
    record = {
        "file": path.name,
        "sha256": file_sha256(path),
        "epoch": int(parent["epoch"]),
        "train_config": dict(parent["train_config"]),
    }
    return record, parent["model"]


def provenance(device: str, wall_seconds: float, final: dict[str, list[float]]) -> dict[str, Any]:
    """Where and how a run was trained: device and its name, threads, torch, wall time, final metrics."""
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "wall_seconds": wall_seconds,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "final": {k: v[-1] for k, v in final.items() if v},
    }
