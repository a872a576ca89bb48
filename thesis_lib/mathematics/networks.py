r"""Neurons, layers and deep networks (thesis Section 1.1) and their composition (Section 2.1).

:class:`PhiNeuron` is Definition 1.1.3, :class:`PhiLayer` Definition 1.1.4 and :class:`DeepNetwork`
Definition 1.1.5; :func:`compose` is Lemma 2.1.3 and Theorem 2.1.4. Inputs are batches of flat
vectors, shape ``(B, d)``.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thesis_lib.mathematics.activations import get_activation
from thesis_lib.ground.validation import check_positive_int, check_widths

__all__ = [
    "PhiNeuron",
    "PhiLayer",
    "DeepNetwork",
    "phi_layers",
    "compose",
    "count_parameters",
    "eval_mode",
    "resolve_activation",
]

#: An activation as the constructors take it: a name for :func:`~thesis_lib.mathematics.activations.get_activation`,
#: an ``nn.Module`` or a function Tensor -> Tensor applied element-wise.
ActivationLike = Union[str, nn.Module, Callable[[Tensor], Tensor]]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block and give it back the mode it had (train or eval)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def resolve_activation(param: str, value: Any) -> tuple[Callable[[Tensor], Tensor], str]:
    """Resolve ``value`` to (callable, name); a bad value raises ``ValueError`` naming ``param``.

    A name goes through :func:`~thesis_lib.mathematics.activations.get_activation` (a fresh module each call);
    an ``nn.Module`` or a function is returned as it is.
    """
    if isinstance(value, str):
        try:
            return get_activation(value), value
        except ValueError as err:
            raise ValueError(f"{param}={value!r} is not a known activation: {err}") from None
    if callable(value):
        return value, getattr(value, "__name__", type(value).__name__)
    raise ValueError(f"{param} must be an activation name, an nn.Module or a function; got {value!r}")


class PhiNeuron(nn.Module):
    r""":math:`\varphi`-neuron :math:`h(x) = \varphi(\langle w, x \rangle + b)` with parameters :math:`\theta = (w, b)`.

    Thesis: Definition 1.1.3, Eq. (1.1).

    ``weight`` is :math:`w \in \mathbb{R}^k` (shape ``(k,)``) and ``bias`` is :math:`b \in \mathbb{R}`;
    both are copied into trainable parameters. ``forward`` takes ``(k,)`` and returns a scalar, or
    ``(B, k)`` and returns ``(B,)``.
    """

    def __init__(self, weight: Tensor, bias: float | Tensor, activation: ActivationLike = "relu") -> None:
        if not isinstance(weight, Tensor) or weight.ndim != 1 or weight.numel() == 0:
            shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
            raise ValueError(f"weight must be a 1-D tensor of shape (k,) with k >= 1; got {shape}")
        if isinstance(bias, Tensor):
            bias_t = bias.detach().reshape(()).to(weight.dtype).clone()
        else:
            bias_t = torch.tensor(float(bias), dtype=weight.dtype)
        phi, name = resolve_activation("activation", activation)
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())  # (k,)
        self.bias = nn.Parameter(bias_t)  # ()
        self.activation = phi
        self.activation_name = name

    @property
    def in_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        # Eq. (1.1)
        return self.activation(x @ self.weight + self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, activation={self.activation_name!r}"


class PhiLayer(nn.Module):
    r""":math:`\varphi`-layer :math:`H(x) = \widehat\varphi(Wx + b)` of width :math:`m` on :math:`\mathbb{R}^k`.

    Thesis: Definition 1.1.4, Eq. (1.2).

    Parameters ``weight`` :math:`W \in \mathbb{R}^{m \times k}` (shape ``(m, k)``) and ``bias``
    :math:`b \in \mathbb{R}^m` (shape ``(m,)``), initialised as ``torch.nn.Linear`` does (with the
    same seed they are the same numbers). ``forward`` maps ``(B, k)`` to ``(B, m)``;
    :math:`\widehat\varphi` applies :math:`\varphi` to each component.

    Definition 1.1.4 asks the :math:`i`-th component :math:`h_i` to be a :math:`\varphi`-neuron with
    weight :math:`w_i = W^\top e_i` and bias :math:`b_i = \langle b, e_i \rangle`. This is right:
    :math:`W^\top e_i` is the :math:`i`-th column of :math:`W^\top`, i.e. the :math:`i`-th row of
    :math:`W`, and :math:`(Wx + b)_i = \langle W^\top e_i, x \rangle + \langle b, e_i \rangle`, so
    Eq. (1.2) and the component-wise definition agree (:meth:`neuron` returns :math:`h_i`).

    Erratum: the sentence before Eq. (1.2) declares
    :math:`\widehat\varphi: \mathbb{R}^k \to \mathbb{R}` with
    :math:`\widehat\varphi(v) = (\varphi(v_1), \dots, \varphi(v_k))`; the codomain must be
    :math:`\mathbb{R}^k`, not :math:`\mathbb{R}`, and in Eq. (1.2) it is applied to
    :math:`Wx + b \in \mathbb{R}^m`, so the map used there is
    :math:`\widehat\varphi: \mathbb{R}^m \to \mathbb{R}^m`.
    """

    def __init__(self, in_features: int, out_features: int, activation: ActivationLike = "relu") -> None:
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        phi, name = resolve_activation("activation", activation)
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # (m, k)
        self.bias = nn.Parameter(torch.empty(out_features))  # (m,)
        self.activation = phi
        self.activation_name = name
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Initialise as ``torch.nn.Linear``: Kaiming-uniform weights, biases uniform in :math:`\pm 1/\sqrt{k}`."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        # Eq. (1.2)
        return self.activation(F.linear(x, self.weight, self.bias))  # (B, m)

    def neuron(self, i: int) -> PhiNeuron:
        r"""The component function :math:`h_i` as a :class:`PhiNeuron` (a copy of the current parameters).

        Thesis: Definition 1.1.4.

        ``i`` counts from 0 (the thesis's :math:`e_{i+1}`): weight :math:`w_i = W^\top e_i` (row ``i`` of
        ``weight``) and bias :math:`b_i = \langle b, e_i \rangle`. Component-specific activations
        (e.g. ``PReLU(num_parameters=m)``) are not split; the layer's activation is shared as is.
        """
        # w_i = W^T e_i, b_i = <b, e_i>
        return PhiNeuron(self.weight[i], self.bias[i], self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation_name!r}"


def _check_adjacent(name: str, parts: Sequence[PhiLayer] | Sequence[DeepNetwork], suffix: str = "") -> None:
    """Raise ``ValueError`` unless each part's output dimension is the next part's input dimension."""
    for i, (a, b) in enumerate(zip(parts, parts[1:])):
        if a.out_features != b.in_features:
            raise ValueError(
                f"{name}[{i}] has output dimension {a.out_features} but {name}[{i + 1}] "
                f"has input dimension {b.in_features}{suffix}"
            )


def phi_layers(
    widths: Sequence[int],
    activations: ActivationLike | Sequence[ActivationLike] = "relu",
) -> list[PhiLayer]:
    r"""The layers :math:`H_1, \dots, H_L` of a deep network with widths :math:`d_1, \dots, d_{L+1}`, fresh.

    Thesis: Definition 1.1.5.

    ``layers[i]`` is the :class:`PhiLayer` :math:`\mathbb{R}^{d_{i+1}} \to \mathbb{R}^{d_{i+2}}`.
    ``activations`` is one activation for all layers or one per layer, as for :class:`DeepNetwork`
    (which builds its layers here, as does :class:`thesis_lib.mathematics.vae.VAE`); a single ``nn.Module`` is
    deep-copied into each layer. The weights are initialised layer by layer in order, as a stack of
    ``torch.nn.Linear`` would be.
    """
    return _layers(check_widths("widths", widths), activations)


def _layers(widths: tuple[int, ...], activations: ActivationLike | Sequence[ActivationLike]) -> list[PhiLayer]:
    """:func:`phi_layers` for ``widths`` already checked (:class:`DeepNetwork` checks them first)."""
    depth = len(widths) - 1
    if isinstance(activations, str) or callable(activations):
        resolve_activation("activations", activations)  # check the single value once, naming the parameter
        specs = [copy.deepcopy(activations) if isinstance(activations, nn.Module) else activations
                 for _ in range(depth)]
    elif isinstance(activations, Sequence):
        if len(activations) != depth:
            raise ValueError(
                f"activations must be one activation or a sequence of L = {depth} (one per layer, "
                f"widths {list(widths)}); got {len(activations)}: {list(activations)!r}"
            )
        specs = list(activations)
    else:
        raise ValueError(f"activations must be an activation name or a sequence of them; got {activations!r}")
    resolved = [resolve_activation(f"activations[{i}]", spec) for i, spec in enumerate(specs)]
    layers = [PhiLayer(widths[i], widths[i + 1], phi) for i, (phi, _) in enumerate(resolved)]
    for layer, (_, name) in zip(layers, resolved):
        layer.activation_name = name
    return layers


class DeepNetwork(nn.Module):
    r""":math:`\varphi`-deep neural network
    :math:`f = H_L \circ \dots \circ H_1: \mathbb{R}^{d_1} \to \mathbb{R}^{d_{L+1}}`.

    Thesis: Definition 1.1.5, Eq. (1.3).

    ``widths`` are :math:`d_1, \dots, d_{L+1}` (so the depth is :math:`L` = ``len(widths) - 1``) and
    ``layers[i]`` is the :class:`PhiLayer` :math:`H_{i+1}: \mathbb{R}^{d_{i+1}} \to \mathbb{R}^{d_{i+2}}`.
    ``activations`` is one activation for all layers or one per layer (:math:`\varphi_1, \dots,
    \varphi_L`): names for :func:`~thesis_lib.mathematics.activations.get_activation`, ``nn.Module``\ s or
    functions; a single module is deep-copied into each layer.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activations: ActivationLike | Sequence[ActivationLike] = "relu",
    ) -> None:
        widths = check_widths("widths", widths)
        type(self)._check_widths(widths)
        layers = _layers(widths, activations)
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @classmethod
    def _check_widths(cls, widths: tuple[int, ...]) -> None:
        """Hook for subclasses with a rule on the widths (encoders, decoders); nothing to check here."""

    @classmethod
    def from_layers(cls, layers: Sequence[PhiLayer]) -> DeepNetwork:
        """A network made of the given layer modules themselves (not copies), applied in order."""
        layers = list(layers)
        _check_adjacent("layers", layers)
        cls._check_widths((layers[0].in_features, *(layer.out_features for layer in layers)))
        net = cls.__new__(cls)
        nn.Module.__init__(net)
        net.layers = nn.ModuleList(layers)
        return net

    @property
    def depth(self) -> int:
        """:math:`L`, the number of layers."""
        return len(self.layers)

    @property
    def widths(self) -> tuple[int, ...]:
        r""":math:`(d_1, \dots, d_{L+1})`."""
        return (self.layers[0].in_features, *(layer.out_features for layer in self.layers))

    @property
    def in_features(self) -> int:
        """:math:`d_1`, the input dimension."""
        return self.layers[0].in_features

    @property
    def out_features(self) -> int:
        """:math:`d_{L+1}`, the output dimension."""
        return self.layers[-1].out_features

    @property
    def activations(self) -> tuple[str, ...]:
        r"""The names of :math:`\varphi_1, \dots, \varphi_L`."""
        return tuple(layer.activation_name for layer in self.layers)

    def forward(self, x: Tensor) -> Tensor:
        # Eq. (1.3): H_L o ... o H_1
        for layer in self.layers:
            x = layer(x)
        return x  # (B, d_{L+1})

    def parameter_vector(self) -> Tensor:
        r"""The parameters :math:`\theta = (W_1, b_1, \dots, W_L, b_L)` as one flat tensor.

        Thesis: Definition 1.1.5.

        Each :math:`W_i` is flattened row by row. A layer that occurs twice (see :func:`compose`)
        appears twice, as in the thesis's :math:`\theta`. Gradients flow through the result.
        """
        # theta = (theta_1, ..., theta_L), theta_i = (W_i, b_i)
        return torch.cat([p.reshape(-1) for layer in self.layers for p in (layer.weight, layer.bias)])


