"""The stages of contamination-attention: the hand-set attention readout (its kernels and
metrics), tune each kernel on clean data, score it on contaminated data, draw the exact
posteriors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput

from .presets import (
    KERNEL_PARAMS,
    KERNELS,
    KINDS,
    UNIFORM,
    _bw,
    base_model,
    chosen_params,
    class_parameters,
    grid,
)


# ----------------------------------------------------------------------------- maths
def embed(model, x):
    """Centred per-token values u_i = v_i - mean_k v_ik with v_ik = log p(x_i | z = k).

    Args:
        model: A finite mixture with ``token_loglik``.
        x: Tokens ``(B, L, *token_shape)``.

    Returns:
        float64 tensor ``(B, L, K)``.
    """
    x, _ = model.validate_tokens(x, None)
    v = model.token_loglik(x).double()
    return v - v.mean(-1, keepdim=True)


def _kernel(name: str, theta: dict, dh: int):
    """(library kernel, query/key scale c, extra inputs) so that the logits have the
    bandwidth/temperature of ``theta`` on the embedding e: q = k = c e."""
    from bayesattn.inference import make_kernel

    if name not in KERNEL_PARAMS:
        raise ValueError(f"unknown kernel {name!r}; expected one of {KERNELS}.")
    if name == "cme":
        kern = make_kernel("cme", kappa="gaussian", ridge=float(theta["ridge"]),
                           learn_ridge=False, bandwidth=float(theta["h"]), float64=True)
        return kern, 1.0
    if name in ("softmax", "twicing-softmax"):
        beta = float(theta["beta"])
        if beta < 0:
            raise ValueError(f"beta must be >= 0; got {beta}.")
        c = math.sqrt(beta * math.sqrt(dh))  # (c e_i).(c e_j) / sqrt(dh) = beta e_i.e_j
        base = "softmax"
    else:
        h = _bw(theta["h"])
        if not h > 0:
            raise ValueError(f"bandwidth h must be > 0; got {h}.")
        c = 0.0 if math.isinf(h) else dh**0.25 / h  # ||c(e_i - e_j)||^2/(2 sqrt dh) = ../(2h^2)
        base = "gaussian"
    if name == "bilateral":
        kern = make_kernel("bilateral", range="distance", bandwidth=1.0, learn_bandwidth=False)
    elif name.startswith("twicing-"):
        kern = make_kernel("twicing", base=base)
    else:
        kern = make_kernel(base)
    return kern, c


def attention_weights(name: str, e, theta: dict):
    """Smoother W ``(B, L, L)`` (float64) of kernel ``name`` on embedded tokens e ``(B, L, K)``."""
    import torch

    if name == UNIFORM:
        b, length = e.shape[:2]
        return torch.full((b, length, length), 1.0 / length, dtype=torch.float64)
    kern, c = _kernel(name, theta, e.shape[-1])
    q = (c * e)[:, None]  # (B, L, K) -> (B, 1, L, K): one head
    inputs = {}
    if name == "bilateral":  # a set: every token at the same position, no spatial term
        inputs["positions"] = torch.zeros(e.shape[:2], dtype=torch.float64)
    with torch.no_grad():
        return kern.weights(q, q, None, **inputs)[:, 0].double()  # (B, L, L)


def readout(W, u, log_w):
    """log p_hat ``(B, K)``: mean over tokens of softmax(log w + L (W u)_i)."""
    import torch

    length = u.shape[1]
    logp_i = torch.log_softmax(log_w + length * (W @ u), dim=-1)  # (B, L, K)
    return torch.logsumexp(logp_i, dim=1) - math.log(length)


def participation(W) -> np.ndarray:
    """Mean over query rows of (sum_j |W_ij|)^2 / sum_j W_ij^2, per sequence ``(B,)``."""
    a = W.abs()
    return ((a.sum(-1) ** 2) / (W**2).sum(-1)).mean(-1).numpy()


def outlier_weight(W, replaced) -> np.ndarray:
    """Share of sum_j |W_ij| that clean queries i put on replaced keys j, per sequence
    ``(B,)``; NaN where a sequence has no replaced or no clean token."""
    a = W.abs().numpy()
    r = replaced.numpy().astype(bool)
    share = (a * r[:, None, :]).sum(-1) / a.sum(-1)  # (B, L) per query
    clean = ~r
    with np.errstate(invalid="ignore"):
        out = (share * clean).sum(-1) / clean.sum(-1)
    out[~(r.any(-1) & clean.any(-1))] = np.nan
    return out


def tv(logp, logq) -> np.ndarray:
    return 0.5 * (logp.exp() - logq.exp()).abs().sum(-1).numpy()


def kl(logp, logq) -> np.ndarray:
    """KL(p || q) per sequence from log-probabilities ``(B, K)``."""
    p = logp.exp()
    return (p * (logp - logq)).nan_to_num(0.0).sum(-1).clamp_min(0.0).numpy()


def choose(tv_means, neff_means, budget: float) -> int:
    """Most selective grid point (min n_eff) with mean clean TV <= budget; else min TV."""
    tv_means, neff_means = np.asarray(tv_means, float), np.asarray(neff_means, float)
    ok = np.flatnonzero(tv_means <= budget)
    if ok.size == 0:
        return int(np.argmin(tv_means))
    return int(ok[np.argmin(neff_means[ok])])


# ----------------------------------------------------------------------------- stages
def tune(ctx) -> pd.DataFrame:
    p = ctx.params
    L, rows = int(p["L"]), []
    for mname, mparams in p["models"].items():
        model = base_model(mname, mparams)
        batch = model.simulate(int(p["tune_sequences"]), L, seed=ctx.seed_for("tune", mname))
        u = embed(model, batch.x)
        scale = float(((u - u.mean(1, keepdim=True)) ** 2).sum(-1).mean().sqrt())
        exact = model.exact_posterior(batch.x).logits
        log_w = u.new_tensor(model.params["weights"]).log()
        for name in KERNELS:
            cand = grid(name, p)
            tvs, neffs = [], []
            for th in cand:
                W = attention_weights(name, u / scale, th)
                tvs.append(float(tv(readout(W, u, log_w), exact).mean()))
                neffs.append(float(participation(W).mean()))
            best = choose(tvs, neffs, float(p["clean_tv_budget"]))
            for k, th in enumerate(cand):
                rows.append({"model": mname, "kernel": name, **th, "embed_scale": scale,
                             "metric": "tv_tune", "value": tvs[k], "n_eff": neffs[k],
                             "n": len(u), "chosen": k == best})
    return pd.DataFrame(rows)


def _per_sequence(cm, data, model, theta, scale, log_w, tune, mname):
    """Per-sequence metric arrays ``{kernel: {metric: (B,)}}`` on one contaminated batch."""
    x = data.batch.x
    u = embed(model, x)
    log_eps = cm.exact_posterior(x).logits
    log_clean = cm.clean_posterior(x).logits
    m_eps, m_clean = log_eps.exp().numpy() @ theta, log_clean.exp().numpy() @ theta
    out = {}
    for name in (UNIFORM, *KERNELS):
        th = {} if name == UNIFORM else chosen_params(tune, mname, name)
        W = attention_weights(name, u / scale, th)
        logq = readout(W, u, log_w)
        m_hat = logq.exp().numpy() @ theta
        out[name] = {"tv_eps": tv(logq, log_eps), "kl_eps": kl(log_eps, logq),
                     "tv_clean": tv(logq, log_clean),
                     "sqerr_eps": ((m_hat - m_eps) ** 2).sum(-1),
                     "sqerr_clean": ((m_hat - m_clean) ** 2).sum(-1),
                     "outlier_weight": outlier_weight(W, data.contaminated)}
    return out


def evaluate(ctx) -> pd.DataFrame:
    import torch

    from bayesattn import models
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    L, R = int(p["L"]), int(p["num_resamples"])
    eps_grid = sorted(float(e) for e in p["epsilons"])
    if len(eps_grid) < 2 or eps_grid[0] != 0.0:
        raise ValueError(f"epsilons must contain 0 (the clean reference of the degradation) "
                         f"and at least one ε > 0; got {p['epsilons']}.")
    tune = ctx.results["tune"]
    rows = []

    def boot(values, *keys):
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        return bootstrap_ci(values, num_resamples=R, seed=ctx.seed_for("bootstrap", *keys)).row()

    for mname, mparams in p["models"].items():
        model = base_model(mname, mparams)
        theta = class_parameters(model)
        scale = float(tune[tune["model"] == mname]["embed_scale"].iloc[0])
        log_w = torch.tensor(model.params["weights"], dtype=torch.float64).log()
        seed = ctx.seed_for("test", mname)
        for kind in KINDS:
            per_eps = {}
            for eps in eps_grid:
                cm = models.contaminate(model, eps, kind)
                data = cm.simulate_contaminated(int(p["test_sequences"]), L, seed=seed)
                per = _per_sequence(cm, data, model, theta, scale, log_w, tune, mname)
                per_eps[eps] = per
                frac = data.contaminated.double().mean(1).numpy()
                rows.append({"model": mname, "kind": kind, "epsilon": eps,
                             "kernel": "replaced-fraction", "metric": "replaced_fraction",
                             **boot(frac, mname, kind, eps, "frac")})
                for name, metrics in per.items():
                    for metric, values in metrics.items():
                        est = boot(values, mname, kind, eps, name, metric)
                        if est is not None:
                            rows.append({"model": mname, "kind": kind, "epsilon": eps,
                                         "kernel": name, "metric": metric, **est})
            e0 = eps_grid[0]
            for eps in eps_grid[1:]:
                deg = {k: per_eps[eps][k]["tv_eps"] - per_eps[e0][k]["tv_eps"]
                       for k in (UNIFORM, *KERNELS)}
                for name, d in deg.items():
                    rows.append({"model": mname, "kind": kind, "epsilon": eps, "kernel": name,
                                 "metric": "degradation", **boot(d, mname, kind, eps, name,
                                                                 "deg")})
                    if name != "softmax":
                        rows.append({"model": mname, "kind": kind, "epsilon": eps,
                                     "kernel": name, "against": "softmax",
                                     "metric": "degradation_diff",
                                     **boot(d - deg["softmax"], mname, kind, eps, name, "pd")})
    return pd.DataFrame(rows)


def posteriors(ctx) -> StageOutput:
    """Exact clean-model and ε-model posterior draws of z at the largest ε."""
    import arviz as az

    from bayesattn import models

    p = ctx.params
    k, draws = min(int(p["posterior_sequences"]), int(p["test_sequences"])), \
        int(p["posterior_draws"])
    eps = max(float(e) for e in p["epsilons"])
    artifacts, rows = {}, []
    for mname, mparams in p["models"].items():
        model = base_model(mname, mparams)
        for kind in KINDS:
            cm = models.contaminate(model, eps, kind)
            data = cm.simulate_contaminated(k, int(p["L"]), seed=ctx.seed_for("test", mname))
            x = data.batch.x
            for which, dist in (("clean", cm.clean_posterior(x)), ("eps", cm.exact_posterior(x))):
                with seeded(ctx.seed_for("posterior-draws", mname, kind, which)):
                    z = dist.sample((draws,)).numpy()  # (draws, k)
                tok = ["sequence", "token"] + (["x_dim_0"] if x.ndim == 3 else [])
                key = f"{mname}_{kind}_{which}"
                artifacts[key] = az.from_dict(
                    posterior={"z": z[None]},
                    observed_data={"x": x.numpy()},
                    constant_data={"replaced": data.contaminated.numpy().astype(np.int8),
                                   "z_true": data.batch.z.numpy()},
                    dims={"z": ["sequence"], "x": tok, "replaced": ["sequence", "token"],
                          "z_true": ["sequence"]},
                    attrs={"model": cm.name, "epsilon": eps, "posterior": which,
                           "L": int(p["L"])})
                rows.append({"model": mname, "kind": kind, "posterior": which,
                             "epsilon": eps, "metric": "draws", "value": float(draws),
                             "n": k})
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)
