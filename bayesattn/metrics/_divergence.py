"""Divergences between two families of posteriors, one pair per dataset.

``p`` and ``q`` are torch distributions with ``batch_shape (B,)``: entry ``b`` of each
is a posterior for dataset ``b``. :func:`kl_per_dataset` gives one KL per dataset
(closed form when torch registers one for the pair, otherwise Monte Carlo with draws
from ``p``); :func:`kl_divergence` and :func:`total_variation` average over datasets
and attach a percentile-bootstrap confidence interval whose units are the datasets.

Everything is computed in float64 where the distributions allow it (their parameters
are cast to float64 when the distribution can be rebuilt from them); the global torch
RNG is never advanced.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
from torch.distributions import Categorical, Distribution, Independent

from bayesattn._checks import check_int
from bayesattn._random import seeded

from ._estimate import Estimate, as_numpy, bootstrap_ci

__all__ = ["kl_per_dataset", "kl_divergence", "tv_per_dataset", "total_variation"]

DEFAULT_MC_SAMPLES = 4000
_SUM_TOL = 1e-6


def _check_pair(p, q) -> int:
    """Validate two distributions with equal batch_shape (B,) and event shapes; return B."""
    for name, d in (("p", p), ("q", q)):
        if not isinstance(d, Distribution):
            raise TypeError(
                f"{name}: expected a torch.distributions.Distribution with batch_shape (B,), "
                f"got {type(d).__name__}"
            )
        if len(d.batch_shape) != 1:
            raise ValueError(
                f"{name}: expected batch_shape (B,) (one posterior per dataset), got "
                f"{tuple(d.batch_shape)}; reshape or wrap trailing dims with Independent"
            )
    if tuple(p.batch_shape) != tuple(q.batch_shape):
        raise ValueError(
            f"p and q: expected equal batch shapes, got {tuple(p.batch_shape)} and "
            f"{tuple(q.batch_shape)}"
        )
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(
            f"p and q: expected equal event shapes, got {tuple(p.event_shape)} and "
            f"{tuple(q.event_shape)}"
        )
    return int(p.batch_shape[0])


def _rebuild(d: Distribution, params: dict) -> Distribution | None:
    try:
        out = type(d)(**params, validate_args=False)
    except Exception:  # noqa: BLE001 - any failure means "cannot rebuild", keep d
        return None
    if out.batch_shape != d.batch_shape or out.event_shape != d.event_shape:
        return None
    return out


def _to_double(d: Distribution) -> Distribution:
    """``d`` with float64 parameters when it can be rebuilt from them, else ``d`` itself."""
    if isinstance(d, Independent):
        base = _to_double(d.base_dist)
        if base is d.base_dist:
            return d
        return Independent(base, d.reinterpreted_batch_ndims, validate_args=False)
    names = list(getattr(d, "arg_constraints", {}) or {})
    if not names:
        return d

    def cast(v):
        if isinstance(v, torch.Tensor):
            return v.detach().double() if v.is_floating_point() else v
        return v

    # parameters given at construction live in __dict__, as do lazy properties already
    # evaluated (e.g. Categorical.logits after .probs): try the largest working subset
    given = {k: cast(d.__dict__[k]) for k in names if k in d.__dict__}
    for size in range(len(given), 0, -1):
        for keys in combinations(given, size):
            out = _rebuild(d, {k: given[k] for k in keys})
            if out is not None:
                return out
    try:
        every = {k: cast(getattr(d, k)) for k in names}
    except Exception:  # noqa: BLE001
        return d
    out = _rebuild(d, every)
    return d if out is None else out


def _check_num_samples(num_samples) -> int:
    return check_int(num_samples, "num_samples (or None)", low=2, type_error=TypeError)


def _mc_kl(p: Distribution, q: Distribution, num_samples: int, seed: int):
    """Per-dataset MC estimate of KL(p||q) and its MC standard error, both (B,) float64."""
    with seeded(seed, every_cuda_device=True), torch.no_grad():
        draws = p.sample((num_samples,))  # (N, B, *event)
    with torch.no_grad():
        log_p = p.log_prob(draws).double()  # (N, B)
        try:
            log_q = q.log_prob(draws).double()
        except ValueError as err:
            raise ValueError(
                "q.log_prob failed on draws from p; KL(p||q) is infinite when p puts mass "
                f"outside q's support (original error: {err})"
            ) from err
    log_ratio = log_p - log_q  # (N, B)
    kl = log_ratio.mean(0)
    finite = torch.isfinite(log_ratio).all(0)
    se = torch.where(
        finite, log_ratio.std(0, unbiased=True) / num_samples**0.5, torch.full_like(kl, np.inf)
    )
    return kl.cpu().numpy(), se.cpu().numpy()


def _gaussian(d: Distribution) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean (B, k), covariance (B, k, k)) in float64 of a Gaussian with one event dim
    (MultivariateNormal or Independent Normal), else None."""
    base = d
    if isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1:
        base = d.base_dist
    if isinstance(d, torch.distributions.MultivariateNormal):
        return d.loc.double(), d.covariance_matrix.double()
    if base is not d and isinstance(base, torch.distributions.Normal):
        return base.loc.double(), torch.diag_embed(base.scale.double() ** 2)
    return None


