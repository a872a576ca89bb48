"""Tests for thesis_lib.mathematics.vae: shapes, reparameterisation, likelihoods, ELBO and the
importance-sampled likelihood against brute-force quadrature over a 1-d latent."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from thesis_lib.mathematics.networks import PhiLayer
from thesis_lib.mathematics.vae import (
    VAE,
    check_vae,
    elbo_objective,
    elbo_terms,
    importance_sampled_nll,
    iwae_objective,
    negative_elbo,
    negative_iwae_bound,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(seed: int = 0, dtype=torch.float64, **kwargs) -> VAE:
    with torch.random.fork_rng():  # seeded initial weights without touching the global RNG
        torch.manual_seed(seed)
        return VAE(**kwargs).to(dtype)


# --------------------------------------------------------------------------- shapes
def test_shapes_and_input_layouts():
    model = _model(dtype=torch.float32)
    x_img = torch.rand(5, 1, 28, 28, generator=_gen(1))
    x_flat = x_img.reshape(5, 784)
    mu, logvar = model.encode(x_img)
    assert mu.shape == (5, 20) and logvar.shape == (5, 20)
    mu2, logvar2 = model.encode(x_flat)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    x_hat, mu3, _ = model(x_img)
    assert x_hat.shape == (5, 784) and torch.equal(mu3, mu)
    assert ((x_hat > 0) & (x_hat < 1)).all()  # Bernoulli means
    z = model.reparameterize(mu, logvar, generator=_gen(2))
    assert z.shape == (5, 20)
    assert model.decode_logits(z).shape == (5, 784)
    torch.testing.assert_close(model.decode(z), torch.sigmoid(model.decode_logits(z)))
    assert model.log_likelihood(x_img, z).shape == (5,)
    assert model.sample(7, generator=_gen(3)).shape == (7, 784)
    assert not model.sample(2).requires_grad
    for f in (negative_elbo(model, x_img), elbo_terms(model, x_img)["kl"], elbo_terms(model, x_img)["reconstruction"]):
        assert f.shape == (5,)


def test_architecture_follows_arguments():
    model = VAE(input_dim=10, hidden=[8, 6], latent_dim=3, activation="tanh", likelihood="gaussian", sigma=0.5)
    linears = [m for m in model.modules() if isinstance(m, (PhiLayer, nn.Linear))]
    shapes = [(m.in_features, m.out_features) for m in linears]
    # trunk 10->8->6, heads 6->3 twice, decoder 3->6->8->10
    assert shapes == [(10, 8), (8, 6), (6, 3), (6, 3), (3, 6), (6, 8), (8, 10)]
    assert model.hidden == (8, 6)
    assert [layer.activation_name for layer in (*model.trunk, *model.decoder)] == ["tanh"] * 4 + ["identity"]
    assert isinstance(model.decoder[-1].activation, nn.Identity)  # linear output: logits or Gaussian mean
    assert model.sample(4, generator=_gen(0)).shape == (4, 10)


def test_sampling_is_reproducible_with_a_generator():
    model = _model(input_dim=6, hidden=(4,), latent_dim=2)
    torch.testing.assert_close(model.sample(3, generator=_gen(5)), model.sample(3, generator=_gen(5)))
    x = torch.rand(4, 6, generator=_gen(6), dtype=torch.float64)
    torch.testing.assert_close(negative_elbo(model, x, generator=_gen(7)), negative_elbo(model, x, generator=_gen(7)))


# --------------------------------------------------------------------------- reparameterisation
def test_reparameterize_moments_and_gradients():
    model = _model(input_dim=4, hidden=(3,), latent_dim=2)
    n = 40000
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64).repeat(n, 1).requires_grad_()
    logvar = torch.tensor([0.0, math.log(4.0)], dtype=torch.float64).repeat(n, 1).requires_grad_()
    z = model.reparameterize(mu, logvar, generator=_gen(8))
    mean, var = z.detach().mean(0), z.detach().var(0)
    std = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert ((mean - torch.tensor([1.0, -2.0], dtype=torch.float64)).abs() < 4 * std / math.sqrt(n)).all()
    # sd of the sample variance is var * sqrt(2 / n), about 0.7 % here
    assert ((var / std**2 - 1).abs() < 4 * math.sqrt(2 / n)).all()
    # Gradients flow: dz/dmu = 1, dz/dlogvar = exp(logvar / 2) * eps / 2 = (z - mu) / 2.
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * (z - mu).detach())


def test_elbo_objective_backpropagates_to_every_parameter():
    model = _model(input_dim=6, hidden=(5,), latent_dim=2)
    x = (torch.rand(8, 6, generator=_gen(9), dtype=torch.float64) > 0.5).double()
    losses = elbo_objective(beta=1.0, generator=_gen(10))(model, x, None)
    assert losses.shape == (8,)
    losses.mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- likelihoods
def test_bernoulli_log_likelihood_matches_torch():
    model = _model(input_dim=12, hidden=(7,), latent_dim=3)
    g = _gen(11)
    x_bin = (torch.rand(5, 12, generator=g, dtype=torch.float64) > 0.5).double()
    z = torch.randn(5, 3, generator=g, dtype=torch.float64) * 3
    logits = model.decode_logits(z)
    torch.testing.assert_close(model.log_likelihood(x_bin, z), Bernoulli(logits=logits).log_prob(x_bin).sum(-1))
    # Grey levels: the same formula (torch needs validate_args=False to accept them).
    x_grey = torch.rand(5, 12, generator=g, dtype=torch.float64)
    want = Bernoulli(logits=logits, validate_args=False).log_prob(x_grey).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x_grey, z), want)
    # K samples per example: (K, B, L) -> (K, B).
    zk = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    got = model.log_likelihood(x_bin, zk)
    assert got.shape == (4, 5)
    torch.testing.assert_close(got[2], model.log_likelihood(x_bin, zk[2]))


def test_bernoulli_log_likelihood_is_stable_for_large_logits():
    model = _model(input_dim=3, hidden=(2,), latent_dim=1)
    with torch.no_grad():
        model.decoder[-1].bias.copy_(torch.tensor([200.0, -200.0, 200.0]))
    z = torch.zeros(1, 1, dtype=torch.float64)
    ll = model.log_likelihood(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64), z)
    assert torch.isfinite(ll).all()
    assert ll.item() == pytest.approx(-200.0, rel=1e-2)  # the one wrong pixel costs |logit| nats


@pytest.mark.parametrize("sigma", [1.0, 0.3])
def test_gaussian_log_likelihood_matches_torch(sigma):
    model = _model(input_dim=10, hidden=(6,), latent_dim=2, likelihood="gaussian", sigma=sigma)
    g = _gen(12)
    x = torch.randn(4, 10, generator=g, dtype=torch.float64)
    z = torch.randn(4, 2, generator=g, dtype=torch.float64)
    want = Normal(model.decode(z), sigma).log_prob(x).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, z), want)
    with pytest.raises(ValueError, match="decode_logits needs likelihood='bernoulli'"):
        model.decode_logits(z)


# --------------------------------------------------------------------------- ELBO
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_negative_elbo_against_independent_computation(beta):
    model = _model(input_dim=8, hidden=(6,), latent_dim=3)
    x = (torch.rand(5, 8, generator=_gen(13), dtype=torch.float64) > 0.5).double()
    got = negative_elbo(model, x, beta=beta, generator=_gen(14))
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=_gen(14), dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = -Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(got, recon + beta * kl)
    terms = elbo_terms(model, x, generator=_gen(14))
    assert set(terms) == {"reconstruction", "kl"}
    torch.testing.assert_close(terms["reconstruction"], recon)
    torch.testing.assert_close(terms["kl"], kl)


# --------------------------------------------------------------------------- exact log p(x), 1-d latent
def _grid() -> torch.Tensor:
    return torch.linspace(-12.0, 12.0, 24001, dtype=torch.float64)


def _exact_log_px(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log int p(x|z) N(z; 0, 1) dz by the trapezoidal rule on a fine grid (latent_dim = 1)."""
    grid = _grid()
    z = grid.reshape(-1, 1, 1).expand(-1, x.shape[0], 1)  # (G, B, 1)
    with torch.no_grad():
        log_joint = model.log_likelihood(x, z) + Normal(0.0, 1.0).log_prob(z[..., 0])  # (G, B)
    dz = float(grid[1] - grid[0])
    w = torch.full((len(grid), 1), math.log(dz), dtype=torch.float64)
    w[0] = w[-1] = math.log(dz / 2)
    return torch.logsumexp(log_joint + w, dim=0)


