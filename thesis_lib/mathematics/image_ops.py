r"""Image operators of thesis section 1.3: byte <-> float pixels, flattening, convolution, pooling.

Shapes follow torch: a batch of images is ``(B, C, M, N)`` with ``M`` rows and ``N`` columns, so
the thesis's pixel :math:`\psi_{ij}` is ``images[..., i - 1, j - 1]`` (the thesis counts from 1).
Everything is written with tensor indexing and ``Tensor.unfold``; ``torch.nn.functional`` is used
only as the reference in the tests.

The tensors are trusted (torch refuses a kernel larger than the image or with other input channels);
the sizes that users choose (``pool``, ``stride``, ``resolution``, ``window``) are checked.

Notation clash in the thesis: :math:`s` is the kernel size in Proposition 1.3.10 but the stride in
Propositions 1.3.11-1.3.13. Here the kernel size is ``kernel.shape[-2:]`` and the stride is ``stride``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from thesis_lib.ground.validation import check_positive_int

__all__ = [
    "normalise",
    "quantise",
    "quantisation_error",
    "flatten_image",
    "unflatten_image",
    "output_resolution",
    "convolve",
    "avg_pool",
    "min_pool",
    "max_pool",
]


# ---------------------------------------------------------------- private checks


def _check_pair(name: str, value: Any) -> tuple[int, int]:
    """Return ``value`` as a pair of positive ints; an int ``p`` means ``(p, p)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a positive integer or a pair of them; got {value!r}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer or a pair of them; got {value!r}")
        return int(value[0]), int(value[1])
    check_positive_int(name, value)
    return value, value


def _check_fits(name: str, window: tuple[int, int], resolution: tuple[int, int]) -> None:
    """Raise unless the window fits inside the image (no padding is done here)."""
    if window[0] > resolution[0] or window[1] > resolution[1]:
        raise ValueError(
            f"{name} of size {window} must fit inside the image of resolution {resolution} "
            f"(each side at most the image's)"
        )


def _windows(images: Tensor, window: tuple[int, int], stride: int) -> Tensor:
    """All ``window``-sized patches at the given stride: ``(..., M, N) -> (..., M1, N1, p1, p2)``.

    Patch ``[..., i, j, m, n]`` is ``images[..., i * stride + m, j * stride + n]`` (0-based), the
    0-based form of the corrected index :math:`((i-1)s + m, (j-1)s + n)` of Eqs. (1.7)-(1.10).
    """
    return images.unfold(-2, window[0], stride).unfold(-2, window[1], stride)  # (..., M1, N1, p1, p2)


# ---------------------------------------------------------------- pixels


def normalise(images: Tensor) -> Tensor:
    r"""Map byte images, values in :math:`\Psi = \{0, \dots, 255\}`, to the normed domain :math:`\Psi' \subset [0, 1]`.

    Thesis: Definition 1.3.5.

    :math:`\Psi' = \frac{1}{255}\Psi`, so every value is divided by 255. ``images`` may be ``uint8``
    or any real dtype holding whole numbers 0..255 (not checked); the result is ``float32`` of the same shape.
    """
    # Definition 1.3.5: Psi' = Psi / 255
    return images.to(torch.float32) / 255.0


def quantise(p: Tensor) -> Tensor:
    r"""Turn normed pixels :math:`p \in [0, 1]` back into bytes: :math:`\psi = \mathrm{round}(255\,p)` as ``uint8``.

    Thesis: Lemma 1.3.6.

    Rounding is to the nearest integer with ties to even (``torch.round``, as Python's ``round``).
    ``quantise(normalise(x)) == x`` for every byte ``x``.

    Erratum: the statement and the proof of Lemma 1.3.6 say to "round each entry :math:`p_i` to an
    integer"; rounding :math:`p_i \in [0, 1]` gives only 0 or 1. It is :math:`255\,p_i` that must be
    rounded, as the formula :math:`\psi_i \approx 255 \cdot p_i` intends. The lemma also leaves the tie rule open
    (:math:`255\,p_i = k + \tfrac12`); we round ties to even. The error is at most :math:`1/510`
    either way (see :func:`quantisation_error`). ``p`` is not checked to lie in [0, 1]; values outside
    are clamped to 0 or 255.
    """
    scaled = p.double() * 255.0 if not p.is_floating_point() else p * 255.0
    # Lemma 1.3.6: psi_i ~ round(255 * p_i)
    return torch.round(scaled).clamp_(0, 255).to(torch.uint8)


