"""``beta-bernoulli``: a coin with unknown bias.

    z ~ Beta(a, b)        x_i | z ~ Bernoulli(z)        y | z ~ Bernoulli(z)

y is the next flip. Conjugate: ``z | x ~ Beta(a + sum x_i, b + L - sum x_i)``,
a function of (L, mean x) only (docs/claims.md#paper-1, exponential-family tokens).
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
class BetaBernoulli(ExchangeableModel):
    """Beta prior on a Bernoulli probability.

    Args:
        a: Prior pseudo-count of ones (> 0).
        b: Prior pseudo-count of zeros (> 0).
    """

    name = "beta-bernoulli"
    token_support = constraints.boolean

    def __init__(self, a: float = 1.0, b: float = 1.0) -> None:
        super().__init__(a=positive(self.name, "a", a), b=positive(self.name, "b", b))

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        a, b = self.params["a"], self.params["b"]
        return pdist.Beta(self.tensor(a, device), self.tensor(b, device))

    def pyro_likelihood(self, z):
        return pdist.Bernoulli(probs=z)

    def pyro_target(self, z):
        return pdist.Bernoulli(probs=z)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        return ndist.Beta(self.params["a"], self.params["b"])

    def numpyro_likelihood(self, z):
        return ndist.Bernoulli(probs=z)

    def numpyro_target(self, z):
        return ndist.Bernoulli(probs=z)

    # Exact posterior ----------------------------------------------------------
    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Beta:
        """Beta(a + #ones, b + #zeros) per sequence; batch_shape ``(B,)``."""
        x, mask = self.validate_tokens(x, mask)
        m = mask.to(x.dtype)
        ones = (x * m).sum(-1)
        zeros = m.sum(-1) - ones
        return torch.distributions.Beta(self.params["a"] + ones, self.params["b"] + zeros)
