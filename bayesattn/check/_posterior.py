"""``check_posterior`` / ``assert_posterior_close``: is a candidate q(z | x) the posterior?"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import cdist
from torch.distributions import Categorical, Distribution

from bayesattn._random import seeded
from bayesattn.inference import Reference, reference_posterior
from bayesattn.metrics import bootstrap_ci, c2st, energy_distance, kl_per_dataset, moments
from bayesattn.models import ExchangeableModel

from ._args import (
    CheckArgumentError,
    CheckTypeError,
    as_model,
    check_seed,
    positive_float,
    positive_int,
    seq_len_range,
    simulate,
)
from ._candidate import CandidateError, as_posterior, call_candidate, resolve_callable
from ._result import CheckResult, WorstCase, fmt, invalid_result, verdict_message

__all__ = ["assert_posterior_close", "check_posterior"]

SAMPLE_STATISTICS = ("energy", "c2st")
_DEFAULT_TOL = {"kl": 0.05, "energy": 0.01, "c2st": 0.1}
_CHECK = "check_posterior"
_NAMES = {
    "kl": "mean KL(exact || candidate) [nats]",
    "energy": "mean energy coefficient D / (2 E|X - Y|)",
    "c2st": "mean C2ST accuracy - 0.5",
}
_UNIT = {"kl": "KL", "energy": "energy coefficient", "c2st": "C2ST accuracy - 0.5"}
_MAX_DRAWS = {"energy": 1000, "c2st": 500}


def _tokens_summary(x: torch.Tensor, mask: torch.Tensor) -> str:
    """Short text for one sequence's real tokens: the first three and their mean."""
    real = x[mask]  # (n, *token_shape)
    first = ", ".join(fmt(t.tolist(), max_items=3) for t in real[:3])
    more = ", ..." if real.shape[0] > 3 else ""
    mean = fmt(real.double().mean(0).tolist(), max_items=3)
    return f"x = [{first}{more}], token mean {mean}"


