"""Importance-sampled likelihoods of the trained VAE experiments, on the test, validation or training images,
computed once and kept beside the checkpoint they came from.

Chapter 5 compares Burda et al.'s network trained four ways. Its recipe was chosen by looking at results,
so the choices are made on the validation split (the last 10,000 training images, which those runs never
fit) and the test set is scored once per final model; the training images show how far the test
likelihood lies from what the model reaches on the images it fitted. Every estimate is the curve
:func:`thesis_lib.mathematics.metrics.dataset_nll_curve`: the estimates for ``k = 1, 10, ..., k_max`` samples drawn
from one set of ``k_max``, so that the convergence in ``k`` costs nothing extra. The per-image values of the
largest ``k`` are kept too, for paired comparisons of two models on the same images
(:func:`thesis_lib.mathematics.metrics.paired_difference`).

    python -m thesis_lib.reproduction.likelihoods vae_nll_long iwae_nll_long --split test train   # cached, full profile
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from thesis_lib.mathematics import metrics
from thesis_lib.runtime import data, runs
from thesis_lib.reproduction import experiments
from thesis_lib.runtime.checkpoints import file_sha256
from thesis_lib.ground.cli import ArgumentParser, existing_dir, usage_errors
from thesis_lib.ground.config import ChapterConfig
from thesis_lib.ground.files import atomic_write_text, record_read
from thesis_lib.ground.paths import REPO_ROOT
from thesis_lib.runtime.process import resolve_device, restart_with_malloc_settings, tune_process
from thesis_lib.ground.validation import check_choice

SPLITS = ("test", "validation", "train")
# the test set's curve goes to Burda et al.'s k = 5000; the validation and training images are compared with
# each other and with the test curve's k = 1000 (a fifth of the cost)
FULL_KS = {"test": (1, 10, 100, 1000, 5000), "validation": (1, 10, 100, 1000), "train": (1, 10, 100, 1000)}
QUICK_KS = (1, 10, 50)
TRAIN_IMAGES = 10_000  # the first training images a model fitted, for the train-set likelihood
QUICK_IMAGES = 300
NOISE_OFFSET = {"test": 10, "validation": 13, "train": 14}  # sampling noise: a generator seeded seed + offset
BINARIZE_SEED = {"validation": 1, "train": 2}  # fixed binary images whatever the training seed (test: load_data)


def cached_metric(cfg: ChapterConfig, name: str, key: str, compute: Callable[[], Any]) -> Any:
    """A costly evaluation of experiment ``name``'s checkpoint, computed once and kept beside it.

    The value is stored in ``checkpoint_dir/<name>.metrics.json`` under ``key``, together with the
    SHA-256 of the checkpoint it came from; a retrained checkpoint invalidates it. In the quick profile
    (no checkpoint) it is always computed. The value must be JSON-serialisable.
    """
    path = experiments.checkpoint_path(experiments.get(name), cfg)
    if path is None or not path.is_file():
        return compute()
    digest = file_sha256(path)
    store = path.with_suffix(".metrics.json")
    record_read(path)
    record_read(store)
    found = _read_cache(store, digest)
    if key in found:
        return found[key]
    value = compute()
    # another process (a second likelihood task, a chapter) may have added a value meanwhile: read the
    # cache again under a lock and add this one to it, so that neither overwrites the other's
    with _locked(path):
        values = {**_read_cache(store, digest), key: value}
        atomic_write_text(store, json.dumps({"checkpoint_sha256": digest, "values": values}, indent=1,
                                            sort_keys=True) + "\n")
    return value


def _read_cache(store: Path, digest: str) -> dict[str, Any]:
    """The values in ``store`` if they belong to the checkpoint with SHA-256 ``digest``, else none."""
    cache = json.loads(store.read_text()) if store.is_file() else {}
    return dict(cache.get("values", {})) if cache.get("checkpoint_sha256") == digest else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on the file ``path`` (POSIX ``flock``; no lock where there is none)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def split_images(name: str, cfg: ChapterConfig, split: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The binary images of ``split`` for experiment ``name`` under the chapter's profile.

    ``test``: the test set as :func:`thesis_lib.reproduction.experiments.load_data` binarised it (seed 0).
    ``validation``: the images the run held out of its training set, binarised once (seed 1).
    ``train``: the first :data:`TRAIN_IMAGES` images it fitted, binarised once (seed 2).
    The binary images are the same for every training seed, so that runs of several seeds are scored
    on the same images.
    The quick profile takes the first :data:`QUICK_IMAGES` of each.
    """
    check_choice("split", split, SPLITS)
    exp = experiments.get(name)
    limit = QUICK_IMAGES if cfg.quick else None
    if split == "test":
        return tensors["x_test"][:limit]
    config = exp.config(cfg.profile, cfg.seed)
    if split == "validation" and not config.validation:
        raise ValueError(f"split must be 'test' or 'train' for {name}: it holds out no validation images")
    x_fit, _, x_val, _ = runs.split_training(config, tensors["x_train"], tensors["y_train"])
    chosen = x_val if split == "validation" else x_fit[:TRAIN_IMAGES]
    return data.binarize(chosen[:limit], seed=BINARIZE_SEED[split])