def _gaussian_kl(p: Distribution, q: Distribution) -> torch.Tensor | None:
    """KL(p || q) for two Gaussians with one event dim, whatever their parametrisation."""
    gp, gq = _gaussian(p), _gaussian(q)
    if gp is None or gq is None or gp[0].shape != gq[0].shape:
        return None
    (mp, sp), (mq, sq) = gp, gq
    chol = torch.linalg.cholesky(sq)
    diff = (mq - mp).unsqueeze(-1)
    a = torch.cholesky_solve(torch.cat([sp, diff], -1), chol)  # Sq^-1 [Sp, mq - mp]
    trace = a[..., :-1].diagonal(dim1=-2, dim2=-1).sum(-1)
    maha = (diff * a[..., -1:]).sum((-2, -1))
    logdet_q = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    logdet_p = torch.linalg.slogdet(sp)[1]
    return 0.5 * (trace + maha - mp.shape[-1] + logdet_q - logdet_p)


def closed_form_kl(p: Distribution, q: Distribution) -> torch.Tensor | None:
    """KL(p || q) per dataset in closed form, or None where no formula exists.

    Torch's registered formulas, plus Gaussians with one event dim in any mix of
    ``MultivariateNormal`` and ``Independent(Normal, 1)`` (torch registers none for that
    pair, which would otherwise fall back to Monte Carlo). Differentiable.
    """
    kl = _gaussian_kl(p, q)
    if kl is not None:
        return kl
    try:
        return torch.distributions.kl_divergence(p, q)
    except (NotImplementedError, RuntimeError):  # no formula, or one that mixes dtypes
        return None


