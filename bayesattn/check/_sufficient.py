"""``check_sufficient``: can the exact posterior's predictions be read off a representation?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bayesattn.gaps import PROBES, probe_family, sufficiency_gap
from bayesattn.models import ExchangeableModel

from ._args import (
    CheckArgumentError,
    CheckTypeError,
    accepts_mask,
    as_model,
    check_seed,
    positive_float,
    positive_int,
    seq_len_range,
)
from ._result import CheckResult, invalid_result

__all__ = ["check_sufficient"]

_CHECK = "check_sufficient"
_NAME = "excess risk over the Bayes risk [nats/sequence] (CI upper bound)"


class _UserError(Exception):
    """The representation function itself raised."""


def _wrap(fn: Callable) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    takes_mask = accepts_mask(fn)

    def rep(x: torch.Tensor, mask: torch.Tensor) -> Any:
        if not takes_mask and not bool(mask.all()):
            raise _UserError(
                "representation_fn takes only the tokens, but the sequences have different "
                "lengths (padding); define it as fn(x, mask) with mask a bool (B, L) tensor, "
                "True = real token, or use a single int seq_len."
            )
        try:
            return fn(x, mask) if takes_mask else fn(x)
        except Exception as err:  # noqa: BLE001 - a user error becomes a FAILED result
            raise _UserError(
                f"representation_fn(x{', mask' if takes_mask else ''}) with x of shape "
                f"{tuple(x.shape)} raised {type(err).__name__}: {err}"
            ) from err

    return rep


def check_sufficient(
    representation_fn: Callable[..., Any],
    model: ExchangeableModel | str,
    *,
    num_train: int = 2000,
    num_test: int = 1000,
    seq_len: int | tuple[int, int] = 16,
    seed: int = 0,
    tol: float = 0.02,
    probe: str = "linear",
) -> CheckResult:
    """Check that a representation is sufficient: the exact posterior is recoverable from it.

    Paper 1: ``pi(X) = P(z | X)`` is sufficient, ``P(y | X) = int P(y | z) pi(X)(dz)``. A
    representation ``r(X)`` passes when a probe fitted on ``r`` (``num_train`` simulated
    sequences) predicts the target y on ``num_test`` fresh sequences as well as the exact
    posterior predictive does: the statistic is the mean **excess risk** (probe NLL minus
    the exact Bayes risk, nats per sequence; :func:`bayesattn.gaps.sufficiency_gap`), and
    the check passes when the upper end of its 95% bootstrap interval is ``<= tol``.

    The excess risk is probe-relative: a sufficient representation whose map to the
    predictive is outside the probe family (try ``probe="mlp"``) also shows a gap, and
    even a perfect one pays about ``d / (2 num_train)`` nats for the probe's ``d`` fitted
    parameters; ``tol`` must leave room for that.

    Args:
        representation_fn: ``x -> features`` or ``(x, mask) -> features`` with ``x`` of
            shape ``(B, L, *token_shape)``, ``mask`` bool ``(B, L)`` (True = real token) and
            ``features`` a tensor or array ``(B, d)``.
        model: A model (instance or registry name) with an exact posterior and a scalar
            categorical, boolean or real target (``normal-mean``, ``concept-mixture``,
            ``dirichlet-categorical``, ``linear-regression``...).
        num_train: Probe training sequences (>= 2).
        num_test: Test sequences (>= 2); the interval resamples these.
        seq_len: An int L or ``(low, high)``: lengths drawn uniformly per sequence (then
            ``representation_fn`` must take the mask).
        seed: Seeds the simulations, the probe and the bootstrap.
        tol: Largest acceptable excess risk in nats per sequence (> 0).
        probe: ``"linear"`` or ``"mlp"`` (one hidden layer).

    Returns:
        A :class:`CheckResult` whose ``statistic`` is the upper end of the interval;
        ``details`` holds the mean excess risk, its interval, the Bayes risk and the probe
        NLL. A representation that raises, or returns the wrong shape or NaN/inf, gives a
        FAILED result.

    Raises:
        ValueError: unknown model name, a model without an exact posterior or with a
            target the probe cannot model, bad sizes, tol <= 0, unknown probe.
        TypeError: a non-callable representation or arguments of the wrong type.

    Examples:
        >>> from bayesattn import models
        >>> from bayesattn.check import check_sufficient
        >>> m = models.get("normal-mean")
        >>> mean_tokens = lambda x: x.mean(1)  # (B, d): sufficient at a fixed L
        >>> check_sufficient(mean_tokens, m, num_train=500, num_test=500, seq_len=8).passed
        True
        >>> first_token = lambda x: x[:, 0]  # (B, d): loses the other L - 1 tokens
        >>> check_sufficient(first_token, m, num_train=500, num_test=500, seq_len=8).passed
        False
    """
    model = as_model(model)
    if not callable(representation_fn):
        raise CheckTypeError(
            "representation_fn: expected a function x -> (B, d) features (or (x, mask) -> "
            f"features); got {type(representation_fn).__name__}."
        )
    if not model.has_exact_posterior:
        raise CheckArgumentError(
            f"check_sufficient needs a model with an exact posterior (its Bayes risk is the "
            f"yardstick); {model.name!r} has none."
        )
    num_train = positive_int("num_train", num_train, 2)
    num_test = positive_int("num_test", num_test, 2)
    low, high = seq_len_range(seq_len)
    seed = check_seed(seed)
    tol = positive_float("tol", tol)
    if probe not in PROBES:
        raise CheckArgumentError(f"probe: expected one of {PROBES}; got {probe!r}.")
    probe_family(model)  # ValueError for a target the probe cannot model
    try:
        frame = sufficiency_gap(
            {"candidate": _wrap(representation_fn)}, model, num_train=num_train,
            num_test=num_test, seq_len=(low, high), seed=seed, probe=probe,
            include_controls=False,
        )
    except _UserError as err:
        return invalid_result(_CHECK, model.name, "exact Bayes risk", _NAME, tol, str(err))
    except ValueError as err:  # the representation's output: shape, NaN/inf, width
        text = str(err).replace("representations['candidate']", "representation_fn")
        return invalid_result(_CHECK, model.name, "exact Bayes risk", _NAME, tol, text)
    rows = frame.set_index("metric")
    excess, bayes, nll = rows.loc["excess_risk"], rows.loc["bayes_risk"], rows.loc["probe_nll"]
    upper = float(excess["ci_high"]) if np.isfinite(excess["ci_high"]) else float(excess["value"])
    passed = bool(upper <= tol)
    lengths = f"L={low}" if low == high else f"L in [{low}, {high}]"
    head = (
        f"{_CHECK} {'passed' if passed else 'FAILED'} ({model.name}): a {probe} probe on the "
        f"representation has excess risk {excess['value']:.3g} nats/sequence (95% CI "
        f"[{excess['ci_low']:.3g}, {excess['ci_high']:.3g}]) over the exact Bayes risk "
        f"{bayes['value']:.3g} ({num_train} training / {num_test} test sequences, {lengths}, "
        f"seed {seed}); CI upper bound {upper:.3g} {'<=' if passed else '>'} tol {tol:.3g}."
    )
    if passed:
        tail = " The exact posterior's predictions of y are recoverable from it."
    else:
        tail = (" The representation loses information about y that the exact posterior "
                "keeps (or the probe cannot extract it: try probe='mlp', more num_train, or "
                "give the representation the sequence length L).")
    details = {"excess_risk": float(excess["value"]), "ci_low": float(excess["ci_low"]),
               "ci_high": float(excess["ci_high"]), "bayes_risk": float(bayes["value"]),
               "probe_nll": float(nll["value"]), "frame": frame}
    return CheckResult(passed, _CHECK, upper, _NAME, tol, head + tail, (), None,
                       "exact Bayes risk", model.name, False, details)
