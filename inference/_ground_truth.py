"""``reference_posterior``: exact, NumPyro-NUTS or Pyro-NUTS ground truth for a batch."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

from bayesattn._checks import check_int
from bayesattn._random import seeded
from bayesattn.models import ExchangeableModel, NoExactPosterior

from ._diagnostics import DEFAULT_GATE, ConvergenceGate, iid_diagnostics, per_dataset_diagnostics
from ._numpyro_nuts import run_numpyro_nuts
from ._pyro_nuts import run_pyro_nuts
from ._reference import Reference, build_idata

Method = Literal["auto", "exact", "nuts", "pyro-nuts"]
METHODS = ("auto", "exact", "nuts", "pyro-nuts")


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    return check_int(value, name, low=minimum)


def reference_posterior(
    model: ExchangeableModel,
    x: Any,
    *,
    mask: Any = None,
    method: Method = "auto",
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    seed: int = 0,
    allow_unconverged: bool = False,
    gate: ConvergenceGate = DEFAULT_GATE,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
) -> Reference:
    """Ground-truth posterior p(z | x_b) for each of the B datasets in ``x``.

    Args:
        model: A model from ``bayesattn.models``.
        x: Tokens, shape ``(B, L, *token_shape)``.
        mask: Bool ``(B, L)``, True = real token; None = all real.
        method: ``"exact"`` (closed form / enumeration), ``"nuts"`` (NumPyro NUTS in
            float64, vectorised over datasets and chains in one compiled program; chains
            start in antithetic pairs and a multi-start mode search flags peaks that
            every chain missed, see ``missed_modes`` in the diagnostics),
            ``"pyro-nuts"`` (Pyro NUTS on the Pyro twin; a slow cross-check), or
            ``"auto"`` (exact when the model has one, else ``"nuts"``).
        num_samples: Draws per chain (for exact: total draws stored in ``idata`` is
            ``num_chains * num_samples``).
        num_warmup: Warm-up iterations per chain (MCMC only).
        num_chains: Chains per dataset (>= 4 recommended; R-hat needs >= 2).
        seed: Integer seed of the MCMC run (or of the exact draws stored in ``idata``);
            the same seed gives the same reference. ``Reference.sample`` takes its own.
        allow_unconverged: Let an MCMC reference that fails the gate serve as ground
            truth anyway (otherwise ``sample``, ``draws`` and the properties ``mean``,
            ``stddev``, ``variance`` raise).
        gate: Convergence thresholds (default r_hat <= 1.01, ESS >= 400, no divergences).
        target_accept_prob: NUTS step-size adaptation target.
        max_tree_depth: NUTS maximum tree depth.

    Returns:
        A :class:`Reference`.

    Raises:
        ValueError: bad tokens, bad method or sizes; ``method="exact"`` for a model
            without a closed form raises :class:`NoExactPosterior`; NUTS on a discrete
            latent raises ``ValueError`` (use the exact enumeration).
    """
    if not isinstance(model, ExchangeableModel):
        raise TypeError(
            f"model must be a bayesattn.models.ExchangeableModel; got {type(model).__name__}. "
            "Build one with bayesattn.models.get(name)."
        )
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    num_samples = _positive_int("num_samples", num_samples)
    num_chains = _positive_int("num_chains", num_chains)
    num_warmup = _positive_int("num_warmup", num_warmup, minimum=0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    x, mask = model.validate_tokens(x, mask)
    if method == "auto":
        method = "exact" if model.has_exact_posterior else "nuts"

    start = time.perf_counter()
    if method == "exact":
        if not model.has_exact_posterior:
            raise NoExactPosterior(
                f"{model.name} has no closed-form posterior; use method='nuts' (or 'auto')."
            )
        dist = model.exact_posterior(x, mask)
        with seeded(seed):
            draws = dist.sample((num_chains * num_samples,))
        z = draws.reshape((num_chains, num_samples) + tuple(draws.shape[1:])).cpu().numpy()
        idata = build_idata(z, x, mask, tuple(model.latent_shape))
        return Reference(
            model=model, x=x, mask=mask, method="exact", distribution=dist, idata=idata,
            diagnostics=iid_diagnostics(int(x.shape[0]), num_chains * num_samples),
            gate=gate, seed=int(seed), wall_time_s=time.perf_counter() - start,
            allow_unconverged=allow_unconverged,
        )

    if model.latent_is_discrete:
        raise ValueError(
            f"{method} needs a continuous latent, but {model.name} has a discrete z; "
            "its exact posterior (method='exact') is computed by enumeration."
        )
    runner = run_numpyro_nuts if method == "nuts" else run_pyro_nuts
    out = runner(
        model, x, mask, num_samples=num_samples, num_warmup=num_warmup,
        num_chains=num_chains, seed=int(seed), target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
    )
    idata = build_idata(out.z, x, mask, tuple(model.latent_shape), out.sample_stats)
    diagnostics = per_dataset_diagnostics(idata, gate, getattr(out, "missed_modes", None))
    return Reference(
        model=model, x=x, mask=mask, method=method, distribution=None, idata=idata,
        diagnostics=diagnostics, gate=gate, seed=int(seed),
        wall_time_s=time.perf_counter() - start, allow_unconverged=allow_unconverged,
    )
