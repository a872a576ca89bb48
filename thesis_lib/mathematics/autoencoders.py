r"""Encoders, decoders and autoencoders (thesis Sections 2.1 and 2.3).

:class:`Encoder` and :class:`Decoder` are Definitions 2.1.1 and 2.1.2, :class:`Autoencoder` is
Definition 2.1.5; :func:`fully_connected_autoencoder` builds Algorithm 2's architecture and
:func:`linear_autoencoder` a truly linear one (Definition 2.3.3 with the identity activation).
:class:`ConvAutoencoder` is a convolutional variant for 28x28 images built from the image layers
of Section 1.3. The fully connected models take flat inputs ``(B, 784)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from thesis_lib.mathematics.activations import get_activation
from thesis_lib.mathematics.networks import ActivationLike, DeepNetwork, compose, resolve_activation
from thesis_lib.ground.validation import check_positive_int, check_widths

__all__ = [
    "THESIS_WIDTHS",
    "Encoder",
    "Decoder",
    "Autoencoder",
    "fully_connected_autoencoder",
    "linear_autoencoder",
    "ConvAutoencoder",
]

#: Algorithm 2's encoder widths: input 784, hidden 128, 64, 12 and bottleneck 3 (the decoder mirrors it).
THESIS_WIDTHS: tuple[int, ...] = (784, 128, 64, 12, 3)

_IMAGE_SHAPE = (1, 28, 28)  # MNIST, Proposition 2.3.4
_IMAGE_SIZE = 784


class Encoder(DeepNetwork):
    r"""Encoding neural network :math:`f_e`: a deep network with widths :math:`d_1 \ge \dots \ge d_{L+1}`.

    Thesis: Definition 2.1.1.

    Takes the arguments of :class:`~thesis_lib.mathematics.networks.DeepNetwork`; ``widths`` must be
    non-increasing (equal neighbours are allowed, as the definition's :math:`\ge` allows).

    Erratum: Definition 2.1.1 (and 2.1.2) takes widths :math:`d_1, \dots, d_L` for a network of
    depth :math:`L`, but by Definition 1.1.5 such a network has :math:`L+1` widths
    :math:`d_1, \dots, d_{L+1}`; the condition is :math:`n_i = d_1 \ge \dots \ge d_{L+1} = n_o`, as
    implemented. The definition also names the input dimension twice (:math:`n_i` and :math:`d_1`)
    and speaks of one activation :math:`\varphi` for the network :math:`f_{\varphi, L, \theta}`,
    whose :math:`\varphi = (\varphi_1, \dots, \varphi_L)` may differ per layer.
    """

    @classmethod
    def _check_widths(cls, widths: tuple[int, ...]) -> None:
        if any(a < b for a, b in zip(widths, widths[1:])):
            raise ValueError(
                f"widths must be non-increasing for an Encoder (Definition 2.1.1: d_1 >= ... >= d_{{L+1}}); "
                f"got {list(widths)}"
            )


class Decoder(DeepNetwork):
    r"""Decoding neural network :math:`f_d`: a deep network with widths :math:`d_1 \le \dots \le d_{L+1}`.

    Thesis: Definition 2.1.2.

    Takes the arguments of :class:`~thesis_lib.mathematics.networks.DeepNetwork`; ``widths`` must be
    non-decreasing.

    Erratum: as in Definition 2.1.1, Definition 2.1.2 indexes the widths :math:`d_1, \dots, d_L`
    for a depth-:math:`L` network; the condition is :math:`n_i = d_1 \le \dots \le d_{L+1} = n_o`,
    as implemented.
    """

    @classmethod
    def _check_widths(cls, widths: tuple[int, ...]) -> None:
        if any(a > b for a, b in zip(widths, widths[1:])):
            raise ValueError(
                f"widths must be non-decreasing for a Decoder (Definition 2.1.2: d_1 <= ... <= d_{{L+1}}); "
                f"got {list(widths)}"
            )


class Autoencoder(nn.Module):
    r"""Autoencoding neural network :math:`f_a = f_d \circ f_e: \mathbb{R}^{n_i} \to \mathbb{R}^{n_i}`.

    Thesis: Definition 2.1.5, Remark 2.1.6.

    The encoder's output dimension is the bottleneck :math:`n_b` and must be the decoder's input
    dimension (Lemma 2.1.3 needs it for :math:`f_d \circ f_e` to be a network, Remark 2.1.6); the
    decoder's output dimension must be the encoder's input dimension :math:`n_i`.

    Erratum: Definition 2.1.5 gives *both* :math:`f_e` and :math:`f_d` "input dimension
    :math:`n_i`" and never states that the decoder's input is the bottleneck :math:`n_b` and its
    output is :math:`n_i`; both conditions are needed for :math:`f_a: \mathbb{R}^{n_i} \to
    \mathbb{R}^{n_i}` and are checked here.
    """

    def __init__(self, encoder: Encoder, decoder: Decoder) -> None:
        if encoder.out_features != decoder.in_features:
            raise ValueError(
                f"decoder must take the bottleneck as input: encoder output dimension {encoder.out_features} "
                f"!= decoder input dimension {decoder.in_features}"
            )
        if decoder.out_features != encoder.in_features:
            raise ValueError(
                f"decoder must output the input dimension: decoder output dimension {decoder.out_features} "
                f"!= encoder input dimension {encoder.in_features}"
            )
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    @property
    def bottleneck(self) -> int:
        """:math:`n_b`, the encoder's output dimension."""
        return self.encoder.out_features

    @property
    def in_features(self) -> int:
        """:math:`n_i`, the input (and output) dimension."""
        return self.encoder.in_features

    def encode(self, x: Tensor) -> Tensor:
        """:math:`f_e(x)`: ``(B, n_i)`` -> ``(B, n_b)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """:math:`f_d(z)`: ``(B, n_b)`` -> ``(B, n_i)``."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """:math:`f_a(x) = f_d(f_e(x))`: ``(B, n_i)`` -> ``(B, n_i)``."""
        # Definition 2.1.5: f_a = f_d o f_e
        return self.decode(self.encode(x))

    def as_network(self) -> DeepNetwork:
        r""":math:`f_d \circ f_e` as one :class:`DeepNetwork` sharing this model's layers (Remark 2.1.6)."""
        return compose(self.encoder, self.decoder)


def fully_connected_autoencoder(
    widths: Sequence[int] = THESIS_WIDTHS,
    activation: ActivationLike = "relu",
    latent_activation: ActivationLike = "identity",
    output_activation: ActivationLike = "sigmoid",
) -> Autoencoder:
    r"""A fully connected autoencoder with encoder ``widths`` and the mirrored decoder.

    Thesis: Algorithm 2, Definition 2.1.5.

    The encoder has widths ``widths`` (non-increasing), its hidden layers use ``activation`` and its
    last layer ``latent_activation``; the decoder has the reversed widths, hidden layers
    ``activation`` and last layer ``output_activation`` (a sigmoid keeps pixels in [0, 1]). The
    default is Algorithm 2's 784-128-64-12-3-12-64-128-784.

    Algorithm 2 is titled "Linear autoencoder" but states no activation functions; by Definition
    2.3.1 "linear" allows any activation per layer. The defaults here (ReLU, identity at the
    bottleneck, sigmoid at the output) are this library's choice, not the thesis's; for an
    autoencoder that is linear in the algebraic sense use :func:`linear_autoencoder`.
    """
    widths = check_widths("widths", widths)
    Encoder._check_widths(widths)
    for param, value in (("activation", activation), ("latent_activation", latent_activation),
                         ("output_activation", output_activation)):
        resolve_activation(param, value)
    def fresh(value: ActivationLike) -> ActivationLike:  # a module given once is copied into each layer
        return copy.deepcopy(value) if isinstance(value, nn.Module) else value

    hidden = len(widths) - 2
    encoder = Encoder(widths, [fresh(activation) for _ in range(hidden)] + [fresh(latent_activation)])
    decoder = Decoder(widths[::-1], [fresh(activation) for _ in range(hidden)] + [fresh(output_activation)])
    return Autoencoder(encoder, decoder)


def linear_autoencoder(widths: Sequence[int] = THESIS_WIDTHS) -> Autoencoder:
    r"""A linear autoencoder whose every layer has the identity activation, so :math:`f(x) = Ax + c`.

    Thesis: Definition 2.3.3.

    Encoder widths ``widths``, decoder the reversed widths. With identity activations the whole map
    is affine (and :math:`f(x) - f(0)` linear), so it can be compared with PCA.

    Erratum: Definition 2.3.1 calls an encoder whose layers are
    :math:`H_i(x) = \widehat\varphi(W_i x + b_i)` with an *arbitrary* activation :math:`\varphi` a
    "linear encoder"; it is linear (affine) only for :math:`\varphi` = identity, which is what is
    implemented here (likewise Definition 2.3.2 for the decoder). Its last sentence reads "Such a
    decoding neural network is called a linear encoder", where "encoding" is meant. Definitions
    2.3.1 and 2.3.2 also take widths :math:`d_1, \dots, d_L` but use
    :math:`H_L: \mathbb{R}^{d_L} \to \mathbb{R}^{d_{L+1}}`, and Definition 2.3.1 writes
    :math:`\theta_i(W_i, b_i)` for :math:`\theta_i = (W_i, b_i)`.
    """
    encoder = Encoder(widths, "identity")  # checks the widths
    return Autoencoder(encoder, Decoder(widths[::-1], "identity"))


def _conv_sizes(n_layers: int) -> list[int]:
    """Side lengths 28, 14, 7, 4, ... after each 3x3 convolution with stride 2 and padding 1."""
    sizes = [_IMAGE_SHAPE[-1]]
    for _ in range(n_layers):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


class ConvAutoencoder(nn.Module):
    r"""A convolutional autoencoder for :math:`1 \times 28 \times 28` images (not in the thesis).

    Thesis: Corollary 1.3.9, Proposition 1.3.10, Definition 2.1.5.

    Encoder: for each entry of ``channels`` an image layer :math:`\widehat\varphi(T\psi + b)`
    (Corollary 1.3.9) with a 3x3 convolution of stride 2 and padding 1 (28 -> 14 -> 7 -> ...), then a
    flatten and a linear map to ``latent_dim`` (no activation). Decoder: the mirror image, a linear map
    with ``activation``, then 3x3 transposed convolutions of stride 2 back to 28x28, the hidden ones
    with ``activation`` and the last one (to one channel) with ``output_activation``.
    ``torch.nn.Conv2d`` computes the cross-correlation of Eq. (1.7), extended by stride and padding.

    ``forward`` and ``encode`` take ``(B, 784)`` or ``(B, 1, 28, 28)``; ``forward`` returns the shape
    it got, ``encode`` returns ``(B, latent_dim)`` and ``decode`` returns ``(B, 1, 28, 28)``.
    """

    def __init__(
        self,
        latent_dim: int = 3,
        channels: Sequence[int] = (16, 32),
        activation: ActivationLike = "relu",
        output_activation: ActivationLike = "sigmoid",
    ) -> None:
        check_positive_int("latent_dim", latent_dim)
        channels = check_widths("channels", channels, min_len=1)
        resolve_activation("activation", activation)
        resolve_activation("output_activation", output_activation)
        super().__init__()
        self._latent_dim = latent_dim
        self.channels = channels
        sizes = _conv_sizes(len(channels))
        flat = channels[-1] * sizes[-1] ** 2

        def act(value: ActivationLike) -> nn.Module:
            if isinstance(value, str):
                return get_activation(value)
            return copy.deepcopy(value) if isinstance(value, nn.Module) else _Lambda(value)

        enc: list[nn.Module] = []
        for c_in, c_out in zip((1, *channels), channels):
            enc += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), act(activation)]
        enc += [nn.Flatten(), nn.Linear(flat, latent_dim)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Linear(latent_dim, flat), act(activation),
                                nn.Unflatten(1, (channels[-1], sizes[-1], sizes[-1]))]
        outs = (*channels[::-1][1:], 1)
        for j, (c_in, c_out) in enumerate(zip(channels[::-1], outs)):
            size_in, size_out = sizes[-1 - j], sizes[-2 - j]
            output_padding = size_out - (2 * size_in - 1)  # 0 or 1: undo the rounding of the encoder
            dec += [nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1,
                                       output_padding=output_padding),
                    act(output_activation if j == len(channels) - 1 else activation)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_dim(self) -> int:
        return self._latent_dim

    @staticmethod
    def _as_images(x: Tensor) -> Tensor:
        if x.ndim == 2 and x.shape[1] == _IMAGE_SIZE:
            return x.reshape(-1, *_IMAGE_SHAPE)  # (B, 1, 28, 28)
        return x  # (B, 1, 28, 28); torch's layers refuse any other shape

    def encode(self, x: Tensor) -> Tensor:
        """``(B, 784)`` or ``(B, 1, 28, 28)`` -> ``(B, latent_dim)``."""
        return self.encoder(self._as_images(x))

    def decode(self, z: Tensor) -> Tensor:
        """``(B, latent_dim)`` -> ``(B, 1, 28, 28)``."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct ``x``; the result has the shape of ``x``."""
        # Definition 2.1.5: f_a = f_d o f_e
        x_hat = self.decode(self.encode(x))  # (B, 1, 28, 28)
        return x_hat.reshape(x.shape)


class _Lambda(nn.Module):
    """Wrap a function Tensor -> Tensor as a module."""

    def __init__(self, fn) -> None:  # noqa: ANN001
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)
