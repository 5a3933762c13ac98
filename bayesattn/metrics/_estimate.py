"""Estimates with confidence intervals, and the percentile bootstrap that makes them.

Every gap metric in :mod:`bayesattn.metrics` returns an :class:`Estimate`: a value
with a confidence interval and the number of independent units it was computed from
(datasets, sequences or draws). ``Estimate.row()`` gives the tidy-frame columns
``value, ci_low, ci_high, se, n`` that :mod:`bayesattn.gaps` puts one per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Estimate", "bootstrap_ci", "as_numpy"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval.

    Attributes:
        value: The estimate (a float).
        ci_low: Lower end of the confidence interval (``nan`` when there is none).
        ci_high: Upper end of the confidence interval (``nan`` when there is none).
        se: Standard error (bootstrap or analytic; ``nan`` when unknown).
        n: Number of independent units behind the estimate.
        level: Confidence level of ``[ci_low, ci_high]``.
    """

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    se: float = float("nan")
    n: int = 0
    level: float = 0.95

    def __float__(self) -> float:
        return float(self.value)

    def row(self) -> dict[str, float]:
        """The columns of a tidy results row: ``value, ci_low, ci_high, se, n``."""
        out = asdict(self)
        out.pop("level")
        return out

    def __repr__(self) -> str:
        return (
            f"Estimate({self.value:.4g}, {100 * self.level:.0f}% CI "
            f"[{self.ci_low:.4g}, {self.ci_high:.4g}], n={self.n})"
        )


def as_numpy(x, name: str = "x") -> np.ndarray:
    """A float64 NumPy array from a NumPy array, a torch tensor or a sequence.

    Raises:
        TypeError: when ``x`` cannot be read as numbers.
        ValueError: when ``x`` holds NaN or inf.
    """
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected an array of numbers, got {type(x).__name__}") from err
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf of {arr.size}")
    return arr


def bootstrap_ci(
    values,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile-bootstrap confidence interval of ``statistic`` over independent units.

    Args:
        values: Per-unit values, shape (n,) or (n, ...); units are resampled along the
            first axis with replacement.
        statistic: Maps an array shaped like ``values`` to a float (default: the mean).
        num_resamples: Bootstrap resamples (>= 1; 0 skips the interval).
        level: Confidence level in (0, 1).
        seed: Seed of the NumPy generator used for resampling.

    Returns:
        An :class:`Estimate` whose ``value`` is ``statistic(values)``, whose interval is
        the percentile interval of the resampled statistics, and whose ``se`` is their
        standard deviation. With a single unit the interval is ``nan``.
    """
    arr = as_numpy(values, "values")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"values: expected at least one unit along axis 0, got shape {arr.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    if int(num_resamples) != num_resamples or num_resamples < 0:
        raise ValueError(f"num_resamples: expected an integer >= 0, got {num_resamples!r}")
    n = arr.shape[0]
    value = float(statistic(arr))
    if n < 2 or num_resamples == 0:
        return Estimate(value, n=n, level=level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(num_resamples), n))
    stats = np.array([float(statistic(arr[i])) for i in idx])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return Estimate(value, float(lo), float(hi), float(stats.std(ddof=1)), n, level)
