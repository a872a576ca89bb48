"""Tests for thesis_lib.mathematics.image_ops (thesis section 1.3).

torch.nn.functional is the oracle for convolution and pooling; numpy is the oracle for rounding.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thesis_lib.mathematics.image_ops import (
    avg_pool,
    convolve,
    flatten_image,
    max_pool,
    min_pool,
    normalise,
    output_resolution,
    quantisation_error,
    quantise,
    unflatten_image,
)

ATOL = 1e-5  # float32 agreement with torch's kernels
N_CASES = 30


def _conv_case(idx: int) -> dict:
    """A random convolution case: batch, channels, resolution, kernel size, stride (seeded by idx)."""
    rng = random.Random(1000 + idx)
    s1, s2 = rng.randint(1, 5), rng.randint(1, 5)
    if idx % 3 == 0:  # the thesis's square kernel
        s2 = s1
    return dict(
        b=rng.randint(1, 3),
        c_in=rng.randint(1, 4),
        c_out=rng.randint(1, 4),
        m=rng.randint(s1, 17),
        n=rng.randint(s2, 17),
        s=(s1, s2),
        stride=rng.randint(1, 4),
    )


def _pool_case(idx: int) -> dict:
    """A random pooling case; stride None (torch's default) every fourth case."""
    rng = random.Random(2000 + idx)
    p1, p2 = rng.randint(1, 4), rng.randint(1, 4)
    pool: tuple[int, int] | int = p1 if idx % 2 == 0 else (p1, p2)
    p2 = p1 if idx % 2 == 0 else p2
    return dict(
        b=rng.randint(1, 3),
        c=rng.randint(1, 4),
        m=rng.randint(p1, 16),
        n=rng.randint(p2, 16),
        pool=pool,
        window=(p1, p2),
        stride=None if idx % 4 == 3 else rng.randint(1, 4),
    )


# ---------------------------------------------------------------- normalise / quantise


def test_normalise_all_bytes_against_float64():
    x = torch.arange(256, dtype=torch.uint8)
    y = normalise(x)
    assert y.dtype == torch.float32 and y.shape == (256,)
    expected = np.arange(256, dtype=np.float64) / 255.0
    np.testing.assert_allclose(y.double().numpy(), expected, rtol=0, atol=6e-8)  # half a float32 ulp at 1
    assert float(y.min()) == 0.0 and float(y.max()) == 1.0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64, torch.float32, torch.float64])
def test_normalise_accepts_integer_valued_dtypes(dtype):
    x = torch.arange(256).to(dtype).reshape(4, 8, 8)
    y = normalise(x)
    assert y.shape == (4, 8, 8) and y.dtype == torch.float32
    assert torch.equal(y, normalise(torch.arange(256, dtype=torch.uint8)).reshape(4, 8, 8))


def test_quantise_inverts_normalise_on_all_256_bytes():
    x = torch.arange(256, dtype=torch.uint8)
    q = quantise(normalise(x))
    assert q.dtype == torch.uint8
    assert torch.equal(q, x)
    # and in float64
    assert torch.equal(quantise(torch.arange(256, dtype=torch.float64) / 255), x)


def test_quantise_matches_numpy_rint():
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(10_000, generator=gen, dtype=torch.float64)
    expected = np.rint(255.0 * p.numpy()).astype(np.uint8)  # round half to even, like torch.round
    assert np.array_equal(quantise(p).numpy(), expected)


def test_quantise_keeps_shape_and_endpoints():
    p = torch.tensor([[0.0, 1.0], [0.001, 0.999]])
    assert quantise(p).tolist() == [[0, 255], [0, 255]]


def test_quantisation_error_bound_attained_not_exceeded_float64():
    # a dense grid plus all the midpoints (k + 1/2)/255, where the bound 1/510 is attained
    grid = torch.linspace(0, 1, 255 * 400 + 1, dtype=torch.float64)
    mids = (2 * torch.arange(255, dtype=torch.float64) + 1) / 510
    err = quantisation_error(torch.cat([grid, mids]))
    assert err.dtype == torch.float64
    bound = 1 / 510
    assert float(err.max()) <= bound + 1e-12
    assert float(err.max()) >= bound - 1e-12
    # the midpoints attain it, every one of them
    assert torch.allclose(quantisation_error(mids), torch.full_like(mids, bound), rtol=0, atol=1e-12)


