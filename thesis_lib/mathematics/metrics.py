r"""Evaluation of variational autoencoders: anomaly scores, ROC curves and exact 2-d likelihoods.

Chapter 5 of the book (the thesis's unfinished Chapter 3) scores images by the negative ELBO of a
VAE that never saw their kind (:func:`anomaly_scores`), ranks the scores with :func:`roc_auc` and
:func:`roc_curve`, estimates test log-likelihoods by importance sampling over a whole test set
(:func:`dataset_nll`), and checks the ELBO's decomposition
$\log p(x) = \mathrm{ELBO}(x) + D_{KL}(q(z|x)\,\|\,p(z|x))$ on a VAE with a 2-dimensional latent
space, where $\log p(x)$ is an integral that a grid can do (:func:`latent_grid_decomposition`).

The thesis names anomaly detection as an application of VAEs in its abstract but does not treat
it; the literature behind this module is Kingma & Welling (2014) for the ELBO and Burda et al.
(2016) for likelihood evaluation. Scores are "higher = more anomalous" throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from thesis_lib.mathematics.divergences import gaussian_kl
from thesis_lib.mathematics.networks import eval_mode
from thesis_lib.mathematics.vae import check_vae, importance_sampled_nll_curve
from thesis_lib.ground.validation import check_positive_float, check_positive_int

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- ranks and ROC
def _cpu_double(scores: Tensor) -> Tensor:
    """The scores as a float64 tensor on the CPU, out of the autograd graph."""
    return scores.detach().cpu().double()


def average_ranks(values: Tensor) -> Tensor:
    r"""Ranks $1, \dots, n$ of a 1-d tensor, ties sharing the mean of their ranks (as ``scipy.stats.rankdata``).

    Returns a float64 tensor of the same length.
    """
    v = _cpu_double(values)
    uniq, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0).double()  # highest rank of each group of equal values
    mean_rank = last - (counts.double() - 1.0) / 2.0  # mean of the ranks last-count+1 .. last
    return mean_rank[inverse]


def roc_auc(scores_normal: Tensor, scores_anomalous: Tensor) -> float:
    r"""Area under the ROC curve of "score > threshold means anomalous".

    Equal to the probability that a random anomalous example scores higher than a random normal
    one, ties counting one half:

    $$\mathrm{AUC} = \frac{1}{n_0 n_1} \sum_{i,j} \big(\mathbf 1[a_j > s_i] + \tfrac12 \mathbf 1[a_j = s_i]\big)
    = \frac{U}{n_0 n_1},$$

    with $U = R_1 - n_1(n_1 + 1)/2$ the Mann-Whitney statistic of the anomalous scores, $R_1$
    the sum of their (tie-averaged) ranks in the pooled sample. Computed from the ranks in
    $O(n \log n)$; 1 means perfect separation, 0.5 chance, 0 perfectly inverted.
    ``scores_normal`` ($n_0$) and ``scores_anomalous`` ($n_1$) are non-empty 1-d tensors.
    """
    s, a = _cpu_double(scores_normal), _cpu_double(scores_anomalous)
    n0, n1 = len(s), len(a)
    ranks = average_ranks(torch.cat([s, a]))
    u = ranks[n0:].sum() - n1 * (n1 + 1) / 2.0  # Mann-Whitney U of the anomalous sample
    return float(u / (n0 * n1))


def roc_curve(scores_normal: Tensor, scores_anomalous: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""The ROC curve: false and true positive rates for every threshold, ``(fpr, tpr, thresholds)``.

    An example is called anomalous when its score is ``>= threshold``. The thresholds are the
    distinct scores in decreasing order, preceded by $+\infty$ (nothing called anomalous), so the
    curve runs from $(0, 0)$ to $(1, 1)$; equal scores form one step, which the trapezoidal rule
    crosses diagonally. Its trapezoidal area is :func:`roc_auc`. All three are float64 ``(T + 1,)``.
    """
    s, a = _cpu_double(scores_normal), _cpu_double(scores_anomalous)
    pooled = torch.cat([s, a])
    is_anomalous = torch.cat([torch.zeros(len(s)), torch.ones(len(a))]).double()
    uniq, inverse = torch.unique(pooled, sorted=True, return_inverse=True)
    k = len(uniq)
    pos = torch.zeros(k, dtype=torch.float64).index_add_(0, inverse, is_anomalous)  # anomalies per value
    neg = torch.zeros(k, dtype=torch.float64).index_add_(0, inverse, 1.0 - is_anomalous)
    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), pos.flip(0).cumsum(0) / len(a)])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), neg.flip(0).cumsum(0) / len(s)])
    thresholds = torch.cat([torch.tensor([math.inf], dtype=torch.float64), uniq.flip(0)])
    return fpr, tpr, thresholds


