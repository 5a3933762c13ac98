"""Statistics over replicated runs: intervals across seeds, Holm's correction, power.

A verdict that rests on trained networks varies with the training seed as well as with
the test data. These functions treat each seed's number as one independent replicate:

- :func:`seed_interval`: the mean over seeds with a Student-t interval (t with R - 1
  degrees of freedom, not the normal 1.96, which is far too narrow for a few seeds:
  t(0.975, 1) = 12.7, t(0.975, 4) = 2.78);
- :func:`holm`: Holm's step-down adjusted p-values, for rules that fire on any one of
  several cells (family-wise error at most alpha, with no assumption about how the
  cells depend on each other);
- :func:`minimum_detectable_effect` and :func:`replicates_needed`: the smallest effect a
  test of the given standard error detects with the given power, and the sample size
  that resolves an observed effect (two-sided z test of effect = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._estimate import Estimate, as_numpy

__all__ = ["seed_interval", "holm", "minimum_detectable_effect", "replicates_needed"]


def _level(level: float) -> float:
    if not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    return float(level)


def seed_interval(values: Sequence[float] | np.ndarray, *, level: float = 0.95) -> Estimate:
    """Mean over seeds with a Student-t confidence interval.

    Args:
        values: One number per seed (the seeds are independent replicates).
        level: Confidence level.

    Returns:
        :class:`Estimate` with ``value`` the mean, ``se`` = sd / sqrt(R) and the interval
        mean +- t(1 - (1 - level)/2, R - 1) se; with one seed the interval is NaN (one
        replicate says nothing about training randomness).

    Raises:
        ValueError: no values, NaN/inf among them, or a level outside (0, 1).
    """
    from scipy import stats

    level = _level(level)
    x = as_numpy(values, "values").reshape(-1)
    if x.size == 0:
        raise ValueError("values: expected one number per seed, got none")
    mean = float(x.mean())
    if x.size == 1:
        return Estimate(mean, n=1, level=level)
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(stats.t.ppf(0.5 + level / 2, df=x.size - 1)) * se
    return Estimate(mean, mean - half, mean + half, se, int(x.size), level)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given.

    Reject cell i at family-wise level alpha when ``holm(p)[i] <= alpha``. With m
    p-values sorted increasingly, the adjusted value of the k-th smallest is
    ``max_{j <= k} min(1, (m - j + 1) p_(j))``.

    Raises:
        ValueError: no p-values, or one outside [0, 1] (NaN included).
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise ValueError("pvalues: expected at least one p-value, got none")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"pvalues: expected values in [0, 1], got {p[~((p >= 0) & (p <= 1))]}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def _z(alpha: float, power: float, two_sided: bool) -> float:
    from scipy import stats

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a probability in (0, 1), got {alpha!r}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected a probability in (0, 1), got {power!r}")
    return float(stats.norm.ppf(1 - alpha / (2 if two_sided else 1)) + stats.norm.ppf(power))


def minimum_detectable_effect(se: float, *, alpha: float = 0.05, power: float = 0.8,
                              two_sided: bool = True) -> float:
    """The smallest true effect a z test with standard error ``se`` detects with ``power``.

    ``(z_{1 - alpha/2} + z_power) * se`` (two-sided; ``z_{1 - alpha}`` one-sided): at
    alpha = 0.05 and 80% power, 2.80 standard errors.

    Raises:
        ValueError: ``se`` not a positive finite number, or alpha/power outside (0, 1).
    """
    if not (isinstance(se, (int, float)) and math.isfinite(se) and se > 0):
        raise ValueError(f"se: expected a positive finite standard error, got {se!r}")
    return _z(alpha, power, two_sided) * float(se)


def replicates_needed(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8,
                      two_sided: bool = True) -> int:
    """How many independent replicates (seeds, sequences) resolve a true ``effect`` with
    ``power``, when one replicate has standard deviation ``sd``:
    ``ceil(((z_{1 - alpha/2} + z_power) sd / |effect|)^2)``.

    Raises:
        ValueError: ``effect`` zero or not finite, ``sd`` not positive and finite.
    """
    if not (isinstance(effect, (int, float)) and math.isfinite(effect) and effect != 0):
        raise ValueError(f"effect: expected a non-zero finite effect size, got {effect!r}")
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd: expected a positive finite standard deviation, got {sd!r}")
    return max(1, math.ceil((_z(alpha, power, two_sided) * sd / abs(effect)) ** 2))
