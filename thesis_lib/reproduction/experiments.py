"""Every trained model of chapters 4 and 5, named once: its architecture, data and both profiles.

The chapters and the command line train or load them through :func:`run`, so the notebook and a
background regeneration of a checkpoint use the same definition. The ``full`` profile trains with
the hyperparameters given here and keeps its checkpoint in ``checkpoints/<name>.pt`` (committed);
the ``quick`` profile trains a few epochs on a subset from scratch and saves nothing.
:mod:`thesis_lib.reproduction.regenerate` is the command line that lists them and regenerates their
checkpoints; :mod:`thesis_lib.reproduction.reproduce` trains them all, for several seeds, on Dask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thesis_lib.runtime import data
from thesis_lib.mathematics.autoencoders import THESIS_WIDTHS
from thesis_lib.ground.config import ChapterConfig, ModelSpec, TrainConfig
from thesis_lib.runtime.process import resolve_device
from thesis_lib.runtime.runs import Store, TrainResult, train_or_load
from thesis_lib.runtime.training import Loop

QUICK_TRAIN_LIMIT = 2048  # images the quick profile trains on
QUICK_TEST_LIMIT = 1000  # images the quick profile evaluates on
TEST_BINARIZATION_SEED = 0  # the binary test images of the runs on binarised MNIST, whatever their seed


@dataclass(frozen=True)
class Experiment:
    name: str
    chapter: str
    spec: ModelSpec
    full: TrainConfig
    quick_epochs: int = 2
    data: str = "mnist"  # "mnist" or "mnist_canvas" (two digits side by side, Section 2.3)
    about: str = ""
    init_from: str = ""  # full profile: start from this experiment's checkpoint (warm start); quick: from scratch
    # the splits on which chapter 5 estimates the model's likelihood (thesis_lib.reproduction.likelihoods); the
    # reproduction computes them as a task of their own once the model is trained
    likelihoods: tuple[str, ...] = ()

    def config(self, profile: str, seed: int = 0) -> TrainConfig:
        """The training configuration of ``profile``; the seed is the chapter's."""
        if profile == "full":
            return self.full.replace(seed=seed)
        held_out = min(self.full.validation, QUICK_TRAIN_LIMIT // 8)  # a validation split keeps its role
        return self.full.replace(epochs=self.quick_epochs, train_limit=QUICK_TRAIN_LIMIT, seed=seed,
                                 validation=held_out)


def _ae(widths: list[int] | tuple[int, ...], **kw: Any) -> ModelSpec:
    return ModelSpec("fc_autoencoder", {"widths": widths, **kw})


def _vae(hidden: list[int], latent: int, **kw: Any) -> ModelSpec:
    return ModelSpec("vae", {"input_dim": 784, "hidden": hidden, "latent_dim": latent, **kw})


PCA_BOTTLENECKS = (2, 3, 12, 32)
BETAS = (0.25, 1.0, 4.0)
ANOMALY_CLASSES = (0, 9)
THESIS_AE = TrainConfig(epochs=1000, batch_size=512, lr=3e-4, optimizer="adam", loss="mse")  # Algorithm 2
STANDARD_VAE = TrainConfig(epochs=10, batch_size=128, lr=1e-3, loss="elbo")  # pytorch/examples vae
# Burda et al.'s network: its recipe (how long, which schedule, which model to report) was chosen by looking at
# results, so it trains on 50,000 images and holds the last 10,000 training images out as a validation split
# (Larochelle's 50,000/10,000 split); the test set is scored once per final model.
BURDA_VAE = TrainConfig(epochs=500, batch_size=100, lr=1e-3, loss="elbo", binarize=True, validation=10_000)
CHOSEN_ON_VALIDATION = ("test", "validation")  # the likelihoods of a run among which validation chooses
FINAL = (*CHOSEN_ON_VALIDATION, "train")  # ... and of a final model, set beside the images it fitted


def _chapter_4() -> list[Experiment]:
    """Chapter 4: Algorithm 2 and its variants, the PCA comparison, convolutions, canvases."""
    exps = [
        Experiment("ae_thesis", "04", _ae(THESIS_WIDTHS), THESIS_AE,
                   about="Algorithm 2: 784-128-64-12-3 and back, Adam 3e-4, MSE, batch 512, 1000 epochs"),
        Experiment("ae_thesis_10000", "04", _ae(THESIS_WIDTHS), THESIS_AE.replace(epochs=10_000),
                   about="Algorithm 2 for the 10,000 epochs of the thesis's text (its code: 1000), same seed and "
                         "recipe as ae_thesis: its first 1000 epochs are ae_thesis's"),
        Experiment("ae_thesis_100", "04", _ae(THESIS_WIDTHS), THESIS_AE.replace(epochs=100),
                   about="Algorithm 2 stopped after 100 epochs, the MSE side of the MSE-versus-BCE comparison"),
        Experiment("ae_thesis_bce", "04", _ae(THESIS_WIDTHS), THESIS_AE.replace(loss="bce", epochs=100),
                   about="Algorithm 2 with the BCE of Example 2.2.2 instead of MSE, 100 epochs"),
        Experiment("conv_ae", "04", ModelSpec("conv_autoencoder", {"latent_dim": 3}),
                   TrainConfig(epochs=30, batch_size=128, lr=1e-3), quick_epochs=1,
                   about="convolutional autoencoder, bottleneck 3, Adam 1e-3, batch 128, 30 epochs"),
        Experiment("fc_ae_like_conv", "04", _ae(THESIS_WIDTHS),
                   TrainConfig(epochs=30, batch_size=128, lr=1e-3), quick_epochs=1,
                   about="Algorithm 2's network trained like the convolutional one, for a fair comparison"),
        Experiment("canvas_ae", "04", _ae([1568, 256, 64, 8]), TrainConfig(epochs=100, batch_size=256, lr=1e-3),
                   data="mnist_canvas", quick_epochs=1,
                   about="autoencoder on canvases of two digits side by side (Section 2.3's application)"),
    ]
    for k in PCA_BOTTLENECKS:
        exps.append(Experiment(f"linear_ae_{k}", "04", ModelSpec("linear_autoencoder", {"widths": [784, k]}),
                               TrainConfig(epochs=100, batch_size=512, lr=1e-3),
                               about=f"linear autoencoder 784-{k}-784 (identity activations), to compare with PCA"))
        exps.append(Experiment(f"nonlinear_ae_{k}", "04", _ae([*THESIS_WIDTHS[:3], k]),
                               TrainConfig(epochs=100, batch_size=512, lr=1e-3),
                               about=f"ReLU autoencoder 784-128-64-{k} and back"))
    return exps


def _chapter_5() -> list[Experiment]:
    """Chapter 5: the standard VAE and its variants, Burda et al.'s network for likelihoods."""
    exps = [
        Experiment("vae_standard", "05", _vae([400], 20), STANDARD_VAE, quick_epochs=1,
                   about="the standard VAE of pytorch/examples: 784-400-20, Adam 1e-3, batch 128, 10 epochs, "
                         "grey levels"),
        Experiment("vae_nll", "05", _vae([200, 200], 50, activation="tanh"),
                   BURDA_VAE, quick_epochs=1, likelihoods=CHOSEN_ON_VALIDATION,
                   about="Burda et al.'s one-stochastic-layer VAE 784-200-200-50 (tanh) on dynamically "
                         "binarised MNIST"),
        Experiment("vae_nll_decay", "05", _vae([200, 200], 50, activation="tanh"),
                   BURDA_VAE.replace(epochs=300, lr_decay=0.992),
                   quick_epochs=1, likelihoods=CHOSEN_ON_VALIDATION,
                   about="vae_nll's model with the step size decaying by 0.992 per epoch (1e-3 to 9e-5), 300 epochs"),
        Experiment("vae_nll_long", "05", _vae([200, 200], 50, activation="tanh"),
                   BURDA_VAE.replace(epochs=400, lr_decay=0.993),
                   quick_epochs=1, init_from="vae_nll", likelihoods=FINAL,
                   about="vae_nll's weights after 500 epochs trained 400 more with the step size decaying "
                         "by 0.993 per epoch (1e-3 to 6e-5)"),
        Experiment("iwae_nll_long", "05", _vae([200, 200], 50, activation="tanh"),
                   BURDA_VAE.replace(epochs=400, lr_decay=0.993, loss="iwae", iw_samples=5),
                   quick_epochs=1, init_from="vae_nll", likelihoods=FINAL,
                   about="vae_nll_long with the importance-weighted bound (k = 5) as the objective instead of "
                         "the ELBO: same start, same steps"),
        Experiment("vae_2d", "05", _vae([400], 2), STANDARD_VAE.replace(epochs=50), quick_epochs=1,
                   about="a VAE with a 2-dimensional latent space, to draw its manifold"),
    ]
    for beta in BETAS:
        if beta != 1.0:
            exps.append(Experiment(f"vae_beta_{str(beta).replace('.', 'p')}", "05", _vae([400], 20),
                                   STANDARD_VAE.replace(beta=beta), quick_epochs=1,
                                   about=f"the standard VAE with the KL term weighted by beta = {beta}"))
    for c in ANOMALY_CLASSES:
        exps.append(Experiment(f"vae_without_{c}", "05", _vae([400], 20),
                               STANDARD_VAE.replace(epochs=20, exclude_class=c), quick_epochs=1,
                               about=f"the standard VAE trained without the digit {c}, for anomaly detection"))
    return exps


EXPERIMENTS = {e.name: e for e in _chapter_4() + _chapter_5()}


def beta_experiment(beta: float) -> str:
    """The experiment name of the standard VAE with KL weight ``beta``."""
    return "vae_standard" if beta == 1.0 else f"vae_beta_{str(beta).replace('.', 'p')}"


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {', '.join(sorted(EXPERIMENTS))}; got {name!r}")
    return EXPERIMENTS[name]


def epochs_before(name: str, profile: str = "full") -> int:
    """Epochs that experiment ``name``'s starting weights were trained for before its own: the sum over
    its chain of warm starts (``init_from``) in the full profile, 0 in the quick one (which starts from
    scratch) and for an experiment that is not a warm start. A warm start's curve continues its parent's
    at epoch ``epochs_before(name) + 1``."""
    parent = get(name).init_from
    if profile == "quick" or not parent:
        return 0
    return get(parent).full.epochs + epochs_before(parent, profile)


def load_data(exp: Experiment, cfg: ChapterConfig) -> dict[str, torch.Tensor]:
    """Training and test tensors for ``exp`` on the chapter's device (test subset in the quick profile)."""
    device = resolve_device(cfg.device)
    x, y = data.load("mnist", "train", cfg.data_dir)
    xt, yt = data.load("mnist", "test", cfg.data_dir, limit=QUICK_TEST_LIMIT if cfg.quick else 0)
    if exp.data == "mnist_canvas":
        x, y = data.compose_canvas(x, y, n_digits=2, seed=cfg.seed)
        xt, yt = data.compose_canvas(xt, yt, n_digits=2, seed=cfg.seed + 1)
    if exp.full.binarize:  # one binarisation of the test set for every seed; training resamples every batch
        xt = data.binarize(xt, seed=TEST_BINARIZATION_SEED)
    return {"x_train": x.to(device), "y_train": y.to(device), "x_test": xt.to(device), "y_test": yt.to(device)}


def checkpoint_path(exp: Experiment, cfg: ChapterConfig) -> Path | None:
    """``checkpoint_dir/<name>.pt`` in the full profile; ``None`` (nothing saved) in the quick one."""
    return None if cfg.quick else cfg.checkpoint_dir / f"{exp.name}.pt"


def run(name: str, cfg: ChapterConfig, progress: bool = False,
        tensors: dict[str, torch.Tensor] | None = None, checkpoint_every: int = 50) -> TrainResult:
    """Train or load experiment ``name`` under the chapter's profile; returns a ``TrainResult``.

    ``tensors`` (from :func:`load_data`) saves reloading the data when a chapter runs several experiments.
    ``checkpoint_every``: epochs between the saves of the full profile (an interrupted run resumes there).
    """
    exp = get(name)
    t = tensors if tensors is not None else load_data(exp, cfg)
    if exp.data == "mnist_canvas" and t["x_train"].shape[1] != 1568:
        t = load_data(exp, cfg)
    path = checkpoint_path(exp, cfg)
    init = path.with_name(f"{exp.init_from}.pt") if exp.init_from and path is not None else None
    store = None if path is None else Store(path, cfg.retrain, every=checkpoint_every, include_optimizer=False)
    loop = Loop(progress=progress, eval_every=max(1, exp.config(cfg.profile).epochs // 100))
    return train_or_load(exp.spec, exp.config(cfg.profile, cfg.seed), (t["x_train"], t["y_train"]), t["x_test"],
                         store=store, device=resolve_device(cfg.device), loop=loop, init=init)
