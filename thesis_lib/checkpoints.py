"""Checkpoints: a plain dict on disk, written atomically, loaded with ``weights_only=True``.

The dict has the shape Lightning uses::

    {"format", "model", "optimizer", "epoch", "model_spec", "train_config", "history",
     "seed", "rng_state", "library_version", "provenance"}

A checkpoint is only used for the configuration it was trained with: :func:`check_matches` refuses
any other, naming every field that differs. :func:`train_or_load` is what the chapters call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import thesis_lib
from thesis_lib.config import ModelSpec, TrainConfig
from thesis_lib.files import atomic_write
from thesis_lib.provenance import cpu_model
from thesis_lib.training import History

FORMAT = 1
REQUIRED_KEYS = ("format", "model", "epoch", "model_spec", "train_config", "history", "seed", "library_version")


class CheckpointMismatchError(ValueError):
    """A checkpoint was trained with another configuration than the one asked for."""


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically: a killed process leaves the old file or the new one.

    The dict is written to a temporary file in the same directory, flushed to disk, then renamed.
    """
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint is missing the keys {missing}; it needs {list(REQUIRED_KEYS)}")
    return atomic_write(path, lambda fh: torch.save(checkpoint, fh))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code is unpickled) and check its keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(REQUIRED_KEYS)
    if missing:
        raise ValueError(f"{path} is not a thesis_lib checkpoint: it lacks {missing}")
    if ckpt["format"] != FORMAT:
        raise ValueError(f"{path} has checkpoint format {ckpt['format']}; this library reads format {FORMAT}")
    return ckpt


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
        if key == "epochs":
            continue
        if have.get(key) != want.get(key):
            diffs.append(f"{key}: checkpoint has {have.get(key)!r}, asked for {want.get(key)!r}")
    if have.get("epochs") != want["epochs"] and ckpt["epoch"] > want["epochs"]:
        diffs.append(f"epochs: checkpoint was trained for {ckpt['epoch']} epochs, asked for {want['epochs']}")
    if diffs:
        raise CheckpointMismatchError(
            f"{path} does not match the configuration asked for; retrain (retrain=True) or fix the "
            "configuration:\n  " + "\n  ".join(diffs)
        )


@dataclass
class TrainResult:
    """What :func:`train_or_load` returns: the model (in eval mode), its history and provenance."""

    model: nn.Module
    history: History
    provenance: dict[str, Any]
    trained: bool  # False when everything came from the checkpoint