def nll_estimate(name: str, cfg: ChapterConfig, split: str = "test",
                 tensors: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Experiment ``name``'s importance-sampled negative log-likelihood on ``split``, in nats, cached.

    Full profile: ``k`` up to 5,000 on the 10,000 test images (about ten minutes for Burda et al.'s
    network on one CPU thread), up to 1,000 on the 10,000 validation or training images; quick profile:
    up to 50 on 300 images. Returns ``{"ks", "mean", "stderr", "images", "per_image"}``: the mean and standard
    error of the estimate for each ``k`` and the per-image estimates of the largest (rounded to 0.001).
    """
    check_choice("split", split, SPLITS)
    exp = experiments.get(name)
    if exp.spec.kind != "vae":
        raise ValueError(f"name must be a VAE experiment; {name} is a {exp.spec.kind}")
    t = tensors if tensors is not None else experiments.load_data(exp, cfg)
    x = split_images(name, cfg, split, t)
    ks = QUICK_KS if cfg.quick else FULL_KS[split]

    def compute() -> dict[str, Any]:
        model = experiments.run(name, cfg, tensors=t).model
        g = torch.Generator(device=resolve_device(cfg.device)).manual_seed(cfg.seed + NOISE_OFFSET[split])
        v = metrics.dataset_nll_curve(model, x, ks, generator=g).double().cpu()  # (len(ks), N)
        return {"ks": list(ks), "mean": v.mean(dim=1).tolist(), "stderr": (v.std(dim=1) / len(x) ** 0.5).tolist(),
                "images": len(x), "per_image": [round(u, 3) for u in v[-1].tolist()]}

    return cached_metric(cfg, name, f"nll_{split}_k{ks[-1]}_n{len(x)}_seed{cfg.seed}", compute)


def pytorch_examples_runs(path: Path | None = None) -> dict[str, Any]:
    """The runs of the pytorch/examples VAE recipe that ``benchmarks/pytorch_examples_vae.py`` made: its
    JSON (per seed, every epoch's train and test loss per image), recorded as read by the chapter."""
    path = REPO_ROOT / "benchmarks" / "pytorch_examples_vae.json" if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no runs of the pytorch/examples recipe at {path}: run "
                                "benchmarks/pytorch_examples_vae.py first")
    record_read(path)
    return json.loads(path.read_text())


def _main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m thesis_lib.reproduction.likelihoods", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="VAE experiments")
    parser.add_argument("--split", nargs="+", choices=SPLITS, default=["test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None, help="default: the committed checkpoints")
    args = parser.parse_args(argv)
    vaes = [n for n, e in experiments.EXPERIMENTS.items() if e.spec.kind == "vae"]
    for n in args.names:
        if n not in vaes:
            parser.error(f"NAME must be one of the VAE experiments {', '.join(vaes)}; got {n!r}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer (0, 1, 2, ...); got {args.seed}")
    if args.checkpoint_dir is not None:
        with usage_errors(parser):  # the checkpoints are read from there (a missing one is trained into it)
            existing_dir("--checkpoint-dir", args.checkpoint_dir)
    tune_process()  # this command is an entry point: it sets up its own process
    for n in args.names:
        cfg = ChapterConfig.from_parameters(chapter=experiments.get(n).chapter, seed=args.seed,
                                            checkpoint_dir=args.checkpoint_dir)
        tensors = experiments.load_data(experiments.get(n), cfg)
        for split in args.split:
            t0 = time.time()
            est = nll_estimate(n, cfg, split, tensors)
            print(f"{time.strftime('%H:%M:%S')} {n} {split}: -log p(x) {est['mean'][-1]:.2f} ± {est['stderr'][-1]:.2f} "
                  f"(k = {est['ks'][-1]}, {est['images']} images, {time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    restart_with_malloc_settings(["-m", "thesis_lib.reproduction.likelihoods", *sys.argv[1:]])
    raise SystemExit(_main())