def quantisation_error(p: Tensor) -> Tensor:
    r"""Elementwise error :math:`|p - \mathrm{round}(255\,p)/255|` made by :func:`quantise`; at most :math:`1/510`.

    Thesis: Lemma 1.3.6.

    The result has ``p``'s dtype if that is floating point, ``float32`` otherwise. The bound
    :math:`1/510` is attained at the midpoints :math:`p = (k + \tfrac12)/255`.
    """
    q = quantise(p)
    dtype = p.dtype if p.is_floating_point() else torch.float32
    return (p.to(dtype) - q.to(dtype) / 255.0).abs()


# ---------------------------------------------------------------- flattening


def flatten_image(img: Tensor) -> Tensor:
    r"""Row-major flattening of the last two dimensions: ``(..., M, N) -> (..., M * N)``.

    Thesis: Lemma 1.3.7.

    Pixel :math:`\psi_{ij}` (1-based) lands at position :math:`(i - 1) N + j` of the array: the rows
    :math:`\widehat\psi_1, \dots, \widehat\psi_M` are laid end to end. Leading (batch, channel)
    dimensions are kept, so a ``(C, M, N)`` image becomes ``(C, M N)`` (torch's channel-first layout;
    the lemma's array of :math:`d`-channel pixels would be ``(M N, d)``, the transpose).

    Erratum: Definition 1.3.3 calls :math:`M` the horizontal and :math:`N` the vertical number of
    pixels, but Lemma 1.3.7 treats :math:`\psi` as an :math:`M \times N` matrix with :math:`M` rows
    :math:`\widehat\psi_i = (\psi_{i1}, \dots, \psi_{iN})`, so :math:`M` counts rows (the vertical
    extent). We follow Lemma 1.3.7: ``M`` is the number of rows (torch's ``H``), ``N`` of columns.
    """
    return img.reshape(*img.shape[:-2], img.shape[-2] * img.shape[-1])


def unflatten_image(v: Tensor, resolution: tuple[int, int]) -> Tensor:
    r"""Inverse of :func:`flatten_image`: ``(..., M * N) -> (..., M, N)`` for ``resolution = (M, N)``.

    Thesis: Lemma 1.3.7.
    """
    m, n = _check_pair("resolution", resolution)
    return v.reshape(*v.shape[:-1], m, n)


# ---------------------------------------------------------------- sizes


def output_resolution(
    resolution: tuple[int, int], window: tuple[int, int] | int, stride: tuple[int, int] | int = 1
) -> tuple[int, int]:
    r"""Resolution :math:`(M_1, N_1)` after sliding a ``window`` over ``resolution`` with ``stride``, no padding.

    Thesis: Proposition 1.3.10, Proposition 1.3.11.

    :math:`M_1 = \lfloor (M_0 - p_1)/s \rfloor + 1`, :math:`N_1 = \lfloor (N_0 - p_2)/s \rfloor + 1`.

    Erratum: Propositions 1.3.10-1.3.13 give :math:`M_1 = M_0 - p_1 + 1` (resp. :math:`M_0 - s + 1`),
    which is the stride-1 case only; Propositions 1.3.11-1.3.13 introduce a stride :math:`s` and never
    use it.
    """
    res = _check_pair("resolution", resolution)
    win = _check_pair("window", window)
    step = _check_pair("stride", stride)
    _check_fits("window", win, res)
    return (res[0] - win[0]) // step[0] + 1, (res[1] - win[1]) // step[1] + 1


# ---------------------------------------------------------------- convolution


