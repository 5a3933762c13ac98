"""1-D denoising with one hand-set attention layer (E1): which kernel filters best?

No training. Tokens are noisy scalars y_i = u_i + eta_i at positions i = 0 .. L-1 from
two signal families with an exact posterior mean: ``change-point`` (a piecewise-constant
sticky-HMM signal, E[u | y] by forward-backward) and ``gp-signal`` (a smooth
Gaussian-process signal, E[u | y] = W y with W = S (S + s^2 I)^-1). Every filter is one
self-attention layer with W_Q = W_K = W_V = I read as a Nadaraya-Watson smoother
u_hat = A y, A = softmax over j of the logits l_ij:

- ``spatial``: l_ij = -(i - j)^2 / (2 sigma^2) (a Gaussian blur, data independent);
- ``range``: l_ij = -(y_i - y_j)^2 / (2 h^2) (non-local means on the token values);
- ``sa+pe``: the entangled self-attention of a transformer with absolute positional
  encoding. The scalar token is embedded as y_i c with c = (1, .., 1) / sqrt(d) and the
  d-dimensional sinusoidal encoding p_i (``bayesattn.inference.sinusoidal_encoding``,
  d = ``pe_dim``) is added with weight omega: x_i = y_i c + omega p_i, and
  l_ij = beta x_i . x_j / sqrt(d) = beta (y_i y_j + omega y_i c.p_j + omega y_j c.p_i +
  omega^2 p_i.p_j) / sqrt(d). The cross terms entangle content and position; the content
  term is a dot product (not a distance), so large-|y| keys soak up weight. The layer's
  output is read out on the content (the value of token j is y_j);
- ``bilateral``: the product of the spatial and range kernels, l = spatial + range;
- ``bilateral+twicing``: (2A - A^2) y with the bilateral A;
- ``spatial+twicing``: (2A - A^2) y with the spatial A, a control: it tells the range
  factor's gain from the gain of twicing itself.

Bandwidths (sigma, h; beta and omega for sa+pe; the pair (sigma, h) for the bilateral
filters, an infinite bandwidth switching that factor off) are chosen per filter and
family by minimising the mean MSE to the clean signal over a separate tuning set of
sequences (a small grid). On the test sequences: MSE and PSNR to the clean signal u
(PSNR = 10 log10(R^2 / MSE) with R the family's nominal dynamic range: max - min of the
change-point levels, 4 x the GP amplitude) and MSE to the exact posterior mean, each
with a 95% bootstrap CI over sequences, plus the exact posterior mean itself as the
reference row. Paired bootstrap CIs of MSE(bilateral-type) - MSE(other) decide E1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn.runner import (
    Experiment,
    Stage,
    StageOutput,
    Verdict,
    ci_numbers,
    ci_text,
    pick,
    register,
)
from bayesattn.runner import stage_frame as _frame

FAMILIES = ("change-point", "gp-signal")
FILTERS = ("spatial", "spatial+twicing", "range", "sa+pe", "bilateral", "bilateral+twicing")
BILATERAL = ("bilateral", "bilateral+twicing")
#: non-bilateral filters; spatial+twicing is the control that separates the range factor's
#: gain from twicing's
OTHERS = ("spatial", "spatial+twicing", "range", "sa+pe")
REFERENCE = "posterior-mean"
METRICS = ("mse_clean", "psnr", "mse_posterior")
#: the tuned parameters of each filter (columns of the tune stage)
FILTER_PARAMS = {"spatial": ("sigma",), "spatial+twicing": ("sigma",), "range": ("h",),
                 "sa+pe": ("beta", "omega"), "bilateral": ("sigma", "h"),
                 "bilateral+twicing": ("sigma", "h")}

#: ``None`` in a bandwidth grid is an infinite bandwidth (that kernel factor switched off)
_INF = None
_SPATIAL = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, _INF]
_RANGE = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, _INF]
_FAMILY_PARAMS = {"change-point": {"K": 3, "stay": 0.95, "noise_scale": 0.75},
                  "gp-signal": {"kernel": "rbf", "lengthscale": 4.0, "amplitude": 1.0,
                                "noise_scale": 0.5}}

PRESETS = {
    "smoke": {"L": 32, "tune_sequences": 16, "test_sequences": 24, "families": _FAMILY_PARAMS,
              "spatial_grid": [0.5, 1.0, 2.0, 4.0, _INF], "range_grid": [0.2, 0.5, 1.0, _INF],
              "sa_beta_grid": [1.0, 4.0, 16.0], "sa_omega_grid": [0.5, 1.0, 2.0],
              "pe_dim": 8, "pe_base": 10000.0, "num_resamples": 100,
              "posterior_sequences": 2, "posterior_draws": 50},
    "quick": {"L": 64, "tune_sequences": 64, "test_sequences": 256, "families": _FAMILY_PARAMS,
              "spatial_grid": _SPATIAL, "range_grid": _RANGE,
              "sa_beta_grid": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
              "sa_omega_grid": [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0],
              "pe_dim": 8, "pe_base": 10000.0, "num_resamples": 1000,
              "posterior_sequences": 8, "posterior_draws": 400},
    "full": {"L": 128, "tune_sequences": 128, "test_sequences": 1024,
             "families": _FAMILY_PARAMS,
             "spatial_grid": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, _INF],
             "range_grid": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, _INF],
             "sa_beta_grid": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
             "sa_omega_grid": [0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
             "pe_dim": 8, "pe_base": 10000.0, "num_resamples": 2000,
             "posterior_sequences": 16, "posterior_draws": 1000},
}


# ----------------------------------------------------------------------------- maths
def family_model(family: str, params: dict):
    from bayesattn import models

    return models.get_sequence(family, **params)


def dynamic_range(family: str, model) -> float:
    """Nominal peak-to-peak range R of the clean signal (the PSNR peak)."""
    if family == "change-point":
        mu = np.asarray(model.params["level_means"], dtype=np.float64)
        return float(mu.max() - mu.min()) if mu.size > 1 else 1.0
    return 4.0 * float(model.params["amplitude"])


def positional_encoding(L: int, dim: int, base: float) -> np.ndarray:
    """Sinusoidal absolute encoding of positions 0 .. L-1, ``(L, dim)`` float64."""
    import torch

    from bayesattn.inference import sinusoidal_encoding

    pos = torch.arange(L, dtype=torch.float64)[None]
    return sinusoidal_encoding(pos, dim, base)[0].numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(-1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(-1, keepdims=True)


def _spatial_logits(L: int, sigma: float) -> np.ndarray:
    if math.isinf(sigma):
        return np.zeros((L, L))
    i = np.arange(L, dtype=np.float64)
    return -((i[:, None] - i[None, :]) ** 2) / (2.0 * sigma**2)


def _range_logits(y: np.ndarray, h: float) -> np.ndarray:
    if math.isinf(h):
        return np.zeros(y.shape + y.shape[-1:])
    return -((y[..., :, None] - y[..., None, :]) ** 2) / (2.0 * h**2)


def sa_pe_logits(y: np.ndarray, beta: float, omega: float, pe: np.ndarray) -> np.ndarray:
    """Entangled SA+PE logits beta x_i.x_j / sqrt(d), x_i = y_i c + omega p_i, ``(n, L, L)``."""
    d = pe.shape[-1]
    c = np.full(d, 1.0 / math.sqrt(d))
    x = y[..., None] * c + omega * pe  # (n, L, d)
    return beta * (x @ np.swapaxes(x, -1, -2)) / math.sqrt(d)


def weights(name: str, y: np.ndarray, theta: dict, pe: np.ndarray | None = None) -> np.ndarray:
    """Row-stochastic attention matrices ``(n, L, L)`` of filter ``name`` on tokens ``y (n, L)``."""
    y = np.asarray(y, dtype=np.float64)
    n, L = y.shape
    if name in ("spatial", "spatial+twicing"):
        return np.broadcast_to(_softmax(_spatial_logits(L, theta["sigma"])), (n, L, L))
    if name == "range":
        return _softmax(_range_logits(y, theta["h"]))
    if name in BILATERAL:
        return _softmax(_spatial_logits(L, theta["sigma"]) + _range_logits(y, theta["h"]))
    if name == "sa+pe":
        if pe is None:
            raise ValueError("the sa+pe filter needs a positional encoding pe (L, d).")
        return _softmax(sa_pe_logits(y, theta["beta"], theta["omega"], pe))
    raise ValueError(f"unknown filter {name!r}; expected one of {FILTERS}.")


def apply_filter(name: str, y: np.ndarray, theta: dict,
                 pe: np.ndarray | None = None) -> np.ndarray:
    """One layer of filter ``name``: ``A y`` (``(2A - A^2) y`` for the ``+twicing`` ones)."""
    A = weights(name, y, theta, pe)
    ay = np.einsum("nij,nj->ni", A, y)
    if name.endswith("+twicing"):
        return 2.0 * ay - np.einsum("nij,nj->ni", A, ay)
    return ay


def _bw(value) -> float:
    """A grid bandwidth as a float (``None`` = infinite)."""
    return math.inf if value is None else float(value)


def grid(name: str, p: dict) -> list[dict]:
    """The tuning grid of filter ``name`` from the preset ``p`` (``None`` = infinite)."""
    if name in ("spatial", "spatial+twicing"):
        return [{"sigma": _bw(s)} for s in p["spatial_grid"]]
    if name == "range":
        return [{"h": _bw(h)} for h in p["range_grid"]]
    if name == "sa+pe":
        return [{"beta": float(b), "omega": float(w)}
                for b in p["sa_beta_grid"] for w in p["sa_omega_grid"]]
    if name in BILATERAL:
        return [{"sigma": _bw(s), "h": _bw(h)}
                for s in p["spatial_grid"] for h in p["range_grid"]]
    raise ValueError(f"unknown filter {name!r}; expected one of {FILTERS}.")


def _simulate(family: str, model, n: int, L: int, seed: int):
    """Clean ``u``, noisy ``y`` and exact posterior mean, each ``(n, L)`` float64, + batch."""
    batch = model.simulate(n, L, seed=seed)
    post = model.exact_posterior(batch.x)
    pm = post.signal_mean if family == "change-point" else post.mean
    return (batch.y.double().numpy(), batch.x.double().numpy(), pm.double().numpy(),
            batch, post)


# ----------------------------------------------------------------------------- stages
def _tune(ctx) -> pd.DataFrame:
    p = ctx.params
    L = int(p["L"])
    pe = positional_encoding(L, int(p["pe_dim"]), float(p["pe_base"]))
    rows = []
    for family in FAMILIES:
        model = family_model(family, p["families"][family])
        u, y, _, _, _ = _simulate(family, model, int(p["tune_sequences"]), L,
                                  ctx.seed_for("tune", family))
        for name in FILTERS:
            cand = grid(name, p)
            mse = [float(((apply_filter(name, y, th, pe) - u) ** 2).mean()) for th in cand]
            best = int(np.argmin(mse))
            for k, (th, m) in enumerate(zip(cand, mse, strict=True)):
                rows.append({"family": family, "filter": name, **th, "metric": "mse_tune",
                             "value": m, "n": len(u), "chosen": k == best})
    return pd.DataFrame(rows)


def chosen_params(tune: pd.DataFrame, family: str, name: str) -> dict:
    """The grid point chosen on the tuning set for ``(family, filter)``."""
    row = tune[(tune["family"] == family) & (tune["filter"] == name)
               & tune["chosen"].astype(bool)].iloc[0]
    return {k: float(row[k]) for k in FILTER_PARAMS[name]}


def _evaluate(ctx) -> StageOutput:
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    L = int(p["L"])
    pe = positional_encoding(L, int(p["pe_dim"]), float(p["pe_base"]))
    tune = ctx.results["tune"]
    rows, examples, artifacts = [], [], {}
    for family in FAMILIES:
        model = family_model(family, p["families"][family])
        u, y, pm, batch, post = _simulate(family, model, int(p["test_sequences"]), L,
                                          ctx.seed_for("test", family))
        peak = dynamic_range(family, model)
        est = {REFERENCE: pm}
        for name in FILTERS:
            est[name] = apply_filter(name, y, chosen_params(tune, family, name), pe)
        mse = {}
        for name, uh in est.items():
            mse[name] = ((uh - u) ** 2).mean(1)
            per = {"mse_clean": mse[name],
                   "psnr": 10.0 * np.log10(peak**2 / np.maximum(mse[name], 1e-300)),
                   "mse_posterior": ((uh - pm) ** 2).mean(1)}
            for metric, values in per.items():
                e = bootstrap_ci(values, num_resamples=int(p["num_resamples"]),
                                 seed=ctx.seed_for("bootstrap", family, name, metric))
                rows.append({"family": family, "filter": name, "metric": metric, **e.row()})
        for b in BILATERAL:
            for f in OTHERS:
                e = bootstrap_ci(mse[b] - mse[f], num_resamples=int(p["num_resamples"]),
                                 seed=ctx.seed_for("paired", family, b, f))
                rows.append({"family": family, "filter": b, "against": f,
                             "metric": "mse_clean_diff", **e.row()})
        curves = {"clean": u[0], "noisy": y[0], **{k: v[0] for k, v in est.items()}}
        for curve, values in curves.items():
            examples += [{"family": family, "curve": curve, "position": i, "value": float(v)}
                         for i, v in enumerate(values)]
        artifacts[f"exact_posterior_{family}"] = _posterior_idata(ctx, family, model, batch,
                                                                  post)
    artifacts["examples"] = pd.DataFrame(examples)
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)


def _posterior_idata(ctx, family, model, batch, post):
    """Exact posterior draws of u for the first test sequences, as InferenceData."""
    import arviz as az
    import torch

    p = ctx.params
    k = min(int(p["posterior_sequences"]), int(p["test_sequences"]))
    draws = int(p["posterior_draws"])
    seed = ctx.seed_for("posterior-draws", family)
    if family == "change-point":
        z = model.sample_posterior(batch.x[:k], draws, seed=seed).numpy()
    else:
        dist = torch.distributions.MultivariateNormal(post.mean[:k],
                                                      scale_tril=post.scale_tril[:k])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            z = dist.sample((draws,)).double().numpy()  # (draws, k, L)
    attrs = {"model": model.name, "L": int(p["L"]), "posterior": "exact",
             **{k_: str(v) for k_, v in model.params.items()}}
    return az.from_dict(
        posterior={"u": z[None]},  # (chain, draw, sequence, token)
        observed_data={"x": batch.x[:k].double().numpy(),
                       "u_true": batch.y[:k].double().numpy()},
        dims={"u": ["sequence", "token"], "x": ["sequence", "token"],
              "u_true": ["sequence", "token"]},
        attrs=attrs,
    )


# ----------------------------------------------------------------------------- report
def _cell(r, fmt="{:.3g}") -> str:
    return ci_text(r, fmt)


def _chosen_text(tune: pd.DataFrame, family: str, name: str) -> str:
    th = chosen_params(tune, family, name)
    return ", ".join(f"{k}={v:g}" for k, v in th.items())


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Per family and filter: chosen bandwidths, MSE to u, PSNR, MSE to the posterior mean."""
    ev = _frame(results, "evaluate")
    tune = _frame(results, "tune")
    out = []
    for family in FAMILIES:
        for name in (*FILTERS, REFERENCE):
            row = {"family": family, "filter": name,
                   "bandwidths": ("exact" if name == REFERENCE
                                  else _chosen_text(tune, family, name))}
            for metric in METRICS:
                est = pick(ev, family=family, filter=name, metric=metric)
                row[metric] = "" if est is None else _cell(
                    est, "{:.2f}" if metric == "psnr" else "{:.3g}")
            out.append(row)
    return pd.DataFrame(out)


