from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from thesis_lib.mathematics.autoencoders import (
    THESIS_WIDTHS,
    Autoencoder,
    ConvAutoencoder,
    Decoder,
    Encoder,
    fully_connected_autoencoder,
    linear_autoencoder,
)
from thesis_lib.mathematics.networks import DeepNetwork, count_parameters


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_encoder_decoder_widths():
    e = Encoder([5, 4, 4, 2], "relu")
    d = Decoder([2, 3, 3, 5], ["relu", "relu", "sigmoid"])
    assert isinstance(e, DeepNetwork) and isinstance(d, DeepNetwork)
    assert e.widths == (5, 4, 4, 2) and d.widths == (2, 3, 3, 5)
    assert Encoder([3, 3]).depth == 1 and Decoder([3, 3]).depth == 1  # equal widths are allowed


@pytest.mark.parametrize("widths", [[5, 6, 2], [2, 3], [4, 2, 3]])
def test_encoder_rejects_increasing_widths(widths):
    with pytest.raises(ValueError, match=r"widths must be non-increasing for an Encoder \(Definition 2\.1\.1"):
        Encoder(widths)


@pytest.mark.parametrize("widths", [[5, 4], [2, 1, 3], [2, 6, 5]])
def test_decoder_rejects_decreasing_widths(widths):
    with pytest.raises(ValueError, match=r"widths must be non-decreasing for a Decoder \(Definition 2\.1\.2"):
        Decoder(widths)


def test_from_layers_keeps_the_width_rule():
    d = Decoder([2, 5])
    with pytest.raises(ValueError, match="widths must be non-increasing for an Encoder"):
        Encoder.from_layers(list(d.layers))
    assert isinstance(Decoder.from_layers(d.layers), Decoder)


def test_autoencoder_composition():
    e = Encoder([6, 4, 2], "tanh")
    d = Decoder([2, 4, 6], ["tanh", "sigmoid"])
    ae = Autoencoder(e, d)
    assert ae.bottleneck == 2 and ae.in_features == 6
    x = torch.randn(5, 6)
    z = ae.encode(x)
    assert z.shape == (5, 2)
    torch.testing.assert_close(z, e(x))
    torch.testing.assert_close(ae.decode(z), d(z))
    torch.testing.assert_close(ae(x), d(e(x)))
    net = ae.as_network()
    assert net.depth == 4 and net.widths == (6, 4, 2, 4, 6)
    torch.testing.assert_close(net(x), ae(x))
    assert all(p is q for p, q in zip(net.parameters(), ae.parameters()))
    assert len(list(net.parameters())) == len(list(ae.parameters())) == 8


def test_autoencoder_rejects_mismatched_parts():
    with pytest.raises(ValueError, match="decoder must take the bottleneck as input: "
                                         "encoder output dimension 2 != decoder input dimension 3"):
        Autoencoder(Encoder([6, 2]), Decoder([3, 6]))
    with pytest.raises(ValueError, match="decoder must output the input dimension: "
                                         "decoder output dimension 5 != encoder input dimension 6"):
        Autoencoder(Encoder([6, 2]), Decoder([2, 5]))


def test_thesis_preset():
    assert THESIS_WIDTHS == (784, 128, 64, 12, 3)
    ae = fully_connected_autoencoder()
    assert ae.as_network().widths == (784, 128, 64, 12, 3, 12, 64, 128, 784)
    assert ae.encoder.activations == ("relu", "relu", "relu", "identity")
    assert ae.decoder.activations == ("relu", "relu", "relu", "sigmoid")
    d = ae.as_network().widths
    assert count_parameters(ae) == sum(d[i] * d[i + 1] + d[i + 1] for i in range(len(d) - 1)) == 219_891
    x = torch.rand(16, 784)
    y = ae(x)
    assert y.shape == (16, 784) and ((y > 0) & (y < 1)).all()


def test_fully_connected_custom():
    ae = fully_connected_autoencoder((10, 3), activation="tanh", latent_activation="tanh", output_activation="identity")
    assert ae.encoder.activations == ("tanh",) and ae.decoder.activations == ("identity",)
    ae = fully_connected_autoencoder((10, 6, 3), activation="elu")
    assert ae.encoder.activations == ("elu", "identity") and ae.decoder.activations == ("elu", "sigmoid")
    ae = fully_connected_autoencoder((10, 6, 3), activation=nn.PReLU())
    assert ae.encoder.layers[0].activation is not ae.decoder.layers[0].activation


def test_fully_connected_bad_input():
    with pytest.raises(ValueError, match="widths must be non-increasing for an Encoder"):
        fully_connected_autoencoder((3, 12))
    with pytest.raises(ValueError, match="widths must have at least 2 entries"):
        fully_connected_autoencoder((784,))
    with pytest.raises(ValueError, match="activation='bad' is not a known activation"):
        fully_connected_autoencoder(activation="bad")
    with pytest.raises(ValueError, match="latent_activation='bad' is not a known activation"):
        fully_connected_autoencoder(latent_activation="bad")
    with pytest.raises(ValueError, match="output_activation must be an activation name"):
        fully_connected_autoencoder(output_activation=1)
    with pytest.raises(ValueError, match="widths must be non-increasing"):
        linear_autoencoder((2, 5))