def convolve(images: Tensor, kernel: Tensor, stride: int = 1) -> Tensor:
    r"""Multi-channel image convolution without padding (cross-correlation, no kernel flip).

    Thesis: Proposition 1.3.10, Eq. (1.7).

    ``images`` ``(B, C_in, M, N)`` and ``kernel`` ``(C_out, C_in, s_1, s_2)`` give ``(B, C_out, M_1, N_1)``;
    a single ``(M, N)`` image with an ``(s_1, s_2)`` kernel gives ``(M_1, N_1)``. With 1-based indices

    .. math::
        (\psi_1)_{o,ij} = \sum_{c=1}^{C_{in}} \sum_{m=1}^{s_1} \sum_{n=1}^{s_2}
            (\psi_0)_{c,\,(i-1)\sigma + m,\,(j-1)\sigma + n}\; k_{oc,mn},
        \qquad M_1 = \lfloor (M_0 - s_1)/\sigma \rfloor + 1,

    with stride :math:`\sigma` (the thesis's stride-free case is :math:`\sigma = 1`). The kernel is not
    flipped, so this is cross-correlation, exactly what ``torch.nn.functional.conv2d`` computes.
    The thesis's kernel is square (:math:`s_1 = s_2 = s`); rectangular kernels are allowed here.
    The result has the promoted dtype of ``images`` and ``kernel``.

    Erratum: Eq. (1.7) as printed, :math:`\sum_{m,n=1}^{s} (\psi_0)_{m+i,\,n+j} k_{mn}` with
    :math:`(i, j) \in \Omega_1 = \{1, \dots, M_0 - s + 1\} \times \{1, \dots, N_0 - s + 1\}`, starts the
    window at :math:`(i + 1, j + 1)`: at :math:`i = M_0 - s + 1, m = s` it reads row :math:`M_0 + 1`,
    outside the image, and row 1 is never read. The right index is :math:`(\psi_0)_{i+m-1,\,j+n-1}`.
    Eq. (1.7) also has no stride and no channel sum; we add both (the channel sum is the standard
    multi-channel convolution). A ``(C_out, C_in, s, s)`` kernel changes the number of channels from
    ``C_in`` to ``C_out``, which Definition 1.3.8 ("T does not change the number of channels d")
    excludes; image operators as used in practice (and in Corollary 1.3.9's layers) do change it.
    Finally, the sums leave :math:`\Psi = \{0, \dots, 255\}`, so :math:`T_{conv}` maps into real-valued
    images, not into :math:`\Psi_{\Omega_1}` as stated.
    """
    check_positive_int("stride", stride)
    size = (kernel.shape[-2], kernel.shape[-1])
    dtype = torch.promote_types(images.dtype, kernel.dtype)
    if images.ndim == 2:
        return convolve(images[None, None].to(dtype), kernel[None, None].to(dtype), stride)[0, 0]
    patches = _windows(images.to(dtype), size, stride)  # (B, C_in, M1, N1, s1, s2)
    # Eq. (1.7), corrected: sum_{c,m,n} psi_{c, (i-1)stride+m, (j-1)stride+n} k_{o c m n}
    return torch.einsum("bcijmn,ocmn->boij", patches, kernel.to(dtype))  # (B, C_out, M1, N1)


# ---------------------------------------------------------------- pooling


def _pool_args(images: Any, pool: Any, stride: Any) -> tuple[tuple[int, int], int | None]:
    """Validate the sizes shared by the three pooling operators; return ``(window, stride)``."""
    window = _check_pair("pool", pool)
    if stride is not None:
        check_positive_int("stride", stride)
    _check_fits("pool", window, (images.shape[-2], images.shape[-1]))
    return window, stride


def _pooled_windows(images: Tensor, window: tuple[int, int], stride: int | None) -> Tensor:
    """Pooling windows; when ``stride`` is None it is the window size per axis, as in torch."""
    if stride is None:
        return images.unfold(-2, window[0], window[0]).unfold(-2, window[1], window[1])  # (..., M1, N1, p1, p2)
    return _windows(images, window, stride)  # (..., M1, N1, p1, p2)