# --------------------------------------------------------------------------- anomaly scores
@torch.no_grad()
def anomaly_scores(
    model: nn.Module,
    x: Tensor,
    n_samples: int = 10,
    generator: torch.Generator | None = None,
    batch_size: int = 1000,
    return_stderr: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Anomaly score of each image: the negative ELBO averaged over ``n_samples`` draws $z \sim q(z|x)$.

    $$s(x) = \frac1S \sum_{s=1}^{S} -\log p(x|z_s) + D_{KL}(q(z|x)\,\|\,p(z)), \qquad
    z_s = \mu(x) + \sigma(x) \odot \varepsilon_s,$$

    in nats (``(B, ...) -> (B,)``, float32 as the model). All noise $\varepsilon$, shape
    ``(n_samples, B, latent_dim)``, is drawn from ``generator`` before the batches are formed, so
    the result does not depend on ``batch_size`` (which only bounds memory: about
    ``n_samples * batch_size * input_dim`` decoder outputs at a time). With ``n_samples=1`` it is
    :func:`thesis_lib.mathematics.vae.negative_elbo` with the same generator state. The model is evaluated
    in eval mode and left in the mode it was in. With ``return_stderr=True`` (needs
    ``n_samples >= 2``) also returns each score's Monte Carlo standard error, the standard deviation
    of $-\log p(x|z_s)$ over the samples divided by $\sqrt S$ (the KL term is exact).
    """
    check_vae(model)
    n_samples = check_positive_int("n_samples", n_samples)
    batch_size = check_positive_int("batch_size", batch_size)
    if return_stderr and n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 to estimate a standard error; got {n_samples}")
    p = next(model.parameters())
    eps = torch.randn((n_samples, x.shape[0], model.latent_dim), generator=generator,
                      dtype=p.dtype, device=p.device)  # (S, B, L)
    out, err = [], []
    with eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            mu, logvar = model.encode(xb)  # (b, L) each
            z = mu + torch.exp(0.5 * logvar) * eps[:, start:start + batch_size]  # (S, b, L)
            recon = -model.log_likelihood(xb, z)  # (S, b)
            out.append(recon.mean(dim=0) + gaussian_kl(mu, logvar))
            if return_stderr:
                err.append(recon.std(dim=0) / math.sqrt(n_samples))
    return (torch.cat(out), torch.cat(err)) if return_stderr else torch.cat(out)


@torch.no_grad()
def dataset_nll(model: nn.Module, x: Tensor, k: int = 5000, batch_size: int = 500, chunk: int = 100,
                generator: torch.Generator | None = None) -> Tensor:
    r"""Importance-sampled $-\log p(x)$ with ``k`` samples for every image of a (large) set, ``(N,)`` nats.

    :func:`thesis_lib.mathematics.vae.importance_sampled_nll` (Burda et al. 2016, Section 3) on ``batch_size``
    images at a time, drawing ``chunk`` samples per image at a time, so that about
    ``batch_size * chunk * input_dim`` decoder outputs are held at once. The batches draw from
    ``generator`` in order, so the result depends on ``batch_size`` (not on its distribution).
    """
    return dataset_nll_curve(model, x, (k,), batch_size, chunk, generator)[0]


def dataset_nll_curve(model: nn.Module, x: Tensor, ks: Sequence[int], batch_size: int = 500, chunk: int = 100,
                      generator: torch.Generator | None = None) -> Tensor:
    """:func:`dataset_nll` for several sample sizes at once, ``(len(ks), N)`` nats: row ``j`` is the
    estimate from the first ``ks[j]`` of the same samples
    (:func:`thesis_lib.mathematics.vae.importance_sampled_nll_curve`), at the cost of ``max(ks)`` samples."""
    check_vae(model)
    batch_size = check_positive_int("batch_size", batch_size)
    with eval_mode(model):
        out = [importance_sampled_nll_curve(model, xb, ks, chunk=chunk, generator=generator)
               for xb in x.split(batch_size)]
    return torch.cat(out, dim=1)


def paired_difference(a: Tensor, b: Tensor) -> tuple[float, float]:
    r"""Mean and standard error $\operatorname{sd}(a_i - b_i)/\sqrt n$ of ``a - b`` for two models scored on the
    same images: ``(mean, stderr)``. The images' own spread, shared by both models, cancels; the stderr of a
    single image is NaN."""
    # the same images: a b of shape (1,) or (n, 1) would broadcast against a without an error
    assert a.shape == b.shape, f"a and b must score the same images; got shapes {tuple(a.shape)} and {tuple(b.shape)}"
    d = (a.double() - b.double()).cpu()
    return d.mean().item(), (d.std() / math.sqrt(len(d))).item()


# --------------------------------------------------------------------------- exact 2-d evidence
@torch.no_grad()
def latent_activity(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    r"""Per latent unit $u$, the activity $A_u = \operatorname{Var}_x\big(\mathbb E_{q(z|x)}[z_u]\big)$ over the
    images ``x``: ``(L,)``.

    Burda et al. (2016), Section 5.2: a unit whose encoder mean barely moves with the input carries no
    information about it (its $q(z_u|x)$ stays at the prior, and the decoder ignores it); they call a
    unit active when $A_u > 10^{-2}$. Count them with ``(latent_activity(model, x) > 1e-2).sum()``.
    The variance is the population variance (divided by the number of images).
    """
    check_vae(model)
    batch_size = check_positive_int("batch_size", batch_size)
    with eval_mode(model):
        mu = torch.cat([model.encode(xb)[0] for xb in x.split(batch_size)]).double()  # (N, L)
    return mu.var(dim=0, unbiased=False)


def _log_joint_and_grad(model: nn.Module, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    r"""$\log p(x|z) + \log p(z)$ (without the constant of the prior) and its gradient in $z$, ``(B,)``, ``(B, d)``.

    Only $z$ is differentiated (``torch.autograd.grad``), so the model's ``.grad`` stay untouched.
    """
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lj = model.log_likelihood(x, z) - 0.5 * z.pow(2).sum(dim=-1)  # (B,)
        (grad,) = torch.autograd.grad(lj.sum(), z)
    return lj.detach(), grad


def _hessian(model: nn.Module, x: Tensor, z: Tensor) -> Tensor:
    """Hessian in $z$ of the log joint by central differences of its gradient, symmetrised, ``(B, d, d)`` float64."""
    delta = 1e-3 * (1.0 + z.abs())  # (B, d)
    cols = []
    for j in range(z.shape[-1]):
        step = torch.zeros_like(z)
        step[:, j] = delta[:, j]
        g_up, g_down = _log_joint_and_grad(model, x, z + step)[1], _log_joint_and_grad(model, x, z - step)[1]
        cols.append((g_up - g_down).double() / (2.0 * delta[:, j:j + 1].double()))  # (B, d): column j
    hess = torch.stack(cols, dim=-1)
    return 0.5 * (hess + hess.transpose(-1, -2))


def posterior_mode(
    model: nn.Module, x: Tensor, start: Tensor, steps: int = 500, lr: float = 0.1, newton_steps: int = 3
) -> tuple[Tensor, Tensor]:
    r"""A mode of $p(z|x)$ found from ``start``, and the Laplace standard deviations there.

    Maximises $\log p(x|z) + \log p(z)$ over $z$: ``steps`` Adam steps whose size falls from
    ``lr`` to ``lr / 1000`` (enough to travel several prior units), then ``newton_steps`` Newton
    steps $z \leftarrow z - H^{-1}\nabla$ with the Hessian $H$ from central differences of the
    gradient (taken only where $-H$ is positive definite). Returns the mode and
    $\sqrt{\operatorname{diag}((-H)^{-1})}$ at it, the standard deviations of the Gaussian that
    matches the posterior's curvature there (NaN where $-H$ is not positive definite: no proper
    maximum). Shapes ``(B, d)`` each.
    """
    check_vae(model)
    steps = check_positive_int("steps", steps)
    lr = check_positive_float("lr", lr)
    z = start.detach().clone()
    opt = torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.001 ** (1.0 / steps))
    for _ in range(steps):
        z.grad = -_log_joint_and_grad(model, x, z)[1]
        opt.step()
        sched.step()
    z = z.detach()
    for it in range(newton_steps + 1):
        neg_h = -_hessian(model, x, z)  # (B, d, d)
        ok = torch.linalg.eigvalsh(neg_h).min(dim=-1).values > 0  # (B,)
        if it == newton_steps or not ok.any():
            break
        grad = _log_joint_and_grad(model, x, z)[1].double()  # (B, d)
        newton = torch.linalg.solve(neg_h[ok], grad[ok].unsqueeze(-1)).squeeze(-1)  # (-H)^{-1} grad
        z[ok] = z[ok] + newton.to(z.dtype)
    std = torch.full(z.shape, float("nan"), dtype=torch.float64, device=z.device)
    if ok.any():
        std[ok] = torch.linalg.inv(neg_h[ok]).diagonal(dim1=-2, dim2=-1).sqrt()
    return z, std


def _check_grid_args(
    model: nn.Module, points: int, half_width: float, chunk: int, scan_points: int, scan_span: float
) -> tuple[int, float, int, int, float]:
    """The checks of :func:`latent_grid_decomposition`; returns its numeric arguments, validated."""
    points = check_positive_int("points", points)
    half_width = check_positive_float("half_width", half_width)
    chunk = check_positive_int("chunk", chunk)
    d = int(model.latent_dim)
    if d not in (1, 2):
        raise ValueError(f"latent_grid_decomposition needs a latent space of dimension 1 or 2; got latent_dim={d}")
    scan_points = check_positive_int("scan_points", scan_points)
    scan_span = check_positive_float("scan_span", scan_span)
    if points < 3 or scan_points < 3:
        raise ValueError(f"points and scan_points must be at least 3 per axis; got {points} and {scan_points}")
    return points, half_width, chunk, scan_points, scan_span


def _unit_grid(t: Tensor, d: int) -> Tensor:
    """All points of the regular grid with the coordinates ``t`` on each of ``d`` axes, ``(len(t) ** d, d)``."""
    return torch.stack(torch.meshgrid(*([t] * d), indexing="ij"), dim=-1).reshape(-1, d)


def _scan_best(model: nn.Module, x: Tensor, scan_span: float, scan_points: int, chunk: int) -> Tensor:
    r"""For each image, the point of a coarse grid over $[-s, s]^d$ with the highest log joint: ``(B, d)``."""
    p = next(model.parameters())
    s = torch.linspace(-scan_span, scan_span, scan_points, dtype=p.dtype, device=p.device)
    scan = _unit_grid(s, int(model.latent_dim))  # (S, d)
    scan_lj = torch.cat([model.log_likelihood(x, sc[:, None, :].expand(-1, x.shape[0], -1))
                         - 0.5 * sc.pow(2).sum(-1, keepdim=True) for sc in scan.split(chunk)])  # (S, B)
    return scan[scan_lj.argmax(dim=0)]


def _grid_box(
    model: nn.Module, x: Tensor, starts: tuple[Tensor, ...], mu: Tensor, std: Tensor, half_width: float, mode_steps: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(lo, hi, mode, posterior_std)``: the box holding $\mu \pm h\sigma$ and every mode $z^*_i \pm h s^*_i$
    found from ``starts``, and the highest of those modes with its Laplace standard deviation (``(B, d)`` each)."""
    dtype = next(model.parameters()).dtype
    lo, hi, best = mu - half_width * std, mu + half_width * std, None  # (B, d) each
    for start in starts:
        mode_i, std_i = posterior_mode(model, x, start, steps=mode_steps)
        mode_i = mode_i.double()
        std_i = torch.where(torch.isfinite(std_i), std_i, std)  # no curvature estimate: use q's width
        lo, hi = torch.minimum(lo, mode_i - half_width * std_i), torch.maximum(hi, mode_i + half_width * std_i)
        lj_i = _log_joint_and_grad(model, x, mode_i.to(dtype))[0]
        if best is None:
            best = (lj_i, mode_i, std_i)
        else:
            higher = (lj_i > best[0])[:, None]
            best = (torch.maximum(lj_i, best[0]), torch.where(higher, mode_i, best[1]),
                    torch.where(higher, std_i, best[2]))
    return lo, hi, best[1], best[2]


