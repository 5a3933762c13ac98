"""Convergence diagnostics and the ground-truth gate (pure functions; no samplers).

A reference posterior may serve as ground truth only when it ran at least 4 chains
and, for **every** dataset and every latent coordinate: rank-normalised split
R-hat <= 1.01, bulk and tail ESS >= 400, and no post-warm-up divergences
(Vehtari et al. 2021 thresholds); and, for NumPyro NUTS, when a multi-start mode search
found no local mode that every chain missed (chains trapped in one of several peaks
agree with each other, so R-hat alone cannot see them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ConvergenceGate:
    """Thresholds a reference must meet to serve as ground truth.

    Attributes:
        r_hat_max: Largest acceptable rank-normalised split R-hat.
        ess_min: Smallest acceptable bulk and tail effective sample size.
        max_divergences: Largest acceptable number of post-warm-up divergences.
        min_chains: Fewest chains per dataset (R-hat needs several to detect
            chains stuck in different places).
        max_missed_modes: Most local modes (found by the mode search) that no chain may
            visit; -1 in the diagnostics means no search ran (Pyro NUTS).
    """

    r_hat_max: float = 1.01
    ess_min: float = 400.0
    max_divergences: int = 0
    min_chains: int = 4
    max_missed_modes: int = 0


DEFAULT_GATE = ConvergenceGate()


def arviz():
    """Import ArviZ lazily, without its import-time FutureWarning about the 1.x refactor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def _reduce_to_dataset(da, how: str) -> np.ndarray:
    """Reduce an xarray DataArray with a ``dataset`` dim over every other dim."""
    other = [d for d in da.dims if d != "dataset"]
    red = da.max(dim=other) if how == "max" else da.min(dim=other)
    return np.asarray(red.values, dtype=np.float64).reshape(-1)


def per_dataset_diagnostics(idata, gate: ConvergenceGate = DEFAULT_GATE,
                            missed_modes: np.ndarray | None = None) -> pd.DataFrame:
    """Per-dataset convergence summary of the ``z`` draws in ``idata``.

    Args:
        idata: ArviZ InferenceData whose ``posterior.z`` has dims
            ``(chain, draw, dataset, *z_dims)`` and, optionally,
            ``sample_stats.diverging`` with dims ``(chain, draw, dataset)``.
        gate: Thresholds for the ``converged`` column.
        missed_modes: Per dataset, local modes no chain visited (from the sampler's
            mode search); None when no search ran (the column is then -1).

    Returns:
        DataFrame with one row per dataset and columns ``dataset``, ``r_hat`` (worst
        coordinate), ``ess_bulk``, ``ess_tail`` (worst coordinate), ``divergences``,
        ``missed_modes`` and ``converged``.
    """
    az = arviz()
    post = idata.posterior[["z"]]
    n_chains = post.sizes["chain"]
    ess_bulk = _reduce_to_dataset(az.ess(post, method="bulk")["z"], "min")
    ess_tail = _reduce_to_dataset(az.ess(post, method="tail")["z"], "min")
    if n_chains >= 2:
        r_hat = _reduce_to_dataset(az.rhat(post, method="rank")["z"], "max")
    else:  # undefined with one chain: NaN, which fails the gate
        r_hat = np.full(ess_bulk.shape, np.nan)
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        div = idata.sample_stats["diverging"].sum(dim=("chain", "draw"))
        divergences = np.asarray(div.values, dtype=np.int64).reshape(-1)
    else:
        divergences = np.zeros_like(r_hat, dtype=np.int64)
    missed = (np.full(r_hat.shape, -1, dtype=np.int64) if missed_modes is None
              else np.asarray(missed_modes, dtype=np.int64).reshape(-1))
    # A constant coordinate (e.g. a posterior point mass) gives NaN R-hat; it fails.
    converged = (
        (missed <= gate.max_missed_modes) &
        (np.nan_to_num(r_hat, nan=np.inf) <= gate.r_hat_max)
        & (np.nan_to_num(ess_bulk, nan=0.0) >= gate.ess_min)
        & (np.nan_to_num(ess_tail, nan=0.0) >= gate.ess_min)
        & (divergences <= gate.max_divergences)
        & (n_chains >= gate.min_chains)
    )
    return pd.DataFrame(
        {
            "dataset": np.arange(r_hat.size),
            "r_hat": r_hat,
            "ess_bulk": ess_bulk,
            "ess_tail": ess_tail,
            "divergences": divergences,
            "missed_modes": missed,
            "converged": converged,
        }
    )


def iid_diagnostics(num_datasets: int, num_draws: int) -> pd.DataFrame:
    """Diagnostics of independent exact draws: R-hat 1, ESS = number of draws."""
    n = np.full(num_datasets, float(num_draws))
    return pd.DataFrame(
        {
            "dataset": np.arange(num_datasets),
            "r_hat": np.ones(num_datasets),
            "ess_bulk": n,
            "ess_tail": n,
            "divergences": np.zeros(num_datasets, dtype=np.int64),
            "missed_modes": np.zeros(num_datasets, dtype=np.int64),
            "converged": np.ones(num_datasets, dtype=bool),
        }
    )