def avg_pool(images: Tensor, pool: tuple[int, int] | int, stride: int | None = None) -> Tensor:
    r"""Average pooling without padding: the mean of each ``pool`` window, windows ``stride`` apart.

    Thesis: Proposition 1.3.11, Eq. (1.8).

    .. math::
        (\psi_1)_{ij} = \frac{1}{p_1 p_2} \sum_{(k,l) \in I} (\psi_0)_{(i-1)s + k,\,(j-1)s + l},
        \qquad M_1 = \lfloor (M_0 - p_1)/s \rfloor + 1,\ N_1 = \lfloor (N_0 - p_2)/s \rfloor + 1.

    ``images`` is ``(..., M, N)`` with any leading (batch, channel) dimensions, floating point;
    channels are pooled separately, so their number is kept. ``pool`` is ``(p_1, p_2)`` or an int
    ``p`` for ``(p, p)``. ``stride`` defaults to the pool size (per axis), as in torch.

    Erratum: Proposition 1.3.11 defines a stride :math:`s` that Eq. (1.8) never uses, and gives
    :math:`M_1 = M_0 - p_1 + 1`, :math:`N_1 = N_0 - p_2 + 1`, which holds for stride 1 only; with
    stride :math:`s` it is :math:`\lfloor (M_0 - p_1)/s \rfloor + 1` (likewise :math:`N_1`).
    Eq. (1.8), :math:`(\psi_0)_{m+i,\,n+j}` with :math:`(m, n) \in I = \{1..p_1\} \times \{1..p_2\}` and
    :math:`i \in \{1, \dots, M_0 - p_1 + 1\}`, starts the window at :math:`(i+1, j+1)` and reads row
    :math:`M_0 + 1` (outside the image) at :math:`i = M_0 - p_1 + 1, m = p_1`, the same off-by-one as
    Eq. (1.7). We implement the index :math:`((i-1)s + m,\,(j-1)s + n)`, which is
    :math:`(i + m - 1,\,j + n - 1)` at stride 1.
    """
    window, stride = _pool_args(images, pool, stride)
    patches = _pooled_windows(images, window, stride)  # (..., M1, N1, p1, p2)
    # Eq. (1.8), corrected: mean over the window shifted by (i-1)s, (j-1)s
    return patches.mean(dim=(-2, -1))  # (..., M1, N1)


def min_pool(images: Tensor, pool: tuple[int, int] | int, stride: int | None = None) -> Tensor:
    r"""Min pooling without padding: the minimum of each ``pool`` window, windows ``stride`` apart.

    Thesis: Proposition 1.3.12, Eq. (1.9).

    .. math::
        (\psi_1)_{ij} = \min_{(k,l) \in I} (\psi_0)_{(i-1)s + k,\,(j-1)s + l}.

    ``images`` is ``(..., M, N)``, any real dtype (kept). Arguments and output resolution as in
    :func:`avg_pool`.

    Erratum: Eq. (1.9), :math:`(\psi_1)_{ij} := \min_{(k,l) \in I} (\psi_0)_{kl}`, does not depend on
    :math:`(i, j)`: every output pixel would be the minimum of the same top-left
    :math:`p_1 \times p_2` block. The window must be shifted by :math:`(i-1, j-1)` times the stride, as
    above. As in Proposition 1.3.11, the stride :math:`s` is defined but unused and
    :math:`M_1 = M_0 - p_1 + 1` is the stride-1 resolution only.
    """
    window, stride = _pool_args(images, pool, stride)
    patches = _pooled_windows(images, window, stride)  # (..., M1, N1, p1, p2)
    # Eq. (1.9), corrected: min over the window shifted by (i-1)s, (j-1)s
    return patches.amin(dim=(-2, -1))  # (..., M1, N1)


def max_pool(images: Tensor, pool: tuple[int, int] | int, stride: int | None = None) -> Tensor:
    r"""Max pooling without padding: the maximum of each ``pool`` window, windows ``stride`` apart.

    Thesis: Proposition 1.3.13, Eq. (1.10).

    .. math::
        (\psi_1)_{ij} = \max_{(k,l) \in I} (\psi_0)_{(i-1)s + k,\,(j-1)s + l}.

    ``images`` is ``(..., M, N)``, any real dtype (kept). Arguments and output resolution as in
    :func:`avg_pool`.

    Erratum: Eq. (1.10), :math:`(\psi_1)_{ij} := \max_{(k,l) \in I} (\psi_0)_{kl}`, does not depend on
    :math:`(i, j)`: every output pixel would be the maximum of the same top-left
    :math:`p_1 \times p_2` block. The window must be shifted by :math:`(i-1, j-1)` times the stride, as
    above. As in Proposition 1.3.11, the stride :math:`s` is defined but unused and
    :math:`M_1 = M_0 - p_1 + 1` is the stride-1 resolution only.
    """
    window, stride = _pool_args(images, pool, stride)
    patches = _pooled_windows(images, window, stride)  # (..., M1, N1, p1, p2)
    # Eq. (1.10), corrected: max over the window shifted by (i-1)s, (j-1)s
    return patches.amax(dim=(-2, -1))  # (..., M1, N1)