def test_quantisation_error_float32_and_closed_form():
    grid = torch.linspace(0, 1, 100_001, dtype=torch.float32)
    err = quantisation_error(grid)
    assert err.dtype == torch.float32
    assert float(err.max()) <= 1 / 510 + 1e-7
    # closed form: 255 * 0.001 = 0.255 rounds to 0, so the error is p itself
    assert quantisation_error(torch.tensor([0.001], dtype=torch.float64)).item() == pytest.approx(0.001, abs=1e-15)
    # byte values are exact
    assert float(quantisation_error(torch.arange(256, dtype=torch.float64) / 255).max()) < 1e-15


def test_quantisation_error_is_zero_iff_on_the_byte_grid():
    p = torch.tensor([0.5, 51 / 255], dtype=torch.float64)
    err = quantisation_error(p)
    assert err[0] > 1e-4  # 127.5 is not a byte
    assert err[1] < 1e-15


# ---------------------------------------------------------------- flatten / unflatten


@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7), (2, 3, 4, 6), (1, 1)])
def test_flatten_matches_torch_flatten_and_inverts(shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen)
    v = flatten_image(x)
    assert v.shape == (*shape[:-2], shape[-2] * shape[-1])
    assert torch.equal(v, torch.flatten(x, start_dim=-2))
    assert torch.equal(unflatten_image(v, shape[-2:]), x)
    assert torch.equal(flatten_image(unflatten_image(v, shape[-2:])), v)


def test_flatten_is_row_major_as_in_lemma_1_3_7():
    m, n = 4, 6
    x = torch.randn(m, n, generator=torch.Generator().manual_seed(2))
    v = flatten_image(x)
    for i in range(1, m + 1):  # 1-based, as in the thesis
        for j in range(1, n + 1):
            assert v[(i - 1) * n + j - 1] == x[i - 1, j - 1]


def test_flatten_is_a_bijection_of_positions():
    x = torch.arange(5 * 7).reshape(5, 7)
    v = flatten_image(x)
    assert torch.equal(v, torch.arange(35))  # every position hit exactly once, in order
    # non-contiguous input (a transpose) is flattened in its logical order, not its memory order
    xt = torch.arange(35).reshape(7, 5).t()
    assert torch.equal(flatten_image(xt), xt.reshape(35))
    assert not torch.equal(flatten_image(xt), torch.arange(35))


# ---------------------------------------------------------------- output resolution


@pytest.mark.parametrize("idx", range(N_CASES))
def test_output_resolution_matches_torch(idx):
    c = _pool_case(idx)
    stride = c["stride"] or 1
    x = torch.zeros(1, 1, c["m"], c["n"])
    ref = F.avg_pool2d(x, c["window"], stride=stride).shape[-2:]
    assert output_resolution((c["m"], c["n"]), c["window"], stride) == tuple(ref)


def test_output_resolution_stride_one_is_the_thesis_formula():
    for m, n, p1, p2 in [(28, 28, 3, 3), (10, 7, 4, 2), (5, 5, 5, 5), (9, 13, 1, 6)]:
        assert output_resolution((m, n), (p1, p2), 1) == (m - p1 + 1, n - p2 + 1)


def test_erratum_thesis_resolution_is_wrong_for_stride_above_one():
    m, p, s = 28, 2, 2
    x = torch.zeros(1, 1, m, m)
    torch_m = F.max_pool2d(x, p, stride=s).shape[-1]
    assert torch_m == (m - p) // s + 1 == 14
    assert torch_m != m - p + 1  # the thesis's M_1 = M_0 - p_1 + 1 would be 27
    assert output_resolution((m, m), p, s) == (14, 14)


# ---------------------------------------------------------------- convolution


@pytest.mark.parametrize("idx", range(N_CASES))
def test_convolve_matches_conv2d(idx):
    c = _conv_case(idx)
    gen = torch.Generator().manual_seed(idx)
    x = torch.randn(c["b"], c["c_in"], c["m"], c["n"], generator=gen)
    k = torch.randn(c["c_out"], c["c_in"], *c["s"], generator=gen)
    out = convolve(x, k, stride=c["stride"])
    ref = F.conv2d(x, k, stride=c["stride"])
    assert out.shape == ref.shape
    assert out.shape[-2:] == output_resolution((c["m"], c["n"]), c["s"], c["stride"])
    torch.testing.assert_close(out, ref, rtol=0, atol=ATOL)


