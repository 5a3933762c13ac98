"""The approximation gap: how far q(z | X) is from the reference posterior p(z | X).

:func:`per_dataset_gaps` computes, for every dataset b, the gap metrics between a
candidate posterior ``q`` (a torch Distribution with batch_shape ``(B,)``) and the
reference ``p`` (a :class:`~bayesattn.inference.Reference` or an exact torch
Distribution). :func:`approximation_gap` summarises them with bootstrap confidence
intervals over datasets. :func:`gap_vs_length` repeats this over a grid of sequence
lengths, and :func:`loglog_slope` fits how a gap scales with L.

Metrics (``metric`` column), all per dataset:

- ``kl_forward``: KL(p || q) in nats; closed form when torch has one for the pair,
  otherwise Monte Carlo with draws from p (needs an exact reference).
- ``kl_reverse``: KL(q || p) in nats (Monte Carlo with draws from q unless closed form;
  needs an exact reference).
- ``tv``: total variation (discrete latents only).
- ``entropy_exact``, ``entropy_q``: the two entropies (discrete latents), to check
  that q tracks the posterior's uncertainty (docs/claims.md#p14).
- ``mean_error_sd``: |E_q z - E_p z| in units of the reference posterior sd, averaged
  over latent coordinates (continuous latents). This is the spread-normalised error:
  exact posteriors sharpen as L grows, so a raw error falling with L can be trivial.
- ``log_var_ratio``: mean over coordinates of log(Var_q / Var_p) (0 when the spreads
  agree; < 0 overconfident).
- ``posterior_sd``: mean reference posterior sd (continuous), the spread itself.
- with ``sample_metrics=True``: ``c2st`` (accuracy, 0.5 = indistinguishable) and
  ``w2`` (2-Wasserstein distance) from draws of both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from bayesattn._checks import check_int
from bayesattn._progress import progress_bar
from bayesattn._random import seeded
from bayesattn.metrics import (
    Estimate,
    bootstrap_ci,
    c2st,
    kl_per_dataset,
    moments,
    wasserstein2,
)

__all__ = [
    "per_dataset_gaps",
    "approximation_gap",
    "summarise",
    "gap_vs_length",
    "loglog_slope",
]

COLUMNS = ["metric", "value", "ci_low", "ci_high", "se", "n"]


def _reference_parts(reference: Any) -> tuple[torch.distributions.Distribution | None, Any]:
    """(exact distribution or None, Reference or None) from a Reference or a Distribution."""
    if isinstance(reference, torch.distributions.Distribution):
        return reference, None
    if hasattr(reference, "distribution") and hasattr(reference, "draws"):
        return reference.distribution, reference
    raise TypeError(
        "reference: expected a bayesattn.inference.Reference or a torch Distribution with "
        f"batch_shape (B,); got {type(reference).__name__}."
    )


def _check_q(q: Any, batch: int) -> torch.distributions.Distribution:
    if not isinstance(q, torch.distributions.Distribution):
        raise TypeError(
            f"q: expected a torch Distribution with batch_shape ({batch},); got "
            f"{type(q).__name__}."
        )
    if tuple(q.batch_shape) != (batch,):
        raise ValueError(
            f"q: expected batch_shape ({batch},) (one posterior per reference dataset); got "
            f"{tuple(q.batch_shape)}."
        )
    return q


def _sample(dist: torch.distributions.Distribution, n: int, seed: int) -> torch.Tensor:
    with seeded(seed), torch.no_grad():
        return dist.sample((int(n),)).double()


def _moments(dist, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (B, *event) of a distribution, exactly when torch knows them."""
    return moments(dist, num_samples=n, seed=seed)


def _categorical_probs(dist) -> torch.Tensor:
    return dist.probs.detach().double()