def _exact_negative_elbo(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """-E_q[log p(x|z)] + KL(q || p) with the expectation by quadrature (latent_dim = 1)."""
    with torch.no_grad():
        mu, logvar = model.encode(x)
        q = Normal(mu[:, 0], torch.exp(0.5 * logvar[:, 0]))
        grid = _grid()
        z = grid.reshape(-1, 1, 1).expand(-1, x.shape[0], 1)
        dens = q.log_prob(z[..., 0]).exp()  # (G, B)
        e_log_lik = (dens * model.log_likelihood(x, z)).sum(0) * float(grid[1] - grid[0])
        kl = kl_divergence(q, Normal(0.0, 1.0))
    return -e_log_lik + kl


def _tiny(likelihood: str) -> VAE:
    return _model(seed=3, input_dim=3, hidden=(5,), latent_dim=1, likelihood=likelihood, sigma=0.7)


def test_quadrature_reference_is_a_probability():
    model = _tiny("bernoulli")
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)  # all of {0,1}^3
    assert _exact_log_px(model, xs).exp().sum().item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_importance_sampled_nll_matches_quadrature(likelihood):
    model = _tiny(likelihood)
    if likelihood == "bernoulli":
        x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)
    else:
        x = torch.randn(6, 3, generator=_gen(15), dtype=torch.float64)
    exact_nll = -_exact_log_px(model, x)
    # The weights are heavy-tailed (q is an untrained encoder): over seeds the estimate's sd is
    # about 0.018 nats at k = 2e4 and 0.0035 at k = 2e5; atol = 0.02 is about 5 sd at k = 2e5.
    est = importance_sampled_nll(model, x, k=200000, chunk=50000, generator=_gen(16))
    assert est.shape == (x.shape[0],)
    torch.testing.assert_close(est, exact_nll, atol=0.02, rtol=0)
    # Chunking changes nothing but the random draws: chunk = k and a chunk that does not divide k.
    for chunk in (200000, 7777):
        other = importance_sampled_nll(model, x, k=200000, chunk=chunk, generator=_gen(17))
        torch.testing.assert_close(other, exact_nll, atol=0.02, rtol=0)
    # The bound is not tight here, so the tolerance above is meaningful.
    exact_nelbo = _exact_negative_elbo(model, x)
    assert ((exact_nelbo - exact_nll) > 0.02).any()
    assert (exact_nelbo >= exact_nll - 1e-9).all()



