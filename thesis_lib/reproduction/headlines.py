"""The headline results of chapters 4 and 5 for one seed's checkpoints: what the tables over seeds show.

Chapters 4 and 5 end with tables over training seeds (:mod:`thesis_lib.publishing.seeds`). Their rows are
the 46 results of :data:`HEADLINE_NAMES`, and :func:`headlines` computes all of them for one
:class:`~thesis_lib.ground.config.ChapterConfig`: its profile, its seed and the folder of that seed's
checkpoints. Each result is computed as the chapter computes it: on the same images, from the same models
(:func:`thesis_lib.reproduction.experiments.run`), with the same evaluations in the same order and the
same seeds of the sampling noise (a generator seeded with the chapter's seed plus the chapter's offset).
Where a chapter computes a result in a cell of its own (the trend of Algorithm 2's curves, the images that
are not digits, the anomaly scores and their AUCs) the chapter calls the function here.

``python -m thesis_lib.reproduction.reproduce`` computes them once per seed, in a task that runs after the
trainings and the likelihoods it reads (:func:`thesis_lib.reproduction.tasks.run_headlines_task`), and
writes them by seed to ``OUT/seeds.json``; the chapters only read that file. For the committed checkpoints
(seed 0) the results agree with the committed ``reproduction/runs/seeds.json`` to a relative 1e-5
(``tests/test_headlines.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from thesis_lib.ground.config import ChapterConfig
from thesis_lib.mathematics import losses, metrics
from thesis_lib.reproduction import experiments, likelihoods
from thesis_lib.reproduction.experiments import ANOMALY_CLASSES, PCA_BOTTLENECKS
from thesis_lib.runtime import comparisons, data, training
from thesis_lib.runtime.process import resolve_device
from thesis_lib.runtime.training import History

#: Burda et al.'s network trained four ways (chapter 5): their test likelihoods and active units.
NLL_NAMES = ("vae_nll", "vae_nll_decay", "vae_nll_long", "iwae_nll_long")
#: The images that are not the test digits, scored by chapter 5's anomaly detection, in the table's order.
OOD_LABELS = FASHION, INVERTED, NOISY, ROTATED = ("Fashion-MNIST", "inverted", "noisy", "rotated 90°")
NOISE_SD = 0.3  # the Gaussian noise of the noisy digits, before clipping to [0, 1]
ACTIVE_THRESHOLD = 1e-2  # a latent unit is active when its encoder mean varies by more (Burda et al.)
# chapter 5's noise sources, gen(offset): a generator seeded with the chapter's seed + offset
NOISY_OFFSET, TEST_SCORES_OFFSET, OOD_SCORES_OFFSET = 13, 14, 15


def auc_name(held_out: int, label: str) -> str:
    """The name of an AUC of the model trained without digit ``held_out``: ``auc_without_0_held_out`` for
    the held-out digit (a label starting with "held-out"), ``auc_without_0_fashion_mnist`` for a set."""
    slug = "held_out" if label.startswith("held-out") else re.sub(r"\W+", "_", label).strip("_").lower()
    return f"auc_without_{held_out}_{slug}"


#: Every headline result, in the order the chapters compute them (chapter 4's, then chapter 5's).
HEADLINE_NAMES = (
    "ae_thesis_test_mse", "ae_thesis_test_slope", "ae_thesis_train_slope", "ae_thesis_extrapolated_gain_pct",
    *(name for k in PCA_BOTTLENECKS
      for name in (f"pca_test_k{k}", f"linear_test_k{k}", f"relu_test_k{k}", f"linear_largest_angle_k{k}")),
    "mse_100_test_mse", "mse_100_excess_bce", "bce_100_test_mse", "bce_100_excess_bce",
    "conv_test_mse", "fc_test_mse",
    "standard_vae_nelbo",
    *(f"{name}_{what}" for name in NLL_NAMES for what in ("test_nll", "active_units")),
    "iwae_minus_vae_test_nll",
    *(auc_name(c, label) for c in ANOMALY_CLASSES for label in ("held-out digit", *OOD_LABELS)),
)
#: The experiments whose checkpoints :func:`headlines` reads.
EXPERIMENTS_READ = (
    "ae_thesis", *(f"{kind}_{k}" for k in PCA_BOTTLENECKS for kind in ("linear_ae", "nonlinear_ae")),
    "ae_thesis_100", "ae_thesis_bce", "conv_ae", "fc_ae_like_conv",
    "vae_standard", *NLL_NAMES, *(f"vae_without_{c}" for c in ANOMALY_CLASSES),
)
#: The experiments whose test-set likelihoods it reads (:func:`thesis_lib.reproduction.likelihoods.nll_estimate`,
#: cached beside each checkpoint by the experiment's likelihood task).
LIKELIHOODS_READ = NLL_NAMES


def _generator(cfg: ChapterConfig, offset: int) -> torch.Generator:
    """Chapter 5's ``gen(offset)``: a fresh generator on the chapter's device, seeded with its seed + offset."""
    return torch.Generator(device=resolve_device(cfg.device)).manual_seed(cfg.seed + offset)


# --- chapter 4 ------------------------------------------------------------------------------------------------

def trend_fits(history: History, keys: Sequence[str] = ("train_loss", "test_loss")) -> dict[str, tuple]:
    """Chapter 4's extrapolation of Algorithm 2's curves: for each of ``keys``, the straight line in
    log10(epoch) fitted by least squares (:func:`numpy.polyfit`) to the values measured over the second half
    of training (epochs E/2 to E); ``key -> (slope per decade of epochs, the line's value at epoch 10 E)``."""
    E = history.epochs
    fits = {}
    for key in keys:
        pts = [(e, v) for e, v in history.evaluated(key) if e >= E / 2]
        slope, intercept = np.polyfit(np.log10([p[0] for p in pts]), [p[1] for p in pts], 1)
        fits[key] = (slope, intercept + slope * math.log10(10 * E))
    return fits


def algorithm_2(cfg: ChapterConfig, t: Mapping[str, Tensor]) -> dict[str, float]:
    """``ae_thesis``: its test MSE per pixel (chapter 4's cell "test L_MSE per image") and the trend of its
    curves and the test gain it extrapolates to 10 E epochs, in per cent (the cell after it)."""
    run = experiments.run("ae_thesis", cfg, tensors=t)
    test_sum = training.evaluate(run.model, losses.reconstruction_objective("mse"), t["x_test"])  # per image
    hist = run.history
    fits = trend_fits(hist)
    gain = hist.last("test_loss") - fits["test_loss"][1]
    return {"ae_thesis_test_mse": test_sum / t["x_test"].shape[1], "ae_thesis_test_slope": fits["test_loss"][0],
            "ae_thesis_train_slope": fits["train_loss"][0],
            "ae_thesis_extrapolated_gain_pct": 100 * gain / hist.last("test_loss")}


def pca_results(cfg: ChapterConfig, t: Mapping[str, Tensor]) -> dict[str, float]:
    """Chapter 4's section "Autoencoders and PCA": for each bottleneck k the test MSE per pixel of PCA, of the
    linear and of the ReLU autoencoder, and the largest principal angle (degrees) between the linear decoder's
    subspace and PCA's (:func:`thesis_lib.runtime.comparisons.pca_versus_autoencoders`)."""
    ae_models = {k: (experiments.run(f"linear_ae_{k}", cfg, tensors=t).model,
                     experiments.run(f"nonlinear_ae_{k}", cfg, tensors=t).model)
                 for k in PCA_BOTTLENECKS}
    x_fit = t["x_train"][: cfg.pick(quick=experiments.QUICK_TRAIN_LIMIT, full=len(t["x_train"]))]  # trained on
    rows = comparisons.pca_versus_autoencoders(x_fit, t["x_test"], ae_models).rows
    found = {}
    for k, r in rows.items():
        for kind in ("pca", "linear", "relu"):
            found[f"{kind}_test_k{k}"] = getattr(r, f"{kind}_test")
        found[f"linear_largest_angle_k{k}"] = math.degrees(r.angles.max())
    return found


def loss_results(cfg: ChapterConfig, t: Mapping[str, Tensor]) -> dict[str, float]:
    """Chapter 4's section "MSE or BCE as the training loss": Algorithm 2's network after 100 epochs trained
    with either loss, its test MSE per pixel and its excess BCE per pixel (the BCE less that of a perfect
    reconstruction, averaged over the test images)."""
    x = t["x_test"]
    per_pixel = losses.reconstruction_objective("mse", reduction="mean")
    per_pixel_bce = losses.reconstruction_objective("bce")
    bce_floor = losses.image_bce(x, x).mean().item()  # L_BCE(psi, psi)
    found = {}
    for loss, name in (("mse", "ae_thesis_100"), ("bce", "ae_thesis_bce")):
        model = experiments.run(name, cfg, tensors=t).model
        found[f"{loss}_100_test_mse"] = training.evaluate(model, per_pixel, x)
        found[f"{loss}_100_excess_bce"] = training.evaluate(model, per_pixel_bce, x) - bce_floor
    return found


def architecture_results(cfg: ChapterConfig, t: Mapping[str, Tensor]) -> dict[str, float]:
    """Chapter 4's section "Convolutional or fully connected": the test MSE per pixel of each network."""
    per_pixel = losses.reconstruction_objective("mse", reduction="mean")
    return {f"{short}_test_mse": training.evaluate(experiments.run(name, cfg, tensors=t).model, per_pixel,
                                                   t["x_test"])
            for short, name in (("conv", "conv_ae"), ("fc", "fc_ae_like_conv"))}


def autoencoder_headlines(cfg: ChapterConfig, t: Mapping[str, Tensor] | None = None) -> dict[str, float]:
    """Chapter 4's headline results; ``t`` the chapter's tensors (:func:`~thesis_lib.reproduction.experiments.load_data`
    of ``ae_thesis``), loaded when not given."""
    t = experiments.load_data(experiments.get("ae_thesis"), cfg) if t is None else t
    return {**algorithm_2(cfg, t), **pca_results(cfg, t), **loss_results(cfg, t), **architecture_results(cfg, t)}


# --- chapter 5 ------------------------------------------------------------------------------------------------

def likelihood_results(cfg: ChapterConfig, tn: Mapping[str, Tensor]) -> dict[str, float]:
    """Chapter 5's likelihoods on binarised MNIST: each run's importance-sampled test -log p(x) at the largest
    k (cached beside its checkpoint), its active latent units, and the paired difference of the two final
    runs' per-image estimates, iwae_nll_long - vae_nll_long. ``tn``: the tensors of ``vae_nll``."""
    found, per_image = {}, {}
    for name in NLL_NAMES:
        model = experiments.run(name, cfg, tensors=tn).model
        est = likelihoods.nll_estimate(name, cfg, "test", tensors=tn)
        found[f"{name}_test_nll"] = est["mean"][-1]
        found[f"{name}_active_units"] = int((metrics.latent_activity(model, tn["x_test"]) > ACTIVE_THRESHOLD).sum())
        per_image[name] = torch.tensor(est["per_image"], dtype=torch.float64)
    found["iwae_minus_vae_test_nll"] = metrics.paired_difference(per_image["iwae_nll_long"],
                                                                 per_image["vae_nll_long"])[0]
    return found


def out_of_distribution(x: Tensor, cfg: ChapterConfig, fashion: Tensor | None = None) -> dict[str, Tensor]:
    """The images chapter 5's anomaly detection scores besides the test digits ``x``: Fashion-MNIST (when
    ``fashion`` is given), the digits with inverted grey levels, with Gaussian noise of standard deviation
    :data:`NOISE_SD` clipped to [0, 1] (drawn from ``gen(13)``), and rotated by 90°; label -> images."""
    sets = {} if fashion is None else {FASHION: fashion.to(x.device)}
    sets[INVERTED] = 1.0 - x
    noise = torch.randn(x.shape, generator=_generator(cfg, NOISY_OFFSET), device=resolve_device(cfg.device))
    sets[NOISY] = (x + NOISE_SD * noise).clamp(0, 1)
    sets[ROTATED] = torch.rot90(x.reshape(-1, 28, 28), 1, dims=(1, 2)).reshape(-1, 784)
    return sets


def anomaly_scores(models: Mapping[int, nn.Module], x: Tensor, sets: Mapping[str, Tensor],
                   cfg: ChapterConfig) -> dict[int, dict[str, Tensor]]:
    """Each held-out model's anomaly scores (:func:`thesis_lib.mathematics.metrics.anomaly_scores`, the negative
    ELBO over 10 draws of z, 2 in the quick profile): of the test digits ``x`` (noise ``gen(14)``) and of each
    of ``sets`` (noise ``gen(15)``, afresh for each); held-out digit -> ``{"test": ..., label: ...}``."""
    n = cfg.pick(quick=2, full=10)
    return {c: {"test": metrics.anomaly_scores(m, x, n, _generator(cfg, TEST_SCORES_OFFSET)),
                **{k: metrics.anomaly_scores(m, v, n, _generator(cfg, OOD_SCORES_OFFSET)) for k, v in sets.items()}}
            for c, m in models.items()}


def anomaly_aucs(scores: Mapping[int, Mapping[str, Tensor]], y: Tensor) -> dict[int, dict[str, float]]:
    """The ROC AUCs of :func:`anomaly_scores` (:func:`thesis_lib.mathematics.metrics.roc_auc`), the normal images
    being the test digits each model was trained on (labels ``y``): first the held-out digit
    (``"held-out digit c"``), then each set; held-out digit -> label -> AUC."""
    return {c: {f"held-out digit {c}": metrics.roc_auc(s["test"][y != c], s["test"][y == c]),
                **{k: metrics.roc_auc(s["test"][y != c], v) for k, v in s.items() if k != "test"}}
            for c, s in scores.items()}


def anomaly_results(cfg: ChapterConfig, t: Mapping[str, Tensor]) -> dict[str, float]:
    """Chapter 5's anomaly detection: the AUC of each model trained without a digit, for its held-out digit
    and for each set of :func:`out_of_distribution`, by :func:`auc_name`. Fashion-MNIST must be installed."""
    x = t["x_test"]
    problems = data.verify(cfg.data_dir, "fashion_mnist")
    if problems:
        raise FileNotFoundError(f"the anomaly AUCs score Fashion-MNIST, which is not installed: {problems[0]}")
    fashion, _ = data.load("fashion_mnist", "test", cfg.data_dir, limit=len(x))
    models = {c: experiments.run(f"vae_without_{c}", cfg, tensors=t).model for c in ANOMALY_CLASSES}
    scores = anomaly_scores(models, x, out_of_distribution(x, cfg, fashion), cfg)
    return {auc_name(c, label): v for c, row in anomaly_aucs(scores, t["y_test"]).items() for label, v in row.items()}


def vae_headlines(cfg: ChapterConfig, t: Mapping[str, Tensor] | None = None,
                  tn: Mapping[str, Tensor] | None = None) -> dict[str, float]:
    """Chapter 5's headline results; ``t`` and ``tn`` the chapter's tensors of ``vae_standard`` (grey levels)
    and of ``vae_nll`` (the binarised test set), loaded when not given."""
    t = experiments.load_data(experiments.get("vae_standard"), cfg) if t is None else t
    tn = experiments.load_data(experiments.get("vae_nll"), cfg) if tn is None else tn
    standard = experiments.run("vae_standard", cfg, tensors=t)
    return {"standard_vae_nelbo": standard.history.last("test_loss"),  # one sample per image, as the script
            **likelihood_results(cfg, tn), **anomaly_results(cfg, t)}


def headlines(cfg: ChapterConfig) -> dict[str, float]:
    """Every headline result of chapters 4 and 5 for ``cfg``'s profile, seed and checkpoints: name -> value,
    in the order of :data:`HEADLINE_NAMES` (the grey-level tensors are loaded once for both chapters)."""
    t = experiments.load_data(experiments.get("ae_thesis"), cfg)  # = vae_standard's: MNIST, grey levels
    found = {**autoencoder_headlines(cfg, t), **vae_headlines(cfg, t)}
    if set(found) != set(HEADLINE_NAMES):
        raise RuntimeError(f"the headline results are not HEADLINE_NAMES: {sorted(set(found) ^ set(HEADLINE_NAMES))}")
    return {name: float(found[name]) for name in HEADLINE_NAMES}