def family_summary(ev: pd.DataFrame, family: str) -> dict:
    """Lowest-MSE filter, best bilateral-type filter and its paired differences."""
    mses = {f: pick(ev, family=family, filter=f, metric="mse_clean") for f in FILTERS}
    mses = {f: e for f, e in mses.items() if e is not None}
    lowest = min(mses, key=lambda f: float(mses[f]["value"])) if mses else None
    bil = [f for f in BILATERAL if f in mses]
    best = min(bil, key=lambda f: float(mses[f]["value"])) if bil else None
    diffs = {f: pick(ev, family=family, filter=best, against=f, metric="mse_clean_diff")
             for f in OTHERS} if best is not None and "against" in ev else {}
    return {"mse": mses, "lowest": lowest, "best_bilateral": best, "diffs": diffs}


def e1_verdict(results: pd.DataFrame, params: dict) -> Verdict:
    ev = _frame(results, "evaluate")
    parts, numbers = [], {}
    supported, against = [], []
    for family in FAMILIES:
        s = family_summary(ev, family)
        b, diffs = s["best_bilateral"], s["diffs"]
        sep = (b is not None and s["lowest"] == b and len(diffs) == len(OTHERS)
               and all(d is not None and d["ci_high"] < 0 for d in diffs.values()))
        worse = [f for f, d in diffs.items() if d is not None and d["ci_low"] > 0]
        supported.append(sep)
        against += [f"{f} on {family}" for f in worse]
        mse_txt = "; ".join(f"{f} {_cell(e)}" for f, e in s["mse"].items())
        diff_txt = "; ".join(f"vs {f} {ci_text(d, '{:+.3g}')}" for f, d in diffs.items())
        parts.append(f"{family}: MSE to u {mse_txt}; lowest {s['lowest']}; paired "
                     f"MSE({b}) - MSE(other) {diff_txt}")
        for f, e in s["mse"].items():
            numbers.update({f"{family}_{f}_mse{'' if k == 'value' else '_' + k}": v
                            for k, v in ci_numbers(e).items()})
        for f, d in diffs.items():
            numbers.update({f"{family}_diff_{f}{'' if k == 'value' else '_' + k}": v
                            for k, v in ci_numbers(d).items()})
    if all(supported):
        verdict = "supported"
    elif against:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    tail = f"; significantly better than the best bilateral filter: {', '.join(against)}" \
        if against else ""
    return Verdict(
        claim="E1",
        statement=("In 1-D denoising with one attention layer, the bilateral filter (spatial x "
                   "range kernel, optionally with twicing) beats the spatial-only, range-only "
                   "(non-local means) and entangled SA+PE filters."),
        expected=("on both signal families (change-point, gp-signal) bilateral or "
                  "bilateral+twicing has the lowest mean MSE to the clean signal and its "
                  "paired 95% bootstrap CI of MSE(it) - MSE(f) lies below 0 for every "
                  "non-bilateral filter f; not supported if some non-bilateral filter is "
                  "significantly better on either family; bandwidths tuned per filter on a "
                  "separate tuning set"),
        measured=(f"L = {params['L']}, {params['test_sequences']} test sequences per family "
                  f"({params['tune_sequences']} for tuning), 95% bootstrap CIs: "
                  + " | ".join(parts) + tail + "."),
        verdict=verdict, numbers=numbers,
    )


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    return [e1_verdict(results, params)]