def _moments(dist: Distribution, seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of each dataset's distribution, (B, D) float64 (exact or by draws).

    Raises:
        CandidateError: neither the moments nor draws can be had from ``dist``.
    """
    b = int(dist.batch_shape[0])
    try:
        mean, var = moments(dist, num_samples=n, seed=seed)
    except Exception as err:  # noqa: BLE001
        raise CandidateError(f"sampling from the {type(dist).__name__} raised "
                             f"{type(err).__name__}: {err}") from err
    mean, sd = mean.reshape(b, -1).cpu(), var.clamp_min(0).sqrt().reshape(b, -1).cpu()
    return mean.numpy(), sd.numpy()


def _worst(per: np.ndarray, x: torch.Tensor, mask: torch.Tensor, expected: Callable,
           got: Callable, describe: Callable, unit: str, num: int) -> tuple[WorstCase, ...]:
    """The ``num`` sequences with the largest per-sequence statistic (inf first, nan last)."""
    order = np.argsort(-np.nan_to_num(per, nan=-np.inf), kind="stable")[:num]
    out = []
    for b in order:
        b = int(b)
        length = int(mask[b].sum())
        exp, gt = expected(b), got(b)
        summary = f"sequence {b} (L={length}): {describe(exp, gt)} ({unit} {per[b]:.3g})"
        out.append(WorstCase(b, length, float(per[b]), _tokens_summary(x[b], mask[b]), exp, gt,
                             summary))
    return tuple(out)


def _prob(v: float) -> str:
    """0.81 for ordinary probabilities, 0.000432 / 0.99957 near 0 and 1."""
    return f"{v:.2f}" if 0.01 <= v <= 0.99 else f"{v:.3g}" if v < 0.5 else f"{v:.5g}"


def _discrete_views(p: Categorical, q: Categorical):
    pp, qq = p.probs.detach().double().cpu().numpy(), q.probs.detach().double().cpu().numpy()

    def pick(b: int) -> int:
        missing = (qq[b] == 0) & (pp[b] > 0)  # where KL(exact || q) is infinite
        if missing.any():
            return int(np.argmax(np.where(missing, pp[b], -1.0)))
        return int(np.argmax(np.abs(pp[b] - qq[b])))

    def expected(b: int) -> dict:
        return {f"P(z={pick(b)})": float(pp[b, pick(b)]), "probs": pp[b].tolist()}

    def got(b: int) -> dict:
        return {f"P(z={pick(b)})": float(qq[b, pick(b)]), "probs": qq[b].tolist()}

    def describe(exp: dict, gt: dict) -> str:
        key = next(iter(exp))
        return f"expected {key}={_prob(exp[key])}, got {_prob(gt[key])}"

    return expected, got, describe


def _moment_views(p_mean, p_sd, q_mean, q_sd):
    def expected(b: int) -> dict:
        return {"mean": p_mean[b].tolist(), "sd": p_sd[b].tolist()}

    def got(b: int) -> dict:
        return {"mean": q_mean[b].tolist(), "sd": q_sd[b].tolist()}

    def describe(exp: dict, gt: dict) -> str:
        return (f"expected mean {fmt(exp['mean'])} sd {fmt(exp['sd'])}, got mean "
                f"{fmt(gt['mean'])} sd {fmt(gt['sd'])}")

    return expected, got, describe


def _hint(worst: tuple[WorstCase, ...], discrete: bool) -> str:
    if not worst or discrete:
        return ""
    w = worst[0]
    es, gs = np.asarray(w.expected["sd"]), np.asarray(w.got["sd"])
    em, gm = np.asarray(w.expected["mean"]), np.asarray(w.got["mean"])
    if np.all(gs > 1.5 * es) and np.all(np.abs(gm - em) < es):
        return "The candidate is over-dispersed (too wide); check its variance."
    if np.all(gs < es / 1.5):
        return "The candidate is over-confident (too narrow); check its variance."
    if np.any(np.abs(gm - em) > es):
        return "The candidate's mean is off by more than one posterior sd."
    return ""


def _resolve_reference(model, reference, num_sequences, seq_len, seed, options):
    """(x, mask, exact Distribution or None, Reference or None)."""
    if reference is not None:
        if not isinstance(reference, Reference):
            raise CheckTypeError(
                "reference: expected a bayesattn.inference.Reference (from "
                f"reference_posterior) or None; got {type(reference).__name__}."
            )
        if reference.model is not model and reference.model.name != model.name:
            raise CheckArgumentError(
                f"reference: it was built for {reference.model.name!r}, not {model.name!r}."
            )
        return reference.x, reference.mask, reference.distribution, reference
    num = positive_int("num_sequences", num_sequences)
    low, high = seq_len_range(seq_len)
    batch = simulate(model, num, low, high, seed)
    x, mask = model.validate_tokens(batch.x, batch.mask)
    if model.has_exact_posterior and options.get("method", "auto") in ("auto", "exact"):
        return x, mask, model.exact_posterior(x, mask), None
    opts = {"method": "nuts", "num_samples": 500, "num_warmup": 500, "num_chains": 4,
            **options}
    ref = reference_posterior(model, x, mask=mask, seed=seed, **opts)
    return x, mask, ref.distribution, ref


def check_posterior(
    candidate: Callable[..., Any],
    model: ExchangeableModel | str,
    *,
    num_sequences: int = 32,
    seq_len: int | tuple[int, int] = 16,
    seed: int = 0,
    tol: float | None = None,
    reference: Reference | None = None,
    reference_options: Mapping[str, Any] | None = None,
    num_mc_samples: int = 2000,
    num_worst: int = 3,
    sample_statistic: str = "energy",
) -> CheckResult:
    """Compare a candidate posterior q(z | x) with the model's reference posterior.

    The check simulates ``num_sequences`` sequences from the model (Pyro program,
    seeded), asks the candidate for its posterior of each, and compares it with the
    ground truth:

    * **exact reference** (the model has ``exact_posterior``): the statistic is the mean
      over sequences of KL(exact || candidate) in nats (closed form when torch has one
      for the pair, Monte Carlo with ``num_mc_samples`` draws from the exact posterior
      otherwise); it passes when ``statistic <= tol`` (default 0.05 nats).
    * **MCMC reference** (no closed form: NumPyro NUTS, gated on convergence): a
      sample statistic per sequence between up to 1000 reference and candidate draws,
      averaged over sequences. ``sample_statistic="energy"`` (default, fast): the energy
      coefficient ``D / (2 E|X - Y|)`` (Rizzo-Szekely; D the energy distance of
      :func:`bayesattn.metrics.energy_distance`), scale-free in [0, 1), 0 when the laws
      agree; the default ``tol`` 0.01 flags roughly a 0.25-sd mean shift or a 1.4x sd
      error in 2-D. ``"c2st"``: held-out accuracy of a classifier telling the draws apart,
      minus 0.5 (500 draws each; slower), default ``tol`` 0.1.

    A candidate that raises or returns something unusable (not a Distribution, wrong
    batch or event shape, NaN/inf, negative or unnormalised probabilities, draws outside
    the latent support) gives a FAILED result whose ``message`` says what was expected
    and what was received; it never raises.

    Args:
        candidate: A function ``x -> posterior`` or ``(x, mask) -> posterior`` where ``x``
            is a float64/long tensor ``(B, L, *token_shape)`` and ``mask`` a bool ``(B, L)``
            tensor (True = real token). It returns a ``torch.distributions.Distribution``
            with batch_shape ``(B,)`` and event_shape ``model.latent_shape``; for a
            discrete z in {0..K-1} a ``Categorical`` or probabilities ``(B, K)``. A
            ``torch.nn.Module`` with a ``posterior`` method (``AmortizedPosterior``,
            ``ConceptMixtureOracle``) is used through that method.
        model: A model instance or a registry name (``bayesattn.models.names()``).
        num_sequences: B, the number of simulated sequences (>= 1).
        seq_len: L, an int >= 1, or ``(low, high)``: lengths drawn uniformly per sequence,
            padded to ``high`` with a mask (the candidate must then accept ``mask``).
        seed: Seeds the simulation, Monte Carlo draws and the reference (the global
            torch RNG is left untouched).
        tol: Pass threshold on the statistic (> 0); None = 0.05 nats (exact reference),
            0.01 (energy coefficient) or 0.1 (C2ST) for an MCMC reference.
        reference: A prebuilt :class:`~bayesattn.inference.Reference` to compare with
            (then ``num_sequences`` and ``seq_len`` are ignored and its tokens are used);
            handy to reuse one NUTS run for several candidates.
        reference_options: Keyword arguments for
            :func:`~bayesattn.inference.reference_posterior` when an MCMC reference is
            built (default ``num_samples=500, num_warmup=500, num_chains=4``).
        num_mc_samples: Monte Carlo draws per sequence when no closed-form KL exists, and
            the most draws per side for the sample statistics (>= 10).
        num_worst: How many worst sequences to report.
        sample_statistic: ``"energy"`` or ``"c2st"``, used with an MCMC reference only.

    Returns:
        A :class:`CheckResult`; ``bool(result)`` is ``result.passed``.

    Raises:
        ValueError: unknown model name, ``num_sequences``/``seq_len`` < 1, ``tol`` <= 0,
            unknown ``sample_statistic``.
        TypeError: a non-callable candidate or arguments of the wrong type.
        bayesattn.inference.UnconvergedReferenceError: the NUTS reference did not pass
            its convergence gate (pass ``reference_options={"num_samples": ...}`` or
            ``{"allow_unconverged": True}``).

    Examples:
        >>> from bayesattn import models
        >>> from bayesattn.check import check_posterior
        >>> m = models.get("beta-bernoulli")
        >>> check_posterior(m.exact_posterior, m, num_sequences=8, seq_len=4).passed
        True
        >>> import torch
        >>> def prior(x):  # ignores the tokens: the Beta(1, 1) prior for every sequence
        ...     ones = torch.ones(x.shape[0], dtype=torch.float64)
        ...     return torch.distributions.Beta(ones, ones)
        >>> result = check_posterior(prior, "beta-bernoulli", num_sequences=8, seq_len=16)
        >>> bool(result), result.message.startswith("check_posterior FAILED")
        (False, True)
    """
    model = as_model(model)
    if not callable(candidate):
        raise CheckTypeError(
            f"candidate: expected a function x -> posterior (or (x, mask) -> posterior); got "
            f"{type(candidate).__name__}. For a fixed distribution use lambda x: dist."
        )
    seed = check_seed(seed)
    if tol is not None:
        tol = positive_float("tol", tol)
    num_mc_samples = positive_int("num_mc_samples", num_mc_samples, 10)
    num_worst = positive_int("num_worst", num_worst, 0)
    if sample_statistic not in SAMPLE_STATISTICS:
        raise CheckArgumentError(f"sample_statistic: expected one of {SAMPLE_STATISTICS}; got "
                                 f"{sample_statistic!r}.")
    options = dict(reference_options or {})
    clash = sorted(set(options) & {"seed", "mask", "x", "model"})
    if clash:
        raise CheckArgumentError(
            f"reference_options: {clash} are set by check_posterior itself; pass seed= to "
            "check_posterior and leave the others out."
        )
    x, mask, exact, ref = _resolve_reference(model, reference, num_sequences, seq_len, seed,
                                             options)
    batch = int(x.shape[0])
    is_exact = exact is not None
    kind = "kl" if is_exact else sample_statistic
    name = _NAMES[kind]
    threshold = tol if tol is not None else _DEFAULT_TOL[kind]
    ref_kind = "exact" if is_exact else ref.method
    low, high = int(mask.sum(-1).min()), int(mask.sum(-1).max())
    lengths = f"L={low}" if low == high else f"L in [{low}, {high}]"
    context = f"over {batch} sequences ({lengths}, seed {seed})"
    what = "candidate"
    try:
        out = call_candidate(resolve_callable(candidate), x, mask, what)
        q = as_posterior(out, model, batch, what, seed)
        if is_exact:
            per, worst = _compare_exact(exact, q, x, mask, model, num_mc_samples, seed,
                                        num_worst)
        else:
            per, worst = _compare_draws(ref, q, x, mask, num_mc_samples, seed, num_worst,
                                        sample_statistic)
    except CandidateError as err:
        return invalid_result(_CHECK, model.name, ref_kind, name, threshold, str(err))
    statistic = float(np.mean(per))
    passed = bool(statistic <= threshold)
    details: dict[str, Any] = {"num_sequences": batch, "seq_len": (low, high), "seed": seed}
    if np.isfinite(per).all() and batch > 1:
        est = bootstrap_ci(per, seed=seed)
        details.update(ci_low=est.ci_low, ci_high=est.ci_high)
    if ref is not None:
        details["diagnostics"] = ref.diagnostics
    hint = _hint(worst, model.latent_is_discrete) if np.isfinite(per).all() else (
        "The KL is infinite: the candidate gives zero density to values of z that the "
        "exact posterior supports.")
    message = verdict_message(_CHECK, model.name, passed, name, statistic, threshold, context,
                              worst, hint)
    return CheckResult(passed, _CHECK, statistic, name, threshold, message, worst, per,
                       ref_kind, model.name, False, details)


def _compare_exact(exact: Distribution, q: Distribution, x, mask, model, num_mc: int, seed: int,
                   num_worst: int):
    """Per-sequence KL(exact || q) and the worst cases."""
    try:
        per = kl_per_dataset(exact, q, seed=seed, fallback_samples=num_mc)
    except (ValueError, RuntimeError, TypeError) as err:
        raise CandidateError(
            f"could not compare the candidate's {type(q).__name__} with the exact "
            f"{type(exact).__name__}: {err}"
        ) from err
    per = np.where(per < 0, np.maximum(per, 0.0), per)  # MC noise / round-off below 0
    if isinstance(q, Categorical):
        views = _discrete_views(exact, q)
    else:
        views = _moment_views(*_moments(exact, seed), *_moments(q, seed + 1))
    return per, _worst(per, x, mask, *views, "KL", num_worst)


def _energy_coefficient(p: np.ndarray, q: np.ndarray) -> float:
    """Energy coefficient ``D / (2 E|X - Y|)`` in [0, 1): 0 when the draws share a law."""
    d = float(energy_distance(p, q).value)
    cross = float(cdist(p, q).mean())
    return max(d, 0.0) / (2.0 * cross) if cross > 0 else 0.0


def _compare_draws(ref: Reference, q: Distribution, x, mask, num_mc: int, seed: int,
                   num_worst: int, statistic: str):
    """Per-sequence sample statistic between reference and candidate draws."""
    s = int(ref.draws().shape[0])
    n = min(s, num_mc, _MAX_DRAWS[statistic])
    p_draws = ref.sample(n, seed=seed).double()  # (n, B, *latent)
    b = int(p_draws.shape[1])
    try:
        with seeded(seed), torch.no_grad():
            q_draws = q.sample((n,)).detach().to("cpu", torch.float64)  # (n, B, *latent)
    except Exception as err:  # noqa: BLE001
        raise CandidateError(f"sampling from the candidate raised {type(err).__name__}: "
                             f"{err}") from err
    p_flat, q_flat = p_draws.reshape(n, b, -1).numpy(), q_draws.reshape(n, b, -1).numpy()
    if statistic == "energy":
        per = np.array([_energy_coefficient(p_flat[:, i], q_flat[:, i]) for i in range(b)])
    else:
        per = np.array([float(c2st(p_flat[:, i], q_flat[:, i], seed=seed, max_iter=200).value)
                        - 0.5 for i in range(b)])
    all_draws = ref.draws().double().reshape(s, b, -1).numpy()
    p_mean, p_sd = all_draws.mean(0), all_draws.std(0, ddof=1)
    q_mean, q_sd = _moments(q, seed + 1)
    views = _moment_views(p_mean, p_sd, q_mean, q_sd)
    return per, _worst(per, x, mask, *views, _UNIT[statistic], num_worst)


def assert_posterior_close(candidate: Callable[..., Any], model: ExchangeableModel | str,
                           **kwargs: Any) -> CheckResult:
    """:func:`check_posterior` that raises ``AssertionError`` with its message on failure.

    Args:
        candidate: As in :func:`check_posterior`.
        model: As in :func:`check_posterior`.
        **kwargs: Any keyword argument of :func:`check_posterior` (``num_sequences``,
            ``seq_len``, ``seed``, ``tol``, ...).

    Returns:
        The passing :class:`CheckResult`.

    Raises:
        AssertionError: the check failed (the message names the statistic, the tolerance
            and the worst sequences, or what was wrong with the candidate's output).

    Examples:
        >>> from bayesattn import models
        >>> from bayesattn.check import assert_posterior_close
        >>> m = models.get("normal-mean")
        >>> assert_posterior_close(m.exact_posterior, m, num_sequences=4, seq_len=8).passed
        True
    """
    result = check_posterior(candidate, model, **kwargs)
    if not result.passed:
        raise AssertionError(result.message)
    return result