def test_convolve_2d_image_and_kernel():
    gen = torch.Generator().manual_seed(3)
    x, k = torch.randn(9, 11, generator=gen), torch.randn(3, 3, generator=gen)
    out = convolve(x, k, stride=2)
    ref = F.conv2d(x[None, None], k[None, None], stride=2)[0, 0]
    assert out.shape == (4, 5)
    torch.testing.assert_close(out, ref, rtol=0, atol=ATOL)


def test_convolve_gradients_match_conv2d():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 10, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, 4, 4, generator=gen, dtype=torch.float64)
    gx, gk = torch.autograd.grad((convolve(x, k, stride=2) * w).sum(), (x, k))
    rx, rk = torch.autograd.grad((F.conv2d(x, k, stride=2) * w).sum(), (x, k))
    torch.testing.assert_close(gx, rx, rtol=0, atol=1e-12)
    torch.testing.assert_close(gk, rk, rtol=0, atol=1e-12)


def test_convolve_is_cross_correlation_not_flipped():
    # closed form: a kernel with a single 1 at its top-left picks the top-left of each window
    x = torch.arange(16.0).reshape(4, 4)
    k = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert torch.equal(convolve(x, k), x[:3, :3])
    # a true (flipped) convolution would pick the bottom-right instead
    assert not torch.equal(convolve(x, k), x[1:, 1:])
    # and on random data: equal to conv2d, different from conv2d with the flipped kernel
    gen = torch.Generator().manual_seed(5)
    xb, kb = torch.randn(1, 2, 8, 8, generator=gen), torch.randn(3, 2, 3, 3, generator=gen)
    torch.testing.assert_close(convolve(xb, kb), F.conv2d(xb, kb), rtol=0, atol=ATOL)
    assert (convolve(xb, kb) - F.conv2d(xb, kb.flip(-2, -1))).abs().max() > 0.1


def test_convolve_changes_channel_count_unlike_definition_1_3_8():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    k = torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(7))
    assert convolve(x, k).shape == (2, 5, 6, 6)  # C_in = 3 -> C_out = 5


def _at(psi: torch.Tensor, i: int, j: int) -> float:
    """The thesis's 1-based pixel psi_ij; an index outside the pixel domain raises IndexError."""
    m, n = psi.shape
    if not (1 <= i <= m and 1 <= j <= n):
        raise IndexError(f"pixel ({i}, {j}) is outside the domain {{1..{m}}} x {{1..{n}}}")
    return float(psi[i - 1, j - 1])


def _eq_1_7_printed(psi: torch.Tensor, k: torch.Tensor, rows: range, cols: range) -> torch.Tensor:
    """Eq. (1.7) exactly as printed: sum_{m,n=1}^s psi_{m+i, n+j} k_mn, over the given (i, j)."""
    s = k.shape[0]
    out = torch.zeros(len(rows), len(cols), dtype=torch.float64)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            terms = [_at(psi, m + i, n + j) * float(k[m - 1, n - 1]) for m in range(1, s + 1) for n in range(1, s + 1)]
            out[a, b] = sum(terms)
    return out


