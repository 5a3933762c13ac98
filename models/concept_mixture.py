"""``concept-mixture``: which of K Gaussian "concepts" produced the tokens?

    z ~ Categorical(w)        x_i | z ~ Normal(mu_z, scale^2 I_d)        y | z ~ noisy copy of z

y equals z with probability ``1 - label_noise`` and is uniform over the K classes
otherwise. The posterior is exact by enumeration over K classes:
``log p(z=k | x) = log w_k + sum_i log N(x_i | mu_k, scale^2 I) - logsumexp_k(...)``.

The module also holds the small helpers shared with ``unigram-mixture``
(simplex checks, the label channel and the enumerated posterior).
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

from ._base import ExchangeableModel
from ._errors import ModelInputError
from ._registry import register


# Shared helpers (also used by unigram_mixture) -----------------------------------
def as_float_array(name: str, label: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array; ragged or non-numeric input raises ModelInputError."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ModelInputError(
            f"{name}: {label} must be a rectangular nested list of numbers; got {value!r} "
            f"({err}).") from None


def check_count(name: str, label: str, value: Any, minimum: int) -> int:
    """An integer parameter >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ModelInputError(f"{name}: {label} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_simplex(name: str, label: str, value: Any, shape: tuple[int, ...],
                  *, positive: bool) -> np.ndarray:
    """Rows of ``value`` (shape ``shape``) on the probability simplex, as float64.

    Raises:
        ModelInputError: wrong shape, non-finite or negative (zero when ``positive``)
            entries, or a row whose sum differs from 1 by more than 1e-6.
    """
    arr = as_float_array(name, label, value)
    if arr.shape != shape:
        raise ModelInputError(f"{name}: {label} must have shape {shape}; got {arr.shape}.")
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if bad.any():
        kind = "positive" if positive else "non-negative"
        raise ModelInputError(
            f"{name}: every entry of {label} must be finite and {kind}; "
            f"got {label}{list(np.argwhere(bad)[0])} = {arr[bad][0]!r}.")
    sums = arr.sum(-1)
    if np.any(np.abs(sums - 1.0) > 1e-6):
        raise ModelInputError(
            f"{name}: {label} must sum to 1 along its last axis (probability simplex); "
            f"got sums {np.round(sums, 8).tolist()}. Divide by the sum first.")
    return arr / sums[..., None]


def check_real(name: str, label: str, value: Any, low: float, high: float,
               *, open_low: bool = False) -> float:
    """A real number in ``[low, high]`` (``(low, high]`` when ``open_low``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if not math.isfinite(v) or not (low < v if open_low else low <= v) or not v <= high:
        where = f"{'(' if open_low else '['}{low}, {high}]"
        raise ModelInputError(f"{name}: {label} must be a number in {where}; got {value!r}.")
    return v


def check_label_noise(name: str, value: Any) -> float:
    """``label_noise`` in [0, 1]."""
    return check_real(name, "label_noise", value, 0.0, 1.0)


def label_channel(num_classes: int, label_noise: float) -> np.ndarray:
    """``(K, K)`` matrix ``P(y | z)``: keep z w.p. 1 - noise, else uniform over K."""
    eye = np.eye(num_classes, dtype=np.float64)
    return (1.0 - label_noise) * eye + label_noise / num_classes


def enumerated_posterior(log_weights: torch.Tensor, token_loglik: torch.Tensor,
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
class ConceptMixture(ExchangeableModel):
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
        mu = None if means is None else as_float_array(n, "means", means)
        if K is None:
            K = mu.shape[0] if mu is not None and mu.ndim == 2 else 4
        K = check_count(n, "K", K, 1)
        if d is None:
            d = mu.shape[-1] if mu is not None and mu.ndim == 2 else 2
        d = check_count(n, "d", d, 1)
        radius = check_real(n, "radius", radius, 0.0, math.inf, open_low=True)
        scale = check_real(n, "scale", scale, 0.0, math.inf, open_low=True)
        w = check_simplex(n, "weights", np.full(K, 1.0 / K) if weights is None else weights,
                          (K,), positive=True)
        if mu is None:
            mu = np.asarray(default_means(K, d, radius))
        if mu.shape != (K, d):
            raise ModelInputError(f"{n}: means must have shape (K, d) = {(K, d)}; got {mu.shape}.")
        if not np.isfinite(mu).all():
            raise ModelInputError(f"{n}: means must be finite; got {mu.tolist()!r}.")
        super().__init__(K=K, d=d, weights=w.tolist(), means=mu.tolist(), radius=radius,
                         scale=scale, label_noise=check_label_noise(n, label_noise))
        self.latent_shape = ()
        self.token_shape = (d,)
        self.target_shape = ()

    def _channel(self) -> np.ndarray:
        return label_channel(self.params["K"], self.params["label_noise"])

    # Pyro program pieces ------------------------------------------------------
    def pyro_prior(self, device=None):
        return pdist.Categorical(probs=self.tensor(self.params["weights"], device))

    def pyro_likelihood(self, z):
        means = self.tensor(self.params["means"], z.device)[z.long()]  # (..., 1, d)
        return pdist.Normal(means, self.params["scale"]).to_event(1)

    def pyro_target(self, z):
        return pdist.Categorical(probs=self.tensor(self._channel(), z.device)[z.long()])

    # NumPyro twin -------------------------------------------------------------
    def numpyro_prior(self):
        return ndist.Categorical(probs=jnp.asarray(self.params["weights"]))

    def numpyro_likelihood(self, z):
        means = jnp.asarray(self.params["means"])[z]  # (..., 1, d)
        return ndist.Normal(means, self.params["scale"]).to_event(1)

    def numpyro_target(self, z):
        return ndist.Categorical(probs=jnp.asarray(self._channel())[z])

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