def _init_source(init: str | os.PathLike, spec: ModelSpec) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A warm start's starting checkpoint: what it records of it (file name, SHA-256, epochs, train
    config), and its weights."""
    path = Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"init must be an existing checkpoint to start from; no file at {path} (train it first)")
    parent = load_checkpoint(path)
    if parent["model_spec"] != spec.to_dict():
        raise CheckpointMismatchError(
            f"init {path} holds another architecture: {parent['model_spec']}, asked for {spec.to_dict()}"
        )
    record = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "epoch": int(parent["epoch"]),
        "train_config": dict(parent["train_config"]),
    }
    return record, parent["model"]


def _provenance(device: str, wall: float, history: History) -> dict[str, Any]:
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "wall_seconds": wall,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "final": {k: v[-1] for k, v in history.metrics.items() if v},
    }


def train_or_load(
    spec: ModelSpec,
    config: TrainConfig,
    x_train: Tensor,
    x_test: Tensor | None = None,
    *,
    path: str | os.PathLike | None = None,
    retrain: bool = False,
    device: str = "cpu",
    y_train: Tensor | None = None,
    y_test: Tensor | None = None,
    progress: bool = True,
    checkpoint_every: int = 50,
    eval_every: int = 1,
    include_optimizer: bool = True,
    init: str | os.PathLike | None = None,
) -> TrainResult:
    """Load the model from ``path`` when a matching, finished checkpoint is there; otherwise train it.

    A matching checkpoint with fewer epochs than asked for is resumed. A checkpoint with another
    configuration is refused (:class:`CheckpointMismatchError`), never silently used. With
    ``path=None`` nothing is saved. Training saves every ``checkpoint_every`` epochs and at the end.
    ``config.train_limit`` > 0 trains on the first ``train_limit`` rows of ``x_train`` only.

    ``init`` names another checkpoint of the same architecture whose weights are the starting point
    (a warm start: the optimiser starts afresh). The new checkpoint records the SHA-256 of that file
    and is refused if the file changes later, since it would no longer be the run it describes.
    """
    from thesis_lib.models import build_model
    from thesis_lib.optimizers import make_optimizer
    from thesis_lib.training import fit, make_objective, seed_everything

    objective = make_objective(config.loss, config.beta, config.binarize, config.iw_samples)
    ckpt = None
    if path is not None and Path(path).is_file() and not retrain:
        ckpt = load_checkpoint(path, map_location=device)
        check_matches(ckpt, spec, config, path)
    init_from, init_weights = _init_source(init, spec) if init is not None else (None, None)
    if ckpt is not None and ckpt.get("init_from", {}).get("sha256") != (init_from or {}).get("sha256"):
        raise CheckpointMismatchError(
            f"{path} was trained from the weights {ckpt.get('init_from')}, asked for {init_from}; retrain it"
        )
    seed_everything(config.seed)
    model = build_model(spec).to(device)
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr=config.lr)
    history = History()
    start = 0
    wall_before = 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        history = History.from_dict(ckpt["history"])
        start = ckpt["epoch"]
        wall_before = float(ckpt.get("provenance", {}).get("wall_seconds", 0.0))
        if start >= config.epochs:
            model.eval()
            return TrainResult(model, history, dict(ckpt.get("provenance", {})), trained=False)
        if "optimizer" not in ckpt:
            raise CheckpointMismatchError(f"{path} holds no optimiser state, so it cannot be resumed; retrain it")
        optimizer.load_state_dict(ckpt["optimizer"])
        history.truncate(start)
        torch.set_rng_state(ckpt["rng_state"])
    elif init_from is not None:
        model.load_state_dict(init_weights)
    if config.exclude_class >= 0:
        if y_train is None:
            raise ValueError("exclude_class needs the training labels: pass y_train")
        keep = y_train != config.exclude_class
        x_train, y_train = x_train[keep], y_train[keep]
    if config.train_limit:
        x_train = x_train[: config.train_limit]
        y_train = None if y_train is None else y_train[: config.train_limit]
    t0 = time.perf_counter()

    def make_ckpt(epoch: int, hist: History) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "model": model.state_dict(),
            "epoch": epoch,
            "model_spec": spec.to_dict(),
            "train_config": config.to_dict(),
            "history": hist.to_dict(),
            "seed": config.seed,
            "rng_state": torch.get_rng_state(),
            "library_version": thesis_lib.__version__,
            "provenance": _provenance(device, wall_before + time.perf_counter() - t0, hist),
        }
        if init_from is not None:
            out["init_from"] = init_from
        if include_optimizer or epoch < config.epochs:
            out["optimizer"] = optimizer.state_dict()
        return out

    def set_lr(epoch: int) -> None:  # the step size of epoch `epoch` depends on the epoch alone: resumable
        for group in optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay ** (epoch - 1)

    set_lr(start + 1)

    def on_epoch_end(epoch: int, hist: History) -> None:
        set_lr(epoch + 1)
        if path is not None and (epoch % checkpoint_every == 0 or epoch == config.epochs):
            save_checkpoint(path, make_ckpt(epoch, hist))

    history = fit(
        model, objective, optimizer, x_train, y_train, x_test, y_test,
        epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
        start_epoch=start, history=history, progress=progress, eval_every=eval_every,
        on_epoch_end=on_epoch_end,
    )
    model.eval()
    return TrainResult(model, history, _provenance(device, wall_before + time.perf_counter() - t0, history), True)
