"""thesis_lib.runtime.comparisons against closed forms on small synthetic data.

The data are the points m ± s_j e_j in R^4: their mean is m and their covariance (divisor n) is
diagonal with eigenvalues lambda_j = s_j^2 / 4, so PCA keeps the first coordinate axes. A linear
autoencoder whose decoder direction is turned by theta from e_1 towards e_2 projects onto that
direction; its error per image is sum_{j>1} lambda_j + (lambda_1 - lambda_2) sin^2 theta, and its
principal angle to PCA's axis is theta.
"""

from __future__ import annotations

import math

import pytest
import torch

from thesis_lib.mathematics.autoencoders import fully_connected_autoencoder, linear_autoencoder
from thesis_lib.runtime.comparisons import decoder_subspace, pca_versus_autoencoders, superposition_defect

LAMBDAS = torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64)
MEAN = torch.tensor([0.3, -0.2, 0.1, 0.5], dtype=torch.float64)
D = 4


def synthetic_data() -> torch.Tensor:
    """The 8 points MEAN ± s_j e_j with s_j = 2 sqrt(lambda_j): covariance diag(LAMBDAS)."""
    steps = torch.diag(2 * LAMBDAS.sqrt())
    return torch.cat([MEAN + steps, MEAN - steps])


def projection_autoencoder(basis: torch.Tensor):
    """A linear autoencoder x -> MEAN + B B^+ (x - MEAN): the orthogonal projection onto span(B)."""
    k = basis.shape[1]
    model = linear_autoencoder((D, k)).double()
    encoder, decoder = model.encoder.layers[0], model.decoder.layers[0]
    pinv = torch.linalg.pinv(basis)
    with torch.no_grad():
        encoder.weight.copy_(pinv)
        encoder.bias.copy_(-pinv @ MEAN)
        decoder.weight.copy_(basis)
        decoder.bias.copy_(MEAN)
    return model


def relu_model():
    torch.manual_seed(0)
    return fully_connected_autoencoder((D, 3, 1), output_activation="identity").double()


def per_pixel_error(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x) - x).pow(2).mean().item()


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0])
def test_turned_decoder_matches_closed_form(theta: float) -> None:
    x = synthetic_data()
    noise = torch.randn(50, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_test = MEAN + noise
    v = torch.tensor([[math.cos(theta)], [math.sin(theta)], [0.0], [0.0]], dtype=torch.float64)
    relu = relu_model()
    result = pca_versus_autoencoders(x, x_test, {1: (projection_autoencoder(3 * v), relu)})
    row = result.rows[1]

    discarded = LAMBDAS[1:].sum().item()
    turned = discarded + (LAMBDAS[0] - LAMBDAS[1]).item() * math.sin(theta) ** 2
    assert row.pca_train_closed == pytest.approx(discarded / D, rel=1e-12)
    assert row.pca_train == pytest.approx(discarded / D, rel=1e-12)
    assert row.projection_train == pytest.approx(turned / D, rel=1e-12)
    assert row.linear_train == pytest.approx(turned / D, rel=1e-12)
    assert row.angles.shape == (1,)
    assert row.angles[0].item() == pytest.approx(theta, abs=1e-12)
    assert row.largest_angle_degrees == pytest.approx(math.degrees(theta), abs=1e-10)

    # test errors: PCA keeps the first axis, the autoencoder projects onto v
    centred = x_test - MEAN
    pca_closed = centred[:, 1:].pow(2).sum(dim=1).mean().item() / D
    along_v = centred - (centred @ v) @ v.T
    assert row.pca_test == pytest.approx(pca_closed, rel=1e-12)
    assert row.linear_test == pytest.approx(along_v.pow(2).mean().item(), rel=1e-12)
    assert row.relu_test == pytest.approx(per_pixel_error(relu, x_test), rel=1e-12)
    assert row.linear_over_pca == pytest.approx(row.linear_test / row.pca_test - 1, rel=1e-12)


def test_decoder_spanning_the_pca_subspace_is_pca() -> None:
    """A decoder whose (non-orthonormal) columns span e_1, e_2: PCA's projection, angles zero."""
    x = synthetic_data()
    basis = torch.tensor([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    one_axis = torch.tensor([[1.0], [0.0], [0.0], [0.0]], dtype=torch.float64)
    models = {2: (projection_autoencoder(basis), relu_model()),
              1: (projection_autoencoder(one_axis), relu_model())}
    result = pca_versus_autoencoders(x, x, models)
    assert result.pca.k == 2  # fitted once, with the largest bottleneck
    assert list(result.rows) == [2, 1]
    for k, row in result.rows.items():
        closed = LAMBDAS[k:].sum().item() / D
        for value in (row.pca_train_closed, row.pca_train, row.projection_train, row.linear_train,
                      row.pca_test, row.linear_test):
            assert value == pytest.approx(closed, rel=1e-12)
        assert row.angles.shape == (k,)
        assert row.angles.max().item() < 1e-7
    text = result.format().splitlines()
    assert len(text) == 2 + 2 and text[2].lstrip().startswith("2 |") and text[3].endswith("0.00°")


def test_decoder_subspace_is_the_product_of_the_weights() -> None:
    torch.manual_seed(0)
    model = linear_autoencoder((5, 3, 2)).double()
    basis = decoder_subspace(model.decoder)
    assert basis.shape == (5, 2)
    with torch.no_grad():
        offset = model.decode(torch.zeros(1, 2, dtype=torch.float64))
        columns = model.decode(torch.eye(2, dtype=torch.float64)) - offset
    torch.testing.assert_close(basis, columns.T, rtol=0, atol=1e-12)


def test_refuses_a_nonlinear_decoder() -> None:
    with pytest.raises(ValueError, match="identity activations"):
        decoder_subspace(relu_model().decoder)


def test_superposition_defect_is_zero_for_affine_maps_and_one_for_squares() -> None:
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    c = torch.randn(6, generator=gen, dtype=torch.float64)
    u, v = torch.randn(2, 4, 6, generator=gen, dtype=torch.float64)
    assert superposition_defect(lambda x: x @ a.T + c, u, v) < 1e-14
    # g(x) = x^2: g(u + v) - g(u) - g(v) = 2 u v; for u = v = 1 the defect is 2 sqrt(n) / 2 sqrt(n)
    ones = torch.ones(3, 5, dtype=torch.float64)
    assert superposition_defect(torch.square, ones, ones) == pytest.approx(1.0, rel=1e-15)
