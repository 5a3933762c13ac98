"""``dirichlet-categorical``: a K-sided die with unknown face probabilities.

    z ~ Dirichlet(alpha)        x_i | z ~ Categorical(z)        y | z ~ Categorical(z)

Tokens are category ids in ``{0, ..., K-1}`` (integer dtype); y is the next token.
Conjugate: ``z | x ~ Dirichlet(alpha + counts)`` with ``counts[k] = #{i : x_i = k}``,
a function of (L, mean one-hot(x)) only.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from ._base import ExchangeableModel
from ._errors import ModelInputError
from ._registry import register


def _positive(label: str, value: Any) -> float:
    """``value`` as a finite float > 0, or ModelInputError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ModelInputError(
            f"dirichlet-categorical: {label} must be a finite number > 0; got {value!r}."
        )
    return v


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
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2:
            raise ModelInputError(f"dirichlet-categorical: K must be an integer >= 2; got {K!r}.")
        K = int(K)
        try:
            shape = np.shape(alpha)
        except ValueError:  # ragged nested lists
            shape = None
        if shape == ():
            alpha_param: float | list[float] = _positive("alpha", alpha)
            alpha_vec = [alpha_param] * K
        else:
            if shape != (K,):
                raise ModelInputError(
                    f"dirichlet-categorical: alpha must be a number or a list of K = {K} "
                    f"numbers; got shape {shape}."
                )
            alpha_vec = [_positive(f"alpha[{k}]", v) for k, v in enumerate(alpha)]
            alpha_param = list(alpha_vec)
        super().__init__(K=K, alpha=alpha_param)
        self._alpha = alpha_vec
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
