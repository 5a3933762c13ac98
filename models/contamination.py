"""ε-contamination of a finite mixture: outliers or swapped tokens (paper 2, experiment E5).

Given a finite mixture (``concept-mixture`` or ``unigram-mixture``)
``z ~ Categorical(w)``, ``x_i | z ~ p(x | z)``, :func:`contaminate` replaces each
token independently with probability ε by a draw from a contaminating density:

- ``kind="outlier"``: ``g(x) = N(outlier_loc, outlier_scale^2 I)`` for real tokens
  (far-away outliers), or uniform over the V words for word tokens;
- ``kind="swap"``: ``g(x | z) = mean over k != z of p(x | k)`` (a token of another
  concept, chosen uniformly).

Tokens stay i.i.d. given z, so the contaminated model is itself a finite mixture with
token likelihood ``(1 - ε) p(x | z) + ε g(x | z)`` and its posterior is exact by
enumeration over the K classes. The returned :class:`ContaminatedMixture` is an
``ExchangeableModel`` (Pyro/NumPyro twins, ``simulate``, ``log_joint``,
``exact_posterior`` under the ε-model) and adds ``simulate_contaminated`` (which
tokens were replaced) and ``clean_posterior`` (the base model's posterior on the same,
contaminated, data). It is deliberately not registered: it is a transform of a model
instance, not a member of the zoo.

All contaminating components are written as one table: ``K + 1`` token components
(the K classes and, last, the outlier density) and a ``(K, K + 1)`` matrix ``Pi`` with
``p_eps(x | z) = sum_c Pi[z, c] p_c(x)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
import pyro.distributions as pdist
import torch

from ._errors import ModelInputError
from ._mixture import FiniteMixture
from ._params import float_array, in_interval
from ._registry import get
from ._setbatch import SetBatch
from .concept_mixture import ConceptMixture
from .unigram_mixture import UnigramMixture

Kind = Literal["outlier", "swap"]


@dataclass(frozen=True)
class ContaminatedBatch:
    """A contaminated simulation with its bookkeeping.

    Attributes:
        batch: The contaminated :class:`SetBatch` (``z``, ``y`` untouched, ``x`` contaminated).
        clean_x: The tokens before contamination, same shape as ``batch.x``.
        contaminated: Bool ``(B, L)``, True where a token was replaced.
        source: Long ``(B, L)``: the component each token came from (``z`` for clean
            tokens, another class for swaps, ``K`` for outliers).
    """

    batch: SetBatch
    clean_x: torch.Tensor
    contaminated: torch.Tensor
    source: torch.Tensor


class ContaminatedMixture(FiniteMixture):
    """The ε-contamination model of a finite mixture (see :func:`contaminate`)."""

    def __init__(self, base: FiniteMixture, epsilon: float, kind: Kind = "outlier",
                 outlier_loc: Any = None, outlier_scale: float = 10.0) -> None:
        if not isinstance(base, (ConceptMixture, UnigramMixture)):
            raise ModelInputError(
                "contaminate supports concept-mixture and unigram-mixture (finite mixtures "
                f"with Gaussian or word tokens); got {type(base).__name__}.")
        n = f"contaminated {base.name}"
        epsilon = in_interval(n, "epsilon", epsilon, 0.0, 1.0, open_high=True)
        if kind not in ("outlier", "swap"):
            raise ModelInputError(f"{n}: kind must be 'outlier' or 'swap'; got {kind!r}.")
        K = base.params["K"]
        if kind == "swap" and K < 2:
            raise ModelInputError(f"{n}: kind='swap' needs K >= 2 classes; got K = {K}.")
        self.name = f"{base.name}+{kind}"
        self.base = base
        self.continuous = isinstance(base, ConceptMixture)
        extra: dict[str, Any] = {}
        if self.continuous and kind == "outlier":
            d = base.params["d"]
            loc = np.zeros(d) if outlier_loc is None else outlier_loc
            extra["outlier_loc"] = float_array(n, "outlier_loc", loc, (d,), dims="(d,)").tolist()
            extra["outlier_scale"] = in_interval(n, "outlier_scale", outlier_scale, 0.0,
                                                 math.inf, open_low=True)
        elif outlier_loc is not None:
            raise ModelInputError(f"{n}: outlier_loc applies only to kind='outlier' with "
                                  "real-valued tokens (concept-mixture).")
        super().__init__(K=K, weights=list(base.params["weights"]),
                         label_noise=base.params["label_noise"], epsilon=epsilon, kind=kind,
                         base=base.name, base_params=dict(base.params), **extra)
        self.token_support = base.token_support
        self.token_shape = tuple(base.token_shape)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ContaminatedMixture:
        """Rebuild from ``params`` (e.g. after a JSON round trip)."""
        base = get(params["base"], **params["base_params"])
        extra = {k: params[k] for k in ("outlier_loc", "outlier_scale") if k in params}
        return cls(base, params["epsilon"], params["kind"], **extra)

    # The (K, K + 1) mixing table and the K + 1 token components --------------------
    def mixing(self) -> np.ndarray:
        """``Pi`` of shape ``(K, K + 1)``: ``p_eps(x | z) = sum_c Pi[z, c] p_c(x)``."""
        K, eps = self.params["K"], self.params["epsilon"]
        pi = np.zeros((K, K + 1))
        pi[:, :K] = (1.0 - eps) * np.eye(K)
        if self.params["kind"] == "outlier":
            pi[:, K] = eps
        else:
            pi[:, :K] += eps / (K - 1) * (1.0 - np.eye(K))
        return pi

    def _components(self) -> tuple[np.ndarray, np.ndarray]:
        """Real tokens: ``(locs (K+1, d), scales (K+1,))``; words: ``(probs (K+1, V), _)``."""
        bp = self.base.params
        if self.continuous:
            locs = np.asarray(bp["means"], dtype=np.float64)
            scales = np.full(len(locs), bp["scale"])
            loc = self.params.get("outlier_loc", np.zeros(bp["d"]))
            scale = self.params.get("outlier_scale", 1.0)  # unused when kind == "swap"
            return np.vstack([locs, loc]), np.append(scales, scale)
        probs = np.asarray(bp["word_probs"], dtype=np.float64)
        return np.vstack([probs, np.full(bp["V"], 1.0 / bp["V"])]), np.zeros(0)

    # Pyro program pieces (prior and target: FiniteMixture) -------------------------
    def pyro_likelihood(self, z):
        pi = self.tensor(self.mixing(), z.device)[z.long()]  # (..., 1, K + 1)
        a, scales = (self.tensor(v, z.device) for v in self._components())
        if not self.continuous:
            return pdist.Categorical(probs=pi @ a)
        shape = pi.shape + a.shape[-1:]  # (..., 1, K + 1, d)
        comp = pdist.Normal(a.expand(shape), scales[:, None].expand(shape)).to_event(1)
        return pdist.MixtureSameFamily(pdist.Categorical(probs=pi), comp)

    # NumPyro twin ------------------------------------------------------------------
    def numpyro_likelihood(self, z):
        pi = jnp.asarray(self.mixing())[z]
        a, scales = (jnp.asarray(v) for v in self._components())
        if not self.continuous:
            return ndist.Categorical(probs=pi @ a)
        shape = pi.shape + a.shape[-1:]
        comp = ndist.Normal(jnp.broadcast_to(a, shape),
                            jnp.broadcast_to(scales[:, None], shape)).to_event(1)
        return ndist.MixtureSameFamily(ndist.Categorical(probs=pi), comp)

    # Exact posteriors ----------------------------------------------------------------
    def component_loglik(self, x: torch.Tensor) -> torch.Tensor:
        """log p_c(x_i) for the K + 1 components: validated ``(B, L, ...)`` -> ``(B, L, K+1)``."""
        a, scales = (self.tensor(v, x.device) for v in self._components())
        if not self.continuous:
            return a.log().T[x]
        d = a.shape[-1]
        sq = ((x[:, :, None, :] - a) ** 2).sum(-1)
        return (-0.5 * sq / scales**2 - d * scales.log() - 0.5 * d * math.log(2 * math.pi))

    def token_loglik(self, x: torch.Tensor) -> torch.Tensor:
        """log p_eps(x_i | z = k) = logsumexp_c(log Pi[k, c] + log p_c(x_i)); ``(B, L, K)``."""
        with np.errstate(divide="ignore"):
            log_pi = self.tensor(np.log(self.mixing()), x.device)  # (K, K + 1)
        return torch.logsumexp(self.component_loglik(x)[:, :, None, :] + log_pi, -1)

    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Categorical:
        """p(z | x) under the ε-contamination model (enumeration over K); batch ``(B,)``.

        At ε = 0 this is the base model's own ``exact_posterior``.
        """
        if self.params["epsilon"] == 0.0:
            return self.base.exact_posterior(x, mask)
        return self.enumerated_posterior(x, mask)

    def clean_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Categorical:
        """p(z | x) under the clean (misspecified) base model, on the same tokens."""
        return self.base.exact_posterior(x, mask)

    # Simulation with flags ------------------------------------------------------------
    def simulate_contaminated(self, num_sequences: int, seq_len: int, *, seed: int,
                              device: torch.device | str | None = None) -> ContaminatedBatch:
        """Simulate the clean model, then replace each token w.p. ε; keep the flags.

        The clean batch is ``base.simulate(..., seed=seed)`` (so ``clean_x`` equals the
        base model's simulation); contamination uses a private RNG derived from ``seed``.

        Returns:
            :class:`ContaminatedBatch`.
        """
        clean = self.base.simulate(num_sequences, seq_len, seed=seed, device=device)
        dev = clean.x.device
        sub_seed = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
        gen = torch.Generator(device=dev).manual_seed(sub_seed)
        b, length, K = clean.x.shape[0], clean.x.shape[1], self.params["K"]
        eps = self.params["epsilon"]
        flags = torch.rand(b, length, generator=gen, device=dev, dtype=torch.float64) < eps
        z = clean.z.long()[:, None].expand(b, length)
        if self.params["kind"] == "outlier":
            other = torch.full_like(z, K)
        else:  # uniform over the K - 1 other classes
            other = (z + torch.randint(1, K, (b, length), generator=gen, device=dev)) % K
        source = torch.where(flags, other, z)
        a, scales = (self.tensor(v, dev) for v in self._components())
        if self.continuous:
            noise = torch.randn(clean.x.shape, generator=gen, device=dev, dtype=torch.float64)
            draw = a[other] + scales[other][..., None] * noise
            x = torch.where(flags[..., None], draw.to(clean.x.dtype), clean.x)
        else:
            draw = torch.multinomial(a[other].reshape(-1, a.shape[-1]), 1, generator=gen)
            x = torch.where(flags, draw.reshape(b, length), clean.x)
        batch = SetBatch(z=clean.z, x=x, y=clean.y, mask=clean.mask)
        return ContaminatedBatch(batch=batch, clean_x=clean.x, contaminated=flags, source=source)


def contaminate(model: FiniteMixture | str, epsilon: float, kind: Kind = "outlier", *,
                outlier_loc: Any = None, outlier_scale: float = 10.0) -> ContaminatedMixture:
    """The ε-contamination model of a finite mixture.

    Args:
        model: A ``concept-mixture`` or ``unigram-mixture`` instance (or its name, built
            with default parameters).
        epsilon: Contamination probability per token, in [0, 1).
        kind: ``"outlier"`` (far-away Gaussian outliers / uniformly random words) or
            ``"swap"`` (a token of another, uniformly chosen, class).
        outlier_loc: Centre of the Gaussian outlier density, ``(d,)`` (default 0);
            real tokens and ``kind="outlier"`` only.
        outlier_scale: Standard deviation of the outlier density (default 10).

    Returns:
        :class:`ContaminatedMixture`: ``simulate_contaminated``, ``clean_posterior`` (base
        model on contaminated data) and ``exact_posterior`` (the ε-model).

    Example:
        >>> from bayesattn import models
        >>> cm = models.contaminate(models.get("concept-mixture"), 0.1)
        >>> data = cm.simulate_contaminated(8, 32, seed=0)
        >>> q_clean = cm.clean_posterior(data.batch.x)
        >>> q_robust = cm.exact_posterior(data.batch.x)
    """
    if isinstance(model, str):
        model = get(model)
    return ContaminatedMixture(model, epsilon, kind, outlier_loc=outlier_loc,
                               outlier_scale=outlier_scale)
