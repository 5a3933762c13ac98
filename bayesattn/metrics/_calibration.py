"""Calibration of a candidate posterior: moments against a reference, coverage, SBC.

- :func:`standardized_mean_error` and :func:`variance_ratio` compare the candidate's
  moments with the reference's, per dataset, in units of the reference spread (exact
  posteriors sharpen with L, so raw errors would fall trivially);
- :func:`coverage` checks central credible intervals against true latents (or draws
  from the reference) at several levels, with Wilson intervals;
- :func:`sbc_ranks` and :func:`sbc_uniformity` are simulation-based calibration: the
  rank of the true latent among posterior draws is uniform when the posterior is right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bayesattn._checks import check_int

from ._estimate import Estimate, as_numpy, bootstrap_ci

__all__ = [
    "standardized_mean_error",
    "variance_ratio",
    "coverage",
    "sbc_ranks",
    "sbc_uniformity",
    "UniformityResult",
]


def _per_dataset(x, name: str) -> np.ndarray:
    """(B, C) float64 from an array (B, ...): one row per dataset, coordinates flattened."""
    arr = as_numpy(x, name)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected an array of shape (B, ...) with B >= 1, got shape "
                         f"{arr.shape}")
    return arr.reshape(arr.shape[0], -1)


def _same_shape(**arrays) -> None:
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) != 1:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"expected arrays of the same shape (B, ...), got {desc}")


def standardized_mean_error(
    q_mean,
    ref_mean,
    ref_std,
    *,
    reduce: str = "mean",
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Error of the candidate's posterior mean in units of the reference posterior sd.

    Per dataset b, ``e_bc = |q_mean[b, c] - ref_mean[b, c]| / ref_std[b, c]`` reduced over
    the coordinates c, then averaged over datasets with a bootstrap CI over datasets.

    Args:
        q_mean: Candidate posterior means, shape (B, ...).
        ref_mean: Reference posterior means, same shape.
        ref_std: Reference posterior standard deviations (> 0), same shape.
        reduce: Over coordinates: ``"mean"`` (mean of e), ``"rms"`` (root mean square)
            or ``"max"``.
        num_resamples: Bootstrap resamples over datasets.
        level: Confidence level.
        seed: Seed of the bootstrap.

    Returns:
        :class:`Estimate` (0 when the means agree), ``n = B``.
    """
    q, r, s = (as_numpy(q_mean, "q_mean"), as_numpy(ref_mean, "ref_mean"),
               as_numpy(ref_std, "ref_std"))
    _same_shape(q_mean=q, ref_mean=r, ref_std=s)
    q, r, s = _per_dataset(q, "q_mean"), _per_dataset(r, "ref_mean"), _per_dataset(s, "ref_std")
    if (s <= 0).any():
        raise ValueError(f"ref_std: expected positive standard deviations, got min {s.min():.3g}")
    err = np.abs(q - r) / s  # (B, C)
    if reduce == "mean":
        per = err.mean(1)
    elif reduce == "rms":
        per = np.sqrt((err**2).mean(1))
    elif reduce == "max":
        per = err.max(1)
    else:
        raise ValueError(f"reduce: expected 'mean', 'rms' or 'max', got {reduce!r}")
    return bootstrap_ci(per, num_resamples=num_resamples, level=level, seed=seed)