def _grid_log_densities(
    model: nn.Module, x: Tensor, lo: Tensor, hi: Tensor, mu: Tensor, logvar: Tensor, points: int, chunk: int
) -> tuple[Tensor, Tensor]:
    r"""$\log p(x|z_g) + \log p(z_g)$ and $\log q(z_g|x)$ on the grid of ``points`` per axis over ``[lo, hi]``:
    ``(G, B)`` each."""
    dtype = next(model.parameters()).dtype
    std = torch.exp(0.5 * logvar)
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64, device=mu.device)
    unit = _unit_grid(t, mu.shape[-1])  # (G, d)
    parts: dict[str, list[Tensor]] = {"log_joint": [], "log_q": []}
    for start in range(0, len(unit), chunk):
        z = lo + unit[start:start + chunk, None, :] * (hi - lo)  # (g, B, d)
        log_lik = model.log_likelihood(x, z.to(dtype)).double()  # (g, B)
        parts["log_joint"].append(log_lik - 0.5 * (z.pow(2) + _LOG_2PI).sum(dim=-1))  # + log p(z)
        parts["log_q"].append(-0.5 * (((z - mu) / std).pow(2) + logvar + _LOG_2PI).sum(dim=-1))
    return torch.cat(parts["log_joint"]), torch.cat(parts["log_q"])