def test_linear_autoencoder_is_affine():
    ae = linear_autoencoder((20, 8, 4)).double()
    assert ae.encoder.activations == ("identity", "identity")
    assert ae.as_network().widths == (20, 8, 4, 8, 20)
    x, y = torch.randn(3, 20, dtype=torch.float64), torch.randn(3, 20, dtype=torch.float64)
    a, b = 1.7, -0.4
    zero = torch.zeros(1, 20, dtype=torch.float64)

    def g(v):
        return ae(v) - ae(zero)  # f(x) - f(0) is linear

    torch.testing.assert_close(g(a * x + b * y), a * g(x) + b * g(y))
    assert not torch.allclose(ae(zero), torch.zeros_like(zero))  # but f itself has a bias


def test_relu_autoencoder_is_not_linear():  # the linearity test above can fail
    ae = fully_connected_autoencoder((20, 8, 4), output_activation="identity").double()
    zero = torch.zeros(1, 20, dtype=torch.float64)
    x = torch.randn(3, 20, dtype=torch.float64)
    g = lambda v: ae(v) - ae(zero)  # noqa: E731
    assert not torch.allclose(g(-x), -g(x))


def test_linear_autoencoder_thesis_widths_param_count():
    assert count_parameters(linear_autoencoder()) == count_parameters(fully_connected_autoencoder())


@pytest.mark.parametrize("channels", [(16, 32), (4,), (2, 3, 4, 5, 6)])
def test_conv_autoencoder_shapes(channels):
    model = ConvAutoencoder(latent_dim=5, channels=channels)
    assert model.latent_dim == 5
    flat = torch.rand(3, 784)
    images = flat.reshape(3, 1, 28, 28)
    assert model(flat).shape == (3, 784)
    assert model(images).shape == (3, 1, 28, 28)
    torch.testing.assert_close(model(flat), model(images).reshape(3, 784))
    z = model.encode(flat)
    assert z.shape == (3, 5)
    torch.testing.assert_close(z, model.encode(images))
    out = model.decode(z)
    assert out.shape == (3, 1, 28, 28) and ((out >= 0) & (out <= 1)).all()


def test_conv_autoencoder_defaults_and_training_step():
    model = ConvAutoencoder()
    assert model.latent_dim == 3 and model.channels == (16, 32)
    assert isinstance(model.decoder[-1], nn.Sigmoid)
    x = torch.rand(8, 784)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = nn.functional.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_conv_autoencoder_bad_input():
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        ConvAutoencoder(latent_dim=0)
    with pytest.raises(ValueError, match="channels must have at least 1 entries"):
        ConvAutoencoder(channels=())
    with pytest.raises(ValueError, match="channels must contain positive integers"):
        ConvAutoencoder(channels=(16, -1))
    with pytest.raises(ValueError, match="activation='bad' is not a known activation"):
        ConvAutoencoder(activation="bad")
    with pytest.raises(ValueError, match="output_activation='bad' is not a known activation"):
        ConvAutoencoder(output_activation="bad")
    model = ConvAutoencoder(channels=(2,))  # the forward pass leaves other shapes to torch's layers
    with pytest.raises(RuntimeError, match="conv2d"):
        model(torch.zeros(2, 783))
    with pytest.raises(RuntimeError, match="to have 1 channels"):
        model.encode(torch.zeros(2, 3, 28, 28))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        model.decode(torch.zeros(2, 4))


# ---------------------------------------------------------------- committed checkpoints

_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@pytest.mark.parametrize("name", ["ae_thesis", "linear_ae_3"])
def test_committed_checkpoints_load_strictly_and_compute_the_same(name):
    path = _CHECKPOINTS / f"{name}.pt"
    if not path.exists():
        pytest.skip(f"{path} is not committed here")
    ckpt = torch.load(path, weights_only=True)
    spec, state = ckpt["model_spec"], ckpt["model"]
    build = {"fc_autoencoder": fully_connected_autoencoder, "linear_autoencoder": linear_autoencoder}[spec["kind"]]
    model = build(tuple(spec["params"]["widths"]))
    assert list(model.state_dict()) == list(state)  # the same keys, in the same order
    model.load_state_dict(state, strict=True)
    x = torch.rand(6, 784, generator=torch.Generator().manual_seed(3))
    # By hand from the state dict: ReLU hidden layers, identity at the bottleneck, sigmoid output
    # (all identities for the linear autoencoder).
    linear = spec["kind"] == "linear_autoencoder"
    h = x
    for part, last in (("encoder", (lambda t: t)), ("decoder", (lambda t: t) if linear else torch.sigmoid)):
        n = sum(1 for k in state if k.startswith(f"{part}.layers.") and k.endswith(".weight"))
        for i in range(n):
            h = torch.nn.functional.linear(h, state[f"{part}.layers.{i}.weight"], state[f"{part}.layers.{i}.bias"])
            h = last(h) if i == n - 1 else (h if linear else torch.relu(h))
    with torch.no_grad():
        torch.testing.assert_close(model(x), h, rtol=0, atol=0)
