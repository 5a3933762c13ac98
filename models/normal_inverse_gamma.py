"""``normal-inverse-gamma``: a Gaussian with unknown mean and unknown variance.

    sigma2 ~ InverseGamma(a0, b0)     mu | sigma2 ~ N(m0, sigma2 / k0)
    x_i | mu, sigma2 ~ N(mu, sigma2)  y | mu, sigma2 ~ N(mu, sigma2)

The latent ``z = (mu, sigma2)`` is ONE sample site with event shape ``(2,)``, drawn
from the joint Normal-Inverse-Gamma law written here twice (torch/Pyro:
:class:`NormalInvGammaJoint`; NumPyro: :class:`NumPyroNormalInvGammaJoint`). y is the
next token. Conjugate: ``z | x ~ NIG(m_N, k_N, a_N, b_N)`` with, over the n real tokens
with mean xbar,

    k_N = k0 + n          m_N = (k0 m0 + n xbar) / k_N          a_N = a0 + n / 2
    b_N = b0 + 1/2 sum_i (x_i - xbar)^2 + k0 n (xbar - m0)^2 / (2 k_N)

a function of (n, mean x, mean x^2) only.

Support of z: R x (0, inf). On the torch side it is a ``constraints.cat`` of ``real``
and ``positive`` (torch's ``biject_to`` maps it with identity and exp, so Pyro NUTS
works). On the NumPyro side a private constraint carries a registered
``biject_to`` transform ``(u1, u2) -> (u1, exp(u2))`` with ``log|det J| = u2``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from jax.scipy.special import gammaln
from numpyro.distributions import constraints as nconstraints
from numpyro.distributions.transforms import ParameterFreeTransform, biject_to
from numpyro.distributions.util import promote_shapes
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from ._base import ExchangeableModel
from ._errors import ModelInputError
from ._params import finite, positive
from ._registry import register

_LOG_2PI = math.log(2.0 * math.pi)

#: torch support of z = (mu, sigma2): R x (0, inf), event_dim 1.
REAL_POSITIVE_PAIR = constraints.independent(
    constraints.cat([constraints.real, constraints.positive], dim=-1, lengths=[1, 1]), 1
)


# =============================================================================
# torch / Pyro joint law
# =============================================================================
class NormalInvGammaJoint(pdist.TorchDistribution):
    """Joint Normal-Inverse-Gamma law of ``z = (mu, sigma2)`` (torch / Pyro).

    ``sigma2 ~ InverseGamma(concentration, rate)`` and
    ``mu | sigma2 ~ Normal(loc, sqrt(sigma2 / kappa))``.

    Args:
        loc: Mean of mu, any shape broadcastable with the others.
        kappa: Pseudo-count scaling the variance of mu (> 0).
        concentration: Inverse-gamma shape a (> 0).
        rate: Inverse-gamma scale b (> 0); ``E[sigma2] = b / (a - 1)`` for a > 1.

    Shapes: batch_shape = broadcast shape of the parameters; event_shape ``(2,)``;
    a value holds ``(..., [mu, sigma2])``.
    """

    arg_constraints = {
        "loc": constraints.real,
        "kappa": constraints.positive,
        "concentration": constraints.positive,
        "rate": constraints.positive,
    }
    support = REAL_POSITIVE_PAIR
    has_rsample = True

    def __init__(self, loc, kappa, concentration, rate, validate_args=None):
        self.loc, self.kappa, self.concentration, self.rate = broadcast_all(
            loc, kappa, concentration, rate
        )
        super().__init__(self.loc.shape, torch.Size([2]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NormalInvGammaJoint, _instance)
        batch_shape = torch.Size(batch_shape)
        for name in ("loc", "kappa", "concentration", "rate"):
            setattr(new, name, getattr(self, name).expand(batch_shape))
        super(NormalInvGammaJoint, new).__init__(batch_shape, torch.Size([2]), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)[:-1]
        precision = torch.distributions.Gamma(
            self.concentration.expand(shape), self.rate.expand(shape)
        ).rsample()
        sigma2 = precision.reciprocal()
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        mu = self.loc + (sigma2 / self.kappa).sqrt() * eps
        return torch.stack([mu, sigma2], dim=-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        mu, sigma2 = value[..., 0], value[..., 1]
        a, b, k = self.concentration, self.rate, self.kappa
        log_invgamma = a * b.log() - torch.lgamma(a) - (a + 1) * sigma2.log() - b / sigma2
        log_normal = -0.5 * (_LOG_2PI + sigma2.log() - k.log()) - 0.5 * k * (
            mu - self.loc
        ) ** 2 / sigma2
        return log_invgamma + log_normal

    @property
    def mean(self):
        a = self.concentration
        inf = torch.full_like(a, math.inf)
        sigma2 = torch.where(a > 1, self.rate / (a - 1).clamp(min=1e-300), inf)
        return torch.stack([self.loc, sigma2], dim=-1)

    @property
    def variance(self):
        """Variances of mu and sigma^2 (inf where they are infinite: a <= 1, resp. a <= 2).

        Raises:
            OverflowError: a variance is finite but beyond float64's range (rate b so
                large that (b / (a - 1))^2 overflows); rescale the data.
        """
        a, b, k = self.concentration, self.rate, self.kappa
        inf = torch.full_like(a, math.inf)
        var_mu = torch.where(a > 1, b / (k * (a - 1).clamp(min=1e-300)), inf)
        mean_s = b / (a - 1).clamp(min=1e-300)
        var_s = torch.where(a > 2, mean_s**2 / (a - 2).clamp(min=1e-300), inf)
        overflow = ((a > 2) & ~torch.isfinite(var_s)) | ((a > 1) & ~torch.isfinite(var_mu))
        if overflow.any():
            raise OverflowError(
                "NormalInvGammaJoint.variance: the variance of sigma^2 is finite but beyond "
                f"float64's range (rate b up to {float(b.max()):.3g}); rescale the data")
        return torch.stack([var_mu, var_s], dim=-1)


# =============================================================================
# NumPyro joint law, its support and the bijection NUTS needs
# =============================================================================
class _RealPositivePair(nconstraints.ParameterFreeConstraint):
    """NumPyro constraint R x (0, inf) on the last axis (event_dim 1)."""

    event_dim = 1

    def __call__(self, x):
        return jnp.isfinite(x[..., 0]) & (x[..., 1] > 0) & jnp.isfinite(x[..., 1])

    def feasible_like(self, prototype):
        return jnp.stack(
            [jnp.zeros_like(prototype[..., 0]), jnp.ones_like(prototype[..., 1])], axis=-1
        )

    def __repr__(self) -> str:
        return "RealPositivePair()"


_real_positive_pair = _RealPositivePair()


class _RealPositivePairTransform(ParameterFreeTransform):
    """``(u1, u2) -> (u1, exp(u2))`` from R^2 onto R x (0, inf); ``log|det J| = u2``."""

    domain = nconstraints.real_vector
    codomain = _real_positive_pair

    def __call__(self, x):
        return jnp.stack([x[..., 0], jnp.exp(x[..., 1])], axis=-1)

    def _inverse(self, y):
        return jnp.stack([y[..., 0], jnp.log(y[..., 1])], axis=-1)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        return x[..., 1]


@biject_to.register(_RealPositivePair)
def _biject_to_real_positive_pair(constraint):
    return _RealPositivePairTransform()


class NumPyroNormalInvGammaJoint(ndist.Distribution):
    """NumPyro twin of :class:`NormalInvGammaJoint` (same arguments, event_shape ``(2,)``)."""

    arg_constraints = {
        "loc": nconstraints.real,
        "kappa": nconstraints.positive,
        "concentration": nconstraints.positive,
        "rate": nconstraints.positive,
    }
    support = _real_positive_pair
    reparametrized_params = ["loc", "kappa", "concentration", "rate"]

    def __init__(self, loc, kappa, concentration, rate, *, validate_args=None):
        self.loc, self.kappa, self.concentration, self.rate = promote_shapes(
            loc, kappa, concentration, rate
        )
        batch_shape = jax.lax.broadcast_shapes(
            jnp.shape(loc), jnp.shape(kappa), jnp.shape(concentration), jnp.shape(rate)
        )
        self.loc = jnp.broadcast_to(self.loc, batch_shape)
        self.kappa = jnp.broadcast_to(self.kappa, batch_shape)
        self.concentration = jnp.broadcast_to(self.concentration, batch_shape)
        self.rate = jnp.broadcast_to(self.rate, batch_shape)
        super().__init__(batch_shape=batch_shape, event_shape=(2,), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        k_gamma, k_normal = jax.random.split(key)
        precision = jax.random.gamma(k_gamma, self.concentration, shape=shape) / self.rate
        sigma2 = 1.0 / precision
        eps = jax.random.normal(k_normal, shape=shape)
        mu = self.loc + jnp.sqrt(sigma2 / self.kappa) * eps
        return jnp.stack([mu, sigma2], axis=-1)

    def log_prob(self, value):
        mu, sigma2 = value[..., 0], value[..., 1]
        a, b, k = self.concentration, self.rate, self.kappa
        log_invgamma = a * jnp.log(b) - gammaln(a) - (a + 1) * jnp.log(sigma2) - b / sigma2
        log_normal = -0.5 * (_LOG_2PI + jnp.log(sigma2) - jnp.log(k)) - 0.5 * k * (
            mu - self.loc
        ) ** 2 / sigma2
        return log_invgamma + log_normal

    @property
    def mean(self):
        a = self.concentration
        sigma2 = jnp.where(a > 1, self.rate / jnp.where(a > 1, a - 1, 1.0), jnp.inf)
        return jnp.stack([self.loc, sigma2], axis=-1)

    @property
    def variance(self):
        a, b, k = self.concentration, self.rate, self.kappa
        var_mu = jnp.where(a > 1, b / (k * jnp.where(a > 1, a - 1, 1.0)), jnp.inf)
        var_s = jnp.where(a > 2, b**2 / ((a - 1) ** 2 * jnp.where(a > 2, a - 2, 1.0)), jnp.inf)
        return jnp.stack([var_mu, var_s], axis=-1)


# =============================================================================
# the model
# =============================================================================
@register
class NormalInverseGamma(ExchangeableModel):
    """Normal-Inverse-Gamma prior on the mean and variance of a scalar Gaussian.

    Shapes: ``latent_shape = (2,)`` holding ``(mu, sigma2)``, ``token_shape = ()``,
    ``target_shape = ()``. Tokens are real scalars (floating dtype).

    Args:
        m0: Prior mean of mu.
        k0: Prior pseudo-count for mu (> 0): ``Var(mu | sigma2) = sigma2 / k0``.
        a0: Inverse-gamma shape of sigma2 (> 0).
        b0: Inverse-gamma scale of sigma2 (> 0).
    """

    name = "normal-inverse-gamma"
    token_support = constraints.real
    latent_shape = (2,)
    token_shape = ()
    target_shape = ()

    def __init__(self, m0: float = 0.0, k0: float = 1.0, a0: float = 3.0, b0: float = 2.0) -> None:
        n = self.name
        super().__init__(m0=finite(n, "m0", m0), k0=positive(n, "k0", k0),
                         a0=positive(n, "a0", a0), b0=positive(n, "b0", b0))

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        p = self.params
        return NormalInvGammaJoint(
            self.tensor(p["m0"], device), self.tensor(p["k0"], device),
            self.tensor(p["a0"], device), self.tensor(p["b0"], device),
        )

    def pyro_likelihood(self, z):
        return pdist.Normal(z[..., 0], z[..., 1].sqrt())

    def pyro_target(self, z):
        return pdist.Normal(z[..., 0], z[..., 1].sqrt())

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        p = self.params
        return NumPyroNormalInvGammaJoint(p["m0"], p["k0"], p["a0"], p["b0"])

    def numpyro_likelihood(self, z):
        return ndist.Normal(z[..., 0], jnp.sqrt(z[..., 1]))

    def numpyro_target(self, z):
        return ndist.Normal(z[..., 0], jnp.sqrt(z[..., 1]))

    # Exact posterior ----------------------------------------------------------
    def exact_posterior(self, x: Any, mask: Any = None) -> NormalInvGammaJoint:
        """NIG(m_N, k_N, a_N, b_N) over the real tokens; batch_shape ``(B,)``, event ``(2,)``.

        Args:
            x: Tokens, shape ``(B, L)``, floating dtype.
            mask: Bool ``(B, L)``, True = real token; padded tokens contribute nothing.

        Returns:
            float64 :class:`NormalInvGammaJoint` with batch_shape ``(B,)``.
        """
        x, mask = self.validate_tokens(x, mask)
        x = x.to(torch.float64)
        p = self.params
        m = mask.to(torch.float64)
        n = m.sum(-1)
        # sums of squares on a per-sequence scale, squared last: tokens up to ~1e154 would
        # overflow x**2 although b_N itself is representable
        scale = (x.abs() * m).amax(-1).clamp(min=torch.finfo(torch.float64).tiny)
        xs = x / scale.unsqueeze(-1)
        xbar_s = (xs * m).sum(-1) / n.clamp(min=1.0)  # 0 when a sequence has no real token
        xbar = xbar_s * scale
        ss = (scale * (((xs - xbar_s.unsqueeze(-1)) ** 2) * m).sum(-1).sqrt()) ** 2
        k_n = p["k0"] + n
        m_n = (p["k0"] * p["m0"] + n * xbar) / k_n
        a_n = p["a0"] + 0.5 * n
        shift = (xbar - p["m0"]).abs() * (p["k0"] * n / (2.0 * k_n)).sqrt()
        b_n = p["b0"] + 0.5 * ss + shift**2
        if not torch.isfinite(b_n).all():
            bad = int((~torch.isfinite(b_n)).nonzero()[0, 0])
            raise ModelInputError(
                f"normal-inverse-gamma: the posterior scale b_N of sequence {bad} exceeds "
                f"float64's range (its largest |token| is {float(scale[bad]):.3g}; b_N grows "
                "like the sum of squared tokens, so tokens beyond ~1e154 cannot be handled). "
                "Rescale the data, e.g. divide the tokens by their standard deviation")
        return NormalInvGammaJoint(m_n, k_n, a_n, b_n)