@torch.no_grad()
def latent_grid_decomposition(
    model: nn.Module,
    x: Tensor,
    points: int = 201,
    half_width: float = 10.0,
    chunk: int = 4096,
    mode_steps: int = 500,
    scan_points: int = 81,
    scan_span: float = 4.0,
) -> dict[str, Tensor]:
    r"""$\log p(x)$, the ELBO and $D_{KL}(q(z|x)\,\|\,p(z|x))$ by quadrature, for a latent space of dimension 1 or 2.

    Each image gets its own regular grid of ``points`` per latent axis. It must hold both $q(z|x)$
    and the true posterior $p(z|x)$, which a trained encoder may place some way from its mean
    $\mu(x)$, and which may have more than one mode. So the log joint is first scanned on a coarse
    grid of ``scan_points`` per axis over $[-s, s]^d$ (``scan_span``; the prior holds almost all
    mass there), and :func:`posterior_mode` climbs from $\mu(x)$ and from the scan's best point to
    modes $z^*_1$, $z^*_2$ with Laplace standard deviations $s^*_1$, $s^*_2$. Along each axis the
    grid spans the smallest interval holding $\mu \pm h\sigma$ and $z^*_i \pm h s^*_i$
    ($h$ = ``half_width``). On it, with $\Delta$ the cell volume:

    - ``log_px``: $\log \sum_g p(x|z_g)\,p(z_g)\,\Delta$, the evidence $\log\int p(x|z)p(z)\,dz$;
    - ``elbo``: $\sum_g q(z_g|x)\Delta\,[\log p(x|z_g) + \log p(z_g) - \log q(z_g|x)]$;
    - ``kl_posterior``: $\sum_g q(z_g|x)\Delta\,[\log q(z_g|x) - \log p(z_g|x)]$ with the grid
      posterior $\log p(z|x) = \log p(x|z) + \log p(z) - $ ``log_px``;
    - ``q_mass``: $\sum_g q(z_g|x)\Delta$, which should be 1 (the grid holds $q$);
    - ``mode``, ``posterior_std``: the higher of the two modes and its $s^*$, ``(B, d)``;
      ``spacing``: the grid step, ``(B, d)``.

    The first four are ``(B,)`` float64, nats. ``elbo + kl_posterior = log_px * q_mass`` holds on
    the grid by construction; what is worth checking is ``log_px`` against an importance-sampled
    estimate and ``elbo`` against :func:`anomaly_scores`. The Riemann sum of a smooth peak is
    accurate while ``spacing`` stays below the peak's width (compare with ``posterior_std`` and
    $\sigma(x)$); posterior mass outside the grid (a third mode, say) would be missed, which can
    only lower ``log_px``. Costs ``points ** latent_dim + scan_points ** latent_dim`` decoder passes
    per image, ``chunk`` grid points at a time (memory about ``chunk * B * input_dim`` numbers),
    plus ``2 * mode_steps`` gradient steps.
    """
    check_vae(model)
    points, half_width, chunk, scan_points, scan_span = _check_grid_args(
        model, points, half_width, chunk, scan_points, scan_span
    )
    with eval_mode(model):
        mu32, logvar32 = model.encode(x)
        mu, logvar = mu32.double(), logvar32.double()
        std = torch.exp(0.5 * logvar)
        starts = (mu32, _scan_best(model, x, scan_span, scan_points, chunk))
        lo, hi, mode, post_std = _grid_box(model, x, starts, mu, std, half_width, mode_steps)
        spacing = (hi - lo) / (points - 1)
        log_joint, log_q = _grid_log_densities(model, x, lo, hi, mu, logvar, points, chunk)  # (G, B) each
    log_cell = torch.log(spacing).sum(dim=-1)  # (B,)
    log_px = torch.logsumexp(log_joint, dim=0) + log_cell  # (B,)
    wq = torch.exp(log_q + log_cell)  # (G, B): q(z_g|x) times the cell volume
    elbo = (wq * (log_joint - log_q)).sum(dim=0)
    kl_post = (wq * (log_q - (log_joint - log_px))).sum(dim=0)
    return {"log_px": log_px, "elbo": elbo, "kl_posterior": kl_post, "q_mass": wq.sum(dim=0),
            "mode": mode, "posterior_std": post_std, "spacing": spacing}