def per_dataset_gaps(
    q: torch.distributions.Distribution,
    reference: Any,
    *,
    num_samples: int = 1000,
    sample_metrics: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Gap metrics between ``q`` and the reference, one row per (dataset, metric).

    Args:
        q: Candidate posterior, a torch Distribution with batch_shape ``(B,)`` and the
            model's latent event shape (Categorical over K for a discrete latent).
        reference: A :class:`~bayesattn.inference.Reference` for the same B datasets, or
            an exact torch Distribution with batch_shape ``(B,)``.
        num_samples: Draws per dataset for Monte Carlo metrics (>= 2).
        sample_metrics: Also compute C2ST and 2-Wasserstein from draws (slower; the only
            metrics besides the moments for an MCMC reference).
        seed: Seeds every Monte Carlo draw (the global RNG is left alone).

    Returns:
        DataFrame with columns ``dataset, metric, value`` (see the module docstring for
        the metrics).
    """
    exact, ref = _reference_parts(reference)
    batch = int(exact.batch_shape[0]) if exact is not None else int(ref.num_datasets)
    q = _check_q(q, batch)
    check_int(num_samples, "num_samples", low=2)
    rows: dict[str, np.ndarray] = {}
    discrete = isinstance(q, torch.distributions.Categorical)
    if discrete:
        if exact is None or not isinstance(exact, torch.distributions.Categorical):
            raise TypeError(
                "q is Categorical, so the reference must be an exact Categorical posterior; "
                f"got {type(exact or ref).__name__}."
            )
        p_probs, q_probs = _categorical_probs(exact), _categorical_probs(q)
        if p_probs.shape != q_probs.shape:
            raise ValueError(
                f"q: expected probabilities of shape {tuple(p_probs.shape)} like the "
                f"reference; got {tuple(q_probs.shape)}."
            )
        rows["kl_forward"] = kl_per_dataset(exact, q)
        rows["kl_reverse"] = kl_per_dataset(q, exact)
        rows["tv"] = 0.5 * (p_probs - q_probs).abs().sum(-1).numpy()
        rows["entropy_exact"] = exact.entropy().double().numpy()
        rows["entropy_q"] = q.entropy().detach().double().numpy()
        return _long(rows)
    if exact is not None:
        # closed form when torch has one for the pair, else Monte Carlo (see kl_per_dataset)
        rows["kl_forward"] = kl_per_dataset(exact, q, seed=seed)
        rows["kl_reverse"] = kl_per_dataset(q, exact, seed=seed + 1)
        p_mean, p_var = _moments(exact, num_samples, seed + 2)
    else:
        draws = ref.draws().double()  # (S, B, *latent)
        p_mean, p_var = draws.mean(0), draws.var(0)
    q_mean, q_var = _moments(q, num_samples, seed + 3)
    p_mean, p_var = p_mean.reshape(batch, -1), p_var.reshape(batch, -1)
    q_mean, q_var = q_mean.reshape(batch, -1), q_var.reshape(batch, -1)
    p_sd = p_var.sqrt()
    rows["mean_error_sd"] = ((q_mean - p_mean).abs() / p_sd).mean(-1).numpy()
    rows["log_var_ratio"] = (q_var.log() - p_var.log()).mean(-1).numpy()
    rows["posterior_sd"] = p_sd.mean(-1).numpy()
    if sample_metrics:
        q_draws = _sample(q, num_samples, seed + 4).reshape(num_samples, batch, -1)
        if exact is not None:
            p_draws = _sample(exact, num_samples, seed + 5)
        else:
            p_draws = ref.sample(min(num_samples, ref.draws().shape[0]), seed=seed + 5).double()
        p_draws = p_draws.reshape(p_draws.shape[0], batch, -1)
        rows["c2st"] = np.array(
            [float(c2st(p_draws[:, b], q_draws[:, b], seed=seed).value) for b in range(batch)]
        )
        rows["w2"] = np.array(
            [float(wasserstein2(p_draws[:, b], q_draws[:, b], seed=seed).value)
             for b in range(batch)]
        )
    return _long(rows)


def _long(rows: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"dataset": np.arange(len(v)), "metric": k, "value": np.asarray(v, float)})
        for k, v in rows.items()
    ]
    return pd.concat(frames, ignore_index=True)


def summarise(
    per_dataset: pd.DataFrame,
    by: Sequence[str] = (),
    *,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of each metric over datasets with a percentile-bootstrap CI.

    Args:
        per_dataset: Long frame with columns ``metric, value`` (and the ``by`` keys).
        by: Extra grouping keys (e.g. ``("L",)``).
        num_resamples, level, seed: Bootstrap settings (see :func:`bootstrap_ci`).

    Returns:
        One row per (``by`` keys, metric) with ``metric, value, ci_low, ci_high, se, n``.
        A metric that is infinite for some dataset (KL(p || q) when q is a point mass,
        say) keeps its infinite mean and gets no interval (NaN).
    """
    keys = [*by, "metric"]
    out = []
    for key, group in per_dataset.groupby(keys, sort=False):
        values = group["value"].to_numpy(float)
        if np.isfinite(values).all():
            est = bootstrap_ci(values, num_resamples=num_resamples, level=level, seed=seed)
        else:  # e.g. KL(p || q) = inf when q puts no mass where p does: no interval
            est = Estimate(float(values.mean()), n=int(values.size), level=level)
        out.append({**dict(zip(keys, key, strict=True)), **est.row()})
    return pd.DataFrame(out, columns=[*by, *COLUMNS])


def approximation_gap(
    q: torch.distributions.Distribution,
    reference: Any,
    *,
    num_samples: int = 1000,
    sample_metrics: bool = False,
    seed: int = 0,
    num_resamples: int = 1000,
) -> pd.DataFrame:
    """How far ``q`` is from the reference posterior, averaged over datasets.

    Args:
        q: Candidate posterior, batch_shape ``(B,)`` (e.g. ``net.posterior(x, mask)``).
        reference: :class:`~bayesattn.inference.Reference` or exact Distribution for
            the same B datasets.
        num_samples: Draws per dataset for Monte Carlo metrics.
        sample_metrics: Add C2ST and 2-Wasserstein (continuous latents).
        seed: Seed for Monte Carlo draws and the bootstrap.
        num_resamples: Bootstrap resamples over datasets.

    Returns:
        Tidy frame, one row per metric: ``metric, value, ci_low, ci_high, se, n``
        (metrics as in the module docstring; CIs are over datasets).

    Example:
        >>> ref = inference.reference_posterior(model, batch.x)        # doctest: +SKIP
        >>> approximation_gap(net.posterior(batch.x), ref)              # doctest: +SKIP
    """
    per = per_dataset_gaps(q, reference, num_samples=num_samples,
                           sample_metrics=sample_metrics, seed=seed)
    return summarise(per, num_resamples=num_resamples, seed=seed)


# ---------------------------------------------------------------------- gap vs L
def _posterior_fn(candidate: Any) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    if hasattr(candidate, "posterior") and callable(candidate.posterior):
        return candidate.posterior
    if callable(candidate):
        return candidate
    raise TypeError(
        "candidate: expected a network or oracle with .posterior(x, mask), or a function "
        f"(x, mask) -> Distribution; got {type(candidate).__name__}."
    )


def _length_seed(seed: int, length: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(length)]).generate_state(1)[0])


