"""``Reference``: a ground-truth posterior for a batch of B datasets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from bayesattn._random import seeded
from bayesattn.models import ExchangeableModel, NoExactPosterior

from ._diagnostics import ConvergenceGate, arviz


class UnconvergedReferenceError(RuntimeError):
    """An MCMC reference failed the convergence gate and may not serve as ground truth."""


def _latent_dims(latent_shape: tuple[int, ...]) -> list[str]:
    return [f"z_dim_{i}" for i in range(len(latent_shape))]


def _sample_shape(sample_shape: Any) -> torch.Size:
    """``sample_shape`` as a torch.Size: an int n gives ``(n,)``; every size must be >= 1."""
    sizes = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if sizes is None or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in sizes
    ):
        raise ValueError(
            "sample_shape must be an int >= 1 or a tuple of ints >= 1 (e.g. 100 or (10, 10)); "
            f"got {sample_shape!r}."
        )
    return torch.Size(int(v) for v in sizes)


def build_idata(
    z: np.ndarray,
    x: torch.Tensor,
    mask: torch.Tensor,
    latent_shape: tuple[int, ...],
    sample_stats: dict[str, np.ndarray] | None = None,
):
    """ArviZ InferenceData from draws ``z`` of shape ``(chains, draws, B, *latent_shape)``.

    Groups: ``posterior`` (``z`` with dims chain, draw, dataset, z_dim_*),
    ``sample_stats`` (when given; dims chain, draw, dataset) and ``observed_data``
    (``x`` and ``mask``, dims dataset, token, x_dim_*).
    """
    az = arviz()
    token_dims = [f"x_dim_{i}" for i in range(x.ndim - 2)]
    return az.from_dict(
        posterior={"z": z},
        sample_stats=None if sample_stats is None else dict(sample_stats),
        observed_data={"x": x.detach().cpu().numpy(), "mask": mask.detach().cpu().numpy()},
        dims={
            "z": ["dataset", *_latent_dims(latent_shape)],
            "x": ["dataset", "token", *token_dims],
            "mask": ["dataset", "token"],
            **{k: ["dataset"] for k in (sample_stats or {})},
        },
    )


@dataclass
class Reference:
    """Ground-truth posterior p(z | x_b) for each of B datasets.

    Build it with :func:`bayesattn.inference.reference_posterior`. Exact references
    wrap a closed-form torch Distribution; MCMC references hold draws. Using an
    MCMC reference that failed the convergence gate (``.converged`` is False) as
    ground truth (``sample``, ``draws`` and the properties ``mean``, ``stddev``,
    ``variance``) raises :class:`UnconvergedReferenceError` unless it was built with
    ``allow_unconverged=True``; ``idata`` and ``diagnostics`` stay readable so you
    can see what went wrong.

    As on a torch Distribution, ``mean``, ``stddev`` and ``variance`` are properties
    (``ref.mean``, not ``ref.mean()``) and ``sample(sample_shape)`` draws from torch's
    global RNG unless given a ``seed``.

    Attributes:
        model: The model.
        x: Tokens, shape ``(B, L, *token_shape)``.
        mask: Bool, shape ``(B, L)``.
        method: ``"exact"``, ``"nuts"`` or ``"pyro-nuts"``.
        distribution: The exact posterior (batch_shape ``(B,)``) or None.
        idata: ArviZ InferenceData (posterior, sample_stats for MCMC, observed_data).
        diagnostics: DataFrame, one row per dataset: r_hat, ess_bulk, ess_tail,
            divergences, converged.
        gate: The thresholds used for ``converged``.
        seed: The seed :func:`reference_posterior` used (its stored draws, the MCMC run);
            :meth:`sample` takes its own ``seed``.
        wall_time_s: Seconds spent computing the reference.
    """

    model: ExchangeableModel
    x: torch.Tensor
    mask: torch.Tensor
    method: str
    distribution: torch.distributions.Distribution | None
    idata: Any
    diagnostics: pd.DataFrame
    gate: ConvergenceGate
    seed: int
    wall_time_s: float
    allow_unconverged: bool = False
    _draws: torch.Tensor | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ status
    @property
    def num_datasets(self) -> int:
        return int(self.x.shape[0])

    @property
    def converged(self) -> bool:
        """True when every dataset passes the convergence gate."""
        return bool(self.diagnostics["converged"].all())

    @property
    def is_exact(self) -> bool:
        return self.distribution is not None

    def _check_usable(self) -> None:
        if self.converged or self.allow_unconverged:
            return
        bad = self.diagnostics.loc[~self.diagnostics["converged"]]
        worst = bad.sort_values(["missed_modes", "r_hat"] if "missed_modes" in bad else "r_hat",
                                ascending=False).head(3)
        missed = bad.get("missed_modes")

        def modes(r) -> str:
            m = int(getattr(r, "missed_modes", 0))
            return f", missed_modes={m}" if m > 0 else ""

        rows = "; ".join(
            f"dataset {int(r.dataset)}: r_hat={r.r_hat:.3f}, ess_bulk={r.ess_bulk:.0f}, "
            f"ess_tail={r.ess_tail:.0f}, divergences={int(r.divergences)}{modes(r)}"
            for r in worst.itertuples()
        )
        chains = int(self.idata.posterior.sizes["chain"])
        trapped = (
            " Some datasets have a peak that every chain missed (missed_modes > 0): more "
            "draws will not help there; the posterior is multimodal and the chains do not "
            "cross between peaks." if missed is not None and (missed > 0).any() else "")
        raise UnconvergedReferenceError(
            f"{self.method} reference for {self.model.name} did not converge on "
            f"{len(bad)} of {self.num_datasets} datasets (gate: >= {self.gate.min_chains} chains, "
            f"r_hat <= {self.gate.r_hat_max}, "
            f"ess_bulk and ess_tail >= {self.gate.ess_min:.0f}, divergences <= "
            f"{self.gate.max_divergences}, missed modes <= {self.gate.max_missed_modes}); it "
            f"ran {chains} chains. Worst: {rows}.{trapped} Run more draws "
            "(num_samples/num_warmup) or pass allow_unconverged=True to use it anyway."
        )

    # ------------------------------------------------------------------ ground truth
    def draws(self) -> torch.Tensor:
        """All stored draws pooled over chains, shape ``(chains * draws, B, *latent_shape)``."""
        self._check_usable()
        if self._draws is None:
            z = torch.as_tensor(np.array(self.idata.posterior["z"].values))
            self._draws = z.reshape((-1,) + tuple(z.shape[2:]))
        return self._draws

    def sample(self, sample_shape: int | tuple[int, ...] | torch.Size = (), *,
               seed: int | None = None) -> torch.Tensor:
        """Posterior draws per dataset, shape ``(*sample_shape, B, *latent_shape)``.

        As with a torch Distribution, ``sample()`` gives one draw per dataset (shape
        ``(B, *latent_shape)``), ``sample(n)`` or ``sample((n,))`` gives ``n`` and a tuple
        gives that batch of draws. Exact references draw fresh samples; MCMC references
        return a random subset (without replacement) of the stored draws, so the number of
        draws ``prod(sample_shape)`` may not exceed ``num_chains * num_samples``.

        Args:
            sample_shape: An int ``n`` or a shape (each size >= 1).
            seed: None (default) draws from torch's global RNG, so ``torch.manual_seed``
                governs it and two calls give different draws, as torch distributions do.
                An int gives reproducible draws from a private RNG seeded with it and
                leaves the global RNG state untouched.
        """
        self._check_usable()
        shape = _sample_shape(sample_shape)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an int or None; got {seed!r}.")
        if self.distribution is not None:
            if seed is None:
                return self.distribution.sample(shape)
            # Seed only the generator the draw uses, inside a fork (torch.manual_seed would
            # also reseed every CUDA device and leave their states changed).
            with seeded(seed, self.x.device):
                return self.distribution.sample(shape)
        pooled = self.draws()
        n = shape.numel()
        if n > pooled.shape[0]:
            raise ValueError(
                f"asked for {n} draws but this {self.method} reference stores {pooled.shape[0]} "
                "per dataset; rebuild it with a larger num_samples or num_chains."
            )
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(pooled.shape[0], generator=gen)[:n]
        return pooled[idx].reshape(shape + pooled.shape[1:])

    @property
    def mean(self) -> torch.Tensor:
        """Posterior mean per dataset, shape ``(B, *latent_shape)`` (a property, as in torch).

        For a discrete latent ``z ∈ {0..K-1}`` this is E[one_hot(z)], i.e. the
        posterior probabilities, shape ``(B, K)``. MCMC references average the stored
        draws.
        """
        self._check_usable()
        if self.distribution is not None:
            if self.model.latent_is_discrete:
                return self.distribution.probs
            return self.distribution.mean
        return self.draws().mean(0)

    @property
    def variance(self) -> torch.Tensor:
        """Posterior variance per coordinate, shape ``(B, *latent_shape)``.

        MCMC references use the sample variance of the stored draws (divisor ``S - 1``).

        Raises:
            TypeError: for a discrete latent (use :attr:`mean`, the probabilities).
        """
        self._check_usable()
        self._check_continuous("variance")
        if self.distribution is not None:
            return self.distribution.variance
        return self.draws().var(0)

    @property
    def stddev(self) -> torch.Tensor:
        """Posterior standard deviation per coordinate, shape ``(B, *latent_shape)``.

        MCMC references use the sample standard deviation of the stored draws.

        Raises:
            TypeError: for a discrete latent (use :attr:`mean`, the probabilities).
        """
        self._check_usable()
        self._check_continuous("stddev")
        if self.distribution is not None:
            return self.distribution.stddev
        return self.draws().std(0)

    def _check_continuous(self, what: str) -> None:
        if self.model.latent_is_discrete:
            raise TypeError(
                f"{self.model.name} has a discrete latent, so {what} is not defined; use "
                ".mean (the posterior probabilities)."
            )

    @property
    def std(self) -> torch.Tensor:
        """Not defined: the standard deviation is :attr:`stddev` (torch's name).

        Reading it raises AttributeError naming the right property (the method ``std()``
        of earlier versions became the property ``stddev``).
        """
        raise AttributeError(
            "'Reference' object has no attribute 'std'; the posterior standard deviation "
            "is the property .stddev (torch naming, like .mean and .variance)."
        )

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Exact log p(z | x_b), for z of shape ``(..., B, *latent_shape)``.

        Raises:
            NoExactPosterior: for MCMC references (no normalised density).
        """
        if self.distribution is None:
            raise NoExactPosterior(
                f"log_prob needs a closed-form posterior; this is a {self.method} reference "
                f"for {self.model.name}. Use sample-based comparisons instead."
            )
        return self.distribution.log_prob(z)

    def __repr__(self) -> str:
        status = "converged" if self.converged else "NOT converged"
        return (
            f"Reference(model={self.model.name!r}, method={self.method!r}, "
            f"datasets={self.num_datasets}, {status}, {self.wall_time_s:.2f}s)"
        )