def _two_inputs(likelihood: str, seed: int) -> torch.Tensor:
    """Two 3-pixel inputs for :func:`_tiny`: binary images for a Bernoulli decoder, Gaussian draws otherwise."""
    if likelihood == "bernoulli":
        return torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    return torch.randn(2, 3, generator=_gen(seed), dtype=torch.float64)

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_k1_is_the_elbo_and_large_k_is_below_it(likelihood):
    model = _tiny(likelihood)
    x = _two_inputs(likelihood, seed=18)
    exact_nelbo = _exact_negative_elbo(model, x)
    reps = 20000
    xr = x.repeat(reps, 1)
    # negative_elbo: unbiased for -ELBO (mean over many one-sample estimates).
    with torch.no_grad():
        ne = negative_elbo(model, xr, generator=_gen(19)).reshape(reps, 2)
    se = ne.std(0) / math.sqrt(reps)
    assert ((ne.mean(0) - exact_nelbo).abs() < 3 * se).all()
    # importance_sampled_nll with k = 1: also unbiased for -ELBO.
    is1 = importance_sampled_nll(model, xr, k=1, generator=_gen(20)).reshape(reps, 2)
    se1 = is1.std(0) / math.sqrt(reps)
    assert ((is1.mean(0) - exact_nelbo).abs() < 3 * se1).all()
    # With many samples it lies below the mean negative ELBO (and close to -log p(x)).
    big = importance_sampled_nll(model, x, k=20000, generator=_gen(21))
    assert (big <= ne.mean(0)).all()
    assert (big <= exact_nelbo).all()


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_dim": 0}, "input_dim must be a positive integer"),
        ({"latent_dim": -1}, "latent_dim must be a positive integer"),
        ({"latent_dim": 2.0}, "latent_dim must be a positive integer"),
        ({"hidden": ()}, "hidden must have at least 1 entries"),
        ({"hidden": (400, 0)}, "hidden must contain positive integers"),
        ({"hidden": 400}, "hidden must be a sequence"),
        ({"likelihood": "poisson"}, "likelihood must be one of 'bernoulli', 'gaussian'; got 'poisson'"),
        ({"sigma": 0.0}, "sigma must be a finite number greater than 0"),
        ({"activation": "no_such_activation"}, "no_such_activation"),
        ({"activation": None}, "activation must be"),
    ],
)
def test_vae_constructor_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAE(**kwargs)


