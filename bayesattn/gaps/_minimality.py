"""Minimality: does a representation forget what the posterior forgets? (P2)

The posterior ``pi(X)`` is a *minimal* sufficient representation: two sets with the
same sufficient statistic have the same posterior, so a minimal representation maps
them to the same point. We build pairs ``(X, X')`` with equal statistics but different
tokens, and reference pairs ``(X, X'')`` with independent tokens of the same lengths,
and compare representation distances ``||r(X) - r(X')||`` between the two groups.

Equal-statistic constructions (float64):

- real tokens (``normal-mean``, ``normal-inverse-gamma``, ``concept-mixture``,
  ``linear-regression``): ``X' = 1 xbar' + Q (X - 1 xbar')`` over the n real tokens,
  with ``Q = H O H' + 1 1' / n``, ``H`` an orthonormal basis of the sum-zero subspace
  of R^n and ``O`` a Haar-random orthogonal matrix. ``Q`` fixes the all-ones vector and
  is orthogonal, so the count n, the token sum and the scatter matrix
  ``sum_i x_i x_i'`` are all preserved: every statistic of a Gaussian-family token is
  equal, while ``X'`` is almost surely not a permutation of ``X``. Needs n >= 3 (with
  two tokens only the swap preserves both moments).
- count tokens (``gamma-poisson``): the total ``S = sum_i x_i`` is redistributed over
  the n positions by a uniform multinomial draw, redrawn until the multiset of counts
  changes; pairs where no other multiset exists (n = 1 or S <= 1) are dropped.
- categorical or boolean tokens: equal counts means equal multisets, so only
  permutations exist; these models raise ``ValueError``.

Every pair is checked against the exact posterior when the model has one (log
densities at draws from ``pi(X)`` must agree to ``1e-8`` relative); a construction that
does not preserve this model's statistic raises instead of reporting nonsense.
The reference pairs are independent draws, which may occasionally share the statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.distributions import constraints

from bayesattn._checks import check_int, length_range
from bayesattn._random import seeded
from bayesattn.metrics import bootstrap_ci
from bayesattn.models import ExchangeableModel

from ._sufficiency import (
    COLUMNS,
    Representation,
    evaluate_representation,
    simulate_sets,
)

__all__ = ["EqualStatisticPairs", "equal_statistic_pairs", "minimality"]


@dataclass(frozen=True)
class EqualStatisticPairs:
    """Sets for a minimality study; all share the same mask (lengths).

    Attributes:
        x: Tokens, shape ``(P, L, *token_shape)``.
        x_equal: Same sufficient statistic as ``x``, different tokens, same shape.
        x_other: Independent sets of the same lengths, same shape.
        mask: Bool ``(P, L)``, True = real token.
    """

    x: torch.Tensor
    x_equal: torch.Tensor
    x_other: torch.Tensor
    mask: torch.Tensor


def _haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # sign fix makes q Haar-distributed


def _sum_zero_basis(n: int) -> np.ndarray:
    """Orthonormal ``(n, n - 1)`` basis of ``{v : 1'v = 0}`` (QR of [1, I])."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), np.eye(n)[:, : n - 1]]))
    return q[:, 1:]


def _rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mix n real tokens ``(n, F)`` keeping their sum and scatter matrix."""
    n = x.shape[0]
    h = _sum_zero_basis(n)
    q = h @ _haar_orthogonal(n - 1, rng) @ h.T + np.full((n, n), 1.0 / n)
    mean = x.mean(0, keepdims=True)
    return mean + q @ (x - mean)


def _redistribute(x: np.ndarray, rng: np.random.Generator, tries: int = 100) -> np.ndarray | None:
    n, total = x.shape[0], int(round(x.sum()))
    if n < 2 or total < 2:
        return None
    for _ in range(tries):
        new = rng.multinomial(total, np.full(n, 1.0 / n)).astype(np.float64)
        if not np.array_equal(np.sort(new), np.sort(x)):
            return new
    return None


def _construction(model: ExchangeableModel) -> str:
    support = model.token_support
    if support is constraints.real or support is constraints.real_vector:
        return "rotate"
    if support is constraints.nonnegative_integer and tuple(model.token_shape) == ():
        return "redistribute"
    raise ValueError(
        f"{model.name}: tokens with support {support} have no equal-statistic pairs other "
        "than permutations (equal counts = equal multisets). Use a model with real tokens "
        "(normal-mean, normal-inverse-gamma, concept-mixture) or counts (gamma-poisson)."
    )


def _check_posteriors(model: ExchangeableModel, pairs: EqualStatisticPairs, seed: int) -> None:
    post = model.exact_posterior(pairs.x, pairs.mask)
    twin = model.exact_posterior(pairs.x_equal, pairs.mask)
    with seeded(seed):
        z = post.sample((8,))  # (8, P, *latent)
    a, b = post.log_prob(z), twin.log_prob(z)
    err = float(((a - b).abs() / (1.0 + a.abs())).max())
    if not err <= 1e-8:
        raise ValueError(
            f"{model.name}: the equal-statistic construction changed the exact posterior "
            f"(max relative log-density difference {err:.3g}, expected <= 1e-8); this "
            "model's sufficient statistic is not the one the construction preserves."
        )


def equal_statistic_pairs(model: ExchangeableModel, num_pairs: int,
                          seq_len: int | tuple[int, int], *, seed: int = 0) -> EqualStatisticPairs:
    """Build equal-statistic pairs and independent reference pairs (module docstring).

    Args:
        model: A model with real or count tokens.
        num_pairs: Number of pairs P >= 2 to simulate (count models may drop some).
        seq_len: An int L or a ``(low, high)`` range (real tokens need low >= 3).
        seed: Seeds the simulations and the random rotations / redistributions.

    Returns:
        :class:`EqualStatisticPairs` (checked against the exact posterior if there is one).

    Raises:
        ValueError: unsupported tokens, too-short sets, fewer than 2 usable pairs, or a
            construction that changes the exact posterior.
    """
    check_int(num_pairs, "num_pairs", low=2)
    how = _construction(model)
    low, _ = length_range(seq_len)
    if how == "rotate" and low < 3:
        raise ValueError(f"seq_len: real-token pairs need >= 3 tokens per set (with 2, only "
                         f"a swap keeps both moments); got seq_len={seq_len!r}.")
    base = simulate_sets(model, int(num_pairs), seq_len, seed=seed)
    other = model.simulate(int(num_pairs), base.seq_len, seed=seed + 1).x
    rng = np.random.default_rng(int(seed))
    x = base.x.to(torch.float64).numpy()
    flat = x.reshape(x.shape[0], x.shape[1], -1)  # (P, L, F)
    new = flat.copy()
    keep = []
    for i, m in enumerate(base.mask.numpy()):
        tokens = flat[i, m]
        out = _rotate(tokens, rng) if how == "rotate" else _redistribute(tokens[:, 0], rng)
        if out is None:
            continue
        new[i, m] = out.reshape(tokens.shape)
        keep.append(i)
    if len(keep) < 2:
        raise ValueError(f"only {len(keep)} usable equal-statistic pairs of {num_pairs}; "
                         "use longer sets or more pairs.")
    idx = torch.as_tensor(keep)
    x_equal = torch.as_tensor(new.reshape(x.shape)).to(base.x.dtype)
    pairs = EqualStatisticPairs(base.x[idx], x_equal[idx], other[idx], base.mask[idx])
    if model.has_exact_posterior:
        _check_posteriors(model, pairs, seed)
    return pairs


def sorted_tokens_features(model: ExchangeableModel) -> Representation:
    """Non-minimal control: the real tokens sorted (by the first coordinate), flattened.

    Permutation invariant and sufficient, but it keeps the whole multiset of tokens.
    """
    def rep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        flat = x.to(torch.float64).reshape(x.shape[0], x.shape[1], -1)  # (B, L, F)
        key = flat[..., 0].masked_fill(~mask, float("inf"))  # padding sorts last
        order = key.argsort(-1)
        out = flat.gather(1, order[..., None].expand_as(flat))
        out = out * mask.gather(1, order)[..., None]  # zero the padding
        return out.reshape(x.shape[0], -1)

    return rep


def posterior_density_features(model: ExchangeableModel, seed: int = 0,
                               num_points: int = 16) -> Representation:
    """Minimal control: ``log pi(z_j | X)`` at ``num_points`` fixed prior draws ``z_j``."""
    with seeded(seed):
        points = model.pyro_prior("cpu").sample((num_points,))  # (J, *latent)

    def rep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        post = model.exact_posterior(x, mask)
        shape = (num_points, x.shape[0], *points.shape[1:])
        z = points.reshape(num_points, 1, *points.shape[1:]).expand(shape)
        return post.log_prob(z).T.to(torch.float64)  # (B, J)

    return rep


def _rows(values, keys, metric, seed, num_resamples, statistic=np.mean):
    est = bootstrap_ci(values, statistic, num_resamples=num_resamples, seed=seed)
    return {**keys, "metric": metric, **est.row()}


def _ratio(pair: np.ndarray) -> float:
    return float(pair[:, 0].mean() / pair[:, 1].mean())


def minimality(
    representation: Representation | Mapping[str, Representation],
    model: ExchangeableModel,
    *,
    num_pairs: int,
    seq_len: int | tuple[int, int],
    seed: int = 0,
    include_controls: bool = True,
    num_resamples: int = 1000,
) -> pd.DataFrame:
    """Distances of representations between equal-statistic and independent sets.

    Args:
        representation: A callable ``(x (B, L, *token_shape), mask (B, L)) -> (B, d)``, or
            a dict name -> callable (a bare callable is named ``"representation"``).
        model: A model with real or count tokens (see :func:`equal_statistic_pairs`).
        num_pairs: Number of pairs P.
        seq_len: An int L or a ``(low, high)`` range.
        seed: Seeds the pairs and the bootstrap.
        include_controls: Add ``"control: exact posterior"`` (minimal: log posterior
            density at fixed prior draws; needs an exact posterior) and
            ``"control: sorted tokens"`` (sufficient but not minimal).
        num_resamples: Bootstrap resamples over pairs.

    Returns:
        Tidy frame, one row per (representation, metric), columns ``representation,
        model, L_min, L_max, metric, value, ci_low, ci_high, se, n``. Metrics:
        ``distance_equal`` (mean ``||r(X) - r(X')||`` over equal-statistic pairs),
        ``distance_different`` (mean ``||r(X) - r(X'')||`` over independent pairs) and
        ``distance_ratio`` (their ratio: the equal-statistic distance in units of the
        typical distance; ~0 for a minimal representation; paired bootstrap).

    Raises:
        ValueError: unsupported model, bad sizes, or a representation with the wrong
            batch size or non-finite output.
    """
    reps: dict[str, Callable] = (dict(representation) if isinstance(representation, Mapping)
                                 else {"representation": representation})
    for name, fn in reps.items():
        if not callable(fn):
            raise TypeError(f"representation[{name!r}]: expected a callable (x, mask) -> "
                            f"(B, d), got {type(fn).__name__}.")
    if include_controls:
        controls = {"control: sorted tokens": sorted_tokens_features(model)}
        if model.has_exact_posterior:
            controls["control: exact posterior"] = posterior_density_features(model, seed)
        if set(reps) & set(controls):
            raise ValueError(f"representation: names {sorted(set(reps) & set(controls))} "
                             "are reserved for the controls.")
        reps.update(controls)
    if not reps:
        raise ValueError("representation: got none and include_controls=False.")
    low, high = length_range(seq_len)
    pairs = equal_statistic_pairs(model, num_pairs, seq_len, seed=seed)
    keys = {"model": model.name, "L_min": low, "L_max": high}
    rows = []
    for name, fn in reps.items():
        label = f"representation[{name!r}]"
        r = evaluate_representation(fn, pairs.x, pairs.mask, label)
        r_eq = evaluate_representation(fn, pairs.x_equal, pairs.mask, label)
        r_ot = evaluate_representation(fn, pairs.x_other, pairs.mask, label)
        d_eq = (r - r_eq).norm(dim=-1).numpy()
        d_ot = (r - r_ot).norm(dim=-1).numpy()
        k = {"representation": name, **keys}
        rows.append(_rows(d_eq, k, "distance_equal", seed, num_resamples))
        rows.append(_rows(d_ot, k, "distance_different", seed, num_resamples))
        if d_ot.mean() > 0:
            both = np.stack([d_eq, d_ot], -1)
            rows.append(_rows(both, k, "distance_ratio", seed, num_resamples, _ratio))
        else:
            rows.append({**k, "metric": "distance_ratio", "value": float("nan"),
                         "ci_low": float("nan"), "ci_high": float("nan"),
                         "se": float("nan"), "n": len(d_eq)})
    return pd.DataFrame(rows, columns=["representation", *keys, *COLUMNS])