def bootstrap_us(num_resamples: int, n: int) -> float:
    """Reference-CPU microseconds of one ``bootstrap_ci`` call on ``n`` values: a Python
    loop of ``num_resamples`` means (~3.5 us each plus ~16 ns per value)."""
    return num_resamples * (3.5 + 0.016 * n)


def work(params: dict) -> float:
    """Estimated reference-CPU microseconds (one thread) of the preset's loops.

    Units: microseconds, from timings of the pieces on the reference CPU. One filter
    pass on one sequence costs ~10 + 0.025 L^2 us (a twicing filter two passes); the tune
    stage runs every grid point of every filter on ``tune_sequences`` sequences per
    family, the evaluate stage each chosen filter on ``test_sequences``. The gp-signal
    family's exact posterior is a Cholesky solve per sequence (~0.003 L^3 us); the
    change-point forward-backward is linear in L. Then one bootstrap CI per (filter,
    metric) and per paired difference (:func:`bootstrap_us`), and the posterior draws
    (~0.2 us per drawn token).
    """
    L = int(params["L"])
    per_pass = 10.0 + 0.025 * L * L
    n_s, n_r = len(params["spatial_grid"]), len(params["range_grid"])
    n_sa = len(params["sa_beta_grid"]) * len(params["sa_omega_grid"])
    passes = 3 * n_s + n_r + n_sa + 3 * n_s * n_r  # twicing filters count twice
    n_fam = len(FAMILIES)
    n_tune, n = int(params["tune_sequences"]), int(params["test_sequences"])
    tune = n_fam * n_tune * passes * per_pass
    evaluate = n_fam * n * (len(FILTERS) + len(BILATERAL) + 1) * per_pass
    exact = (n_tune + n) * (0.003 * L**3 + 0.05 * L * n_fam)
    calls = n_fam * ((len(FILTERS) + 1) * len(METRICS) + len(BILATERAL) * len(OTHERS))
    boot = calls * bootstrap_us(int(params["num_resamples"]), n)
    draws = n_fam * min(int(params["posterior_sequences"]), n) * int(params["posterior_draws"]) * L
    return float(tune + evaluate + exact + boot + 0.2 * draws)


def figures(ctx, results: pd.DataFrame):
    from . import _figures_denoising

    return _figures_denoising.make(ctx, results)


EXPERIMENT = register(Experiment(
    name="denoising-1d",
    title="1-D denoising with one attention layer: spatial, range, SA+PE, bilateral, twicing",
    claims=("E1",),
    description=__doc__.split("\n\n", 1)[1].strip(),
    presets=PRESETS,
    stages=(Stage("tune", _tune), Stage("evaluate", _evaluate)),
    figures=figures,
    verdicts=verdicts,
    headline=headline,
    work=work,
))
