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

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
from torch.distributions import constraints

from ._base import ExchangeableModel
from ._params import concentration, integer, simplex_rows
from ._registry import register


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
        n = self.name
        K = integer(n, "K", K, 2)
        V = integer(n, "V", V, 2)
        param_seed = integer(n, "param_seed", param_seed)
        alpha_out = concentration(n, "alpha", alpha, K)
        if topics is None:
            topics = np.random.default_rng(param_seed).dirichlet(np.full(V, 0.3), size=K)
        arr = simplex_rows(n, "topics", topics, (K, V), positive=False, dims="(K, V)",
                           renormalise=False)
        # Stored as given (JSON round trips are exact); the hooks renormalise the rows.
        super().__init__(K=K, V=V, alpha=alpha_out, topics=arr.tolist(), param_seed=param_seed)
        self.token_support = constraints.integer_interval(0, V - 1)
        self.latent_shape = (K,)
        self.token_shape = ()
        self.target_shape = ()

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
