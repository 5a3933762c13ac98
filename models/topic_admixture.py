"""``topic-admixture``: LDA-style topic mixture with the per-token topics summed out.

    z ~ Dirichlet(alpha)                      (topic proportions, K topics)
    x_i | z ~ Categorical(z @ topics)         (word ids in 0..V-1)
    y | z ~ Categorical(z)                    (the topic of the next token)

``topics`` is a fixed ``K x V`` matrix whose rows lie on the simplex. The
per-token topic assignment ``c_i ~ Categorical(z)``, ``x_i | c_i ~
Categorical(topics[c_i])`` is marginalised: ``P(x_i = w | z) = sum_c z_c
topics[c, w]``. By default the topics are drawn once from ``Dirichlet(0.3)``
with ``np.random.default_rng(param_seed)`` and stored in ``params``, so
the model is fully defined by its params. No closed-form posterior: use
``method="nuts"``.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
from torch.distributions import constraints

from ._base import ExchangeableModel
from ._errors import ModelInputError
from ._registry import register

_SIMPLEX_ATOL = 1e-6


def _int_param(label: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ModelInputError(
            f"topic-admixture: {label} must be an integer >= {low}; got {value!r}."
        )
    return int(value)


@register
class TopicAdmixture(ExchangeableModel):
    """Admixture of ``K`` fixed topics over a vocabulary of ``V`` words.

    Args:
        K: Number of topics (int >= 2).
        V: Vocabulary size (int >= 2).
        alpha: Dirichlet concentration, a positive float (symmetric) or a list of ``K``
            positive floats.
        topics: ``K x V`` nested list; row ``c`` is the word distribution of topic ``c``
            (non-negative, sums to 1 within 1e-6; stored as given, rows renormalised
            where used). Default: drawn from ``Dirichlet(0.3 * ones(V))`` with
            ``np.random.default_rng(param_seed)``.
        param_seed: Seed for the default topics (int).

    Shapes:
        latent ``z``: ``(K,)`` (on the simplex); token: ``()`` (long word id);
        target ``y``: ``()`` (long topic id).
    """

    name = "topic-admixture"
    # Word ids 0..V-1. This class-level value is for the default V = 20; __init__
    # sets the instance's own ``integer_interval(0, V - 1)``.
    token_support = constraints.integer_interval(0, 19)

    def __init__(
        self,
        K: int = 3,
        V: int = 20,
        alpha: float | list[float] = 1.0,
        topics: list[list[float]] | None = None,
        param_seed: int = 0,
    ) -> None:
        K = _int_param("K", K, 2)
        V = _int_param("V", V, 2)
        if isinstance(param_seed, bool) or not isinstance(param_seed, (int, np.integer)):
            raise ModelInputError(
                f"topic-admixture: param_seed must be an int; got {param_seed!r}."
            )
        param_seed = int(param_seed)
        alpha_out = self._check_alpha(alpha, K)
        if topics is None:
            rng = np.random.default_rng(param_seed)
            arr = rng.dirichlet(np.full(V, 0.3), size=K)
        else:
            try:
                arr = np.asarray(topics, dtype=np.float64)
            except (TypeError, ValueError):
                raise ModelInputError(
                    f"topic-admixture: topics must be a K x V = {K} x {V} nested list of "
                    f"floats; got {topics!r}."
                ) from None
            if arr.shape != (K, V):
                raise ModelInputError(
                    f"topic-admixture: topics must have shape (K, V) = ({K}, {V}); got {arr.shape}."
                )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ModelInputError(
                "topic-admixture: topics must be finite and non-negative; got a minimum of "
                f"{np.nanmin(arr)!r} (non-finite entries: {int(np.sum(~np.isfinite(arr)))})."
            )
        sums = arr.sum(axis=1)
        bad = np.abs(sums - 1.0) > _SIMPLEX_ATOL
        if np.any(bad):
            row = int(np.flatnonzero(bad)[0])
            raise ModelInputError(
                f"topic-admixture: each row of topics must sum to 1 (within {_SIMPLEX_ATOL}); "
                f"row {row} sums to {sums[row]!r}."
            )
        # Stored as given (JSON round trips are exact); the hooks renormalise the rows.
        super().__init__(K=K, V=V, alpha=alpha_out, topics=arr.tolist(), param_seed=param_seed)
        self.token_support = constraints.integer_interval(0, V - 1)
        self.latent_shape = (K,)
        self.token_shape = ()
        self.target_shape = ()

    @staticmethod
    def _check_alpha(alpha: Any, K: int) -> float | list[float]:
        if isinstance(alpha, (int, float, np.integer, np.floating)) and not isinstance(alpha, bool):
            a = float(alpha)
            if not (math.isfinite(a) and a > 0):
                raise ModelInputError(
                    f"topic-admixture: alpha must be finite and > 0; got {alpha!r}."
                )
            return a
        try:
            arr = np.asarray(alpha, dtype=np.float64)
        except (TypeError, ValueError):
            raise ModelInputError(
                f"topic-admixture: alpha must be a positive float or a list of K = {K} "
                f"positive floats; got {alpha!r}."
            ) from None
        if arr.shape != (K,):
            raise ModelInputError(
                f"topic-admixture: alpha must be a float or have length K = {K}; "
                f"got shape {arr.shape}."
            )
        if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            raise ModelInputError(
                f"topic-admixture: alpha entries must be finite and > 0; got {alpha!r}."
            )
        return [float(a) for a in arr]

    def _alpha_vector(self) -> np.ndarray:
        alpha = np.asarray(self.params["alpha"], dtype=np.float64)
        return alpha * np.ones(self.params["K"])

    def _topic_matrix(self) -> np.ndarray:
        """``(K, V)`` float64 topics, rows renormalised to sum to 1."""
        topics = np.asarray(self.params["topics"], dtype=np.float64)
        return topics / topics.sum(axis=1, keepdims=True)

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        return pdist.Dirichlet(self.tensor(self._alpha_vector(), device))

    def pyro_likelihood(self, z):
        topics = self.tensor(self._topic_matrix(), z.device).to(z.dtype)
        return pdist.Categorical(probs=z @ topics)

    def pyro_target(self, z):
        return pdist.Categorical(probs=z)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        return ndist.Dirichlet(jnp.asarray(self._alpha_vector()))

    def numpyro_likelihood(self, z):
        topics = jnp.asarray(self._topic_matrix(), dtype=z.dtype)
        return ndist.Categorical(probs=z @ topics)

    def numpyro_target(self, z):
        return ndist.Categorical(probs=z)

    # No closed form: ExchangeableModel.exact_posterior raises NoExactPosterior.