def kl_per_dataset(
    p: Distribution,
    q: Distribution,
    *,
    num_samples: int | None = None,
    seed: int = 0,
    return_se: bool = False,
    fallback_samples: int = DEFAULT_MC_SAMPLES,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """KL(p || q) for each of the B datasets.

    With ``num_samples=None`` the closed form is used when one exists for the pair
    (:func:`closed_form_kl`: torch's registered formulas for Normal, MultivariateNormal,
    Dirichlet, Categorical, Beta, Gamma, Independent of those, ..., and Gaussians mixing
    MultivariateNormal and Independent Normal); otherwise, or when ``num_samples`` is
    given, the Monte Carlo estimate ``mean_i [log p(z_i) - log q(z_i)]`` with
    ``z_i ~ p`` (``num_samples`` draws, else ``fallback_samples``). Draws come from a forked torch
    RNG seeded with ``seed``, so the global RNG state is left untouched.

    Args:
        p: Distribution with batch_shape (B,) and event shape E.
        q: Distribution with batch_shape (B,) and the same event shape E.
        num_samples: None for the closed form when available, else the number (>= 2)
            of Monte Carlo draws from ``p`` per dataset.
        seed: Seed of the Monte Carlo draws.
        fallback_samples: Monte Carlo draws when ``num_samples=None`` finds no closed
            form (default 4000).
        return_se: Also return the per-dataset Monte Carlo standard error (B,)
            (``sd(log-ratio) / sqrt(num_samples)``; zeros for the closed form).

    Returns:
        ``kl`` of shape (B,), float64 (``inf`` where ``p`` has mass outside ``q``'s
        support in closed form); with ``return_se`` the tuple ``(kl, se)``.

    Raises:
        TypeError: when ``p`` or ``q`` is not a torch Distribution.
        ValueError: on mismatched batch/event shapes or a bad ``num_samples``.
    """
    batch = _check_pair(p, q)
    p64, q64 = _to_double(p), _to_double(q)
    kl = None
    if num_samples is None:
        with torch.no_grad():
            kl = closed_form_kl(p64, q64)
        if kl is not None:
            kl = kl.detach().double().cpu().numpy().reshape(-1)
            if kl.shape != (batch,):
                raise ValueError(
                    f"closed-form KL: expected shape ({batch},), got {kl.shape}; pass "
                    "num_samples to use Monte Carlo instead"
                )
            se = np.zeros(batch)
        num_samples = fallback_samples
    if kl is None:
        kl, se = _mc_kl(p64, q64, _check_num_samples(num_samples), seed)
    if np.isnan(kl).any():
        raise ValueError(
            f"KL(p||q): expected numbers, got NaN for {int(np.isnan(kl).sum())} of {batch} "
            "datasets; check the distributions' parameters"
        )
    return (kl, se) if return_se else kl


def _summarise(values: np.ndarray, num_resamples: int, level: float, seed: int) -> Estimate:
    """Mean over datasets with a bootstrap CI; infinite values give an infinite estimate."""
    if not np.isfinite(values).all():
        return Estimate(float(np.mean(values)), n=int(values.size), level=level)
    return bootstrap_ci(values, num_resamples=num_resamples, level=level, seed=seed)


def kl_divergence(
    p: Distribution,
    q: Distribution,
    *,
    direction: str = "forward",
    num_samples: int | None = None,
    seed: int = 0,
    num_resamples: int = 1000,
    level: float = 0.95,
) -> Estimate:
    """Mean KL divergence over datasets with a bootstrap confidence interval.

    The interval resamples datasets (percentile bootstrap of the mean of the per-dataset
    KLs). With a Monte Carlo KL the per-dataset values carry independent MC noise, which
    the between-dataset spread already contains, so the interval covers the mean of the
    exact KLs; no separate MC term is added.

    Args:
        p: Reference posterior, batch_shape (B,), event shape E.
        q: Candidate posterior, batch_shape (B,), event shape E.
        direction: ``"forward"`` for KL(p || q), ``"reverse"`` for KL(q || p).
        num_samples: See :func:`kl_per_dataset` (draws come from the first argument of
            the KL, i.e. from ``q`` when ``direction="reverse"``).
        seed: Seed of the Monte Carlo draws and of the bootstrap.
        num_resamples: Bootstrap resamples over datasets.
        level: Confidence level.

    Returns:
        :class:`Estimate` in nats, ``n = B``; with an infinite KL for some dataset the
        value is ``inf`` and the interval ``nan``.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction: expected 'forward' or 'reverse', got {direction!r}")
    a, b = (p, q) if direction == "forward" else (q, p)
    values = kl_per_dataset(a, b, num_samples=num_samples, seed=seed)
    return _summarise(values, num_resamples, level, seed)


def _probs(x, name: str) -> np.ndarray:
    """(B, K) float64 probabilities from a Categorical or an array, validated."""
    if isinstance(x, Categorical):
        if len(x.batch_shape) != 1:
            raise ValueError(f"{name}: expected a Categorical with batch_shape (B,), got "
                             f"{tuple(x.batch_shape)}")
        return x.probs.detach().double().cpu().numpy()
    if isinstance(x, Distribution):
        raise TypeError(f"{name}: expected a Categorical or a (B, K) probability array, got "
                        f"{type(x).__name__}")
    arr = as_numpy(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected probabilities of shape (B, K), got shape {arr.shape}")
    if (arr < 0).any():
        raise ValueError(f"{name}: expected non-negative probabilities, got min {arr.min():.3g}")
    sums = arr.sum(1)
    worst = float(np.abs(sums - 1.0).max()) if sums.size else 0.0
    if worst > _SUM_TOL:
        raise ValueError(
            f"{name}: expected rows summing to 1 (tolerance {_SUM_TOL:g}), got a row summing "
            f"to {sums[np.argmax(np.abs(sums - 1.0))]:.9g}; normalise the rows first"
        )
    return arr


def tv_per_dataset(p, q) -> np.ndarray:
    """Total variation distance ``0.5 * sum_k |p_k - q_k|`` for each dataset.

    Args:
        p: Categorical with batch_shape (B,) over K categories, or probabilities (B, K).
        q: Same kind of input as ``p``, same shape (B, K).

    Returns:
        Array (B,) of TV distances in [0, 1].
    """
    pp, qq = _probs(p, "p"), _probs(q, "q")
    if pp.shape != qq.shape:
        raise ValueError(f"p and q: expected equal shapes (B, K), got {pp.shape} and {qq.shape}")
    return 0.5 * np.abs(pp - qq).sum(1)


def total_variation(
    p, q, *, num_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Mean total variation distance over datasets with a bootstrap confidence interval.

    Args:
        p: Categorical with batch_shape (B,) over K categories, or an array (B, K) whose
            rows are probability vectors (sums within 1e-6 of 1).
        q: Same kind of input as ``p``, shape (B, K).
        num_resamples: Bootstrap resamples over datasets.
        level: Confidence level.
        seed: Seed of the bootstrap.

    Returns:
        :class:`Estimate` of the mean TV in [0, 1], ``n = B``.
    """
    return bootstrap_ci(tv_per_dataset(p, q), num_resamples=num_resamples, level=level,
                        seed=seed)
