"""Calling a user's candidate and checking what it returned.

Every problem with the candidate's *output* becomes a :class:`CandidateError` whose
message says what was expected and what was received; the checks turn it into a FAILED
result instead of a traceback from library internals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical, Distribution, constraints

from bayesattn._random import seeded
from bayesattn._text import a_or_an
from bayesattn.models import ExchangeableModel

from ._args import accepts_mask

__all__ = ["CandidateError", "as_posterior", "call_candidate", "num_categories", "shape_text"]

_SUM_TOL = 1e-4
_SUPPORT_DRAWS = 64


class CandidateError(Exception):
    """The candidate raised, or returned something that cannot be compared."""


def shape_text(shape: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def num_categories(model: ExchangeableModel) -> int:
    """K for a discrete latent ``z in {0..K-1}`` (from the prior's support)."""
    support = model.latent_support
    if isinstance(support, constraints.integer_interval):
        return int(support.upper_bound) + 1
    probs = getattr(model.pyro_prior("cpu"), "probs", None)
    if probs is None:
        raise TypeError(f"{model.name}: cannot tell the number of categories of z.")
    return int(probs.shape[-1])


def resolve_callable(candidate: Any) -> Callable:
    """``candidate.posterior`` for modules that have one (AmortizedPosterior, oracles)."""
    method = getattr(candidate, "posterior", None)
    if isinstance(candidate, torch.nn.Module) and callable(method):
        return method
    return candidate


def call_candidate(fn: Callable, x: torch.Tensor, mask: torch.Tensor, what: str) -> Any:
    """``fn(x, mask)`` when ``fn`` takes two arguments, else ``fn(x)``; errors -> CandidateError.

    Raises:
        CandidateError: ``fn`` raised, or takes only tokens while ``mask`` has padding.
    """
    takes_mask = accepts_mask(fn)
    if not takes_mask and not bool(mask.all()):
        raise CandidateError(
            f"{what} takes only the tokens, but these sequences have different lengths "
            "(padding, mask False); define it as fn(x, mask) with mask a bool (B, L) tensor, "
            "True = real token, or check with a single int seq_len."
        )
    args = (x, mask) if takes_mask else (x,)
    call = f"{what}(x{', mask' if takes_mask else ''}) with x of shape {shape_text(x.shape)}"
    try:
        with torch.no_grad():
            return fn(*args)
    except Exception as err:  # noqa: BLE001 - any user error becomes a FAILED result
        raise CandidateError(f"{call} raised {type(err).__name__}: {err}") from err


def _probabilities(out: Any, batch: int, k: int, what: str, allow_log: bool) -> torch.Tensor:
    """A checked ``(B, K)`` float64 probability tensor from a tensor/array output."""
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(np.array(out))
    if out.dtype == torch.bool or out.is_complex() or not out.dtype.is_floating_point:
        raise CandidateError(
            f"{what} returned probabilities of dtype {out.dtype}; expected a float (B, K) = "
            f"({batch}, {k}) tensor."
        )
    p = out.detach().to("cpu", torch.float64)
    if tuple(p.shape) != (batch, k):
        raise CandidateError(
            f"{what} returned probabilities of shape {shape_text(p.shape)}; expected "
            f"(B, K) = ({batch}, {k}): one row per sequence, one column per value of z."
        )
    bad = ~torch.isfinite(p)
    if allow_log and bool((p <= 0).all()) and not bool(torch.isnan(p).any()):
        p = p.exp()  # normalised log-probabilities (-inf = probability 0)
        bad = ~torch.isfinite(p)
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise CandidateError(
            f"{what} returned {int(bad.sum())} NaN/inf probabilities, e.g. sequence {i}, "
            f"z={j}: {p[i, j].item()}; expected finite probabilities."
        )
    if bool((p < 0).any()):
        i, j = (int(v) for v in (p < 0).nonzero()[0])
        raise CandidateError(
            f"{what} returned negative probabilities, e.g. sequence {i}, P(z={j}) = "
            f"{p[i, j].item():.3g}; expected values in [0, 1]. If these are logits or "
            "log-probabilities, return logits.softmax(-1) or Categorical(logits=logits)."
        )
    sums = p.sum(-1)
    off = (sums - 1).abs()
    if bool((off > _SUM_TOL).any()):
        i = int(off.argmax())
        raise CandidateError(
            f"{what} returned unnormalised probabilities: sequence {i} sums to "
            f"{sums[i].item():.4g}, expected each row to sum to 1 (tolerance {_SUM_TOL:g}); "
            "normalise with p / p.sum(-1, keepdim=True)."
        )
    return p / sums[:, None]


def as_posterior(out: Any, model: ExchangeableModel, batch: int, what: str,
                 seed: int, allow_log: bool = False) -> Distribution:
    """Check a candidate's output against the model's latent; return a Distribution.

    Discrete latents accept a Categorical or probabilities ``(B, K)`` (and, with
    ``allow_log``, normalised log-probabilities). Continuous latents need a
    Distribution with batch_shape ``(B,)``, event_shape ``latent_shape``, finite draws
    inside the latent support.

    Raises:
        CandidateError: with what was expected and what was received.
    """
    latent = tuple(model.latent_shape)
    if model.latent_is_discrete:
        k = num_categories(model)
        if isinstance(out, (torch.Tensor, np.ndarray)):
            return Categorical(probs=_probabilities(out, batch, k, what, allow_log),
                               validate_args=False)
        if isinstance(out, Categorical):
            if tuple(out.batch_shape) != (batch,):
                raise CandidateError(
                    f"{what} returned a Categorical with batch_shape "
                    f"{shape_text(out.batch_shape)}; expected ({batch},), one per sequence."
                )
            return Categorical(probs=_probabilities(out.probs, batch, k, what, False),
                               validate_args=False)
        got = type(out).__name__
        raise CandidateError(
            f"{what} returned {got}; expected a torch.distributions.Categorical with "
            f"batch_shape ({batch},) over K = {k} values, or probabilities of shape "
            f"(B, K) = ({batch}, {k})."
        )
    want = f"batch_shape ({batch},) and event_shape {shape_text(latent)}"
    if isinstance(out, (torch.Tensor, np.ndarray)):
        raise CandidateError(
            f"{what} returned {a_or_an(type(out).__name__)} of shape {shape_text(out.shape)}, but "
            f"{model.name} has a continuous latent z of shape {shape_text(latent)}: return "
            f"a torch.distributions.Distribution with {want} (e.g. Independent(Normal(mean, "
            "sd), 1) or MultivariateNormal)."
        )
    if not isinstance(out, Distribution):
        raise CandidateError(
            f"{what} returned {type(out).__name__}; expected a "
            f"torch.distributions.Distribution with {want}."
        )
    got = (f"batch_shape {shape_text(out.batch_shape)} and event_shape "
           f"{shape_text(out.event_shape)}")
    full = tuple(out.batch_shape) + tuple(out.event_shape)
    if tuple(out.batch_shape) != (batch,) or tuple(out.event_shape) != latent:
        hint = ""
        if full == (batch, *latent) and len(out.batch_shape) > 1:
            hint = (f" Wrap it with torch.distributions.Independent(dist, "
                    f"{len(out.batch_shape) - 1}) to move the latent dims into the event.")
        raise CandidateError(f"{what} returned {a_or_an(type(out).__name__)} with {got}; expected "
                             f"{want}.{hint}")
    bad_params = _nonfinite_params(out)
    if bad_params:
        raise CandidateError(
            f"{what} returned {a_or_an(type(out).__name__)} whose parameters {bad_params} contain "
            "NaN/inf; expected finite parameters (check for log(0), division by zero or "
            "overflow)."
        )
    try:
        with seeded(seed), torch.no_grad():
            draws = out.sample((_SUPPORT_DRAWS,))
    except Exception as err:  # noqa: BLE001
        raise CandidateError(
            f"sampling from the {type(out).__name__} returned by {what} raised "
            f"{type(err).__name__}: {err}"
        ) from err
    draws = draws.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(draws).all()):
        raise CandidateError(
            f"{what} returned {a_or_an(type(out).__name__)} whose draws contain NaN/inf; check its "
            "parameters (expected finite means and positive finite scales)."
        )
    ok = torch.as_tensor(model.latent_support.check(draws))
    if not bool(ok.all()):
        bad = draws[~ok.bool()]
        example = fmt_value(bad[0] if bad.ndim > 0 and bad.numel() else bad)
        raise CandidateError(
            f"{what} returned {a_or_an(type(out).__name__)} with the wrong support: it draws z = "
            f"{example}, outside {model.name}'s latent support {model.latent_support}. Use a "
            "distribution on that support (e.g. Beta on (0, 1), Gamma on z > 0, Dirichlet on "
            "the simplex)."
        )
    return out


def _nonfinite_params(d: Distribution) -> list[str]:
    """Names of the distribution's (given) parameters that hold NaN or inf."""
    base = d
    while isinstance(base, torch.distributions.Independent):
        base = base.base_dist
    bad = []
    for name in getattr(base, "arg_constraints", {}) or {}:
        try:
            value = getattr(base, name)
        except Exception:  # noqa: BLE001 - a lazy parameter that cannot be computed
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                bad.append(name)
    return bad


def fmt_value(t: torch.Tensor) -> str:
    arr = t.reshape(-1).tolist()
    if len(arr) == 1:
        return f"{arr[0]:.3g}"
    return "[" + ", ".join(f"{v:.3g}" for v in arr[:4]) + (", ...]" if len(arr) > 4 else "]")