def variance_ratio(
    q_var,
    ref_var,
    *,
    log: bool = False,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Ratio of the candidate's posterior variance to the reference's.

    Per dataset, the geometric mean over coordinates of ``q_var / ref_var``
    (``exp(mean_c log(q_var / ref_var))``), then the mean over datasets. 1 when the
    spreads agree, < 1 when the candidate is overconfident. With ``log=True`` the
    per-dataset value is ``mean_c log(q_var / ref_var)`` (0 when they agree).

    Args:
        q_var: Candidate posterior variances (> 0), shape (B, ...).
        ref_var: Reference posterior variances (> 0), same shape.
        log: Report the mean log-ratio instead of the geometric-mean ratio.
        num_resamples: Bootstrap resamples over datasets.
        level: Confidence level.
        seed: Seed of the bootstrap.

    Returns:
        :class:`Estimate`, ``n = B``.
    """
    q, r = as_numpy(q_var, "q_var"), as_numpy(ref_var, "ref_var")
    _same_shape(q_var=q, ref_var=r)
    q, r = _per_dataset(q, "q_var"), _per_dataset(r, "ref_var")
    for name, v in (("q_var", q), ("ref_var", r)):
        if (v <= 0).any():
            raise ValueError(f"{name}: expected positive variances, got min {v.min():.3g}")
    log_ratio = (np.log(q) - np.log(r)).mean(1)  # (B,)
    per = log_ratio if log else np.exp(log_ratio)
    return bootstrap_ci(per, num_resamples=num_resamples, level=level, seed=seed)


def _wilson(successes: int, n: int, level: float) -> tuple[float, float]:
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _levels(levels) -> list[float]:
    out = [float(v) for v in np.atleast_1d(np.asarray(levels, dtype=float))]
    if not out or any(not 0.0 < v < 1.0 for v in out):
        raise ValueError(f"levels: expected credible levels in (0, 1), got {levels!r}")
    return out


def _draws_and_truth(samples, truth, name: str, *, min_draws: int):
    """``samples`` (S, B, ...) with S >= ``min_draws`` and ``truth`` (B, ...) as arrays."""
    draws = as_numpy(samples, name)
    true = as_numpy(truth, "truth")
    if draws.ndim < 2 or draws.shape[0] < min_draws:
        raise ValueError(f"{name}: expected draws of shape (S, B, ...) with S >= {min_draws}, "
                         f"got shape {draws.shape}")
    if draws.shape[1:] != true.shape:
        raise ValueError(f"truth: expected shape {draws.shape[1:]} ({name}.shape[1:]), got "
                         f"{true.shape}")
    return draws, true


def coverage(
    q_samples,
    truth,
    *,
    levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """Empirical coverage of central credible intervals of the candidate posterior.

    For every dataset b and coordinate c the central interval at credible level a runs
    between the ``(1 - a) / 2`` and ``(1 + a) / 2`` quantiles of the S draws (linear
    interpolation); coverage is the fraction of (b, c) whose ``truth`` lies inside.
    For a calibrated posterior and ``truth`` drawn from the prior (SBC style) or from
    the reference posterior, coverage is a (up to O(1/S) from the finite draws).

    Args:
        q_samples: Draws from the candidate posterior, shape (S, B, ...), S >= 2.
        truth: True latents (or one reference draw) per dataset, shape (B, ...).
        levels: Credible levels in (0, 1).
        ci_level: Confidence level of the Wilson intervals.

    Returns:
        DataFrame with one row per credible level and columns ``level, value, ci_low,
        ci_high, se, n, metric`` (``metric = "coverage"``, ``value`` the coverage,
        Wilson interval, ``se = sqrt(value (1 - value) / n)``, ``n = B * C``). The
        interval treats the B * C checks as independent; coordinates of one dataset
        usually are not, so with C > 1 it is optimistic (pass one coordinate for a
        strict interval).
    """
    draws, true = _draws_and_truth(q_samples, truth, "q_samples", min_draws=2)
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level: expected a number in (0, 1), got {ci_level!r}")
    levs = _levels(levels)
    n = int(true.size)
    if n == 0:
        raise ValueError("truth: expected at least one dataset and coordinate, got none")
    rows = []
    for a in levs:
        lo, hi = np.quantile(draws, [(1 - a) / 2, (1 + a) / 2], axis=0)  # (B, ...) each
        hits = int(np.sum((true >= lo) & (true <= hi)))
        p = hits / n
        ci_low, ci_high = _wilson(hits, n, ci_level)
        rows.append({"level": a, "value": p, "ci_low": ci_low, "ci_high": ci_high,
                     "se": float(np.sqrt(p * (1 - p) / n)), "n": n, "metric": "coverage"})
    return pd.DataFrame(rows, columns=["level", "value", "ci_low", "ci_high", "se", "n",
                                       "metric"])


def sbc_ranks(posterior_samples, truth, *, seed: int = 0) -> np.ndarray:
    """Rank of the truth among S posterior draws, per dataset and coordinate.

    ``rank = #{s : draw_s < truth} + U``, with U uniform on ``0..#{s : draw_s == truth}``
    (ties broken at random, seeded), so ranks lie in ``0..S`` and are uniform on them
    when the draws and the truth come from the same distribution.

    Args:
        posterior_samples: Draws, shape (S, B, ...), S >= 1.
        truth: True values, shape (B, ...).
        seed: Seed of the tie-breaking.

    Returns:
        Integer array of shape (B, ...).
    """
    draws, true = _draws_and_truth(posterior_samples, truth, "posterior_samples", min_draws=1)
    below = (draws < true).sum(0)
    ties = (draws == true).sum(0)
    rng = np.random.default_rng(seed)
    return (below + rng.integers(0, ties + 1)).astype(np.int64)


@dataclass(frozen=True)
class UniformityResult:
    """How far SBC ranks are from uniform on ``0..S``.

    Attributes:
        statistic: :class:`Estimate` of the largest deviation of the ranks' empirical CDF
            from the uniform CDF, ``max_r |F_n(r) - (r + 1) / (S + 1)|`` (no interval;
            ``n`` = number of ranks).
        p_value: Chi-square goodness-of-fit p-value of the binned ranks (small = not
            uniform).
        chi2: The chi-square statistic.
        dof: Its degrees of freedom (bins - 1).
        bins: Number of bins.
        ecdf_band: Half-width of the simultaneous 95% DKW band for the ECDF,
            ``sqrt(log(2 / 0.05) / (2 n))``; ``statistic.value`` above it also rejects.
    """

    statistic: Estimate
    p_value: float
    chi2: float
    dof: int
    bins: int
    ecdf_band: float


def sbc_uniformity(ranks, num_samples: int, *, bins: int | None = None) -> UniformityResult:
    """Test SBC ranks for uniformity on ``0..num_samples``.

    All ranks are pooled (for several coordinates pass them together or one at a time;
    the chi-square test assumes independent ranks). Ranks are binned into ``bins``
    groups of consecutive values; expected counts account for unequal bin widths when
    ``bins`` does not divide ``num_samples + 1``.

    Args:
        ranks: Integer ranks in ``0..num_samples``, any shape (e.g. (B,) or (B, C)).
        num_samples: S, the number of posterior draws behind each rank.
        bins: Number of bins (default ``min(S + 1, 20, max(2, n // 5))``, so each bin
            expects about 5 or more ranks).

    Returns:
        :class:`UniformityResult`.
    """
    s = check_int(num_samples, "num_samples", low=1)
    r = as_numpy(ranks, "ranks").reshape(-1)
    if r.size < 2:
        raise ValueError(f"ranks: expected at least 2 ranks, got {r.size}")
    if (r != np.round(r)).any() or r.min() < 0 or r.max() > s:
        raise ValueError(f"ranks: expected integers in 0..{s}, got values in "
                         f"[{r.min():g}, {r.max():g}]")
    r = r.astype(np.int64)
    n = r.size
    if bins is None:
        bins = int(min(s + 1, 20, max(2, n // 5)))
    bins = check_int(bins, "bins", low=2, high=s + 1)
    bin_of_value = (np.arange(s + 1) * bins) // (s + 1)  # (S + 1,) bin of each rank value
    expected = np.bincount(bin_of_value, minlength=bins) / (s + 1) * n  # (bins,)
    observed = np.bincount(bin_of_value[r], minlength=bins)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(chi2, bins - 1))
    ecdf = np.cumsum(np.bincount(r, minlength=s + 1)) / n  # (S + 1,)
    dev = float(np.max(np.abs(ecdf - np.arange(1, s + 2) / (s + 1))))
    band = float(np.sqrt(np.log(2 / 0.05) / (2 * n)))
    return UniformityResult(Estimate(dev, n=n), p_value, chi2, bins - 1, bins, band)
