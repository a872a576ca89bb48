r"""Principal component analysis: the linear baseline for the autoencoders of Section 2.3.

An autoencoder with a bottleneck of width $k$ compresses $x \in \mathbb{R}^D$ to $k$ numbers. Among all
maps that compress and expand *affinely*, the best in squared error on a data set is PCA: centre the
data, project onto the $k$ eigenvectors of the covariance with the largest eigenvalues, and add the
mean back. Baldi & Hornik (1989), *Neural networks and principal component analysis: learning from
examples without local minima*, showed that a linear autoencoder trained by squared error has no
other local minima than this projection (its decoder spans the same subspace, in some basis). The
chapter on autoencoders measures both statements on MNIST with :func:`fit_pca`,
:func:`reconstruction_error` and :func:`principal_angles`.

Conventions. Data are rows, ``x`` of shape ``(n, D)``. The covariance is
$C = \frac1n \sum_{i} (x_i - \bar x)(x_i - \bar x)^\top$ (divisor $n$, numpy's ``bias=True``), so that
the mean reconstruction error of the fitting data is exactly the sum of the discarded eigenvalues,
$\frac1n \sum_i \|x_i - \hat x_i\|^2 = \sum_{j > k} \lambda_j$. Fitting runs in float64 whatever the
input's dtype; :func:`transform` and :func:`inverse_transform` return the input's dtype. The data are
trusted (finite, of the fitted width); the settings ``k``, ``method`` and ``reduction`` are checked.

Thesis: Definitions 2.3.1-2.3.3 (the linear autoencoder PCA is compared with); Section 2.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thesis_lib.mathematics.losses import image_mse
from thesis_lib.ground.validation import check_choice, check_positive_int

__all__ = ["PCA", "fit_pca", "transform", "inverse_transform", "reconstruct", "reconstruction_error",
           "principal_angles"]

METHODS = ("eigh", "svd")
_CHUNK = 8192  # rows per block when accumulating the covariance


@dataclass(frozen=True)
class PCA:
    r"""A fitted PCA: the mean, the first $k$ principal axes and every eigenvalue of the covariance.

    ``mean`` is $\bar x$, shape ``(D,)``; ``components`` holds the axes $v_1, \dots, v_k$ as orthonormal
    *rows*, shape ``(k, D)``, by decreasing variance, each with its largest-magnitude entry positive
    (a deterministic sign, as scikit-learn's ``svd_flip``); ``eigenvalues`` are all
    $\lambda_1 \ge \dots \ge \lambda_D \ge 0$ of $C$ (divisor $n$), shape ``(D,)``. All float64.
    """

    mean: Tensor  # (D,)
    components: Tensor  # (k, D)
    eigenvalues: Tensor  # (D,)
    n_samples: int

    @property
    def k(self) -> int:
        """The number of components kept (the bottleneck it is compared with)."""
        return self.components.shape[0]

    @property
    def dim(self) -> int:
        """:math:`D`, the dimension of the data."""
        return self.components.shape[1]

    @property
    def explained_variance(self) -> Tensor:
        r""":math:`\lambda_1, \dots, \lambda_k`, the variances along the kept axes."""
        return self.eigenvalues[: self.k]

    @property
    def discarded_variance(self) -> float:
        r""":math:`\sum_{j>k} \lambda_j`: the mean squared reconstruction error on the fitting data."""
        return float(self.eigenvalues[self.k :].sum())

    def truncated(self, k: int) -> PCA:
        """The same fit with only the first ``k`` components (no refitting: the axes are nested)."""
        check_positive_int("k", k)
        if k > self.k:
            raise ValueError(f"k must be at most the number of fitted components {self.k}; got {k}")
        return PCA(mean=self.mean, components=self.components[:k], eigenvalues=self.eigenvalues,
                   n_samples=self.n_samples)


def _flip_signs(vectors: Tensor) -> Tensor:
    """Make the largest-magnitude entry of each row positive."""
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(vectors.gather(1, idx))
    signs[signs == 0] = 1.0
    return vectors * signs


def fit_pca(x: Tensor, k: int, method: str = "eigh") -> PCA:
    r"""Fit PCA with ``k`` components to the rows of ``x`` (shape ``(n, D)``).

    ``method="eigh"`` accumulates :math:`C` in float64 blocks and calls :func:`torch.linalg.eigh`
    (cheap for large :math:`n`); ``method="svd"`` takes :func:`torch.linalg.svd` of the centred data,
    :math:`X - \bar x = U S V^\top`, whose right singular vectors are the axes and
    :math:`\lambda_j = s_j^2 / n`. Both give the same result up to rounding (tested). When
    :math:`n < D` the eigenvalues beyond rank are (numerically) zero.
    """
    n, d = x.shape
    check_positive_int("k", k)
    if k > d:
        raise ValueError(f"k must be at most the data dimension D = {d}; got {k}")
    check_choice("method", method, METHODS)
    mean = x.double().mean(dim=0)  # (D,)
    if method == "svd":
        xc = x.double() - mean  # (n, D)
        _, s, vh = torch.linalg.svd(xc, full_matrices=False)  # s: (min(n, D),), vh: (min(n, D), D)
        eigenvalues = torch.zeros(d, dtype=torch.float64, device=x.device)
        eigenvalues[: s.numel()] = s.pow(2) / n
        axes = vh[:k]
    else:
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for start in range(0, n, _CHUNK):
            block = x[start : start + _CHUNK].double() - mean  # (b, D)
            cov += block.T @ block
        cov /= n  # C with divisor n
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        eigenvalues = evals.flip(0).clamp_min(0.0)  # descending; tiny negative rounding -> 0
        axes = evecs.flip(1)[:, :k].T  # (k, D)
    return PCA(mean=mean, components=_flip_signs(axes.contiguous()), eigenvalues=eigenvalues, n_samples=n)


def transform(pca: PCA, x: Tensor) -> Tensor:
    r"""The codes :math:`z = V_k^\top (x - \bar x)`: ``(B, D)`` -> ``(B, k)``, in ``x``'s dtype."""
    z = (x.double() - pca.mean.to(x.device)) @ pca.components.to(x.device).T  # (B, k)
    return z.to(x.dtype)


def inverse_transform(pca: PCA, z: Tensor) -> Tensor:
    r"""Back to data space, :math:`\hat x = \bar x + V_k z`: ``(B, k)`` -> ``(B, D)``, in ``z``'s dtype."""
    x_hat = z.double() @ pca.components.to(z.device) + pca.mean.to(z.device)  # (B, D)
    return x_hat.to(z.dtype)


def reconstruct(pca: PCA, x: Tensor) -> Tensor:
    r"""The orthogonal projection :math:`\bar x + V_k V_k^\top (x - \bar x)` of each row of ``x``."""
    return inverse_transform(pca, transform(pca, x.double())).to(x.dtype)


def reconstruction_error(pca: PCA, x: Tensor, reduction: str = "sum") -> Tensor:
    r"""Squared reconstruction error per example, shape ``(B,)``, computed in float64.

    ``reduction="sum"`` sums over the :math:`D` coordinates (the thesis's :math:`L_{MSE}` of Example
    2.2.2 on an image); ``"mean"`` divides by :math:`D` (the per-pixel mean squared error). On the
    fitting data the mean over examples of the ``"sum"`` form is :attr:`PCA.discarded_variance`.
    """
    check_choice("reduction", reduction, ("sum", "mean"))
    x = x.double()
    return image_mse(x, reconstruct(pca, x), reduction=reduction)


def _orthonormal_basis(a: Tensor) -> Tensor:
    """An orthonormal basis of the column space of ``a`` (QR in float64): ``(D, p)``."""
    q, _ = torch.linalg.qr(a.detach().double())
    return q  # (D, p), orthonormal columns


def principal_angles(a: Tensor, b: Tensor) -> Tensor:
    r"""Principal angles :math:`0 \le \theta_1 \le \dots \le \theta_m \le \pi/2` between two column spaces.

    ``a`` is ``(D, p)`` and ``b`` is ``(D, q)``, each with linearly independent columns (not checked;
    not necessarily orthonormal); the result has :math:`m = \min(p, q)` entries, in radians, float64,
    in *increasing* order (``scipy.linalg.subspace_angles`` returns the same angles decreasing).
    :math:`\theta_m = 0` means one subspace contains the other.

    With orthonormal bases :math:`Q_a, Q_b` (QR), the cosines are the singular values of
    :math:`Q_a^\top Q_b`. Small angles are computed from their sines instead, the singular values
    of :math:`Q_b - Q_a Q_a^\top Q_b` (the part of :math:`Q_b` outside :math:`\operatorname{span} Q_a`),
    which keeps them accurate where :math:`\arccos` loses digits (Knyazev & Argentati 2002, as scipy).
    """
    qa, qb = _orthonormal_basis(a), _orthonormal_basis(b)
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # the residual below needs span(qa) to be the larger space
    m = qa.T @ qb  # (p, q), p >= q
    cosines = torch.linalg.svdvals(m).clamp(-1.0, 1.0)  # descending -> angles ascending
    sines = torch.linalg.svdvals(qb - qa @ m).clamp(-1.0, 1.0).flip(0)  # ascending -> angles ascending
    # cos^2 >= 1/2 means theta <= pi/4, where the sine is the accurate one
    return torch.where(cosines.pow(2) >= 0.5, torch.arcsin(sines), torch.arccos(cosines))
