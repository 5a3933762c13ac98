"""Masked-token pretraining and its transfer to a downstream target (P9, P10).

**Condition number (reconstruction, docs/claims.md#p9).** For a finite latent z in {1..K}
with token law ``A_x`` (K x V, rows ``P(x | z=k)``) and target law ``A_y`` (K x C), a
change ``Delta`` of the posterior (``1'Delta = 0``) moves the token predictive by
``A_x' Delta`` and the target predictive by ``A_y' Delta``. With ``U`` an orthonormal
basis (K x (K-1)) of ``{Delta : 1'Delta = 0}``,

    kappa_2 = sigma_max(A_y' U) / sigma_min(A_x' U),

so the downstream excess risk is at most about ``kappa_2`` times what the pretext sees.
``kappa_2`` does not depend on the choice of ``U``. It is ``inf`` when the pretext is
blind to a posterior direction (``sigma_min = 0``, e.g. two classes with identical token
laws); numerically, ``sigma_min <= 1e-12 sigma_max(A_x' U)`` counts as 0, because the
inputs' rounding errors already swamp anything smaller. If the target ignores z
(``sigma_max(A_y' U) = 0``) it is 0.

**Gaussian tokens (our extension).** For ``concept-mixture`` the rows of ``A_x`` are
densities ``N(mu_k, s^2 I)``; we take them as elements of ``L^2(dx)``, whose Gram matrix
is exact, ``G_jk = (4 pi s^2)^(-d/2) exp(-|mu_j - mu_k|^2 / (4 s^2))``, and use
``sigma_min(A_x' U)^2 = lambda_min(U' G U)``. This value is in the units of ``L^2(dx)``
(it scales with ``s^(-d/2)``), so compare it only within one model family.

**Pretexts.** ``"full"``: predict a hidden token from the visible ones (the network's own
token head). ``"coarse"``: predict a coarsened token, ``c(x) = 1[x_j > 0]`` for real
vectors (``j = coarsen``, default 0; Bernoulli head) or ``c(x) = groups[x]`` for word ids
(``groups = coarsen``, default ``x // 2``; categorical head). For 3 concepts on a circle
(the default means) ``P(x_0 > 0 | z)`` is the same for concepts 1 and 2, so the coarse
pretext is blind to the direction separating them (P10), and ``kappa_2 = inf``. Note that
a binary pretext token with K >= 3 always has ``kappa_2 = inf``: one token's predictive
``sum_k pi_k P(c = 1 | k)`` is one number, so it shows at most one of the K - 1
posterior directions; which direction it misses decides whether y suffers.

**Bayes risks.** The pretext Bayes risk is ``-log sum_k pi_k(X_visible) P(c(x_j) | k)``
per hidden token, exact by enumeration. For the full pretext on Gaussian tokens the
network's diagonal-Normal head cannot represent this mixture density, so its pretext
excess risk keeps a floor from the head family alone.

**Readouts.** The downstream excess risk is measured with a probe (:mod:`._probe`) on
the frozen network, read out in one or both of two ways: ``"representation"``, the
pooled ``net.represent(X)``, and ``"predictive"``, the pretext predictive itself
(``net.predict_token`` on the whole set, as log-probabilities or mean and log
variance). The representation may keep information the pretext never asked for (an
encoder can pass the tokens' mean through untrained), so only the predictive readout
is bound by ``kappa_2``; the blind spot of P10 shows there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm
from torch.distributions import constraints

from bayesattn._checks import check_int, length_range
from bayesattn._random import seeded
from bayesattn.inference import AmortizedPosterior, PredictiveHead, TrainConfig, train
from bayesattn.metrics import bootstrap_ci
from bayesattn.models import ExchangeableModel, FiniteMixture

from ._bayes import bayes_risk
from ._probe import fit_probe
from ._sufficiency import (
    COLUMNS,
    PROBES,
    _predictive_features,
    representation_of,
    simulate_sets,
)

__all__ = ["condition_number", "masked_token_transfer", "model_condition_number"]

PRETEXTS = ("full", "coarse")
READOUTS = ("representation", "predictive")
_RTOL = 1e-12


def _matrix(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected a 2-D (K, *) array with K >= 2, got shape "
                         f"{arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite entries, got NaN/inf.")
    return arr


def sum_zero_basis(k: int) -> np.ndarray:
    """Orthonormal basis ``(K, K-1)`` of ``{Delta : 1'Delta = 0}`` (QR of ``[1, I]``)."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(k), np.eye(k)[:, : k - 1]]))
    return q[:, 1:]


def condition_number(A_x: Any, A_y: Any) -> float:  # noqa: N803 (paper notation)
    """MTP transfer condition number ``kappa_2 = sigma_max(A_y'U) / sigma_min(A_x'U)``.

    Reconstruction of paper 1's condition number (see the module docstring), exact in
    float64.

    Args:
        A_x: Token law, shape ``(K, V)``: row k is ``P(x | z=k)``.
        A_y: Target law, shape ``(K, C)``: row k is ``P(y | z=k)``.

    Returns:
        ``kappa_2 >= 0``; ``inf`` when the tokens cannot see some posterior direction
        (``sigma_min(A_x'U) <= 1e-12 sigma_max(A_x'U)``, e.g. two identical rows of
        ``A_x``, or ``V < K - 1``); 0 when ``A_y`` has identical rows.

    Raises:
        ValueError: not 2-D, different K, K < 2, or non-finite entries.
    """
    ax, ay = _matrix(A_x, "A_x"), _matrix(A_y, "A_y")
    if ax.shape[0] != ay.shape[0]:
        raise ValueError(f"A_y: expected {ax.shape[0]} rows (K, as A_x), got {ay.shape[0]}.")
    k = ax.shape[0]
    u = sum_zero_basis(k)
    sx = np.linalg.svd(ax.T @ u, compute_uv=False)
    sx = np.concatenate([sx, np.zeros(k - 1 - sx.size)])  # V < K-1: missing values are 0
    top_y = float(np.linalg.svd(ay.T @ u, compute_uv=False).max())
    if top_y <= _RTOL * max(1.0, float(np.abs(ay).max())):
        return 0.0
    if sx.min() <= _RTOL * sx.max():
        return math.inf
    return top_y / float(sx.min())


@dataclass(frozen=True)
class _Pretext:
    """What the token head predicts, and its exact per-class log-likelihood."""

    transform: Callable[[torch.Tensor], torch.Tensor] | None  # None: the raw tokens
    loglik: Callable[[torch.Tensor], torch.Tensor]  # tokens (B, L, ...) -> (B, L, K)
    table: np.ndarray  # (K, V) categorical law of c(x), or the L2 factor of the densities
    support: Any  # support of the pretext target (head family), None = net's own head


def _check_mixture(model: Any) -> FiniteMixture:
    if not isinstance(model, FiniteMixture):
        raise ValueError(
            f"model: expected a finite mixture with known token laws (concept-mixture, "
            f"unigram-mixture), got {getattr(model, 'name', type(model).__name__)!r}."
        )
    return model


def _pretext(model: FiniteMixture, pretext: str, coarsen: Any) -> _Pretext:
    if pretext not in PRETEXTS:
        raise ValueError(f"pretext: expected one of {PRETEXTS}, got {pretext!r}.")
    params = model.params
    if {"word_probs", "V"} <= set(params):  # unigram-mixture: word ids
        v = model.params["V"]
        probs = np.asarray(model.params["word_probs"], dtype=np.float64)  # (K, V)
        if pretext == "full":
            return _Pretext(None, model.token_loglik, probs, None)
        groups = np.arange(v) // 2 if coarsen is None else np.asarray(coarsen)
        if groups.shape != (v,) or not np.issubdtype(groups.dtype, np.integer) or (
            groups.min() < 0
        ):
            raise ValueError(f"coarsen: expected {v} integer group ids >= 0 (one per word), "
                             f"got {coarsen!r}.")
        merge = np.zeros((v, int(groups.max()) + 1))
        merge[np.arange(v), groups] = 1.0
        table = probs @ merge  # (K, G)
        g = torch.as_tensor(groups)
        log_t = torch.as_tensor(table).log()

        def coarse(x):
            return g.to(x.device)[x.long()]

        return _Pretext(coarse, lambda x: log_t.to(x.device).T[coarse(x)], table,
                        constraints.integer_interval(0, table.shape[1] - 1))
    if not {"means", "scale", "d"} <= set(params):
        raise ValueError(f"model: expected a concept-mixture or unigram-mixture (known token "
                         f"laws), got {model.name!r} with params {sorted(params)}.")
    means = np.asarray(model.params["means"], dtype=np.float64)  # (K, d)
    s, d = model.params["scale"], model.params["d"]
    if pretext == "full":
        sq = ((means[:, None] - means[None]) ** 2).sum(-1)
        gram = (4 * math.pi * s**2) ** (-d / 2) * np.exp(-sq / (4 * s**2))
        lam, vec = np.linalg.eigh(gram)
        return _Pretext(None, model.token_loglik, vec * np.sqrt(lam.clip(min=0.0)), None)
    j = 0 if coarsen is None else coarsen
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < d:
        raise ValueError(f"coarsen: expected a coordinate index in [0, {d}), got {coarsen!r}.")
    # log P(x_j <= 0 | z=k), log P(x_j > 0 | z=k): (K, 2), accurate in the tails
    log_table = np.stack([norm.logcdf(-means[:, j] / s), norm.logcdf(means[:, j] / s)], -1)
    table = np.exp(log_table)
    log_t = torch.as_tensor(log_table)

    def sign(x):
        return (x[..., j] > 0).to(torch.float64)

    def loglik(x):
        lt = log_t.to(x.device)
        return torch.where(sign(x)[..., None] > 0, lt[:, 1], lt[:, 0])  # (B, L, K)

    return _Pretext(sign, loglik, table, constraints.boolean)


def target_table(model: FiniteMixture) -> np.ndarray:
    """``A_y``: the target's distribution given each class, ``(K, C)`` float64 (row k is
    p(y | z = k) over the C target values)."""
    classes = torch.arange(model.params["K"]).unsqueeze(-1)  # (K, 1)
    return model.pyro_target(classes).probs.reshape(len(classes), -1).double().numpy()


def model_condition_number(model: ExchangeableModel, *, pretext: str = "full",
                           coarsen: int | Sequence[int] | None = None) -> float:
    """``kappa_2`` of a finite mixture's (full or coarse) masked-token pretext for its y.

    Args:
        model: ``unigram-mixture`` (categorical tokens: ``A_x = word_probs``, merged by
            ``coarsen`` groups for ``"coarse"``) or ``concept-mixture`` (Gaussian tokens:
            the L^2 Gram construction for ``"full"``, the sign of coordinate ``coarsen``
            for ``"coarse"``); ``A_y`` is the label channel ``P(y | z)``.
        pretext: ``"full"`` or ``"coarse"``.
        coarsen: See the module docstring (None = the defaults).

    Returns:
        ``kappa_2`` as a float (``inf`` for a blind pretext).
    """
    model = _check_mixture(model)
    return condition_number(_pretext(model, pretext, coarsen).table, target_table(model))


def _hide(mask: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Bool ``(B, L)``: a random ``fraction`` (at least one, never all) of the real tokens."""
    gen = torch.Generator().manual_seed(int(seed))
    scores = torch.rand(mask.shape, generator=gen).masked_fill(~mask, 2.0)
    n = mask.sum(-1, keepdim=True)
    k = (fraction * n).round().clamp(min=1).minimum(n - 1)  # (B, 1)
    return (scores.argsort(-1).argsort(-1) < k) & mask


def pretext_bayes_nll(model: FiniteMixture, spec: _Pretext, x: torch.Tensor,
                      visible: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Exact pretext risk per sequence: mean over hidden j of ``-log P(c(x_j) | X_visible)``.

    Args:
        model: The finite mixture.
        spec: The pretext (from ``_pretext``).
        x: Tokens ``(B, L, *token_shape)``.
        visible: Bool ``(B, L)``, the tokens the predictor sees.
        hidden: Bool ``(B, L)``, the tokens it predicts (at least one per sequence).

    Returns:
        float64 ``(B,)``.
    """
    log_pi = model.exact_posterior(x, visible).logits  # (B, K)
    lp = torch.logsumexp(log_pi[:, None, :] + spec.loglik(x), -1)  # (B, L)
    h = hidden.to(torch.float64)
    return -(lp * h).sum(-1) / h.sum(-1)


def _pretext_losses(net, model, spec: _Pretext, x, mask, fraction, seed):
    """Per-sequence pretext NLL of the net and of the exact posterior, (B,) each."""
    hidden = _hide(mask, fraction, seed)
    visible = mask & ~hidden
    target = x if spec.transform is None else spec.transform(x)
    net.eval()
    with torch.no_grad():
        q = net.predict_token(x, visible)
        t = target.float() if target.is_floating_point() else target
        t = t.to(next(net.parameters()).device).transpose(0, 1)  # (L, B, ...)
        lp_net = q.log_prob(t).transpose(0, 1).double().cpu()  # (B, L)
    h = hidden.to(torch.float64)
    net_nll = -(lp_net * h).sum(-1) / h.sum(-1)
    return net_nll, pretext_bayes_nll(model, spec, x, visible, hidden)


def masked_token_transfer(
    model: ExchangeableModel,
    *,
    pretext: str = "full",
    steps: int,
    batch_size: int,
    seq_len: int | tuple[int, int],
    num_train_probe: int,
    num_test: int,
    seed: int = 0,
    encoder: str = "set-transformer",
    encoder_options: dict[str, Any] | None = None,
    mask_fraction: float = 0.25,
    coarsen: int | Sequence[int] | None = None,
    training: TrainConfig | None = None,
    probe: str = "linear",
    probe_hidden: int = 32,
    readouts: Sequence[str] | Mapping[str, str] = ("representation",),
    num_resamples: int = 1000,
    **train_settings: Any,
) -> pd.DataFrame:
    """Pretrain with masked-token prediction, then probe y from the frozen network.

    Args:
        model: ``concept-mixture`` or ``unigram-mixture`` (exact posterior, known token
            laws). P10 uses ``concept-mixture`` with K=3, d=2 and ``pretext="coarse"``.
        pretext: ``"full"`` (predict hidden tokens) or ``"coarse"`` (a coarsened token).
        steps: Pretraining steps (fresh simulations each step: N = steps x batch_size).
        batch_size: Sequences per pretraining step.
        seq_len: An int L >= 2 or a ``(low, high)`` range with low >= 2.
        num_train_probe: Sequences to fit the downstream probe on.
        num_test: Test sequences (pretext and downstream; bootstrap units).
        seed: Seeds the network, the pretraining, the probe/test simulations, the hidden
            tokens and the bootstrap.
        encoder: ``"set-transformer"``, ``"transformer"`` or ``"deepsets"``.
        encoder_options: Extra encoder arguments (e.g. ``{"dim": 32, "num_heads": 2}``).
        mask_fraction: Fraction of each set hidden in pretraining and in the test pretext.
        coarsen: Coarsening of the ``"coarse"`` pretext (module docstring).
        training: The other pretraining settings, a
            :class:`~bayesattn.inference.TrainConfig` (its defaults when None: lr, device,
            weight decay, ...). The study sets its ``steps``, ``batch_size``, ``seq_len``,
            ``seed``, ``mask_fraction`` and the ``"mtp"`` objective itself.
        probe: ``"linear"`` or ``"mlp"`` downstream probe.
        probe_hidden: Hidden width of the MLP probe.
        readouts: What the probe reads (module docstring): names from
            ``("representation", "predictive")``, each probed with ``probe``, or a
            mapping from readout to its own probe, e.g.
            ``{"representation": "linear", "predictive": "mlp"}``. All readouts share
            one pretrained network and the same probe and test sequences.
        num_resamples: Bootstrap resamples of the test sequences.
        **train_settings: Fields of ``TrainConfig`` applied on top of ``training``, e.g.
            ``lr=1e-3, device="cuda"``.

    Returns:
        Tidy frame, one row per metric, columns ``model, pretext, steps, batch_size,
        num_train_probe, L_min, L_max, encoder, readout, probe, metric, value, ci_low,
        ci_high, se, n``. Metrics (nats per sequence; pretext ones per hidden token):
        ``pretext_nll``, ``pretext_bayes_risk``, ``pretext_excess_risk`` and ``kappa2``
        (exact: no interval, ``n = 0``) with ``readout = "pretext"``; per readout,
        ``downstream_nll``, ``bayes_risk`` and ``downstream_excess_risk``. Intervals are
        bootstrap CIs over the ``n`` test sequences.

    Raises:
        ValueError: an unsupported model, pretext, coarsening or size.
    """
    model = _check_mixture(model)
    spec = _pretext(model, pretext, coarsen)
    low, high = length_range(seq_len)
    if low < 2:
        raise ValueError(f"seq_len: masked-token prediction needs >= 2 tokens, got {seq_len!r}.")
    if probe not in PROBES:
        raise ValueError(f"probe: expected one of {PROBES}, got {probe!r}.")
    if isinstance(readouts, str):
        readouts = (readouts,)
    plan = (dict(readouts) if isinstance(readouts, Mapping)
            else {name: probe for name in readouts})
    if not plan or any(r not in READOUTS for r in plan) or any(
            p not in PROBES for p in plan.values()):
        raise ValueError(f"readouts: expected names from {READOUTS} (or a mapping from them "
                         f"to probes in {PROBES}), got {readouts!r}.")
    for label, v in (("num_train_probe", num_train_probe), ("num_test", num_test)):
        check_int(v, label, low=2)
    net = AmortizedPosterior(model, encoder=encoder, encoder_options=encoder_options, seed=seed)
    if spec.support is not None:  # the coarse pretext needs a head for c(x)
        with seeded(int(seed) + 1):
            net.token_head = PredictiveHead(spec.support, (), net.rep_dim)
    config = TrainConfig.make(
        training, **train_settings, steps=steps, batch_size=batch_size, seq_len=seq_len,
        objective="mtp", seed=seed, mask_fraction=mask_fraction,
        token_transform=spec.transform, progress=False)
    train(net, model, config)

    probe_set = simulate_sets(model, num_train_probe, seq_len, seed=seed + 101)
    test = simulate_sets(model, num_test, seq_len, seed=seed + 202)
    pre_net, pre_bayes = _pretext_losses(net, model, spec, test.x, test.mask, mask_fraction,
                                         seed + 303)
    features = _readout_features(net, plan)
    num_classes = target_table(model).shape[1]
    bayes = bayes_risk(model, test.x, test.y, test.mask).numpy()
    keys = {"model": model.name, "pretext": pretext, "steps": int(steps),
            "batch_size": int(batch_size), "num_train_probe": int(num_train_probe),
            "L_min": low, "L_max": high, "encoder": encoder}

    def rows_for(readout: str, probe_name: str, series: dict[str, np.ndarray]) -> list[dict]:
        return [{**keys, "readout": readout, "probe": probe_name, "metric": name,
                 **bootstrap_ci(v, num_resamples=num_resamples, seed=seed).row()}
                for name, v in series.items()]

    rows = rows_for("pretext", probe, {"pretext_nll": pre_net.numpy(),
                                       "pretext_bayes_risk": pre_bayes.numpy(),
                                       "pretext_excess_risk": (pre_net - pre_bayes).numpy()})
    for readout, probe_name in plan.items():
        feats = features[readout]
        down = fit_probe(feats(probe_set), probe_set.y, feats(test), test.y,
                         kind="categorical", seed=seed, num_classes=num_classes,
                         hidden=0 if probe_name == "linear" else int(probe_hidden))
        rows += rows_for(readout, probe_name, {"downstream_nll": down, "bayes_risk": bayes,
                                               "downstream_excess_risk": down - bayes})
    kappa = condition_number(spec.table, target_table(model))
    nan = float("nan")
    rows.append({**keys, "readout": "pretext", "probe": probe, "metric": "kappa2",
                 "value": kappa, "ci_low": nan, "ci_high": nan, "se": nan, "n": 0})
    return pd.DataFrame(rows, columns=[*keys, "readout", "probe", *COLUMNS])


def _readout_features(net: AmortizedPosterior, plan: Mapping[str, str]) -> dict[str, Callable]:
    """Per readout, a function ``batch -> (B, F)`` float64 features of the frozen net."""
    rep = representation_of(net)
    device = next(net.parameters()).device
    net.eval()

    def representation(batch) -> torch.Tensor:
        with torch.no_grad():
            return rep(batch.x, batch.mask)

    def predictive(batch) -> torch.Tensor:
        with torch.no_grad():
            q = net.predict_token(batch.x.to(device), batch.mask.to(device))
            return _predictive_features(q).to("cpu", torch.float64)

    return {name: {"representation": representation, "predictive": predictive}[name]
            for name in plan}
