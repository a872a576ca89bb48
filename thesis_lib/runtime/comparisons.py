r"""Comparisons that put a trained model's numbers in context.

:func:`pca_versus_autoencoders` is the table of the chapter on autoencoders (section
"Autoencoders and PCA"): for each bottleneck :math:`k` it sets principal component analysis, the
best *affine* compressor to :math:`k` numbers in squared error, against a linear autoencoder
(identity activations) and a ReLU autoencoder with the same bottleneck.

Errors are mean squared errors *per pixel* (the thesis's :math:`L_{MSE}` of Example 2.2.2 divided
by the number of coordinates :math:`D`), averaged over the images. Three training errors must come
in increasing order, whatever the training did:

1. PCA's, :math:`\sum_{j > k} \lambda_j / D`, the eigenvalues left out (the closed form; it is
   measured too, as a check);
2. that of the orthogonal projection onto the subspace spanned by the linear decoder,
   :math:`(\operatorname{tr} C - \operatorname{tr} Q^\top C Q) / D` for an orthonormal basis
   :math:`Q` of it: PCA is the best projection of rank :math:`k`;
3. the linear autoencoder's own: its affine map onto that subspace is no better than the
   orthogonal projection onto it.

Baldi & Hornik (1989) showed that a linear autoencoder trained with squared error has no local
minima besides PCA's projection, so trained long enough the three agree and the principal angles
between the decoder's subspace and PCA's are zero.

Thesis: Definitions 2.3.1-2.3.3 (the linear autoencoder), Section 2.3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thesis_lib.mathematics import pca as pca_module
from thesis_lib.mathematics.losses import reconstruction_objective
from thesis_lib.runtime.training import evaluate

__all__ = ["BottleneckRow", "PCAComparison", "decoder_subspace", "pca_versus_autoencoders",
           "superposition_defect"]


@dataclass(frozen=True)
class BottleneckRow:
    """One bottleneck :math:`k` of :func:`pca_versus_autoencoders`; errors are MSE per pixel."""

    k: int
    pca_test: float  # PCA fitted on the training images, on the test images
    linear_test: float  # the linear autoencoder on the test images
    relu_test: float  # the ReLU autoencoder on the test images
    pca_train_closed: float  # sum of the discarded eigenvalues / D
    pca_train: float  # PCA's error measured on the training images
    projection_train: float  # orthogonal projection onto the linear decoder's subspace
    linear_train: float  # the linear autoencoder on the training images
    angles: Tensor  # principal angles (radians, increasing), decoder subspace vs PCA's, (k,)

    @property
    def linear_over_pca(self) -> float:
        """Relative difference of the linear autoencoder's test error to PCA's."""
        return self.linear_test / self.pca_test - 1

    @property
    def largest_angle_degrees(self) -> float:
        return math.degrees(float(self.angles.max()))


@dataclass(frozen=True)
class PCAComparison:
    """The result of :func:`pca_versus_autoencoders`: the PCA fit and one row per bottleneck."""

    pca: pca_module.PCA  # fitted with the largest bottleneck; truncate for smaller ones
    rows: dict[int, BottleneckRow]

    def format(self) -> str:
        """The table as text, one line per bottleneck, at the precision the book prints."""
        lines = [
            f"{'k':>3} | {'test MSE per pixel':^38} | {'train MSE per pixel':^42} | {'largest':>7}",
            f"{'':>3} | {'PCA':>8} {'linear':>8} {'ReLU':>8} {'lin/PCA':>10} | {'PCA closed':>10} "
            f"{'PCA':>10} {'projection':>10} {'linear':>9} | {'angle':>7}",
        ]
        for k, r in self.rows.items():
            lines.append(
                f"{k:>3} | {r.pca_test:8.5f} {r.linear_test:8.5f} {r.relu_test:8.5f} "
                f"{r.linear_over_pca:+10.2%} | {r.pca_train_closed:10.6f} {r.pca_train:10.6f} "
                f"{r.projection_train:10.6f} {r.linear_train:9.6f} | "
                f"{r.largest_angle_degrees:6.2f}°"
            )
        return "\n".join(lines)


def decoder_subspace(decoder: nn.Module) -> Tensor:
    r"""A ``(D, k)`` matrix whose columns span the image of a linear decoder, minus its offset.

    The decoder is a :class:`~thesis_lib.mathematics.networks.DeepNetwork` with identity activations,
    :math:`z \mapsto W_L \cdots W_1 z + c`; the result is :math:`W_L \cdots W_1`, in float64.
    """
    names = getattr(decoder, "activations", None)
    if not names or any(name != "identity" for name in names):
        raise ValueError("decoder must be a DeepNetwork with identity activations (a linear "
                         f"decoder); got activations {names}")
    weights = [layer.weight.detach().double() for layer in reversed(decoder.layers)]
    return weights[0] if len(weights) == 1 else torch.linalg.multi_dot(weights)


def pca_versus_autoencoders(
    x_fit: Tensor, x_test: Tensor, autoencoders: Mapping[int, tuple[nn.Module, nn.Module]]
) -> PCAComparison:
    r"""Compare PCA with a linear and a ReLU autoencoder at each bottleneck :math:`k`.

    Thesis: Definitions 2.3.1-2.3.3, Section 2.3 (the "linear" autoencoder of Algorithm 2 against
    the linear autoencoder in the algebraic sense and against PCA).

    ``x_fit`` (``(n, D)``) are the images the autoencoders were trained on, PCA is fitted on them;
    ``x_test`` (``(m, D)``) the images they are evaluated on. ``autoencoders`` maps each bottleneck
    :math:`k` to ``(linear, relu)``: a linear autoencoder whose ``decoder`` has identity activations
    (:func:`~thesis_lib.mathematics.autoencoders.linear_autoencoder`) and any model reconstructing its input.
    PCA is fitted once with the largest :math:`k` and truncated (its axes are nested). Returns a
    :class:`PCAComparison`; see the module docstring for the columns.
    """
    dim = x_fit.shape[1]
    per_pixel = reconstruction_objective("mse", reduction="mean")
    fitted = pca_module.fit_pca(x_fit, max(autoencoders))
    total_variance = fitted.eigenvalues.sum().item()  # tr C
    centred = x_fit.double() - fitted.mean
    rows = {}
    for k, (linear, relu) in autoencoders.items():
        p = fitted.truncated(k)
        basis = decoder_subspace(linear.decoder)  # (D, k)
        q = torch.linalg.qr(basis).Q
        captured = (centred @ q).pow(2).sum(dim=1).mean().item()  # tr Q^T C Q
        rows[k] = BottleneckRow(
            k=k,
            pca_test=pca_module.reconstruction_error(p, x_test, "mean").mean().item(),
            linear_test=evaluate(linear, per_pixel, x_test),
            relu_test=evaluate(relu, per_pixel, x_test),
            pca_train_closed=p.discarded_variance / dim,
            pca_train=pca_module.reconstruction_error(p, x_fit, "mean").mean().item(),
            projection_train=(total_variance - captured) / dim,
            linear_train=evaluate(linear, per_pixel, x_fit),
            angles=pca_module.principal_angles(basis, p.components.T),
        )
    return PCAComparison(fitted, rows)


def superposition_defect(f: Callable[[Tensor], Tensor], u: Tensor, v: Tensor) -> float:
    r"""How far ``f`` is from affine on the inputs ``u`` and ``v`` (batches of the same shape).

    Thesis: Definitions 2.3.1-2.3.3 (a "linear" autoencoder is affine only with the identity).

    With :math:`g = f - f(0)`, an affine :math:`f` satisfies :math:`g(u + v) = g(u) + g(v)`. The
    defect is :math:`\|g(u + v) - g(u) - g(v)\| / (\|g(u)\| + \|g(v)\|)`, Frobenius norms over
    the whole batch: 0 for an affine map (up to rounding), of order 1 for a map far from affine.
    """
    f0 = f(torch.zeros_like(u))
    g_u, g_v = f(u) - f0, f(v) - f0
    size = (g_u.norm() + g_v.norm()).item()
    return ((f(u + v) - f0) - g_u - g_v).norm().item() / size