def test_erratum_eq_1_7_as_printed_reads_past_the_edge():
    gen = torch.Generator().manual_seed(8)
    m0, n0, s = 7, 6, 3
    psi = torch.randn(m0, n0, generator=gen, dtype=torch.float64)
    k = torch.randn(s, s, generator=gen, dtype=torch.float64)
    omega_1 = (range(1, m0 - s + 2), range(1, n0 - s + 2))  # {1..M0-s+1} x {1..N0-s+1}
    with pytest.raises(IndexError, match="outside the domain"):
        _eq_1_7_printed(psi, k, *omega_1)
    last_i, last_j = omega_1[0][-1], omega_1[1][-1]
    with pytest.raises(IndexError, match=rf"\({m0 + 1}, "):  # i = M0 - s + 1, m = s reads row M0 + 1
        _eq_1_7_printed(psi, k, range(last_i, last_i + 1), range(1, 2))
    with pytest.raises(IndexError, match=rf", {n0 + 1}\)"):  # j = N0 - s + 1, n = s reads column N0 + 1
        _eq_1_7_printed(psi, k, range(1, 2), range(last_j, last_j + 1))
    # where it stays inside, the printed formula is our result shifted by one pixel:
    # it starts the window at (i + 1, j + 1), so row/column 1 of the image is never read
    printed = _eq_1_7_printed(psi, k, range(1, m0 - s + 1), range(1, n0 - s + 1))
    ours = convolve(psi, k)
    torch.testing.assert_close(printed, ours[1:, 1:], rtol=0, atol=1e-12)
    assert (printed - ours[:-1, :-1]).abs().max() > 1e-3
    # the corrected index psi_{i+m-1, j+n-1} over the printed Omega_1 is exactly convolve
    corrected = torch.tensor(
        [[sum(_at(psi, i + a - 1, j + b - 1) * float(k[a - 1, b - 1]) for a in range(1, s + 1) for b in range(1, s + 1))
          for j in omega_1[1]] for i in omega_1[0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(corrected, ours, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize("idx", range(N_CASES))
def test_pools_match_torch(idx):
    c = _pool_case(idx)
    gen = torch.Generator().manual_seed(100 + idx)
    x = torch.randn(c["b"], c["c"], c["m"], c["n"], generator=gen)
    stride = c["stride"]
    ref_avg = F.avg_pool2d(x, c["window"], stride=stride)
    ref_max = F.max_pool2d(x, c["window"], stride=stride)
    ref_min = -F.max_pool2d(-x, c["window"], stride=stride)
    for ours, ref in [
        (avg_pool(x, c["pool"], stride), ref_avg),
        (max_pool(x, c["pool"], stride), ref_max),
        (min_pool(x, c["pool"], stride), ref_min),
    ]:
        assert ours.shape == ref.shape
        torch.testing.assert_close(ours, ref, rtol=0, atol=ATOL)


def test_pool_default_stride_is_the_pool_size():
    x = torch.randn(1, 2, 9, 10, generator=torch.Generator().manual_seed(9))
    assert torch.equal(max_pool(x, (2, 3)), max_pool(x, (2, 3), None))
    torch.testing.assert_close(max_pool(x, (2, 3)), F.max_pool2d(x, (2, 3)), rtol=0, atol=0)
    assert max_pool(x, (2, 3)).shape == (1, 2, 4, 3)  # per-axis stride (2, 3)


@pytest.mark.parametrize("shape", [(9, 8), (2, 3, 4, 9, 8)])
def test_pools_on_any_leading_dims(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(10))
    flat = x.reshape(-1, 1, 9, 8)
    for ours, ref in [(avg_pool, F.avg_pool2d), (max_pool, F.max_pool2d)]:
        out = ours(x, 3, 2)
        assert out.shape == (*shape[:-2], 4, 3)
        torch.testing.assert_close(out.reshape(-1, 1, 4, 3), ref(flat, 3, stride=2), rtol=0, atol=ATOL)


def test_min_max_pool_keep_integer_dtype():
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))
    mx, mn = max_pool(x, 2), min_pool(x, 2)
    assert mx.dtype == mn.dtype == torch.uint8
    assert torch.equal(mx, F.max_pool2d(x.float(), 2).to(torch.uint8))
    assert torch.equal(mn, (-F.max_pool2d(-x.float(), 2)).to(torch.uint8))


def test_pool_properties():
    x = torch.randn(3, 2, 12, 12, generator=torch.Generator().manual_seed(12))
    lo, mid, hi = min_pool(x, 3, 1), avg_pool(x, 3, 1), max_pool(x, 3, 1)
    assert bool((lo <= mid + 1e-6).all()) and bool((mid <= hi + 1e-6).all())
    # min pooling is max pooling of the negated image
    assert torch.equal(min_pool(x, 3, 1), -max_pool(-x, 3, 1))
    # a constant image pools to the constant; channels are kept (Definition 1.3.8)
    c = torch.full((1, 4, 6, 6), 0.25)
    for op in (avg_pool, min_pool, max_pool):
        out = op(c, 2)
        assert out.shape == (1, 4, 3, 3) and torch.equal(out, torch.full_like(out, 0.25))


def test_erratum_eq_1_9_1_10_as_printed_are_constant():
    gen = torch.Generator().manual_seed(13)
    m0, n0, p1, p2 = 8, 7, 2, 3
    psi = torch.randn(m0, n0, generator=gen)
    block = psi[:p1, :p2]  # (k, l) in I = {1..p1} x {1..p2}, independent of (i, j)
    printed_max = torch.full((m0 - p1 + 1, n0 - p2 + 1), float(block.max()))
    printed_min = torch.full((m0 - p1 + 1, n0 - p2 + 1), float(block.min()))
    ours_max, ours_min = max_pool(psi, (p1, p2), 1), min_pool(psi, (p1, p2), 1)
    assert ours_max.shape == printed_max.shape  # the stride-1 resolution is right
    assert ours_max[0, 0] == printed_max[0, 0] and ours_min[0, 0] == printed_min[0, 0]  # agree at (1, 1) only
    assert not torch.equal(ours_max, printed_max) and not torch.equal(ours_min, printed_min)
    torch.testing.assert_close(ours_max, F.max_pool2d(psi[None, None], (p1, p2), stride=1)[0, 0], rtol=0, atol=0)


def test_erratum_eq_1_8_as_printed_reads_past_the_edge():
    m0, n0, p1, p2 = 6, 5, 2, 2
    psi = torch.randn(m0, n0, generator=torch.Generator().manual_seed(14), dtype=torch.float64)

    def printed(i: int, j: int) -> float:  # Eq. (1.8) as printed: psi_{m+i, n+j}
        return sum(_at(psi, m + i, n + j) for m in range(1, p1 + 1) for n in range(1, p2 + 1)) / (p1 * p2)

    with pytest.raises(IndexError):
        printed(m0 - p1 + 1, 1)  # the last i of the printed Omega_1 reads row M0 + 1
    ours = avg_pool(psi, (p1, p2), 1)
    shifted = torch.tensor(
        [[printed(i, j) for j in range(1, n0 - p2 + 1)] for i in range(1, m0 - p1 + 1)], dtype=torch.float64
    )
    torch.testing.assert_close(shifted, ours[1:, 1:], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- bad input


def test_unflatten_rejects_bad_resolutions():
    with pytest.raises(ValueError, match=r"resolution.*\(3, 0\)"):
        unflatten_image(torch.zeros(2, 12), (3, 0))
    with pytest.raises(ValueError, match=r"resolution.*\(3, 4, 1\)"):
        unflatten_image(torch.zeros(2, 12), (3, 4, 1))


@pytest.mark.parametrize(
    "args, match",
    [
        (((28, 28), 29, 1), r"window.*\(29, 29\).*\(28, 28\)"),
        (((28, 28), 0, 1), r"window.*0"),
        (((28, 28), 3, 0), r"stride.*0"),
        (((28, -1), 3, 1), r"resolution"),
        (((28, 28), (3, 3, 3), 1), r"window"),
    ],
)
def test_output_resolution_rejects(args, match):
    with pytest.raises(ValueError, match=match):
        output_resolution(*args)


_X4 = torch.zeros(2, 3, 8, 8)
_K4 = torch.zeros(4, 3, 3, 3)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((_X4, _K4), {"stride": 0}, r"stride.*0"),
        ((_X4, _K4), {"stride": -2}, r"stride.*-2"),
        ((_X4, _K4), {"stride": 1.0}, r"stride.*1\.0"),
        ((_X4, _K4), {"stride": True}, r"stride.*True"),
    ],
)
def test_convolve_rejects(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        convolve(*args, **kwargs)


@pytest.mark.parametrize("op", [avg_pool, min_pool, max_pool])
@pytest.mark.parametrize(
    "args, match",
    [
        ((_X4, 0), r"pool.*0"),
        ((_X4, (2, 0)), r"pool.*\(2, 0\)"),
        ((_X4, (2, 2, 2)), r"pool.*\(2, 2, 2\)"),
        ((_X4, 9), r"pool.*\(9, 9\).*\(8, 8\)"),
        ((_X4, (2, 9)), r"pool.*\(2, 9\)"),
        ((_X4, 2, 0), r"stride.*0"),
        ((_X4, 2, -1), r"stride.*-1"),
        ((_X4, 2, 1.5), r"stride.*1\.5"),
    ],
)
def test_pools_reject(op, args, match):
    with pytest.raises(ValueError, match=match):
        op(*args)
