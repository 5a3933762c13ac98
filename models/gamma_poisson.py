"""``gamma-poisson``: counts with an unknown rate.

    z ~ Gamma(a, b)        x_i | z ~ Poisson(z)        y | z ~ Poisson(z)

``b`` is a rate (mean of the prior ``a / b``); y is the next count. Conjugate:
``z | x ~ Gamma(a + sum x_i, b + L)``, a function of (L, mean x) only.
"""

from __future__ import annotations

from typing import Any

import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from ._base import ExchangeableModel
from ._params import positive
from ._registry import register


@register
class GammaPoisson(ExchangeableModel):
    """Gamma prior (shape, rate) on a Poisson rate.

    Shapes: ``latent_shape = ()``, ``token_shape = ()``, ``target_shape = ()``.
    Tokens are nonnegative integer counts (any real dtype holding whole numbers,
    or an integer dtype); they are handled as float64.

    Args:
        a: Prior shape (> 0); acts as a pseudo-total of counts.
        b: Prior rate (> 0); acts as a pseudo-number of observations.
    """

    name = "gamma-poisson"
    token_support = constraints.nonnegative_integer

    def __init__(self, a: float = 2.0, b: float = 1.0) -> None:
        super().__init__(a=positive(self.name, "a", a), b=positive(self.name, "b", b))

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        a, b = self.params["a"], self.params["b"]
        return pdist.Gamma(self.tensor(a, device), self.tensor(b, device))

    def pyro_likelihood(self, z):
        return pdist.Poisson(z)

    def pyro_target(self, z):
        return pdist.Poisson(z)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        return ndist.Gamma(self.params["a"], self.params["b"])

    def numpyro_likelihood(self, z):
        return ndist.Poisson(z)

    def numpyro_target(self, z):
        return ndist.Poisson(z)

    # Exact posterior ----------------------------------------------------------
    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Gamma:
        """Gamma(a + sum of real counts, b + number of real tokens); batch_shape ``(B,)``.

        Args:
            x: Counts, shape ``(B, L)``.
            mask: Bool ``(B, L)``, True = real token; padded tokens contribute nothing.

        Returns:
            float64 ``torch.distributions.Gamma`` (rate parametrisation), batch_shape ``(B,)``.
        """
        x, mask = self.validate_tokens(x, mask)
        m = mask.to(torch.float64)
        total = (x * m).sum(-1)
        count = m.sum(-1)
        return torch.distributions.Gamma(self.params["a"] + total, self.params["b"] + count)