def test_method_and_function_bad_inputs():
    model = _model(input_dim=6, hidden=(4,), latent_dim=2)
    x = torch.rand(3, 6, dtype=torch.float64)
    with pytest.raises(AssertionError, match="z must have the batch size of x"):
        model.log_likelihood(x, torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0; got -1"):
        negative_elbo(model, x, beta=-1.0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        elbo_objective(beta=float("nan"))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        importance_sampled_nll(model, x, k=0)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        importance_sampled_nll(model, x, k=10, chunk=0)
    with pytest.raises(ValueError, match="model must be a thesis_lib.mathematics.vae.VAE "
                       ".*got Linear without 'encode'"):
        check_vae(nn.Linear(6, 6))  # where a model enters the evaluations of metrics
    check_vae(model)  # a VAE passes


# --------------------------------------------------------------------------- the IWAE bound
def test_iwae_bound_against_torch_distributions():
    model = _model(input_dim=8, hidden=(6,), latent_dim=3)
    x = (torch.rand(4, 8, generator=_gen(30), dtype=torch.float64) > 0.5).double()
    k = 7
    got = negative_iwae_bound(model, x, k=k, generator=_gen(31))
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((k, *mu.shape), generator=_gen(31), dtype=torch.float64)
    z = mu + std * eps  # (k, B, L)
    log_w = (
        Bernoulli(logits=model.decoder(z)).log_prob(x).sum(-1)
        + Normal(0.0, 1.0).log_prob(z).sum(-1)
        - Normal(mu, std).log_prob(z).sum(-1)
    )
    ref = -(torch.logsumexp(log_w, dim=0) - math.log(k))
    torch.testing.assert_close(got, ref)
    # the same draws give the importance-sampled NLL of the same k (one chunk)
    torch.testing.assert_close(importance_sampled_nll(model, x, k=k, chunk=k, generator=_gen(31)), ref.detach())


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_bound_tightens_with_k_towards_the_exact_nll(likelihood):
    model = _tiny(likelihood)
    x = _two_inputs(likelihood, seed=32)
    exact_nll, exact_nelbo = -_exact_log_px(model, x), _exact_negative_elbo(model, x)
    reps = 20000
    xr = x.repeat(reps, 1)
    means = {}
    with torch.no_grad():
        for k in (1, 5, 50):
            b = negative_iwae_bound(model, xr, k=k, generator=_gen(33 + k)).reshape(reps, 2)
            means[k] = b.mean(0)
            se = b.std(0) / math.sqrt(reps)
            assert (means[k] >= exact_nll - 4 * se).all()  # Burda et al., Theorem 1: a bound on -log p(x)
        se1 = negative_iwae_bound(model, xr, k=1, generator=_gen(34)).reshape(reps, 2).std(0) / math.sqrt(reps)
    assert ((means[1] - exact_nelbo).abs() < 4 * se1).all()  # k = 1 is the ELBO
    assert (means[5] < means[1]).all() and (means[50] < means[5]).all()  # monotone in k
    assert ((means[50] - exact_nll).abs() < (exact_nelbo - exact_nll)).all()


def test_iwae_objective_trains_every_parameter_and_checks_k():
    model = _model(input_dim=8, hidden=(6,), latent_dim=3, dtype=torch.float32)
    x = torch.rand(5, 8)
    iwae_objective(k=3)(model, x, None).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            iwae_objective(k=bad)
    with pytest.raises(ValueError, match="k must be"):
        negative_iwae_bound(model, x, k=0)


# --------------------------------------------------------------------------- no host synchronisation per batch
def _forbid_host_reads(monkeypatch) -> None:
    """Make every way of reading a tensor's value on the host raise (on a GPU each would wait for it)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the objective read a tensor value on the host")

    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


@pytest.mark.parametrize("make", [lambda: elbo_objective(beta=0.5, generator=_gen(40)),
                                  lambda: iwae_objective(k=3, generator=_gen(41))])
def test_objectives_do_not_read_tensor_values_per_batch(make, monkeypatch):
    model = _model(input_dim=6, hidden=(5, 4), latent_dim=2)
    x = torch.rand(4, 6, generator=_gen(42), dtype=torch.float64)
    objective = make()
    want = objective(model, x, None)
    objective = make()  # the same generator state again
    with monkeypatch.context() as m:
        _forbid_host_reads(m)
        got = objective(model, x, None)
        x_hat, mu, logvar = model(x)  # forward, reparameterize and decode read nothing either
        model.log_likelihood(x, model.reparameterize(mu, logvar))
        with pytest.raises(AssertionError, match="read a tensor value"):  # the guard works
            bool(got.sum() > 0)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


# --------------------------------------------------------------------------- committed checkpoints
_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def _by_hand(state: dict[str, torch.Tensor], x: torch.Tensor, activation: str) -> tuple[torch.Tensor, ...]:
    """(mu, logvar, decoder logits at mu) from the raw state dict: Linear layers and the activation, nothing else."""
    phi = {"relu": torch.relu, "tanh": torch.tanh}[activation]

    def run(prefix: str, h: torch.Tensor, last_activation: bool) -> torch.Tensor:
        idx = sorted(int(k.split(".")[1]) for k in state if k.startswith(prefix) and k.endswith(".weight"))
        for n, i in enumerate(idx):
            h = torch.nn.functional.linear(h, state[f"{prefix}.{i}.weight"], state[f"{prefix}.{i}.bias"])
            if last_activation or n < len(idx) - 1:
                h = phi(h)
        return h

    h = run("trunk", x, last_activation=True)
    mu = torch.nn.functional.linear(h, state["fc_mu.weight"], state["fc_mu.bias"])
    logvar = torch.nn.functional.linear(h, state["fc_logvar.weight"], state["fc_logvar.bias"])
    return mu, logvar, run("decoder", mu, last_activation=False)


@pytest.mark.parametrize("name", ["vae_standard", "vae_nll"])
def test_committed_checkpoints_load_strictly_and_compute_the_same(name):
    path = _CHECKPOINTS / f"{name}.pt"
    if not path.exists():
        pytest.skip(f"{path} is not committed here")
    ckpt = torch.load(path, weights_only=True)
    spec = ckpt["model_spec"]
    assert spec["kind"] == "vae"
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["params"].items()}
    model = VAE(**params)
    assert list(model.state_dict()) == list(ckpt["model"])  # the same keys, in the same order
    model.load_state_dict(ckpt["model"], strict=True)
    model.eval()
    x = torch.rand(8, params["input_dim"], generator=_gen(50))
    with torch.no_grad():
        mu, logvar = model.encode(x)
        logits = model.decode_logits(mu)
    want = _by_hand(ckpt["model"], x, params.get("activation", "relu"))
    for got, ref in zip((mu, logvar, logits), want):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)


# --------------------------------------------------------------------------- convergence in k
def test_nll_curve_rows_are_prefixes_of_one_set_of_samples_against_scipy(monkeypatch):
    """Each row of the curve is -log-mean-exp of the first ks[j] log-weights (scipy's logsumexp on
    planted weights), whatever the chunk size; its last row with ks = (k,) is importance_sampled_nll."""
    import scipy.special

    import thesis_lib.mathematics.vae as vae_module

    model = _model(input_dim=8, hidden=(6,), latent_dim=3)
    x = (torch.rand(4, 8, generator=_gen(40), dtype=torch.float64) > 0.5).double()
    planted = torch.randn(60, 4, generator=_gen(41), dtype=torch.float64) * 3.0
    ks = (1, 7, 20, 60)
    for chunk in (1, 8, 60):
        drawn = []

        def log_weights(model, x, mu, logvar, k, generator, drawn=drawn):
            start = sum(drawn)
            drawn.append(k)
            return planted[start:start + k]

        monkeypatch.setattr(vae_module, "_log_weights", log_weights)
        got = vae_module.importance_sampled_nll_curve(model, x, ks, chunk=chunk)
        want = torch.stack([torch.from_numpy(math.log(k) - scipy.special.logsumexp(planted[:k].numpy(), axis=0))
                            for k in ks])
        torch.testing.assert_close(got, want)
        assert sum(drawn) == 60 and max(drawn) <= chunk  # the largest k's samples, no more
    monkeypatch.undo()
    torch.testing.assert_close(vae_module.importance_sampled_nll_curve(model, x, (30,), chunk=7, generator=_gen(42))[0],
                               importance_sampled_nll(model, x, k=30, chunk=7, generator=_gen(42)))


def test_nll_curve_refuses_ks_that_do_not_increase():
    from thesis_lib.mathematics.vae import importance_sampled_nll_curve

    model, x = _model(input_dim=8, hidden=(6,), latent_dim=3), torch.zeros(2, 8, dtype=torch.float64)
    for ks in ((), (10, 5), (3, 3)):
        with pytest.raises(ValueError, match="ks must be a non-empty, strictly increasing sequence"):
            importance_sampled_nll_curve(model, x, ks)
    with pytest.raises(ValueError, match="ks must be a positive integer"):
        importance_sampled_nll_curve(model, x, (0, 5))
