"""``linear-regression``: in-context Bayesian linear regression.

    z ~ N(0, tau^2 I_p)
    x_i = (k_i, v_i):  k_i ~ N(0, I_p),  v_i | k_i, z ~ N(<z, phi(k_i)>, sigma^2)
    y | z ~ N(<z, q>, sigma^2)

with identity features ``phi(k) = k`` and a fixed query ``q``. Given ``z`` the pair
``(k, v)`` is jointly Gaussian, so a token is ONE draw from

    N( 0, [[I_p, z], [z^T, z^T z + sigma^2]] ),   scale_tril = [[I_p, 0], [z^T, sigma]].

Conjugate: ``z | x ~ N(mu_L, P^-1)`` with precision ``P = I / tau^2 + K^T K / sigma^2``
and mean ``mu_L = P^-1 K^T v / sigma^2`` (``K``: the ``L x p`` matrix of keys, ``v``
the values, padded rows dropped). The posterior predictive mean at a query
``q`` is ``phi(q)^T mu_L``, which CME attention reproduces exactly (docs/claims.md#p5).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from ._errors import ModelInputError
from ._params import integer, positive
from ._registry import register
from ._regression import GaussianWeightsRegression
from ._validation import as_tensor


@register
class LinearRegression(GaussianWeightsRegression):
    """Bayesian linear regression on in-context (key, value) pairs.

    A token is the vector ``(k_1, ..., k_p, v)`` of length ``p + 1``; the features
    are the identity, ``phi(k) = k``.

    Args:
        p: Feature dimension (int >= 1).
        prior_scale: Prior standard deviation tau of each weight (> 0).
        noise_scale: Observation noise standard deviation sigma (> 0).
        query: Query features q, a list of ``p`` floats; default all ``1 / sqrt(p)``.
            The target is ``y = <z, q> + N(0, sigma^2)``.

    Shapes:
        latent ``z``: ``(p,)``; token: ``(p + 1,)``; target ``y``: ``()``.
    """

    name = "linear-regression"
    token_support = constraints.real_vector

    def __init__(
        self,
        p: int = 2,
        prior_scale: float = 1.0,
        noise_scale: float = 0.5,
        query: list[float] | None = None,
    ) -> None:
        n = self.name
        p = integer(n, "p", p, 1)
        tau = positive(n, "prior_scale", prior_scale)
        sigma = positive(n, "noise_scale", noise_scale)
        super().__init__(p=p, prior_scale=tau, noise_scale=sigma, query=self.check_query(query, p))

    # Pyro program pieces (prior: GaussianWeightsRegression) -------------------
    def pyro_likelihood(self, z):
        """Joint Gaussian of one pair ``(k, v)``; ``z (..., 1, p)`` -> batch ``(..., 1)``."""
        p = self.params["p"]
        batch = z.shape[:-1]
        eye = torch.eye(p, dtype=z.dtype, device=z.device).expand(*batch, p, p)
        top = torch.cat([eye, z.new_zeros(*batch, p, 1)], dim=-1)  # (..., p, p+1)
        sigma = self.tensor(self.params["noise_scale"], z.device).to(z.dtype)
        bottom = torch.cat([z, sigma.expand(*batch, 1)], dim=-1).unsqueeze(-2)  # (..., 1, p+1)
        scale_tril = torch.cat([top, bottom], dim=-2)  # (..., p+1, p+1)
        return pdist.MultivariateNormal(z.new_zeros(p + 1), scale_tril=scale_tril)

    def pyro_target(self, z):
        q = self.tensor(self.params["query"], z.device).to(z.dtype)
        sigma = self.tensor(self.params["noise_scale"], z.device).to(z.dtype)
        return pdist.Normal((z * q).sum(-1), sigma)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_likelihood(self, z):
        p = self.params["p"]
        batch = jnp.shape(z)[:-1]
        eye = jnp.broadcast_to(jnp.eye(p, dtype=z.dtype), (*batch, p, p))
        top = jnp.concatenate([eye, jnp.zeros((*batch, p, 1), dtype=z.dtype)], axis=-1)
        sigma = jnp.full((*batch, 1), self.params["noise_scale"], dtype=z.dtype)
        bottom = jnp.concatenate([z, sigma], axis=-1)[..., None, :]
        scale_tril = jnp.concatenate([top, bottom], axis=-2)
        return ndist.MultivariateNormal(jnp.zeros(p + 1, dtype=z.dtype), scale_tril=scale_tril)

    def numpyro_target(self, z):
        q = jnp.asarray(self.params["query"], dtype=z.dtype)
        return ndist.Normal(jnp.sum(z * q, axis=-1), self.params["noise_scale"])

    # Exact posterior ----------------------------------------------------------
    def _posterior_params(self, x: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean ``(B, p)`` and precision ``(B, p, p)`` (float64)."""
        x, mask = self.validate_tokens(x, mask)
        p = self.params["p"]
        tau2 = self.params["prior_scale"] ** 2
        sigma2 = self.params["noise_scale"] ** 2
        m = mask.to(x.dtype)
        keys = x[..., :p] * m.unsqueeze(-1)  # (B, L, p), padded rows zero
        values = x[..., p] * m  # (B, L)
        eye = torch.eye(p, dtype=x.dtype, device=x.device)
        precision = eye / tau2 + keys.transpose(-1, -2) @ keys / sigma2
        rhs = (keys.transpose(-1, -2) @ values.unsqueeze(-1)) / sigma2  # (B, p, 1)
        chol = torch.linalg.cholesky(precision)
        mean = torch.cholesky_solve(rhs, chol).squeeze(-1)
        return mean, precision

    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.MultivariateNormal:
        """``N(mu_L, P^-1)`` per sequence; batch_shape ``(B,)``, event_shape ``(p,)``.

        Args:
            x: Tokens ``(B, L, p + 1)``: keys in ``x[..., :p]``, values in ``x[..., p]``.
            mask: Bool ``(B, L)`` (True = real token) or None.
        """
        mean, precision = self._posterior_params(x, mask)
        return torch.distributions.MultivariateNormal(mean, precision_matrix=precision)

    def predictive_mean(self, x: Any, queries: Any, mask: Any = None) -> torch.Tensor:
        """Exact posterior predictive mean ``E[v | q, x] = phi(q)^T mu_L`` (phi = identity).

        Args:
            x: Tokens ``(B, L, p + 1)``.
            queries: Query features ``(B, Q, p)``.
            mask: Bool ``(B, L)`` (True = real token) or None.

        Returns:
            float64 tensor ``(B, Q)``.
        """
        mean, _ = self._posterior_params(x, mask)
        queries = as_tensor(queries, "queries")
        b, p = mean.shape
        if queries.ndim != 3 or queries.shape[0] != b or queries.shape[2] != p:
            raise ModelInputError(
                f"linear-regression: queries must have shape (B, Q, p) = ({b}, Q, {p}); "
                f"got {tuple(queries.shape)}."
            )
        if not queries.is_floating_point():
            raise ModelInputError(
                f"linear-regression: queries must have a floating dtype; got {queries.dtype}."
            )
        queries = queries.to(device=mean.device, dtype=torch.float64)
        if not bool(torch.isfinite(queries).all()):
            raise ModelInputError("linear-regression: queries must be finite.")
        return (queries @ mean.unsqueeze(-1)).squeeze(-1)
