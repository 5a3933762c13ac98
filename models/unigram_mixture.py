"""``unigram-mixture``: which of K topics (word distributions) produced the words?

    z ~ Categorical(w)        x_i | z ~ Categorical(word_probs[z])        y | z ~ noisy copy of z

Tokens are word ids in ``{0, ..., V-1}``. y equals z with probability
``1 - label_noise`` and is uniform over the K classes otherwise. The posterior is
exact by enumeration: ``log p(z=k | x) = log w_k + sum_i log word_probs[k, x_i] - const``,
a function of the word counts only.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from ._mixture import FiniteMixture, size_from
from ._params import float_array, integer, simplex_rows
from ._registry import register


def default_word_probs(num_classes: int, vocab: int, seed: int,
                       concentration: float = 0.5) -> list[list[float]]:
    """K rows drawn once from ``Dirichlet(concentration * 1_V)`` with ``Generator(seed)``."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.full(vocab, concentration), size=num_classes)
    return (rows / rows.sum(-1, keepdims=True)).tolist()


@register
class UnigramMixture(FiniteMixture):
    """A mixture of unigram (bag-of-words) models, one topic per sequence.

    Args:
        K: Number of topics (>= 1). Default 3, or ``len(word_probs)`` when given.
        V: Vocabulary size (>= 1). Default 20, or ``len(word_probs[0])`` when given.
        weights: Prior topic probabilities, K positives summing to 1 (default uniform).
        word_probs: ``K x V`` nested list, each row on the simplex (entries >= 0).
            Default: drawn once from Dirichlet(0.5) with ``numpy.random.Generator``
            seeded by ``param_seed``, so the params fully define the model.
        param_seed: Seed for the default ``word_probs`` (ignored when they are given).
        label_noise: Probability in [0, 1] that y is redrawn uniformly instead of y = z.
    """

    name = "unigram-mixture"
    # Replaced per instance by integer_interval(0, V - 1) in __init__.
    token_support = constraints.integer_interval(0, 19)

    def __init__(self, K: int | None = None, V: int | None = None, weights: Any = None,
                 word_probs: Any = None, param_seed: int = 0,
                 label_noise: float = 0.1) -> None:
        n = self.name
        wp = None if word_probs is None else float_array(n, "word_probs", word_probs,
                                                         require_finite=False)
        K = integer(n, "K", size_from(wp, 0, K, 3), 1)
        V = integer(n, "V", size_from(wp, -1, V, 20), 1)
        param_seed = integer(n, "param_seed", param_seed, 0)
        w = self.check_weights(weights, K)
        if wp is None:
            wp = default_word_probs(K, V, param_seed)
        wp = simplex_rows(n, "word_probs", wp, (K, V), positive=False, dims="(K, V)")
        super().__init__(K=K, V=V, weights=w, word_probs=wp.tolist(), param_seed=param_seed,
                         label_noise=self.check_label_noise(label_noise))
        self.token_support = constraints.integer_interval(0, V - 1)

    # Pyro program pieces (prior and target: FiniteMixture) -------------------
    def pyro_likelihood(self, z):
        probs = self.tensor(self.params["word_probs"], z.device)[z.long()]  # (..., 1, V)
        return pdist.Categorical(probs=probs)

    # NumPyro twin -------------------------------------------------------------
    def numpyro_likelihood(self, z):
        return ndist.Categorical(probs=jnp.asarray(self.params["word_probs"])[z])

    # Exact posterior ----------------------------------------------------------
    def token_loglik(self, x: torch.Tensor) -> torch.Tensor:
        """log word_probs[k, x_i]: validated long tokens ``(B, L)`` -> ``(B, L, K)``."""
        log_wp = self.tensor(self.params["word_probs"], x.device).log()  # (K, V)
        return log_wp.T[x]

    def word_counts(self, x: Any, mask: Any = None) -> torch.Tensor:
        """Counts of each word id among the real tokens, shape ``(B, V)`` (float64).

        The posterior depends on ``x`` only through these counts.
        """
        x, mask = self.validate_tokens(x, mask)
        counts = torch.zeros(x.shape[0], self.params["V"], dtype=torch.float64, device=x.device)
        return counts.scatter_add_(1, x, mask.to(torch.float64))

    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Categorical:
        """p(z | x) by enumeration over the K topics; batch_shape ``(B,)``, float64.

        Raises:
            ModelInputError: bad tokens, or a sequence that has probability zero under
                every topic (possible only when ``word_probs`` has zeros).
        """
        return self.enumerated_posterior(x, mask)
