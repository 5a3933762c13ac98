"""Sufficiency gap: how much a frozen representation loses for predicting y (P1).

Paper 1 (docs/claims.md#p1): the latent posterior ``pi(X) = P(z | X)`` is a sufficient
representation, ``P(y | X) = int P(y | z) pi(X)(dz)``. For a representation
``r(X) in R^d`` we fit a probe for ``y`` on ``r`` (training sequences), and report on
independent test sequences

    excess risk = E[-log p_probe(y | r(X))] - E[-log P(y | X)]   (>= 0 up to noise)

with a percentile-bootstrap interval over test sequences. The excess risk is a
*probe-relative* sufficiency gap: it is ~0 when ``r`` is sufficient **and** the Bayes
predictor is reachable by the probe family; with ``N`` training sequences and ``p``
probe parameters a well-specified probe still pays about ``p / (2 N)`` nats.

Controls (``include_controls=True``):

- ``"control: exact posterior"``: the exact predictive of y pushed back as features:
  ``log P(y = c | X)`` for every class c (categorical y), or the predictive mean and
  log variance (real y). These are functions of ``pi(X)`` alone, chosen so that the
  probe can represent the Bayes predictor exactly (a softmax of normalised
  log-probabilities returns them; a heteroscedastic Gaussian with those moments is the
  predictive when it is Gaussian). This is sufficiency by construction, and that is
  the point of the control: its gap measures the probe's estimation error. For a
  Student-t predictive (normal-inverse-gamma) the Gaussian probe cannot match the
  tails, so the control keeps a small positive gap.
- ``"control: first token"``: the first real token only (featurised as the networks
  see it): not sufficient whenever L > 1, so its gap is > 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import distributions as td
from torch.distributions import constraints

from bayesattn._checks import check_choice, check_int, length_range
from bayesattn.inference import TokenFeaturizer
from bayesattn.metrics import bootstrap_ci
from bayesattn.models import ExchangeableModel, SetBatch

from ._bayes import bayes_risk, exact_target_predictive
from ._probe import fit_probe

__all__ = [
    "Representation",
    "exact_posterior_features",
    "first_token_features",
    "representation_of",
    "simulate_sets",
    "sufficiency_gap",
]

#: A frozen representation: ``(x (B, L, *token_shape), mask (B, L)) -> (B, d)``.
Representation = Callable[[torch.Tensor, torch.Tensor], Any]

COLUMNS = ["metric", "value", "ci_low", "ci_high", "se", "n"]
PROBES = ("linear", "mlp")


def simulate_sets(model: ExchangeableModel, num: int, seq_len: Any, *, seed: int) -> SetBatch:
    """Simulate ``num`` sequences with lengths drawn uniformly in ``seq_len = (low, high)``.

    Args:
        model: The model whose Pyro program simulates.
        num: Number of sequences B >= 1.
        seq_len: An int L or a ``(low, high)`` range.
        seed: Seed of the simulation and of the lengths (local generators).

    Returns:
        A :class:`SetBatch` padded to ``high`` tokens, with a prefix mask.
    """
    low, high = length_range(seq_len)
    batch = model.simulate(int(num), high, seed=int(seed))
    if low == high:
        return batch
    gen = torch.Generator().manual_seed(int(seed) + 1)
    lengths = torch.randint(low, high + 1, (batch.num_sequences,), generator=gen)
    mask = torch.arange(high)[None, :] < lengths[:, None]  # (B, L)
    return SetBatch(batch.z, batch.x, batch.y, mask)


def evaluate_representation(rep: Representation, x: torch.Tensor, mask: torch.Tensor,
                            name: str = "representation", chunk: int = 1024) -> torch.Tensor:
    """Call a frozen representation in chunks; check and return float64 CPU ``(B, d)``.

    Raises:
        ValueError: the output is not ``(B, d)`` with the right B, or holds NaN/inf.
    """
    b = x.shape[0]
    parts = []
    with torch.no_grad():
        for i in range(0, b, chunk):
            out = rep(x[i:i + chunk], mask[i:i + chunk])
            if hasattr(out, "detach"):
                out = out.detach().cpu()
            out = torch.as_tensor(np.asarray(out, dtype=np.float64))
            want = min(chunk, b - i)
            if out.ndim != 2 or out.shape[0] != want:
                raise ValueError(
                    f"{name}: expected a (B, d) output with B = {want} (one row per "
                    f"sequence), got shape {tuple(out.shape)}."
                )
            parts.append(out)
    feats = torch.cat(parts)
    if not bool(torch.isfinite(feats).all()):
        bad = int((~torch.isfinite(feats)).sum())
        raise ValueError(f"{name}: expected finite features, got {bad} NaN/inf of "
                         f"{feats.numel()}.")
    return feats


def representation_of(net: torch.nn.Module) -> Representation:
    """``net.represent`` as a frozen representation (eval mode, no gradients, float64 CPU).

    Args:
        net: An :class:`~bayesattn.inference.AmortizedPosterior` (anything with
            ``represent(x, mask) -> (B, d)``).
    """
    if not callable(getattr(net, "represent", None)):
        raise TypeError(f"net: expected a module with represent(x, mask), got "
                        f"{type(net).__name__}.")

    def rep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                return net.represent(x, mask).detach().to("cpu", torch.float64)
        finally:
            net.train(was_training)

    return rep


def _predictive_features(pred: td.Distribution) -> torch.Tensor:
    """Features from which a probe can rebuild a predictive with batch_shape (B,).

    Categorical: normalised log-probabilities (B, C). Bernoulli: log(1 - p), log p.
    Anything else (Normal, StudentT, Independent, ...): the mean and log variance, each
    flattened over the event, so (B, 2) for a scalar and (B, 2 d) for a d-vector.
    """
    if isinstance(pred, td.Categorical):
        return pred.logits - pred.logits.logsumexp(-1, keepdim=True)
    b = pred.batch_shape[0]
    if isinstance(pred, td.Bernoulli):
        p = pred.probs.reshape(b, -1)
        return torch.cat([torch.log1p(-p), p.log()], -1)
    if isinstance(pred, td.StudentT):
        df = pred.df
        var = torch.where(df > 2, pred.scale**2 * df / (df - 2).clamp(min=1e-12), pred.scale**2)
        mean = pred.loc
    else:
        mean, var = pred.mean, pred.variance
    return torch.cat([mean.reshape(b, -1), var.clamp(min=1e-300).log().reshape(b, -1)], -1)


def exact_posterior_features(model: ExchangeableModel) -> Representation:
    """Control representation built from the exact posterior (see the module docstring).

    Returns:
        A callable ``(x, mask) -> (B, C)`` log predictive probabilities for categorical y,
        or ``(B, 2)`` predictive mean and log variance for real y.
    """
    def rep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _predictive_features(exact_target_predictive(model, x, mask)).to(torch.float64)

    return rep


def first_token_features(model: ExchangeableModel) -> Representation:
    """Control representation: the first real token, featurised (one-hot, counts, values)."""
    featurize = TokenFeaturizer(model)

    def rep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        first = mask.to(torch.int64).argmax(-1)  # index of the first real token, (B,)
        tok = x[torch.arange(x.shape[0]), first].unsqueeze(1)  # (B, 1, *token_shape)
        return featurize(tok)[:, 0].to(torch.float64)  # (B, F)

    return rep


def probe_family(model: ExchangeableModel) -> tuple[str, int | None]:
    """The probe ``kind`` and class count for the model's target y.

    Raises:
        ValueError: a target that is neither categorical/boolean nor real.
    """
    z = model.simulate(1, 1, seed=0).z
    support = model.pyro_target(z.unsqueeze(1)).support
    if tuple(model.target_shape) == ():
        if isinstance(support, constraints.integer_interval):
            return "categorical", int(support.upper_bound) + 1
        if support is constraints.boolean:
            return "categorical", 2
        if support is constraints.real:
            return "gaussian", None
    raise ValueError(
        f"{model.name}: the sufficiency probe handles scalar categorical, boolean or real "
        f"targets; this model's y has support {support} and shape {model.target_shape}. "
        "Use dirichlet-categorical, a finite mixture, normal-mean, linear-regression or "
        "normal-inverse-gamma."
    )


def _rows(values: np.ndarray, keys: dict[str, Any], metric: str, seed: int,
          num_resamples: int) -> dict[str, Any]:
    est = bootstrap_ci(values, num_resamples=num_resamples, seed=seed)
    return {**keys, "metric": metric, **est.row()}


def sufficiency_gap(
    representations: Mapping[str, Representation],
    model: ExchangeableModel,
    *,
    num_train: int,
    num_test: int,
    seq_len: int | tuple[int, int],
    seed: int = 0,
    probe: str = "linear",
    include_controls: bool = True,
    probe_hidden: int = 32,
    l2: float | None = None,
    num_resamples: int = 1000,
) -> pd.DataFrame:
    """Excess risk of a probe on each frozen representation over the exact Bayes risk.

    Args:
        representations: Name -> callable ``(x (B, L, *token_shape), mask (B, L)) ->
            (B, d)`` (a tensor or array); e.g. ``{"net": representation_of(net)}``.
            May be empty when ``include_controls`` is True.
        model: A model with an exact posterior and a categorical, boolean or real y.
        num_train: Probe training sequences (>= 2).
        num_test: Test sequences (>= 2); the bootstrap resamples these.
        seq_len: An int L, or ``(low, high)``: lengths drawn uniformly per sequence.
        seed: Seeds the simulations (train: ``seed``, test: ``seed + 1``), the MLP
            probe and the bootstrap.
        probe: ``"linear"`` (multinomial logistic / linear heteroscedastic Gaussian) or
            ``"mlp"`` (one tanh hidden layer of ``probe_hidden`` units).
        include_controls: Add the exact-posterior and first-token controls.
        probe_hidden: Hidden width of the MLP probe.
        l2: Ridge penalty of the probe (None = the probe's default, see ``fit_probe``).
        num_resamples: Bootstrap resamples of the test sequences.

    Returns:
        Tidy frame, one row per (representation, metric) with columns
        ``representation, model, L_min, L_max, num_train, probe, metric, value, ci_low,
        ci_high, se, n``; metrics ``probe_nll``, ``bayes_risk`` and ``excess_risk``
        (per-sequence ``probe_nll - bayes_risk``, averaged over the ``n`` test
        sequences), all in nats per sequence.

    Raises:
        ValueError: bad sizes, names, probe, or a representation whose output has the
            wrong batch size or non-finite values.
    """
    if not isinstance(representations, Mapping):
        raise TypeError(f"representations: expected a dict name -> callable, got "
                        f"{type(representations).__name__}.")
    for label, v in (("num_train", num_train), ("num_test", num_test)):
        check_int(v, label, low=2)
    check_choice(probe, "probe", PROBES)
    low, high = length_range(seq_len)
    kind, num_classes = probe_family(model)
    reps = dict(representations)
    for name, fn in reps.items():
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(f"representations[{name!r}]: expected a str name and a callable "
                            f"(x, mask) -> (B, d), got {type(fn).__name__}.")
    if include_controls:
        controls = {"control: exact posterior": exact_posterior_features(model),
                    "control: first token": first_token_features(model)}
        clash = sorted(set(reps) & set(controls))
        if clash:
            raise ValueError(f"representations: names {clash} are reserved for the controls.")
        reps.update(controls)
    if not reps:
        raise ValueError("representations: got none and include_controls=False.")

    train = simulate_sets(model, num_train, seq_len, seed=seed)
    test = simulate_sets(model, num_test, seq_len, seed=seed + 1)
    bayes = bayes_risk(model, test.x, test.y, test.mask).numpy()
    hidden = 0 if probe == "linear" else int(probe_hidden)
    keys = {"model": model.name, "L_min": low, "L_max": high, "num_train": int(num_train),
            "probe": probe}
    rows = []
    for name, fn in reps.items():
        f_tr = evaluate_representation(fn, train.x, train.mask, f"representations[{name!r}]")
        f_te = evaluate_representation(fn, test.x, test.mask, f"representations[{name!r}]")
        if f_tr.shape[1] != f_te.shape[1]:
            raise ValueError(f"representations[{name!r}]: width changed between calls "
                             f"({f_tr.shape[1]} vs {f_te.shape[1]}).")
        nll = fit_probe(f_tr, train.y, f_te, test.y, kind=kind, seed=seed, l2=l2,
                        hidden=hidden, num_classes=num_classes)
        k = {"representation": name, **keys}
        rows.append(_rows(nll, k, "probe_nll", seed, num_resamples))
        rows.append(_rows(bayes, k, "bayes_risk", seed, num_resamples))
        rows.append(_rows(nll - bayes, k, "excess_risk", seed, num_resamples))
    return pd.DataFrame(rows, columns=["representation", *keys, *COLUMNS])
