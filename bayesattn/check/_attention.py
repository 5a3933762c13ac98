"""``check_attention_is_bayes``: attention against its exact Bayesian target (paper 1).

Two tasks (claim P5, docs/claims.md#p5):

* ``"cme"``: in-context Bayesian linear regression. CME attention with the linear
  kernel and ``n lambda = sigma^2 / tau^2`` equals the exact posterior predictive mean
  ``phi(q)^T mu_L`` at every query and every L (an exact identity).
* ``"concept-mixture"``: a softmax-attention readout of a finite mixture equals the
  exact posterior over the K concepts at every L (the hand-set "desired parameter",
  :class:`~bayesattn.inference.oracle.ConceptMixtureOracle`; **reconstruction**).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from bayesattn.inference.oracle import ConceptMixtureOracle, cme_attention
from bayesattn.models import ExchangeableModel, FiniteMixture
from bayesattn.models.linear_regression import LinearRegression

from ._args import CheckArgumentError, CheckTypeError, as_model, check_seed, positive_float
from ._args import positive_int as _positive_int
from ._candidate import (
    CandidateError,
    as_posterior,
    call_candidate,
    resolve_callable,
    shape_text,
)
from ._result import CheckResult, WorstCase, fmt, invalid_result, verdict_message

__all__ = ["TASKS", "check_attention_is_bayes", "library_cme_attention"]

TASKS = ("cme", "concept-mixture")
DEFAULT_LENGTHS = (1, 4, 16, 64)
_CHECK = "check_attention_is_bayes"
_CME_NAME = "max |attention - exact predictive mean| / (1 + |exact|)"
_MIX_NAME = "max TV(exact posterior, attention readout)"


def library_cme_attention(model: LinearRegression) -> Callable:
    """The library's CME attention with the desired parameter for ``model``.

    Returns:
        ``fn(queries (B, Q, p), keys (B, L, p), values (B, L, 1)) -> (B, Q, 1)``: linear
        kernel, ridge ``lambda = sigma^2 / (tau^2 L)`` so that ``L lambda = sigma^2 / tau^2``.
    """
    ratio = model.params["noise_scale"] ** 2 / model.params["prior_scale"] ** 2

    def attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor):
        return cme_attention(keys, values, queries, kernel="linear",
                             ridge=ratio / keys.shape[1])

    return attention


def _lengths(seq_len: Any) -> tuple[int, ...]:
    values = (seq_len,) if isinstance(seq_len, (int, np.integer)) else seq_len
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise CheckTypeError(f"seq_len: expected an int >= 1 or a sequence of them; got "
                             f"{seq_len!r}.")
    return tuple(_positive_int("seq_len", v) for v in values)


def _task_model(task: str, model: Any) -> ExchangeableModel:
    if task not in TASKS:
        raise CheckArgumentError(f"task: expected one of {TASKS}; got {task!r}.")
    if model is None:
        model = "linear-regression" if task == "cme" else "concept-mixture"
    model = as_model(model)
    if task == "cme" and not isinstance(model, LinearRegression):
        raise CheckTypeError(
            f"task='cme' needs a 'linear-regression' model (the CME identity is exact for "
            f"Bayesian linear regression); got {model.name!r}."
        )
    if task == "concept-mixture" and not isinstance(model, FiniteMixture):
        raise CheckTypeError(
            f"task='concept-mixture' needs a finite mixture ('concept-mixture', "
            f"'unigram-mixture'); got {model.name!r}."
        )
    return model


def check_attention_is_bayes(
    attention_fn: Callable[..., Any] | None = None,
    *,
    task: str = "cme",
    model: ExchangeableModel | str | None = None,
    num_sequences: int = 8,
    seq_len: int | Sequence[int] = DEFAULT_LENGTHS,
    num_queries: int = 4,
    seed: int = 0,
    tol: float = 1e-6,
    num_worst: int = 3,
) -> CheckResult:
    """Check that an attention mechanism computes the exact Bayesian answer at every L.

    ``task="cme"`` (in-context Bayesian linear regression, the exact identity of paper 1):
    ``attention_fn(queries, keys, values)`` gets float64 ``queries (B, Q, p)``,
    ``keys (B, L, p)`` (the token features) and ``values (B, L, 1)`` (the responses) and
    must return ``(B, Q, 1)`` or ``(B, Q)``: the attention output at each query. It is
    compared with the exact posterior predictive mean ``q^T mu_L``
    (``LinearRegression.predictive_mean``); the statistic is the largest
    ``|out - exact| / (1 + |exact|)`` over lengths, sequences and queries. CME attention
    with the linear kernel and ``L lambda = sigma^2 / tau^2`` passes to round-off; softmax
    attention does not.

    ``task="concept-mixture"``: ``attention_fn(x)`` or ``attention_fn(x, mask)`` gets the
    tokens ``(B, L, *token_shape)`` of a finite mixture and returns the readout over the K
    concepts: probabilities or normalised log-probabilities ``(B, K)``, or a
    ``Categorical``. It is compared with the exact posterior; the statistic is the
    largest total-variation distance over lengths and sequences. The default is the
    library's :class:`~bayesattn.inference.oracle.ConceptMixtureOracle`; a
    length-unaware readout (``mode="fixed-length"``) fails at the other lengths.

    Args:
        attention_fn: The attention to check; None checks the library's own
            (:func:`~bayesattn.inference.oracle.cme_attention` with the desired parameter,
            or the concept-mixture oracle).
        task: ``"cme"`` or ``"concept-mixture"``.
        model: The model (instance or registry name); None = ``"linear-regression"`` for
            ``"cme"``, ``"concept-mixture"`` for the mixture task.
        num_sequences: B, sequences simulated per length (>= 1).
        seq_len: One length L or several; each is checked (default 1, 4, 16, 64).
        num_queries: Q, query points per sequence (``"cme"`` only; queries ~ N(0, I)).
        seed: Seeds the simulations and queries (global RNG untouched).
        tol: Pass threshold on the statistic (> 0; default 1e-6, round-off in float64).
        num_worst: How many worst cases to report.

    Returns:
        A :class:`CheckResult` (truthy when it passed); an attention function that raises
        or returns the wrong shape, NaN or invalid probabilities gives a FAILED result.

    Raises:
        ValueError: unknown task or model name, seq_len < 1, tol <= 0.
        TypeError: a model that does not fit the task, a non-callable attention_fn.

    Examples:
        >>> import torch
        >>> from bayesattn.check import check_attention_is_bayes
        >>> check_attention_is_bayes().passed  # the library's CME attention
        True
        >>> def softmax_attention(queries, keys, values):
        ...     weights = torch.softmax(queries @ keys.mT, dim=-1)  # (B, Q, L)
        ...     return weights @ values  # (B, Q, 1)
        >>> check_attention_is_bayes(softmax_attention).passed
        False
        >>> check_attention_is_bayes(task="concept-mixture").passed  # the oracle
        True
    """
    model = _task_model(task, model)
    if attention_fn is not None and not callable(attention_fn):
        raise CheckTypeError(f"attention_fn: expected a callable or None; got "
                             f"{type(attention_fn).__name__}.")
    lengths = _lengths(seq_len)
    num = _positive_int("num_sequences", num_sequences)
    nq = _positive_int("num_queries", num_queries)
    seed = check_seed(seed)
    tol = positive_float("tol", tol)
    num_worst = _positive_int("num_worst", num_worst, 0)
    name = _CME_NAME if task == "cme" else _MIX_NAME
    reference = "exact predictive mean" if task == "cme" else "exact posterior"
    if attention_fn is None:
        attention_fn = (library_cme_attention(model) if task == "cme"
                        else ConceptMixtureOracle(model))
    fn = resolve_callable(attention_fn)
    cases: list[WorstCase] = []
    try:
        for i, length in enumerate(lengths):
            batch = model.simulate(num, length, seed=seed + i)
            if task == "cme":
                cases.extend(_cme_cases(fn, model, batch.x, nq, seed + i))
            else:
                cases.extend(_mixture_cases(fn, model, batch.x, seed + i))
    except CandidateError as err:
        return invalid_result(_CHECK, model.name, reference, name, tol, str(err))
    per = np.array([c.value for c in cases])
    statistic = float(per.max())
    passed = bool(statistic <= tol)
    worst = tuple(sorted(cases, key=lambda c: -c.value)[:num_worst])
    context = f"over {num} sequences at each L in {list(lengths)} (seed {seed})"
    hint = ""
    if not passed and 1e-6 < statistic < 1e-3:
        hint = "An error this small suggests float32 arithmetic; compute in float64."
    message = verdict_message(_CHECK, model.name, passed, name, statistic, tol, context,
                              worst, hint)
    return CheckResult(passed, _CHECK, statistic, name, tol, message, worst, per, reference,
                       model.name, False, {"task": task, "lengths": lengths})


def _cme_cases(fn: Callable, model: LinearRegression, x: torch.Tensor, nq: int,
               seed: int) -> list[WorstCase]:
    """One case per sequence: its worst query."""
    p = model.params["p"]
    b, length = int(x.shape[0]), int(x.shape[1])
    gen = torch.Generator().manual_seed(int(seed))
    queries = torch.randn(b, nq, p, generator=gen, dtype=torch.float64)  # (B, Q, p)
    keys, values = x[..., :p].double(), x[..., p:].double()  # (B, L, p), (B, L, 1)
    expected = model.predictive_mean(x, queries)  # (B, Q)
    what = "attention_fn"
    call = (f"{what}(queries {shape_text(queries.shape)}, keys {shape_text(keys.shape)}, "
            f"values {shape_text(values.shape)})")
    try:
        with torch.no_grad():
            out = fn(queries.clone(), keys.clone(), values.clone())
    except Exception as err:  # noqa: BLE001 - a user error becomes a FAILED result
        raise CandidateError(f"{call} raised {type(err).__name__}: {err}") from err
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(np.array(out))
    if not isinstance(out, torch.Tensor):
        raise CandidateError(f"{call} returned {type(out).__name__}; expected a tensor of "
                             f"shape (B, Q, 1) = ({b}, {nq}, 1) or (B, Q) = ({b}, {nq}).")
    if tuple(out.shape) == (b, nq, 1):
        out = out[..., 0]
    if tuple(out.shape) != (b, nq):
        raise CandidateError(f"{call} returned shape {shape_text(out.shape)}; expected "
                             f"(B, Q, 1) = ({b}, {nq}, 1) or (B, Q) = ({b}, {nq}).")
    if out.is_complex() or not out.dtype.is_floating_point:
        raise CandidateError(f"{call} returned dtype {out.dtype}; expected a float tensor.")
    out = out.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(out).all()):
        raise CandidateError(f"{call} returned {int((~torch.isfinite(out)).sum())} NaN/inf "
                             "values; expected finite outputs.")
    err = (out - expected).abs() / (1 + expected.abs())  # (B, Q)
    cases = []
    for s in range(b):
        j = int(err[s].argmax())
        e, g = float(expected[s, j]), float(out[s, j])
        summary = (f"sequence {s} (L={length}), query {fmt(queries[s, j].tolist())}: "
                   f"expected {e:.4g}, got {g:.4g} (error {float(err[s, j]):.3g})")
        cases.append(WorstCase(s, length, float(err[s, j]), f"{length} (key, value) pairs",
                               {"predictive_mean": e}, {"attention": g}, summary))
    return cases


def _mixture_cases(fn: Callable, model: FiniteMixture, x: torch.Tensor,
                   seed: int) -> list[WorstCase]:
    """One case per sequence: the TV distance between exact posterior and readout."""
    b, length = int(x.shape[0]), int(x.shape[1])
    x, mask = model.validate_tokens(x)
    out = call_candidate(fn, x, mask, "attention_fn")
    q = as_posterior(out, model, b, "attention_fn", seed, allow_log=True)
    pp = model.exact_posterior(x, mask).probs.double()
    qq = q.probs.double()
    tv = 0.5 * (pp - qq).abs().sum(-1)  # (B,)
    cases = []
    for s in range(b):
        k = int((pp[s] - qq[s]).abs().argmax())
        e, g = float(pp[s, k]), float(qq[s, k])
        summary = (f"sequence {s} (L={length}): expected P(z={k})={e:.3g}, got {g:.3g} "
                   f"(TV {float(tv[s]):.3g})")
        cases.append(WorstCase(s, length, float(tv[s]), f"{length} tokens",
                               {f"P(z={k})": e, "probs": pp[s].tolist()},
                               {f"P(z={k})": g, "probs": qq[s].tolist()}, summary))
    return cases
