"""Configuration: one frozen dataclass per concern, built from a chapter's parameters.

The ground floor of the library: it imports only :mod:`thesis_lib.ground.validation` and
:mod:`thesis_lib.ground.paths`, and every other module may import it. The names that the rest of the
library implements (losses, optimisers, model kinds) are listed here, so a configuration can be
checked without importing what it names; the modules that implement them are tested to agree.

Sizes and hyperparameters live here and in the chapters' parameter cells, never as literals
scattered through the code. Every dataclass validates itself on construction, so a bad value
fails before any work starts, with a message that names the parameter.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thesis_lib.ground.paths import default_checkpoint_dir, default_data_dir, default_figures_dir
from thesis_lib.ground.validation import (
    check_choice,
    check_nonnegative_float,
    check_nonnegative_int,
    check_positive_float,
    check_positive_int,
)

PROFILES = ("quick", "full")
"""``quick``: a few epochs on a subset, for CI on a CPU; ``full``: the thesis's own hyperparameters."""

DEVICES = ("auto", "cpu", "cuda")
CHAPTERS = ("01", "02", "03", "04", "05", "06")  # 06: the errata, executed like a chapter

#: glibc's allocator settings for training (:mod:`thesis_lib.runtime.process`): allocations up to 32 MiB (the
#: largest threshold glibc accepts on 64-bit systems) come from the heap, and free heap memory goes
#: back to the kernel only beyond 1 GiB. Environment variables, read when a process starts: the
#: entry points set them for the processes they start (``book/build.py`` for the chapters' kernels).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}

#: Training objectives (:func:`thesis_lib.runtime.training.make_objective`): reconstruction errors of an
#: autoencoder, the negative ELBO of a VAE, the importance-weighted bound.
LOSSES = ("mse", "bce", "elbo", "iwae")

#: Optimisers (:func:`thesis_lib.runtime.training.make_optimizer`): ``"adam"`` is torch's fused Adam, the fast
#: path; ``"thesis_adam"`` is Algorithm 1 written out (:class:`thesis_lib.mathematics.optimizers.Adam`), the same
#: update to float rounding; ``"sgd"`` is the thesis's stochastic gradient descent.
OPTIMIZERS = ("adam", "thesis_adam", "sgd")

#: Model kinds that :func:`thesis_lib.runtime.models.build_model` builds.
MODEL_KINDS = ("mlp", "fc_autoencoder", "linear_autoencoder", "conv_autoencoder", "vae")


@dataclass(frozen=True)
class ChapterConfig:
    """The parameters every chapter accepts (papermill injects them), checked and resolved.

    ``data_dir``, ``figures_dir`` and ``checkpoint_dir`` of ``None`` mean the defaults.
    """

    chapter: str
    profile: str = "full"  # "quick" for CI, "full" for the thesis's hyperparameters
    seed: int = 0  # every random choice of a chapter derives from it
    device: str = "auto"  # "auto" picks CUDA when present
    data_dir: Path = field(default_factory=default_data_dir)
    retrain: bool = False  # True: train again even when a matching checkpoint exists
    figures_dir: Path = field(default_factory=default_figures_dir)
    checkpoint_dir: Path = field(default_factory=default_checkpoint_dir)

    def __post_init__(self) -> None:
        check_choice("chapter", self.chapter, CHAPTERS)
        check_choice("profile", self.profile, PROFILES)
        check_nonnegative_int("seed", self.seed)
        check_choice("device", self.device, DEVICES)
        if not isinstance(self.retrain, bool):
            raise ValueError(f"retrain must be True or False; got {self.retrain!r}")

    @classmethod
    def from_parameters(
        cls,
        chapter: str,
        profile: str = "full",
        seed: int = 0,
        device: str = "auto",
        data_dir: str | os.PathLike | None = None,
        retrain: bool = False,
        figures_dir: str | os.PathLike | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
    ) -> ChapterConfig:
        """Build the configuration from a notebook's parameter cell (``None`` means the default)."""
        kwargs: dict[str, Any] = dict(chapter=chapter, profile=profile, seed=seed, device=device, retrain=retrain)
        paths = {"data_dir": data_dir, "figures_dir": figures_dir, "checkpoint_dir": checkpoint_dir}
        kwargs.update({key: Path(value).expanduser() for key, value in paths.items() if value is not None})
        return cls(**kwargs)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """Return the value for the current profile: ``cfg.pick(quick=2, full=1000)``."""
        return quick if self.quick else full


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (Algorithm 2 generalised).

    The defaults are the thesis's autoencoder: Adam with learning rate 3e-4, MSE, batch 512
    (Algorithm 2; its pseudo-code runs 1000 epochs, its text says 10,000).
    """

    epochs: int = 1000  # passes over the training set
    batch_size: int = 512  # examples per optimiser step; the last batch of an epoch may be smaller
    lr: float = 3e-4  # the optimiser's step size
    optimizer: str = "adam"  # one of OPTIMIZERS; "thesis_adam" runs Algorithm 1 as written
    loss: str = "mse"  # one of LOSSES
    beta: float = 1.0  # weight of the KL term when loss == "elbo"
    seed: int = 0  # seeds the initial weights, the batch order and any sampling noise
    train_limit: int = 0  # use only the first n training images; 0 means all
    binarize: bool = False  # dynamic binarisation: each batch is resampled as Bernoulli(pixel) draws
    exclude_class: int = -1  # leave this label out of the training set (anomaly detection); -1 keeps all
    lr_decay: float = 1.0  # epoch e (from 1) uses lr * lr_decay ** (e - 1); 1.0 keeps the step size constant
    iw_samples: int = 1  # importance samples per example of the "iwae" loss (Burda et al. 2015); 1 otherwise
    # Hold out the last n training images (after exclude_class and train_limit) as a validation split:
    # training evaluates on it ("val_loss") and the test set is scored once, after the last epoch. 0: none.
    validation: int = 0

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("loss", self.loss, LOSSES)
        check_nonnegative_float("beta", self.beta)
        check_nonnegative_int("seed", self.seed)
        check_nonnegative_int("train_limit", self.train_limit)
        check_positive_int("iw_samples", self.iw_samples)
        check_nonnegative_int("validation", self.validation)
        if self.iw_samples != 1 and self.loss != "iwae":
            raise ValueError(
                f"iw_samples must be 1 unless loss is 'iwae'; got {self.iw_samples} with loss {self.loss!r}"
            )
        if self.loss == "iwae" and self.beta != 1.0:
            raise ValueError(f"beta must be 1.0 for loss 'iwae' (the bound has no KL weight); got {self.beta!r}")
        decay = self.lr_decay
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
            raise ValueError(f"lr_decay must be a number in (0, 1]; got {decay!r}")
        if not isinstance(self.binarize, bool):
            raise ValueError(f"binarize must be True or False; got {self.binarize!r}")
        label = self.exclude_class
        if isinstance(label, bool) or not isinstance(label, int) or label < -1:
            raise ValueError(f"exclude_class must be a label (0, 1, ...) or -1 for none; got {label!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build and with which arguments: ``ModelSpec("fc_autoencoder", {"widths": [...]})``.

    ``kind`` is one of :data:`MODEL_KINDS`; :func:`thesis_lib.runtime.models.build_model` builds it.
    """

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, MODEL_KINDS)
        # Store a plain, JSON-like copy so that it round-trips through a checkpoint unchanged.
        object.__setattr__(self, "params", _plain(dict(self.params)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        return cls(kind=d["kind"], params=d.get("params", {}))


def _plain(value: Any) -> Any:
    """Tuples become lists, recursively, so that configurations compare equal after a round trip."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
