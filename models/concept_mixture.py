"""``concept-mixture``: which of K Gaussian "concepts" produced the tokens?

    z ~ Categorical(w)        x_i | z ~ Normal(mu_z, scale^2 I_d)        y | z ~ noisy copy of z

y equals z with probability ``1 - label_noise`` and is uniform over the K classes
otherwise. The posterior is exact by enumeration over K classes:
``log p(z=k | x) = log w_k + sum_i log N(x_i | mu_k, scale^2 I) - logsumexp_k(...)``.

The prior, the label channel and the target are shared with ``unigram-mixture``
(:class:`~bayesattn.models._mixture.FiniteMixture`).
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

from ._mixture import FiniteMixture, size_from
from ._params import float_array, in_interval, integer
from ._registry import register


def default_means(num_classes: int, dim: int, radius: float) -> list[list[float]]:
    """K points evenly spaced on a circle of ``radius`` in coordinates 0 and 1 (d >= 2),
    or evenly spaced on ``[-radius, radius]`` (d == 1)."""
    means = np.zeros((num_classes, dim))
    if dim == 1:
        means[:, 0] = np.linspace(-radius, radius, num_classes) if num_classes > 1 else 0.0
    else:
        angle = 2.0 * np.pi * np.arange(num_classes) / num_classes
        means[:, 0], means[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    return means.tolist()


# The model ---------------------------------------------------------------------
@register
class ConceptMixture(FiniteMixture):
    """A finite mixture of isotropic Gaussians, one component ("concept") per sequence.

    Args:
        K: Number of concepts (>= 1). Default 4, or ``len(means)`` when means is given.
        d: Token dimension (>= 1). Default 2, or ``len(means[0])`` when means is given.
        weights: Prior class probabilities, K positives summing to 1 (default uniform).
        means: ``K x d`` nested list of concept means (default: see ``radius``).
        radius: Radius of the default means (K points on a circle in the first two
            coordinates, zeros elsewhere; evenly spaced on [-radius, radius] if d == 1).
        scale: Token standard deviation (> 0), the same in every coordinate.
        label_noise: Probability in [0, 1] that y is redrawn uniformly instead of y = z.
    """

    name = "concept-mixture"
    token_support = constraints.real_vector

    def __init__(self, K: int | None = None, d: int | None = None, weights: Any = None,
                 means: Any = None, radius: float = 2.0, scale: float = 1.0,
                 label_noise: float = 0.1) -> None:
        n = self.name
        mu = None if means is None else float_array(n, "means", means, require_finite=False)
        K = integer(n, "K", size_from(mu, 0, K, 4), 1)
        d = integer(n, "d", size_from(mu, -1, d, 2), 1)
        radius = in_interval(n, "radius", radius, 0.0, math.inf, open_low=True)
        scale = in_interval(n, "scale", scale, 0.0, math.inf, open_low=True)
        w = self.check_weights(weights, K)
        mu = float_array(n, "means", default_means(K, d, radius) if mu is None else mu, (K, d),
                         dims="(K, d)")
        super().__init__(K=K, d=d, weights=w, means=mu.tolist(), radius=radius,
                         scale=scale, label_noise=self.check_label_noise(label_noise))
        self.token_shape = (d,)

    # Pyro program pieces (prior and target: FiniteMixture) -------------------
    def pyro_likelihood(self, z):
        means = self.tensor(self.params["means"], z.device)[z.long()]  # (..., 1, d)
        return pdist.Normal(means, self.params["scale"]).to_event(1)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_likelihood(self, z):
        means = jnp.asarray(self.params["means"])[z]  # (..., 1, d)
        return ndist.Normal(means, self.params["scale"]).to_event(1)

    # Exact posterior ----------------------------------------------------------
    def token_loglik(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x_i | mu_k, scale^2 I): validated tokens ``(B, L, d)`` -> ``(B, L, K)``."""
        means = self.tensor(self.params["means"], x.device)
        s, d = self.params["scale"], self.params["d"]
        sq = ((x[:, :, None, :] - means) ** 2).sum(-1)
        return -0.5 * sq / s**2 - d * math.log(s) - 0.5 * d * math.log(2 * math.pi)

    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Categorical:
        """p(z | x) by enumeration over the K concepts; batch_shape ``(B,)``, float64.

        Computed from the sufficient statistics (L, sum_i x_i): the term
        ``sum_i ||x_i||^2`` is the same for every concept and cancels, leaving
        ``log w_k + (mu_k . sum_i x_i - L ||mu_k||^2 / 2) / scale^2`` up to normalisation.
        """
        x, mask = self.validate_tokens(x, mask)
        means = self.tensor(self.params["means"], x.device)  # (K, d)
        log_w = self.tensor(self.params["weights"], x.device).log()
        total = torch.einsum("bl,bld->bd", mask.to(x.dtype), x)  # (B, d)
        count = mask.sum(-1, keepdim=True).to(x.dtype)  # (B, 1)
        quad = total @ means.T - 0.5 * count * (means**2).sum(-1)  # (B, K)
        joint = log_w + quad / self.params["scale"] ** 2
        return torch.distributions.Categorical(logits=joint - joint.logsumexp(-1, keepdim=True))
