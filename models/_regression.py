"""What the two in-context regressions (``linear-``, ``logistic-regression``) share.

    z ~ N(0, tau^2 I_p)        x_i = (k_1, ..., k_p, v)        y | z: a function of <z, q>

:class:`GaussianWeightsRegression` holds the isotropic Gaussian prior on the
weights (both backends), the shapes and the fixed query ``q``. A subclass adds
its likelihood and target hooks.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch

from ._base import ExchangeableModel
from ._params import vector


class GaussianWeightsRegression(ExchangeableModel):
    """Base of the regressions: weights ``z ~ N(0, tau^2 I_p)``, tokens ``(k, v)``.

    ``params`` must hold ``p`` (validated int >= 1), ``prior_scale`` (tau) and
    ``query``; shapes: latent ``(p,)``, token ``(p + 1,)``, target ``()``.
    """

    target_shape = ()

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params["p"]
        self.latent_shape = (p,)
        self.token_shape = (p + 1,)

    def check_query(self, query: Any, p: int) -> list[float]:
        """Query features: ``p`` finite floats; None means all ``1 / sqrt(p)``."""
        return [1.0 / math.sqrt(p)] * p if query is None else vector(self.name, "query", query, p)

    # Pyro prior ---------------------------------------------------------------
    def pyro_prior(self, device=None):
        p, tau = self.params["p"], self.params["prior_scale"]
        eye = torch.eye(p, dtype=torch.float64, device=device)
        return pdist.MultivariateNormal(
            torch.zeros(p, dtype=torch.float64, device=device), scale_tril=tau * eye
        )

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        p, tau = self.params["p"], self.params["prior_scale"]
        return ndist.MultivariateNormal(jnp.zeros(p), scale_tril=tau * jnp.eye(p))