def _input_dtype(candidate: Any) -> torch.dtype:
    """The float dtype tokens are handed to ``candidate`` in: that of its first floating
    parameter or buffer (a trained network: float32), else float64 (oracles and plain
    functions keep machine precision)."""
    if isinstance(candidate, torch.nn.Module):
        for t in (*candidate.parameters(), *candidate.buffers()):
            if t.is_floating_point():
                return t.dtype
    return torch.float64


def gap_vs_length(
    candidate: Any,
    model: Any,
    lengths: Sequence[int],
    *,
    num_sequences: int = 256,
    seed: int = 0,
    reference_method: str = "auto",
    reference_options: dict | None = None,
    num_samples: int = 1000,
    sample_metrics: bool = False,
    device: str | torch.device = "cpu",
    per_sequence: bool = False,
    progress: bool = False,
    chunk: int = 64,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The approximation gap on a grid of sequence lengths.

    For each L, ``num_sequences`` fresh sequences of exactly L tokens are simulated
    from the model's Pyro program (seed derived from ``(seed, L)``), the reference
    posterior is computed, and ``candidate`` is scored against it.

    Args:
        candidate: An :class:`~bayesattn.inference.AmortizedPosterior`, an oracle, or
            any function ``(x (B, L, *token_shape), mask (B, L)) -> Distribution`` with
            batch_shape ``(B,)``.
        model: The model the sequences come from.
        lengths: Sequence lengths, integers >= 1 (inside and beyond the training range).
        num_sequences: Test sequences per length.
        seed: Seed of simulation and Monte Carlo metrics.
        reference_method: Passed to :func:`~bayesattn.inference.reference_posterior`.
        reference_options: Extra keyword arguments for it (e.g. ``num_samples``).
        num_samples: Draws per dataset for Monte Carlo metrics.
        sample_metrics: Add C2ST and 2-Wasserstein.
        device: Where the candidate runs; metrics are computed on the CPU in float64.
            Real tokens reach the candidate in the dtype of its parameters (float32 for a
            trained network) or, for oracles and functions without any, in float64.
        per_sequence: Also return the per-sequence frame (needed by :func:`loglog_slope`).
        progress: Show a progress bar over lengths (``bayesattn._progress``).
        chunk: Sequences per forward pass and per reference call (bounds memory: an
            O(L^2) encoder at L = 1024 needs chunks of tens of sequences on a CPU).

    Returns:
        The summary frame (columns ``L, metric, value, ci_low, ci_high, se, n``), or
        ``(summary, per_sequence_frame)`` when ``per_sequence`` is True.
    """
    from bayesattn.inference import reference_posterior

    posterior = _posterior_fn(candidate)
    lengths = [int(v) for v in lengths]
    if not lengths or any(v < 1 for v in lengths):
        raise ValueError(f"lengths: expected integers >= 1; got {lengths!r}.")
    check_int(num_sequences, "num_sequences", low=2)
    check_int(chunk, "chunk", low=1)
    dtype = _input_dtype(candidate)
    was_training = getattr(candidate, "training", False)
    if hasattr(candidate, "eval"):
        candidate.eval()
    frames = []
    iterator = progress_bar(lengths, desc=f"gap vs L ({model.name})", leave=False,
                            disable=not progress)
    try:
        for length in iterator:
            s = _length_seed(seed, length)
            batch = model.simulate(num_sequences, length, seed=s)
            for start in range(0, num_sequences, chunk):
                idx = torch.arange(start, min(start + chunk, num_sequences))
                part = batch[idx]
                ref = reference_posterior(model, part.x, method=reference_method, seed=s,
                                          **(reference_options or {}))
                with torch.no_grad():
                    x = part.x.to(device)
                    if x.is_floating_point():  # the candidate's precision (float64 oracles
                        x = x.to(dtype)        # keep machine precision), float32 otherwise
                    q = posterior(x, part.mask.to(device))
                per = per_dataset_gaps(_to_cpu(q), ref, num_samples=num_samples,
                                       sample_metrics=sample_metrics, seed=s + start)
                per["dataset"] += start
                per.insert(0, "L", length)
                frames.append(per)
    finally:
        if was_training and hasattr(candidate, "train"):
            candidate.train()
    per_seq = pd.concat(frames, ignore_index=True)
    summary = summarise(per_seq, by=("L",), seed=seed)
    return (summary, per_seq) if per_sequence else summary


def _to_cpu(q: torch.distributions.Distribution) -> torch.distributions.Distribution:
    """The same distribution with its parameters on the CPU in float64 where possible."""
    if isinstance(q, torch.distributions.Categorical):
        return torch.distributions.Categorical(logits=q.logits.detach().double().cpu())
    if isinstance(q, torch.distributions.MultivariateNormal):
        return torch.distributions.MultivariateNormal(
            q.loc.detach().double().cpu(), scale_tril=q.scale_tril.detach().double().cpu()
        )
    return q


def loglog_slope(
    per_sequence: pd.DataFrame,
    metric: str,
    *,
    lengths: tuple[int, int] | None = None,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Slope of log(mean gap) against log L, with a bootstrap CI.

    The mean of ``metric`` over sequences is taken at each L, and an ordinary
    least-squares line is fitted to (log L, log mean). The CI resamples sequences
    within each L. No theoretical rate is assumed: the slope is what was measured.

    Args:
        per_sequence: The per-sequence frame of :func:`gap_vs_length` (columns
            ``L, dataset, metric, value``).
        metric: Which metric (its per-L means must be > 0, e.g. an exact KL or TV).
        lengths: Optional inclusive ``(low, high)`` range of L to fit.
        num_resamples, level, seed: Bootstrap settings.

    Returns:
        :class:`~bayesattn.metrics.Estimate` of the slope; ``n`` is the number of lengths.
    """
    data = per_sequence[per_sequence["metric"] == metric]
    if data.empty:
        known = sorted(per_sequence["metric"].unique())
        raise ValueError(f"metric: expected one of {known}; got {metric!r}.")
    if lengths is not None:
        lo, hi = lengths
        data = data[(data["L"] >= lo) & (data["L"] <= hi)]
    groups = [g["value"].to_numpy() for _, g in sorted(data.groupby("L"), key=lambda t: t[0])]
    ls = np.log(np.sort(data["L"].unique()).astype(float))
    if len(groups) < 2:
        raise ValueError(f"need at least 2 lengths to fit a slope; got {len(groups)}.")

    def slope(means: np.ndarray) -> float:
        if (means <= 0).any():
            return float("nan")
        return float(np.polyfit(ls, np.log(means), 1)[0])

    means = np.array([g.mean() for g in groups])
    if not np.isfinite(means).all() or (means <= 0).any():
        raise ValueError(
            f"{metric}: the mean is <= 0 or infinite at some L, so log(mean) is not a "
            "finite number; use a positive, finite metric (an exact KL, TV, or an error in "
            "sd units)."
        )
    value = slope(means)
    rng = np.random.default_rng(seed)
    boots = np.array([
        slope(np.array([g[rng.integers(0, g.size, g.size)].mean() for g in groups]))
        for _ in range(int(num_resamples))
    ])
    boots = boots[np.isfinite(boots)]
    alpha = (1 - level) / 2
    lo_q, hi_q = np.quantile(boots, [alpha, 1 - alpha]) if boots.size else (np.nan, np.nan)
    se = float(boots.std(ddof=1)) if boots.size > 1 else float("nan")
    return Estimate(value, float(lo_q), float(hi_q), se, len(groups), level)