def compose(*networks: DeepNetwork) -> DeepNetwork:
    r"""The composition :math:`f = f_N \circ \dots \circ f_1` of deep networks, as one deep network.

    Thesis: Lemma 2.1.3, Theorem 2.1.4.

    The arguments are given in the order they are applied: ``compose(f1, f2, f3)(x) == f3(f2(f1(x)))``.
    The result is a :class:`DeepNetwork` of depth :math:`L_1 + \dots + L_N` built from the *same* layer
    modules (not copies), so training it trains the parts, and its parameters are
    :math:`\theta = (\theta_1, \dots, \theta_N)`: ``list(compose(a, b).parameters())`` is
    ``list(a.parameters()) + list(b.parameters())``, element by element (if one network is passed
    twice its parameters are tied and ``parameters()`` lists them once; ``parameter_vector()`` lists
    them twice). The output dimension of each :math:`f_i` must equal the input dimension of
    :math:`f_{i+1}`.

    Erratum: Lemma 2.1.3 gives :math:`f_1` the layer dimensions :math:`d_1, \dots, d_{L_1}` and
    :math:`f_2` the dimensions :math:`\tilde d_1, \dots, \tilde d_{L_2}` and requires
    :math:`d_{L_1} = \tilde d_1`; by Definition 1.1.5 a network of depth :math:`L` has :math:`L+1`
    widths :math:`d_1, \dots, d_{L+1}`, so the condition (output of :math:`f_1` = input of
    :math:`f_2`) is :math:`d_{L_1+1} = \tilde d_1`, as implemented. Theorem 2.1.4's proof ends with
    :math:`L^{(N-1)} = \sum_{i=1}^{N-1} L_i`, which misses :math:`L_N`; after :math:`N-1`
    applications of the lemma the depth is :math:`\sum_{i=1}^{N} L_i = L_1 + \dots + L_N`, as the
    statement says and as implemented.
    """
    _check_adjacent("networks", networks, "; they cannot be composed")
    # Eq. (2.3): H~_{L_2} o ... o H~_1 o H_{L_1} o ... o H_1
    return DeepNetwork.from_layers([layer for net in networks for layer in net.layers])


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """The number of scalar parameters of ``module`` (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
