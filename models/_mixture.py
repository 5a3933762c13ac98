"""What the two finite mixtures (``concept-mixture``, ``unigram-mixture``) share.

    z ~ Categorical(w)        x_i | z ~ (model-specific)        y | z ~ noisy copy of z

:class:`FiniteMixture` holds the prior over K classes with weights ``w``, the
label channel of the target (y equals z with probability ``1 - label_noise``
and is uniform over the K classes otherwise) and the posterior by enumeration
over the K classes. A subclass adds its likelihood hooks and ``token_loglik``.
"""

from __future__ import annotations

import abc
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch

from ._base import ExchangeableModel
from ._errors import ModelInputError
from ._params import in_interval, simplex_rows


def label_channel(num_classes: int, label_noise: float) -> np.ndarray:
    """``(K, K)`` matrix ``P(y | z)``: keep z w.p. 1 - noise, else uniform over K."""
    eye = np.eye(num_classes, dtype=np.float64)
    return (1.0 - label_noise) * eye + label_noise / num_classes


def posterior_by_enumeration(log_weights: torch.Tensor, token_loglik: torch.Tensor,
                         mask: torch.Tensor) -> torch.distributions.Categorical:
    """Posterior over K classes from per-token log-likelihoods.

    Args:
        log_weights: ``(K,)`` log prior weights, float64.
        token_loglik: ``(B, L, K)`` log p(x_i | z=k), float64.
        mask: Bool ``(B, L)``; padded tokens contribute nothing.

    Returns:
        ``Categorical`` with batch_shape ``(B,)`` and normalised float64 logits.

    Raises:
        ModelInputError: some sequence has probability zero under every class.
    """
    zero = torch.zeros((), dtype=token_loglik.dtype, device=token_loglik.device)
    loglik = torch.where(mask[..., None], token_loglik, zero).sum(1)  # (B, K)
    joint = log_weights + loglik
    evidence = torch.logsumexp(joint, -1, keepdim=True)
    if not torch.isfinite(evidence).all():
        i = int((~torch.isfinite(evidence)).nonzero()[0, 0])
        raise ModelInputError(
            f"sequence {i} has probability zero (or a non-finite likelihood) under every "
            "class; no posterior exists. Check the tokens against the model parameters.")
    return torch.distributions.Categorical(logits=joint - evidence)


def size_from(table: np.ndarray | None, axis: int, given: Any, default: int) -> Any:
    """``given``, else the size of ``table`` along ``axis`` (when it is 2-D), else ``default``.

    Used to infer K and the token size from an explicit ``K x ...`` parameter table.
    """
    if given is not None:
        return given
    return table.shape[axis] if table is not None and table.ndim == 2 else default


class FiniteMixture(ExchangeableModel):
    """Base of the finite mixtures: one class z in {0..K-1} per sequence, y a noisy z.

    ``params`` must hold ``K``, ``weights`` (K positives on the simplex) and
    ``label_noise``; use :meth:`check_weights` and :meth:`check_label_noise` in
    ``__init__``. A subclass implements the likelihood hooks, ``token_loglik`` and
    ``exact_posterior`` (e.g. with :meth:`enumerated_posterior`).
    """

    latent_shape = ()
    target_shape = ()

    def check_weights(self, weights: Any, K: int) -> list[float]:
        """Prior class probabilities (None = uniform) as a list of K floats."""
        w = np.full(K, 1.0 / K) if weights is None else weights
        return simplex_rows(self.name, "weights", w, (K,), positive=True, dims="(K,)").tolist()

    def check_label_noise(self, label_noise: Any) -> float:
        """``label_noise`` as a float in [0, 1]."""
        return in_interval(self.name, "label_noise", label_noise, 0.0, 1.0)

    def _channel(self) -> np.ndarray:
        return label_channel(self.params["K"], self.params["label_noise"])

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        return pdist.Categorical(probs=self.tensor(self.params["weights"], device))

    def pyro_target(self, z):
        return pdist.Categorical(probs=self.tensor(self._channel(), z.device)[z.long()])

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        return ndist.Categorical(probs=jnp.asarray(self.params["weights"]))

    def numpyro_target(self, z):
        return ndist.Categorical(probs=jnp.asarray(self._channel())[z])

    # Exact posterior ----------------------------------------------------------
    @abc.abstractmethod
    def token_loglik(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_i | z=k): validated tokens ``(B, L, *token_shape)`` -> ``(B, L, K)``."""

    def enumerated_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Categorical:
        """p(z | x) by enumeration over the K classes with :meth:`token_loglik`.

        Returns:
            float64 ``Categorical`` with batch_shape ``(B,)``.

        Raises:
            ModelInputError: bad tokens, or a sequence that has probability zero
                under every class.
        """
        x, mask = self.validate_tokens(x, mask)
        log_w = self.tensor(self.params["weights"], x.device).log()
        return posterior_by_enumeration(log_w, self.token_loglik(x), mask)
