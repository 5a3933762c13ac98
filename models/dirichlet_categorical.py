"""``dirichlet-categorical``: a K-sided die with unknown face probabilities.

    z ~ Dirichlet(alpha)        x_i | z ~ Categorical(z)        y | z ~ Categorical(z)

Tokens are category ids in ``{0, ..., K-1}`` (integer dtype); y is the next token.
Conjugate: ``z | x ~ Dirichlet(alpha + counts)`` with ``counts[k] = #{i : x_i = k}``,
a function of (L, mean one-hot(x)) only.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from ._base import ExchangeableModel
from ._params import concentration, integer
from ._registry import register


@register
class DirichletCategorical(ExchangeableModel):
    """Dirichlet prior on the face probabilities of a K-sided die.

    Shapes: ``latent_shape = (K,)`` (a point of the simplex), ``token_shape = ()``,
    ``target_shape = ()``. Tokens and targets are ``torch.long`` category ids.

    Args:
        K: Number of categories (integer >= 2).
        alpha: Dirichlet concentration: one float > 0 shared by all categories, or a
            list of K floats > 0.
    """

    name = "dirichlet-categorical"
    # Class-level default for K = 4; __init__ sets the instance's own interval.
    token_support = constraints.integer_interval(0, 3)

    def __init__(self, K: int = 4, alpha: float | list[float] = 1.0) -> None:
        K = integer(self.name, "K", K, 2)
        alpha_param = concentration(self.name, "alpha", alpha, K)
        super().__init__(K=K, alpha=alpha_param)
        self._alpha = list(alpha_param) if isinstance(alpha_param, list) else [alpha_param] * K
        self.latent_shape = (K,)
        self.token_shape = ()
        self.target_shape = ()
        self.token_support = constraints.integer_interval(0, K - 1)

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        return pdist.Dirichlet(self.tensor(self._alpha, device))

    def pyro_likelihood(self, z):
        return pdist.Categorical(probs=z)

    def pyro_target(self, z):
        return pdist.Categorical(probs=z)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        return ndist.Dirichlet(jnp.asarray(self._alpha))

    def numpyro_likelihood(self, z):
        return ndist.Categorical(probs=z)

    def numpyro_target(self, z):
        return ndist.Categorical(probs=z)

    # Exact posterior ----------------------------------------------------------
    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Dirichlet:
        """Dirichlet(alpha + counts of the real tokens); batch_shape ``(B,)``, event ``(K,)``.

        Args:
            x: Category ids, shape ``(B, L)``, integer dtype.
            mask: Bool ``(B, L)``, True = real token; padded tokens contribute nothing.

        Returns:
            float64 ``torch.distributions.Dirichlet`` with batch_shape ``(B,)``.
        """
        x, mask = self.validate_tokens(x, mask)
        k = self.params["K"]
        onehot = torch.nn.functional.one_hot(x, k).to(torch.float64)
        counts = (onehot * mask.to(torch.float64).unsqueeze(-1)).sum(-2)
        alpha = self.tensor(self._alpha, x.device)
        return torch.distributions.Dirichlet(alpha + counts)
