"""A registry that builds every model of the book from a :class:`~thesis_lib.ground.config.ModelSpec`.

Checkpoints store the spec, so a saved model can be rebuilt, and a checkpoint whose spec differs
from the one asked for can be refused.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from thesis_lib.mathematics import autoencoders, networks, vae
from thesis_lib.ground.config import ModelSpec

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": networks.DeepNetwork,
    "fc_autoencoder": autoencoders.fully_connected_autoencoder,
    "linear_autoencoder": autoencoders.linear_autoencoder,
    "conv_autoencoder": autoencoders.ConvAutoencoder,
    "vae": vae.VAE,
}


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the model that ``spec`` describes, with freshly initialised weights.

    Seed torch before calling this to get the same initial weights every time.
    """
    params = dict(spec.params)
    for key in ("widths", "hidden", "channels", "activations"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    try:
        return BUILDERS[spec.kind](**params)
    except TypeError as err:  # an unknown keyword: say which kind and what it accepts
        raise ValueError(f"bad parameters for model kind {spec.kind!r}: {err}") from None
