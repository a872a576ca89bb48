r"""The variational autoencoder: Gaussian encoder, Bernoulli or Gaussian decoder, ELBO.

The thesis opens Chapter 3 (Section 3.1: KL divergence, entropy, cross-entropy) but never
reaches the model itself; this module supplies it after Kingma & Welling (2014),
"Auto-Encoding Variational Bayes", and Burda et al. (2015) for the importance-sampled
likelihood. Method names follow pytorch/examples ``vae/main.py``: ``encode``,
``reparameterize``, ``decode``, ``forward -> (x_hat, mu, logvar)``.

Model: prior $p(z) = \mathcal N(0, I)$, encoder $q_\phi(z|x) = \mathcal N(\mu_\phi(x),
\operatorname{diag}\exp(\operatorname{logvar}_\phi(x)))$, decoder $p_\theta(x|z)$ a product
of Bernoullis (logits from the network) or of Gaussians $\mathcal N(m_\theta(z), \sigma^2)$.

All losses are per example, shape ``(B,)``, in nats, summed over pixels and latent units.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from thesis_lib.mathematics.divergences import gaussian_kl
from thesis_lib.mathematics.networks import PhiLayer, phi_layers, resolve_activation
from thesis_lib.ground.validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_widths,
)

LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2.0 * math.pi)


def _check_activation(name: str) -> None:
    """The activation must be a name (the model spec stores it) that
    :func:`~thesis_lib.mathematics.activations.get_activation` knows."""
    if not isinstance(name, str):
        raise ValueError(f"activation must be the name of an activation function (str); got {name!r}")
    resolve_activation("activation", name)


def _layer_stack(layers: list[PhiLayer]) -> nn.Sequential:
    r"""The layers (each $\widehat\varphi(Wx + b)$, Eq. (1.2)) applied in order, as an ``nn.Sequential``
    whose entries are named ``0, 2, 4, ...``.

    The names are those the linear maps had when each layer was an ``nn.Linear`` followed by its
    activation module, so the state-dict keys (``trunk.0.weight``, ``decoder.2.bias``, ...) and with
    them the committed checkpoints stay valid. Index the layers by position (``decoder[-1]``) or by
    name (``decoder.get_submodule("2")``).
    """
    return nn.Sequential(OrderedDict((str(2 * i), layer) for i, layer in enumerate(layers)))


class VAE(nn.Module):
    r"""Variational autoencoder with a fully connected Gaussian encoder and decoder.

    Thesis: Section 3.1 (the chapter the thesis left unfinished); Kingma & Welling (2014), Appendix C.

    Encoder: a shared trunk ``input_dim -> hidden[0] -> ... -> hidden[-1]`` (each layer a
    :class:`~thesis_lib.mathematics.networks.PhiLayer` $\widehat\varphi(Wx + b)$, Eq. (1.2), built by
    :func:`~thesis_lib.mathematics.networks.phi_layers`) and two linear heads giving $\mu$ and
    $\log\sigma^2$ of $q(z|x)$, each of size ``latent_dim``. Decoder: the mirror image
    ``latent_dim -> hidden[-1] -> ... -> hidden[0] -> input_dim`` with a linear output layer
    (the identity activation),
    read as Bernoulli logits (``likelihood="bernoulli"``; :meth:`decode` applies the sigmoid)
    or as the Gaussian mean (``likelihood="gaussian"``, fixed standard deviation ``sigma``;
    ``sigma`` is ignored for Bernoulli).

    Inputs may be ``(B, input_dim)`` or any ``(B, ...)`` with ``input_dim`` entries per example,
    e.g. ``(B, 1, 28, 28)``; outputs of :meth:`decode` and :meth:`forward` are flat,
    ``(B, input_dim)``, as in pytorch/examples.
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden: Sequence[int] = (400,),
        latent_dim: int = 20,
        activation: str = "relu",
        likelihood: str = "bernoulli",
        sigma: float = 1.0,
    ) -> None:
        check_positive_int("input_dim", input_dim)
        hidden = check_widths("hidden", hidden, min_len=1)
        check_positive_int("latent_dim", latent_dim)
        _check_activation(activation)  # raises ValueError for an unknown name, before any layer is built
        check_choice("likelihood", likelihood, LIKELIHOODS)
        sigma = check_positive_float("sigma", sigma)
        super().__init__()
        self.input_dim = input_dim  # pixels per example (784 for MNIST)
        self.hidden = hidden  # trunk widths; the decoder uses them reversed
        self.latent_dim = latent_dim  # size of z
        self.activation = activation  # name passed to thesis_lib.mathematics.activations.get_activation
        self.likelihood = likelihood  # "bernoulli": decoder gives logits; "gaussian": the mean
        self.sigma = sigma  # std of p(x|z) when likelihood == "gaussian"
        self.trunk = _layer_stack(phi_layers((input_dim, *hidden), activation))
        self.fc_mu = nn.Linear(hidden[-1], latent_dim)
        self.fc_logvar = nn.Linear(hidden[-1], latent_dim)
        decoder_activations = [activation] * len(hidden) + ["identity"]
        self.decoder = _layer_stack(phi_layers((latent_dim, *reversed(hidden), input_dim), decoder_activations))

    # ------------------------------------------------------------------ shapes
    def _flatten(self, x: Tensor) -> Tensor:
        """``(B, ...) -> (B, input_dim)``; torch refuses an ``x`` without ``input_dim`` entries per example."""
        return x.reshape(x.shape[0], self.input_dim)

    # ------------------------------------------------------------------ the model
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Parameters of $q(z|x)$: ``(mu, logvar)``, each ``(B, latent_dim)``, logvar $= \log\sigma^2$."""
        h = self.trunk(self._flatten(x))  # (B, hidden[-1])
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""$z = \mu + \exp(\tfrac12\log\sigma^2) \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$.

        Thesis: Section 3.1 (unfinished); Kingma & Welling (2014), Section 2.4.

        A sample of $q(z|x)$ that is differentiable in ``mu`` and ``logvar``. Any shape works as
        long as the two agree, e.g. ``(K, B, latent_dim)`` for ``K`` samples per example.
        Always samples (also in eval mode); use ``mu`` for a deterministic code.
        """
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode_logits(self, z: Tensor) -> Tensor:
        r"""Bernoulli logits of $p(x|z)$, shape ``(..., input_dim)`` (``likelihood="bernoulli"`` only)."""
        if self.likelihood != "bernoulli":
            raise ValueError(
                f"decode_logits needs likelihood='bernoulli'; this model has likelihood={self.likelihood!r}"
            )
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        r"""Mean of $p(x|z)$: sigmoid probabilities (Bernoulli) or the Gaussian mean, ``(..., input_dim)``."""
        out = self.decoder(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""``(x_hat, mu, logvar)``: the decoded mean for one sample $z \sim q(z|x)$, and $q$'s parameters."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""``n`` new images: the means of $p(x|z)$ for $z \sim \mathcal N(0, I)$, shape ``(n, input_dim)``.

        Runs without gradient tracking (it is for generation).
        """
        check_positive_int("n", n)
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.decode(z)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""$\log p(x|z)$ summed over pixels, in nats.

        ``x`` is ``(B, ...)`` (flattened to ``(B, input_dim)``), ``z`` is ``(B, latent_dim)`` or
        ``(K, B, latent_dim)``; the result is ``(B,)`` or ``(K, B)``.

        Bernoulli: $\sum_i x_i l_i - \operatorname{softplus}(l_i)$ with the logits $l$, which is
        stable for large $|l|$. For grey levels $x_i \in (0, 1)$ (MNIST) this is the same
        formula, but it is not a normalised density in $x$ (see the continuous Bernoulli of
        Loaiza-Ganem & Cunningham, 2019); binarise the data for a true log-likelihood.
        Gaussian: $-\sum_i \big(\frac{(x_i - m_i)^2}{2\sigma^2} + \log\sigma + \frac12\log 2\pi\big)$.
        """
        x = self._flatten(x)  # (B, D)
        # a z of batch size 1 would broadcast against x without an error
        assert z.shape[-2:-1] == x.shape[:1], f"z must have the batch size of x ({x.shape[0]}) in dim -2"
        out = self.decoder(z)  # (..., B, D)
        if self.likelihood == "bernoulli":
            return (x * out - nn.functional.softplus(out)).sum(dim=-1)
        return -(0.5 * ((x - out) / self.sigma).pow(2) + math.log(self.sigma) + 0.5 * _LOG_2PI).sum(dim=-1)


# ---------------------------------------------------------------------- objectives
_VAE_METHODS = ("encode", "reparameterize", "log_likelihood")


def check_vae(model: object) -> None:
    """Raise ``ValueError`` unless ``model`` has what the functions here and in
    :mod:`thesis_lib.mathematics.metrics` use.

    That is the methods ``encode``, ``reparameterize`` and ``log_likelihood`` and the attribute
    ``latent_dim`` of :class:`VAE`. The evaluations of :mod:`thesis_lib.mathematics.metrics` call it once,
    where a model enters; the functions here trust their model (a model without these methods fails with
    an ``AttributeError`` that names the missing one).
    """
    for attr in (*_VAE_METHODS, "latent_dim"):
        value = getattr(model, attr, None)
        if value is None or (attr in _VAE_METHODS and not callable(value)):
            raise ValueError(
                f"model must be a thesis_lib.mathematics.vae.VAE (encode, reparameterize, log_likelihood, latent_dim); "
                f"got {type(model).__name__} without {attr!r}"
            )


def elbo_terms(model: VAE, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    r"""The two terms of the negative ELBO, per example (``(B,)`` each, nats).

    Thesis: Definition 3.1.1, Eq. (3.1) (the KL term); Kingma & Welling (2014), Eq. (10).

    ``"reconstruction"``: $-\log p(x|z)$ for one $z \sim q(z|x)$ (a one-sample estimate of
    $-\mathbb E_q[\log p(x|z)]$); ``"kl"``: $D_{KL}(q(z|x) \,\|\, p(z))$ in closed form
    (Kingma & Welling 2014, Appendix B).
    """
    mu, logvar = model.encode(x)  # (B, L) each
    z = model.reparameterize(mu, logvar, generator=generator)  # (B, L)
    return {"reconstruction": -model.log_likelihood(x, z), "kl": gaussian_kl(mu, logvar)}


def negative_elbo(model: VAE, x: Tensor, beta: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    r"""$-\mathrm{ELBO} = -\log p(x|z) + \beta\, D_{KL}(q(z|x)\,\|\,p(z))$, $z \sim q(z|x)$, per example.

    Thesis: Definition 3.1.1, Eq. (3.1) (the KL term); Kingma & Welling (2014), Eq. (10).

    One-sample reparameterised estimate; shape ``(B,)``, in nats (summed over pixels and
    latent units, not averaged). ``beta = 1`` is the ELBO, an upper bound on $-\log p(x)$ in
    expectation; ``beta != 1`` is the $\beta$-VAE objective of Higgins et al. (2017). It is
    ``elbo_objective(beta, generator)(model, x)``, so ``beta`` is checked there.
    """
    return elbo_objective(beta, generator)(model, x)


def elbo_objective(beta: float = 1.0, generator: torch.Generator | None = None) -> Callable[..., Tensor]:
    r"""Objective ``(model, x, y=None) -> (B,)`` for the training loop: :func:`negative_elbo`.

    Thesis: Definition 3.1.1, Eq. (3.1) (the KL term); Kingma & Welling (2014), Eq. (10).

    ``y`` is ignored. The training loop's mean over the batch is the minibatch estimate of the
    negative ELBO averaged over the data (Definition 1.2.4, Eq. (1.4)). ``beta`` is checked here,
    once; per batch no argument is checked (the model is trusted to be a :class:`VAE`).
    """
    beta = check_nonnegative_float("beta", beta)

    def objective(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        terms = elbo_terms(model, x, generator)
        # Kingma & Welling (2014), Eq. (10), with the KL weighted by beta
        return terms["reconstruction"] + beta * terms["kl"]

    return objective


@torch.no_grad()
def importance_sampled_nll(
    model: VAE,
    x: Tensor,
    k: int = 5000,
    chunk: int = 500,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Importance-sampled $-\log p(x) \approx -\log\frac1k\sum_{i=1}^k \frac{p(x|z_i)\,p(z_i)}{q(z_i|x)}$,
    $z_i \sim q(z|x)$.

    Thesis: Section 3.1 (unfinished); Burda et al. (2015), Section 3.

    Computed as $-\operatorname{logsumexp}_i[\log p(x|z_i) + \log p(z_i) - \log q(z_i|x)] + \log k$,
    drawing the ``k`` samples in chunks of ``chunk`` to bound memory (about
    ``chunk * B * input_dim`` decoder outputs at a time). Shape ``(B,)``, nats. For ``k = 1`` its
    expectation is the negative ELBO; it decreases in expectation towards $-\log p(x)$ as ``k``
    grows (a consistent, slightly upward-biased estimate). Runs without gradient tracking.
    """
    return importance_sampled_nll_curve(model, x, (check_positive_int("k", k),), chunk, generator)[0]


@torch.no_grad()
def importance_sampled_nll_curve(
    model: VAE, x: Tensor, ks: Sequence[int], chunk: int = 500, generator: torch.Generator | None = None,
) -> Tensor:
    r""":func:`importance_sampled_nll` for several sample sizes at the price of the largest: ``(len(ks), B)``.

    Row ``j`` uses the first ``ks[j]`` of the same ``max(ks)`` samples (``ks`` increasing), so the rows
    show how one estimate converges as $k$ grows. The samples are drawn in chunks of at most ``chunk``
    that end at every ``ks[j]``; with ``ks = (k,)`` this is :func:`importance_sampled_nll` itself.
    """
    ks = [check_positive_int("ks", k) for k in ks]
    if not ks or any(a >= b for a, b in zip(ks, ks[1:])):
        raise ValueError(f"ks must be a non-empty, strictly increasing sequence of positive integers; got {ks}")
    check_positive_int("chunk", chunk)
    mu, logvar = model.encode(x)  # (B, L) each
    chunk_lse: list[Tensor] = []
    rows: list[Tensor] = []
    done = 0
    for k in ks:
        while done < k:
            c = min(chunk, k - done)
            chunk_lse.append(torch.logsumexp(_log_weights(model, x, mu, logvar, c, generator), dim=0))  # (B,)
            done += c
        # Burda et al. (2015), Section 3: -log((1/k) sum_i w_i)
        rows.append(-(torch.logsumexp(torch.stack(chunk_lse), dim=0) - math.log(k)))
    return torch.stack(rows)


def _log_weights(
    model: VAE, x: Tensor, mu: Tensor, logvar: Tensor, k: int, generator: torch.Generator | None
) -> Tensor:
    r"""$\log w_i = \log p(x|z_i) + \log p(z_i) - \log q(z_i|x)$ for $k$ reparameterised $z_i \sim q(z|x)$:
    ``(k, B)``."""
    eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)  # (k, B, L)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_pxz = model.log_likelihood(x, z)  # (k, B)
    log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(dim=-1)  # (k, B)
    log_qz = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(dim=-1)  # (k, B)
    return log_pxz + log_pz - log_qz


def negative_iwae_bound(model: VAE, x: Tensor, k: int = 5, generator: torch.Generator | None = None) -> Tensor:
    r"""The importance-weighted bound of Burda et al. (2015), negated: $-\log\frac1k\sum_{i=1}^k w_i$, per example.

    Thesis: Section 3.1 (unfinished); Burda et al. (2015), Eq. (8).

    ``(B,)``, nats, differentiable (the $z_i$ are reparameterised), so it can be trained on (the IWAE).
    In expectation it lies between $-\log p(x)$ and the negative ELBO, and falls towards $-\log p(x)$
    as $k$ grows (Burda et al., Theorem 1); ``k = 1`` is the ELBO with the KL term estimated by the
    same sample instead of in closed form. Training on it gives the decoder credit for samples $q$
    places badly, which is how the IWAE improves on the VAE's likelihood. It is
    ``iwae_objective(k, generator)(model, x)``, so ``k`` is checked there.
    """
    return iwae_objective(k, generator)(model, x)


def iwae_objective(k: int = 5, generator: torch.Generator | None = None) -> Callable[..., Tensor]:
    """Objective ``(model, x, y=None) -> (B,)`` for the training loop: :func:`negative_iwae_bound` with ``k`` samples.

    ``k`` is checked here, once; per batch no argument is checked (the model is trusted to be a :class:`VAE`).
    """
    check_positive_int("k", k)

    def objective(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        mu, logvar = model.encode(x)
        # Burda et al. (2015), Eq. (8)
        return -(torch.logsumexp(_log_weights(model, x, mu, logvar, k, generator), dim=0) - math.log(k))

    return objective
