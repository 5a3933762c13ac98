"""Means and variances of a candidate distribution: exact when torch knows them, else by
Monte Carlo (the one home of this fallback)."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from bayesattn._random import seeded

__all__ = ["moments"]


def moments(dist: Distribution, *, num_samples: int = 4000, seed: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of each of a distribution's batch members, float64.

    Uses ``dist.mean`` and ``dist.variance`` when both exist and are finite; otherwise
    ``num_samples`` draws (seeded with ``seed``; the global RNG is left alone) give the
    sample mean and variance.

    Returns:
        ``(mean, variance)``, each of shape ``batch_shape + event_shape``, detached.

    Raises:
        Whatever ``dist.sample`` raises when neither the moments nor draws can be had.
    """
    try:
        mean, var = dist.mean, dist.variance
        if torch.isfinite(mean).all() and torch.isfinite(var).all():
            return mean.detach().double(), var.detach().double()
    except Exception:  # noqa: BLE001 - no closed-form moments (NotImplementedError, ...)
        pass
    with seeded(seed), torch.no_grad():
        draws = dist.sample((int(num_samples),)).double()
    return draws.mean(0), draws.var(0)
