"""``normal-mean``: the unknown mean of a d-dimensional Gaussian with known noise.

    z ~ N(m0 * 1, tau^2 I_d)      x_i | z ~ N(z, Sigma)      y | z ~ N(sum_j z_j, 1)

y is a scalar regression target (the sum of the latent coordinates plus unit noise).
Conjugate: ``z | x ~ N(mu_N, P^-1)`` with precision ``P = I / tau^2 + L Sigma^-1`` and
``mu_N = P^-1 (m0 * 1 / tau^2 + Sigma^-1 sum_i x_i)``, a function of (L, mean x) only.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from ._base import ExchangeableModel
from ._errors import ModelInputError
from ._params import finite, float_array, integer, positive
from ._registry import register


def _covariance(value: Any, d: int) -> np.ndarray:
    """Validate a ``(d, d)`` symmetric positive-definite matrix; return it as float64."""
    cov = float_array("normal-mean", "noise_cov", value, (d, d), dims="(d, d)")
    asym = float(np.abs(cov - cov.T).max())
    if asym > 1e-10 * max(1.0, float(np.abs(cov).max())):
        raise ModelInputError(
            f"normal-mean: noise_cov must be symmetric; got max |S - S^T| = {asym:.3g}."
        )
    cov = 0.5 * (cov + cov.T)
    min_eig = float(np.linalg.eigvalsh(cov).min())
    if not min_eig > 0:
        raise ModelInputError(
            "normal-mean: noise_cov must be positive definite (all eigenvalues > 0); "
            f"got smallest eigenvalue {min_eig:.3g}."
        )
    return cov


@register
class NormalMean(ExchangeableModel):
    """Gaussian prior on the mean of a Gaussian with known covariance.

    Shapes: ``latent_shape = (d,)``, ``token_shape = (d,)``, ``target_shape = ()``.
    Tokens are real vectors (floating dtype).

    Args:
        d: Dimension (integer >= 1).
        prior_mean: m0; the prior mean is ``m0 * ones(d)``.
        prior_scale: tau > 0; the prior covariance is ``tau^2 I_d``.
        noise_cov: Known token covariance Sigma, a ``(d, d)`` symmetric positive-definite
            matrix as a nested list; None means the identity.
    """

    name = "normal-mean"
    token_support = constraints.real_vector

    def __init__(
        self,
        d: int = 2,
        prior_mean: float = 0.0,
        prior_scale: float = 1.0,
        noise_cov: list[list[float]] | None = None,
    ) -> None:
        d = integer(self.name, "d", d, 1)
        m0 = finite(self.name, "prior_mean", prior_mean)
        tau = positive(self.name, "prior_scale", prior_scale)
        cov = np.eye(d) if noise_cov is None else _covariance(noise_cov, d)
        super().__init__(d=d, prior_mean=m0, prior_scale=tau, noise_cov=cov.tolist())
        self._cov = cov
        self._chol = np.linalg.cholesky(cov)
        self.latent_shape = (d,)
        self.token_shape = (d,)
        self.target_shape = ()

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        d = self.params["d"]
        loc = self.tensor(self.params["prior_mean"], device).expand(d)
        scale = self.tensor(self.params["prior_scale"], device).expand(d)
        return pdist.Normal(loc, scale).to_event(1)

    def pyro_likelihood(self, z):
        return pdist.MultivariateNormal(z, scale_tril=self.tensor(self._chol, z.device))

    def pyro_target(self, z):
        return pdist.Normal(z.sum(-1), self.tensor(1.0, z.device))

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        d = self.params["d"]
        loc = jnp.full((d,), self.params["prior_mean"])
        scale = jnp.full((d,), self.params["prior_scale"])
        return ndist.Normal(loc, scale).to_event(1)

    def numpyro_likelihood(self, z):
        return ndist.MultivariateNormal(z, scale_tril=jnp.asarray(self._chol))

    def numpyro_target(self, z):
        return ndist.Normal(z.sum(-1), 1.0)

    # Exact posterior ----------------------------------------------------------
    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.MultivariateNormal:
        """N(mu_N, P^-1) per sequence; batch_shape ``(B,)``, event_shape ``(d,)``.

        With ``L_b`` real tokens in sequence b, ``P_b = I / tau^2 + L_b Sigma^-1`` and
        ``mu_b = P_b^-1 (m0 * 1 / tau^2 + Sigma^-1 sum_{real i} x_bi)``.

        Args:
            x: Tokens, shape ``(B, L, d)``, floating dtype.
            mask: Bool ``(B, L)``, True = real token; padded tokens contribute nothing.

        Returns:
            float64 ``torch.distributions.MultivariateNormal`` with batch_shape ``(B,)``.
        """
        x, mask = self.validate_tokens(x, mask)
        d = self.params["d"]
        m = mask.to(torch.float64)
        total = (x * m.unsqueeze(-1)).sum(-2)  # (B, d)
        count = m.sum(-1)  # (B,)
        noise_prec = torch.cholesky_inverse(self.tensor(self._chol, x.device))  # Sigma^-1
        prior_prec = 1.0 / self.params["prior_scale"] ** 2
        eye = torch.eye(d, dtype=torch.float64, device=x.device)
        precision = prior_prec * eye + count[:, None, None] * noise_prec  # (B, d, d)
        rhs = prior_prec * self.params["prior_mean"] + total @ noise_prec  # (B, d)
        chol = torch.linalg.cholesky(precision)
        mean = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
        cov = torch.cholesky_inverse(chol)
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
