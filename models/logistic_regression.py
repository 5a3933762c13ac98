"""``logistic-regression``: in-context Bayesian logistic regression.

    z ~ N(0, tau^2 I_p)
    x_i = (k_i, v_i):  k_i ~ N(0, I_p),  v_i | k_i, z ~ Bernoulli(sigmoid(<z, k_i>))
    y | z ~ Bernoulli(sigmoid(<z, q>))

with a fixed query ``q``. A token is the vector ``(k_1, ..., k_p, v)`` of length
``p + 1`` and is ONE sample site: the pair distribution below (one class per
backend) has ``log_prob = log N(k | 0, I) + log Bernoulli(v | sigmoid(<z, k>))``.
Its support (real ``k``, ``v`` in {0, 1}) is continuous in ``k``, so it is not
marked discrete; it is only ever observed, never a latent that needs a bijection.
No closed-form posterior: use ``method="nuts"``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
import torch.nn.functional as F
from numpyro.distributions import constraints as nconstraints
from numpyro.distributions.util import validate_sample
from torch.distributions import constraints

from ._params import integer, positive
from ._registry import register
from ._regression import GaussianWeightsRegression

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# Support of one token: R^p x {0, 1} --------------------------------------------
class _PairSupport(constraints.Constraint):
    """Torch constraint ``R^p x {0, 1}`` on vectors ``(k, v)``; event_dim 1, not discrete."""

    is_discrete = False
    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        """Per-token check: ``value (..., p + 1)`` -> bool ``(...)``."""
        k, v = value[..., :-1], value[..., -1]
        return (k == k).all(-1) & ((v == 0) | (v == 1))

    def __repr__(self) -> str:
        return "PairSupport(k real, v in {0, 1})"


class _NumPyroPairSupport(nconstraints.Constraint):
    """NumPyro twin of :class:`_PairSupport`."""

    is_discrete = False
    event_dim = 1

    def __call__(self, x):
        k, v = x[..., :-1], x[..., -1]
        return jnp.all(k == k, axis=-1) & ((v == 0) | (v == 1))

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)

    def tree_flatten(self):
        return (), ((), dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NumPyroPairSupport)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return "PairSupport(k real, v in {0, 1})"


pair_support = _PairSupport()
numpyro_pair_support = _NumPyroPairSupport()


# Pair distributions ----------------------------------------------------------
class PyroLogisticPair(pdist.TorchDistribution):
    """Distribution of one token ``(k, v)`` given weights ``z`` (Pyro).

    ``k ~ N(0, I_p)``, ``v | k ~ Bernoulli(sigmoid(<z, k>))``.

    Args:
        weights: ``z`` with shape ``(*batch, p)``; batch_shape ``batch``,
            event_shape ``(p + 1,)``.
    """

    arg_constraints = {"weights": constraints.real_vector}
    support = pair_support
    has_rsample = False

    def __init__(self, weights: torch.Tensor, validate_args: bool | None = None) -> None:
        self.weights = weights
        p = weights.shape[-1]
        super().__init__(weights.shape[:-1], torch.Size([p + 1]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PyroLogisticPair, _instance)
        batch_shape = torch.Size(batch_shape)
        new.weights = self.weights.expand(batch_shape + self.weights.shape[-1:])
        super(PyroLogisticPair, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=()) -> torch.Tensor:
        """Draw ``(*sample_shape, *batch_shape, p + 1)``."""
        shape = self._extended_shape(torch.Size(sample_shape))
        p = self.weights.shape[-1]
        with torch.no_grad():
            w = self.weights.expand(shape[:-1] + (p,))
            k = torch.randn(w.shape, dtype=w.dtype, device=w.device)
            v = torch.bernoulli(torch.sigmoid((w * k).sum(-1)))
            return torch.cat([k, v.unsqueeze(-1)], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log N(k | 0, I) + log Bernoulli(v | sigmoid(<z, k>))``; shape ``(*batch)``."""
        if self._validate_args:
            self._validate_sample(value)
        k, v = value[..., :-1], value[..., -1]
        logits = (self.weights * k).sum(-1)
        log_k = -0.5 * (k * k).sum(-1) - k.shape[-1] * _HALF_LOG_2PI
        log_v = v * logits - F.softplus(logits)
        return log_k + log_v


class NumPyroLogisticPair(ndist.Distribution):
    """NumPyro twin of :class:`PyroLogisticPair`.

    Args:
        weights: ``z`` with shape ``(*batch, p)``.
    """

    arg_constraints = {"weights": nconstraints.real_vector}
    support = numpyro_pair_support
    pytree_data_fields = ("weights",)

    def __init__(self, weights, *, validate_args: bool | None = None) -> None:
        self.weights = weights
        shape = jnp.shape(weights)
        super().__init__(
            batch_shape=shape[:-1], event_shape=(shape[-1] + 1,), validate_args=validate_args
        )

    def sample(self, key, sample_shape=()):
        key_k, key_v = jax.random.split(key)
        p = jnp.shape(self.weights)[-1]
        w = jnp.broadcast_to(self.weights, tuple(sample_shape) + self.batch_shape + (p,))
        k = jax.random.normal(key_k, w.shape, dtype=w.dtype)
        v = jax.random.bernoulli(key_v, jax.nn.sigmoid(jnp.sum(w * k, axis=-1)))
        return jnp.concatenate([k, v.astype(k.dtype)[..., None]], axis=-1)

    @validate_sample
    def log_prob(self, value):
        k, v = value[..., :-1], value[..., -1]
        logits = jnp.sum(self.weights * k, axis=-1)
        log_k = -0.5 * jnp.sum(k * k, axis=-1) - k.shape[-1] * _HALF_LOG_2PI
        log_v = v * logits - jax.nn.softplus(logits)
        return log_k + log_v


# The model -------------------------------------------------------------------
@register
class LogisticRegression(GaussianWeightsRegression):
    """Bayesian logistic regression on in-context (key, label) pairs.

    A token is ``(k_1, ..., k_p, v)`` with real keys and a label ``v`` in {0, 1}.

    Args:
        p: Feature dimension (int >= 1).
        prior_scale: Prior standard deviation tau of each weight (> 0).
        query: Query features q, a list of ``p`` floats; default all ``1 / sqrt(p)``.
            The target is ``y ~ Bernoulli(sigmoid(<z, q>))``.

    Shapes:
        latent ``z``: ``(p,)``; token: ``(p + 1,)``; target ``y``: ``()`` (0.0 or 1.0).
    """

    name = "logistic-regression"
    token_support = pair_support

    def __init__(
        self, p: int = 2, prior_scale: float = 1.5, query: list[float] | None = None
    ) -> None:
        n = self.name
        p = integer(n, "p", p, 1)
        tau = positive(n, "prior_scale", prior_scale)
        super().__init__(p=p, prior_scale=tau, query=self.check_query(query, p))

    # Pyro program pieces (prior: GaussianWeightsRegression) -------------------
    def pyro_likelihood(self, z):
        return PyroLogisticPair(z)

    def pyro_target(self, z):
        q = self.tensor(self.params["query"], z.device).to(z.dtype)
        return pdist.Bernoulli(logits=(z * q).sum(-1))

    # NumPyro twin -------------------------------------------------------------
    def numpyro_likelihood(self, z):
        return NumPyroLogisticPair(z)

    def numpyro_target(self, z):
        q = jnp.asarray(self.params["query"], dtype=z.dtype)
        return ndist.Bernoulli(logits=jnp.sum(z * q, axis=-1))

    # No closed form: ExchangeableModel.exact_posterior raises NoExactPosterior.
