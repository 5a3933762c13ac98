"""Attention as E[value | key]: CME and softmax attention against exact predictive means (P5, P6).

P5, in-context Bayesian linear regression (``linear-regression``, p = 2 key features,
prior sd tau = 1, noise sd sigma = 0.5): at Q random query keys q ~ N(0, I_p) per
sequence, three attention readouts are compared with the exact posterior predictive mean
q^T mu_L, in units of the exact predictive sd sqrt(sigma^2 + q^T Sigma_L q):

- CME attention with the linear kernel and L lambda = sigma^2 / tau^2 (paper 1's desired
  parameter; no training): exact in theory, so its error must sit at float64 round-off;
- softmax attention with logits -||q - k||^2 / (2 h^2), i.e. the Gaussian-kernel
  Nadaraya-Watson smoother of the values. Bandwidth hand-set (no training) by Silverman's
  rule of thumb for N(0, I_p) keys at L0 = 64: h = (4 / (p + 2))^(1/(p+4)) L0^(-1/(p+4)) =
  0.5, fixed for every L; a second variant shrinks it at the same rate,
  h_L = 0.5 (L / 64)^(-1/(p+4));
- a Set Transformer (told L) with a full-covariance Gaussian posterior head, trained
  with the exact-KL objective on L in a training range; its readout is q^T E_q[z].

Errors are also reported in units of the posterior sd of the regression function,
sqrt(q^T Sigma_L q), which shrinks with L (docs/claims.md#caution). The log-log slope of
the softmax error against L is fitted with a bootstrap CI over sequences; no rate is
assumed.

P6, GP regression on 1-D inputs (our own simulator: k ~ U[0, 1], f ~ GP(0, RBF with
lengthscale 0.1, prior sd 1), v = f(k) + N(0, 0.3^2)): CME attention with the GP kernel
and L lambda = sigma^2 equals the GP posterior mean (checked against a direct solve);
softmax attention with the same kernel (h = lengthscale) and with the shrinking
bandwidth h_L = lengthscale (L / 16)^(-1/5) is compared with it. ||softmax - CME|| is the
RMS over Q uniform queries, in units of the prior sd; slope in L with bootstrap CI, and
the floor as the ratio of the error at the largest L to that at the smallest.
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
    convergence_row,
    direction,
    loss_plateau,
    pick,
    register,
)
from bayesattn.runner import stage_frame as _frame

from ._posteriors import exact_vs_net_draws

#: The hand-set attention and simulation helpers are public: the attention_is_bayes
#: notebook and users reproducing P5/P6 call them.
__all__ = ["EXPERIMENT", "gp_mean_direct", "rbf_kernel", "shrinking_bandwidth",
           "silverman_bandwidth", "simulate_gp", "softmax_attention"]

LR_MODEL = {"name": "linear-regression", "p": 2, "prior_scale": 1.0, "noise_scale": 0.5}
GP = {"lengthscale": 0.1, "noise_scale": 0.3, "prior_sd": 1.0}
P5_L0 = 64  # Silverman's rule is applied at this length to hand-set the fixed bandwidth
P6_L0 = 16  # the shrinking GP bandwidth equals the lengthscale at this length
CME_TOLERANCE = 1e-8  # P5: CME error bound, in units of the predictive sd
#: Largest mean KL(exact || q) (nats) over the trained lengths at which the trained net
#: counts as converged (floor 0). The net enters no verdict; it is the amortized
#: reference beside the hand-set readouts, whose errors are 0.1-1 predictive sd. A KL of
#: 0.01 nats allows a mean shift of about 0.14 posterior sd, well below that.
NET_TOLERANCE = 0.01

CME = "CME attention"
SOFTMAX_FIXED = "softmax (fixed h)"
SOFTMAX_SHRINK = "softmax (shrinking h_L)"
NET = "trained net"

PRESETS = {
    "smoke": {"lengths": [1, 4, 16, 64], "num_sequences": 12, "num_queries": 8,
              "gp_lengths": [4, 16, 64], "gp_sequences": 8, "gp_queries": 16,
              "steps": 2, "batch_size": 16, "lr": 5e-3, "dim": 8, "num_heads": 2,
              "block": "sab",
              "train_len": [1, 16], "num_resamples": 100, "tail_from": 16},
    # the trained net: 4000 steps at lr 5e-3 (was 1000 at 2e-3). Mean KL(exact || q) over
    # L in [1, 64]: 0.060 nats after 2000 steps, 0.034 after 4000 (0.035 at lr 1e-2), still
    # falling; it enters no verdict, so it is reported as not converged (issue 12)
    "quick": {"lengths": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], "num_sequences": 200,
              "num_queries": 32, "gp_lengths": [4, 8, 16, 32, 64, 128, 256, 512],
              "gp_sequences": 64, "gp_queries": 64, "steps": 4000, "batch_size": 64,
              "lr": 5e-3, "dim": 32, "num_heads": 4, "block": "sab", "train_len": [1, 64],
              "num_resamples": 1000, "tail_from": 64},
    "full": {"lengths": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
             "num_sequences": 1000, "num_queries": 64,
             "gp_lengths": [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
             "gp_sequences": 256, "gp_queries": 128, "steps": 4000, "batch_size": 256,
             "lr": 2e-3, "dim": 64, "num_heads": 4, "block": "sab", "train_len": [1, 128],
             "num_resamples": 2000, "tail_from": 128},
}


# ------------------------------------------------------------------ pure helpers
def silverman_bandwidth(dim: int, length: float = P5_L0, scale: float = 1.0) -> float:
    """Silverman's rule of thumb ``scale (4 / (d + 2))^(1/(d+4)) n^(-1/(d+4))`` for n = length."""
    return float(scale * (4.0 / (dim + 2)) ** (1.0 / (dim + 4)) * length ** (-1.0 / (dim + 4)))


def shrinking_bandwidth(h0: float, length: float, l0: float, dim: int) -> float:
    """``h0 (L / L0)^(-1/(d+4))``: the bandwidth rate that balances NW bias and variance."""
    return float(h0 * (length / l0) ** (-1.0 / (dim + 4)))


def softmax_attention(keys, values, queries, *, bandwidth: float, mask=None):
    """Softmax attention with logits ``-||q - k||^2 / (2 h^2)`` (Gaussian Nadaraya-Watson).

    Equal to ``softmax(<q, k> / h^2 - ||k||^2 / (2 h^2))``: dot-product softmax attention
    with a key-norm bias. Computed in float64 with a stable softmax.

    Args:
        keys: ``(B, L, dk)`` tensor.
        values: ``(B, L, dv)`` tensor.
        queries: ``(B, Q, dk)`` tensor.
        bandwidth: h > 0.
        mask: Optional bool ``(B, L)``, True = real token.

    Returns:
        float64 tensor ``(B, Q, dv)``.
    """
    import torch

    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth!r}.")
    keys, values, queries = (t.to(torch.float64) for t in (keys, values, queries))
    sq = torch.cdist(queries, keys).square()  # (B, Q, L)
    logits = -sq / (2.0 * bandwidth**2)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1) @ values  # (B, Q, dv)


def rbf_kernel(a, b, lengthscale: float):
    """``exp(-||a - b||^2 / (2 l^2))`` between ``(B, n, d)`` and ``(B, m, d)`` -> ``(B, n, m)``."""
    import torch

    return torch.exp(-torch.cdist(a, b).square() / (2.0 * lengthscale**2))


def simulate_gp(num: int, length: int, num_queries: int, *, lengthscale: float,
                noise_scale: float, seed: int) -> dict:
    """GP regression data on [0, 1]: keys, values and queries, float64.

    ``f ~ GP(0, rbf(lengthscale))`` drawn jointly at the L keys and Q queries (uniform on
    [0, 1]); ``v = f(k) + noise_scale * eps``.

    Returns:
        dict with ``keys (B, L, 1)``, ``values (B, L, 1)``, ``queries (B, Q, 1)``,
        ``f_queries (B, Q)``.
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    n = length + num_queries
    points = torch.rand(num, n, 1, generator=gen, dtype=torch.float64)
    gram = rbf_kernel(points, points, lengthscale)
    gram = gram + 1e-8 * torch.eye(n, dtype=torch.float64)
    f = (torch.linalg.cholesky(gram) @ torch.randn(num, n, 1, generator=gen,
                                                   dtype=torch.float64))[..., 0]  # (B, n)
    noise = noise_scale * torch.randn(num, length, generator=gen, dtype=torch.float64)
    return {"keys": points[:, :length], "values": (f[:, :length] + noise)[..., None],
            "queries": points[:, length:], "f_queries": f[:, length:]}


def gp_mean_direct(keys, values, queries, *, lengthscale: float, noise_scale: float):
    """GP posterior mean ``K_*^T (K + sigma^2 I)^-1 v`` by a plain linear solve, ``(B, Q)``."""
    import torch

    gram = rbf_kernel(keys, keys, lengthscale)
    eye = torch.eye(keys.shape[1], dtype=torch.float64)
    alpha = torch.linalg.solve(gram + noise_scale**2 * eye, values)  # (B, L, 1)
    return (rbf_kernel(queries, keys, lengthscale) @ alpha)[..., 0]


def error_metrics(pred, exact, pred_sd, post_sd) -> dict[str, np.ndarray]:
    """Per-sequence errors of ``pred`` against ``exact`` (all ``(B, Q)``), each ``(B,)``.

    ``err_pred_sd``: RMS over queries of the error in units of the predictive sd;
    ``err_post_sd``: the same in units of the posterior sd of the regression function;
    ``abs_err``: RMS error; ``max_err_pred_sd``: the largest error in predictive-sd units.
    """
    e = np.asarray(pred, float) - np.asarray(exact, float)
    z = e / np.asarray(pred_sd, float)
    return {"err_pred_sd": np.sqrt((z**2).mean(1)),
            "err_post_sd": np.sqrt(((e / np.asarray(post_sd, float)) ** 2).mean(1)),
            "abs_err": np.sqrt((e**2).mean(1)),
            "max_err_pred_sd": np.abs(z).max(1)}


def ratio_ci(numerator, denominator, *, num_resamples: int = 1000, seed: int = 0,
             level: float = 0.95) -> dict[str, float]:
    """Ratio of two independent sample means with a percentile-bootstrap CI.

    Each sample is resampled on its own. Returns the ``value, ci_low, ci_high, se, n``
    columns of a tidy row (``n`` = the smaller sample size).
    """
    a, b = np.asarray(numerator, float), np.asarray(denominator, float)
    if a.size < 1 or b.size < 1 or b.mean() == 0:
        raise ValueError("ratio_ci needs non-empty samples and a non-zero denominator mean.")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (int(num_resamples), a.size))
    ib = rng.integers(0, b.size, (int(num_resamples), b.size))
    boots = a[ia].mean(1) / b[ib].mean(1)
    boots = boots[np.isfinite(boots)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha]) if boots.size else (np.nan, np.nan)
    return {"value": float(a.mean() / b.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "se": float(boots.std(ddof=1)) if boots.size > 1 else float("nan"),
            "n": int(min(a.size, b.size))}


# ------------------------------------------------------------------ P5: linear regression
def _model():
    from bayesattn import models

    return models.get(LR_MODEL["name"], p=LR_MODEL["p"], prior_scale=LR_MODEL["prior_scale"],
                      noise_scale=LR_MODEL["noise_scale"])


def _net(model, params, seed: int):
    from bayesattn.inference import AmortizedPosterior

    return AmortizedPosterior(
        model, encoder="set-transformer", head="gaussian-full", length_aware=True, seed=seed,
        encoder_options={"dim": params["dim"], "num_heads": params["num_heads"],
                         "block": params["block"]},
    )


def _train(ctx) -> StageOutput:
    model, p = _model(), ctx.params
    seed = ctx.seed_for("train")
    net = _net(model, p, seed)
    result = ctx.train("net", net, model, steps=p["steps"], batch_size=p["batch_size"],
                       seq_len=tuple(p["train_len"]), objective="kl", seed=seed,
                       device=ctx.device, lr=p.get("lr", 2e-3))
    hist = result.history
    tail = hist.tail(max(1, len(hist) // 10))
    rows = [{"method": NET, "metric": "final_train_kl", "value": float(tail["kl"].mean()),
             "ci_low": np.nan, "ci_high": np.nan, "se": float(tail["kl"].sem()),
             "n": len(tail)}]
    if len(hist) >= 4:  # did the training KL flatten? (reported beside the convergence table)
        pl = loss_plateau(hist, "kl")
        rows += [{"method": NET, "metric": "plateau_drop", "value": pl["drop"],
                  "ci_low": np.nan, "ci_high": np.nan, "se": pl["se"], "n": len(tail)},
                 {"method": NET, "metric": "plateau_relative_drop",
                  "value": pl["relative_drop"], "ci_low": np.nan, "ci_high": np.nan,
                  "se": np.nan, "n": len(tail)}]
    return StageOutput(pd.DataFrame(rows),
                       artifacts={"state_dict": net.cpu().state_dict(), "history": hist})


def _load_net(ctx, model):
    net = _net(model, ctx.params, 0)
    net.load_state_dict(ctx.artifact("train", "state_dict"))
    return net.to(ctx.device).eval()


def regression_predictions(model, net, x, queries, device: str = "cpu",
                           chunk: int = 32) -> dict:
    """Exact predictive mean and sds, and each method's prediction, all ``(B, Q)`` NumPy."""
    import torch

    from bayesattn.inference.oracle import LinearRegressionOracle

    p = model.params["p"]
    post = model.exact_posterior(x)
    exact = model.predictive_mean(x, queries)
    var_f = torch.einsum("bqi,bij,bqj->bq", queries, post.covariance_matrix, queries)
    sigma2 = model.params["noise_scale"] ** 2
    h0 = silverman_bandwidth(p)
    h_l = shrinking_bandwidth(h0, x.shape[1], P5_L0, p)
    keys, values = x[..., :p], x[..., p:]
    out = {
        "exact": exact, "pred_sd": (sigma2 + var_f).sqrt(), "post_sd": var_f.sqrt(),
        CME: LinearRegressionOracle(model).predict(x, queries),
        SOFTMAX_FIXED: softmax_attention(keys, values, queries, bandwidth=h0)[..., 0],
        SOFTMAX_SHRINK: softmax_attention(keys, values, queries, bandwidth=h_l)[..., 0],
    }
    if net is not None:
        means = []
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk):
                q = net.posterior(x[i:i + chunk].float().to(device))
                means.append(q.mean.double().cpu())
        out[NET] = (queries @ torch.cat(means)[..., None])[..., 0]
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def net_kl(model, net, x, device: str = "cpu", chunk: int = 32) -> np.ndarray:
    """KL(exact || q) per sequence of the net's posterior, ``(B,)`` float64 (closed form)."""
    import torch
    from torch.distributions import MultivariateNormal, kl_divergence

    exact = model.exact_posterior(x)
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            q = net.posterior(x[i:i + chunk].float().to(device))
            q64 = MultivariateNormal(q.mean.double().cpu(),
                                     covariance_matrix=q.covariance_matrix.double().cpu())
            p = MultivariateNormal(exact.mean[i:i + chunk].double(),
                                   covariance_matrix=exact.covariance_matrix[i:i + chunk]
                                   .double())
            out.append(kl_divergence(p, q64))
    return torch.cat(out).numpy()


def _queries(num: int, q: int, p: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(num, q, p, generator=gen, dtype=torch.float64)


def _summary_with_worst(per: pd.DataFrame, metric: str, worst_name: str,
                        num_resamples: int, seed: int) -> pd.DataFrame:
    """Per (method, L) means with bootstrap CIs, plus the worst case of ``metric``."""
    from bayesattn.gaps import summarise

    summary = summarise(per, by=("method", "L"), num_resamples=num_resamples, seed=seed)
    worst = (per[per["metric"] == metric].groupby(["method", "L"], sort=False)["value"]
             .max().reset_index().assign(metric=worst_name))
    return pd.concat([summary, worst], ignore_index=True)


def _regression(ctx) -> StageOutput:
    model, p = _model(), ctx.params
    net = _load_net(ctx, model)
    per = []
    for length in ctx.tqdm(p["lengths"], desc="P5 lengths"):
        batch = model.simulate(p["num_sequences"], length, seed=ctx.seed_for("p5", length))
        queries = _queries(p["num_sequences"], p["num_queries"], model.params["p"],
                           ctx.seed_for("p5-queries", length))
        pr = regression_predictions(model, net, batch.x, queries, ctx.device)
        for method in (CME, SOFTMAX_FIXED, SOFTMAX_SHRINK, NET):
            errs = error_metrics(pr[method], pr["exact"], pr["pred_sd"], pr["post_sd"])
            for metric, values in errs.items():
                per.append(pd.DataFrame({"method": method, "L": length,
                                         "dataset": np.arange(values.size),
                                         "metric": metric, "value": values}))
        kl = net_kl(model, net, batch.x, ctx.device)
        per.append(pd.DataFrame({"method": NET, "L": length, "dataset": np.arange(kl.size),
                                 "metric": "kl_forward", "value": kl}))
    per = pd.concat(per, ignore_index=True)
    summary = _summary_with_worst(per, "max_err_pred_sd", "worst_err_pred_sd",
                                  p["num_resamples"], ctx.seed_for("p5-summary"))
    lengths, (lo, hi) = p["lengths"], p["train_len"]
    inside = [v for v in lengths if lo <= v <= hi] or [min(lengths)]
    draws = exact_vs_net_draws(ctx, model, net, {min(inside), max(inside), max(lengths)})
    return StageOutput(summary, artifacts={"per_sequence": per, **draws})


# ------------------------------------------------------------------ P6: GP regression
def gp_predictions(data: dict, length: int, chunk: int = 16) -> dict:
    """Exact GP mean, CME attention and the two softmax smoothers at the queries, ``(B, Q)``."""
    import torch

    from bayesattn.inference.oracle import cme_attention

    ell, sigma = GP["lengthscale"], GP["noise_scale"]
    h_l = shrinking_bandwidth(ell, length, P6_L0, 1)
    out: dict[str, list] = {"exact": [], CME: [], SOFTMAX_FIXED: [], SOFTMAX_SHRINK: []}
    for i in range(0, data["keys"].shape[0], chunk):
        k, v, q = (data[n][i:i + chunk] for n in ("keys", "values", "queries"))
        out["exact"].append(gp_mean_direct(k, v, q, lengthscale=ell, noise_scale=sigma))
        out[CME].append(cme_attention(k, v, q, kernel="gaussian", bandwidth=ell,
                                      ridge=sigma**2 / length)[..., 0])
        out[SOFTMAX_FIXED].append(softmax_attention(k, v, q, bandwidth=ell)[..., 0])
        out[SOFTMAX_SHRINK].append(softmax_attention(k, v, q, bandwidth=h_l)[..., 0])
    return {key: torch.cat(val).numpy() for key, val in out.items()}


def _gp(ctx) -> StageOutput:
    p = ctx.params
    per = []
    for length in ctx.tqdm(p["gp_lengths"], desc="P6 lengths"):
        data = simulate_gp(p["gp_sequences"], length, p["gp_queries"],
                           lengthscale=GP["lengthscale"], noise_scale=GP["noise_scale"],
                           seed=ctx.seed_for("p6", length))
        pr = gp_predictions(data, length)
        f = data["f_queries"].numpy()
        rows = {
            (CME, "diff_vs_exact"): np.abs(pr[CME] - pr["exact"]).max(1),
            (CME, "err_vs_truth"): np.sqrt(((pr[CME] - f) ** 2).mean(1)),
        }
        for method in (SOFTMAX_FIXED, SOFTMAX_SHRINK):
            rows[(method, "diff_vs_cme")] = np.sqrt(((pr[method] - pr[CME]) ** 2).mean(1))
            rows[(method, "err_vs_truth")] = np.sqrt(((pr[method] - f) ** 2).mean(1))
        for (method, metric), values in rows.items():
            per.append(pd.DataFrame({"method": method, "L": length,
                                     "dataset": np.arange(values.size), "metric": metric,
                                     "value": values / GP["prior_sd"]}))
    per = pd.concat(per, ignore_index=True)
    summary = _summary_with_worst(per, "diff_vs_exact", "worst_diff_vs_exact",
                                  p["num_resamples"], ctx.seed_for("p6-summary"))
    return StageOutput(summary, artifacts={"per_sequence": per})


# ------------------------------------------------------------------ slopes and floors
def _slopes(ctx) -> pd.DataFrame:
    from bayesattn.gaps import loglog_slope

    p = ctx.params
    rows = []
    jobs = [("regression", m, "err_pred_sd", p["lengths"]) for m in
            (SOFTMAX_FIXED, SOFTMAX_SHRINK, NET)]
    jobs += [("regression", m, "err_post_sd", p["lengths"]) for m in
             (SOFTMAX_FIXED, SOFTMAX_SHRINK, NET)]
    jobs += [("gp", m, "diff_vs_cme", p["gp_lengths"]) for m in (SOFTMAX_FIXED, SOFTMAX_SHRINK)]
    lo, hi = p["train_len"]
    for stage, method, metric, lengths in jobs:
        per = ctx.artifact(stage, "per_sequence")
        group = per[per["method"] == method]
        ranges = {"all": (min(lengths), max(lengths)),
                  "tail": (p["tail_from"], max(lengths))}
        if method == NET:
            ranges["inside"] = (lo, hi)
        for label, rng in ranges.items():
            if sum(rng[0] <= v <= rng[1] for v in lengths) < 2:
                continue
            est = loglog_slope(group, metric, lengths=rng, num_resamples=p["num_resamples"],
                               seed=ctx.seed_for("slopes", stage, method, metric, label))
            rows.append({"part": stage, "method": method, "metric": f"slope_{metric}",
                         "range": label, "L_low": rng[0], "L_high": rng[1], **est.row()})
    per = ctx.artifact("gp", "per_sequence")
    small, large = min(p["gp_lengths"]), max(p["gp_lengths"])
    for method in (SOFTMAX_FIXED, SOFTMAX_SHRINK):
        sel = per[(per["method"] == method) & (per["metric"] == "diff_vs_cme")]
        est = ratio_ci(sel[sel["L"] == large]["value"], sel[sel["L"] == small]["value"],
                       num_resamples=p["num_resamples"], seed=ctx.seed_for("floor", method))
        rows.append({"part": "gp", "method": method, "metric": "ratio_largest_to_smallest",
                     "range": "all", "L_low": small, "L_high": large, **est})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ report
def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Mean over sequences of each error per method (rows) and L (columns).

    P5: RMS over queries in units of the exact predictive sd; P6: RMS over queries of
    softmax - CME, and the largest |CME - GP mean| over queries, in units of the prior sd.
    """
    reg = _frame(results, "regression")
    reg = reg[reg["metric"] == "err_pred_sd"].assign(
        part="P5 |method - exact| / pred. sd")
    gp = _frame(results, "gp")
    gp = gp[gp["metric"].isin(["diff_vs_cme", "diff_vs_exact"])].assign(
        part="P6 ||method - CME|| / prior sd")
    gp.loc[gp["metric"] == "diff_vs_exact", "part"] = "P6 max_q |CME - GP mean| / prior sd"
    both = pd.concat([reg, gp], ignore_index=True)
    table = both.pivot_table(index=["part", "method"], columns="L", values="value",
                             sort=False)
    table.columns = [f"L={int(c)}" for c in table.columns]
    return table.reset_index()


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    reg, sl = _frame(results, "regression"), _frame(results, "slopes")
    worst = reg[(reg["method"] == CME) & (reg["metric"] == "worst_err_pred_sd")]
    cme_max = float(worst["value"].max()) if len(worst) else float("nan")
    s_fix = pick(sl, method=SOFTMAX_FIXED, metric="slope_err_pred_sd", range="all")
    s_fix_tail = pick(sl, method=SOFTMAX_FIXED, metric="slope_err_pred_sd", range="tail")
    s_shr = pick(sl, method=SOFTMAX_SHRINK, metric="slope_err_pred_sd", range="all")
    s_net = pick(sl, method=NET, metric="slope_err_pred_sd", range="inside")
    lengths = params["lengths"]
    cme_ok = math.isfinite(cme_max) and cme_max <= CME_TOLERANCE
    softmax_dir = direction(s_fix)
    if not math.isfinite(cme_max):
        p5 = "inconclusive"
    elif not cme_ok or softmax_dir == "not supported":
        p5 = "not supported"
    else:
        p5 = softmax_dir
    lo, hi = params["train_len"]
    net_len = max([v for v in lengths if lo <= v <= hi], default=min(lengths))
    net_err = pick(reg, method=NET, metric="err_pred_sd", L=net_len)
    out = [Verdict(
        claim="P5", statement="Attention computes E[value | key]: CME attention with the "
                              "desired parameter is the exact predictive mean, and softmax "
                              "attention approaches it as L grows.",
        expected=(f"max |CME - exact| / predictive sd <= {CME_TOLERANCE:g} over every query, "
                  f"sequence and L, AND the log-log slope of the fixed-bandwidth softmax "
                  f"error in L on [{min(lengths)}, {max(lengths)}] has a 95% CI below 0"),
        measured=(f"CME: max error {cme_max:.2e} predictive sd; softmax (fixed h = "
                  f"{silverman_bandwidth(LR_MODEL['p']):.2f}) slope {ci_text(s_fix)} on all "
                  f"L, {ci_text(s_fix_tail)} for L >= {params['tail_from']}; softmax "
                  f"(shrinking h_L) slope {ci_text(s_shr)}; trained net error at "
                  f"L = {net_len}: {ci_text(net_err, '{:.3f}')} predictive "
                  f"sd, slope inside its training range {ci_text(s_net)} (95% bootstrap CIs)."),
        verdict=p5,
        numbers={"cme_max_err_pred_sd": cme_max, **ci_numbers(s_fix, "softmax_slope")},
    )]
    s6 = pick(sl, part="gp", method=SOFTMAX_FIXED, metric="slope_diff_vs_cme", range="all")
    s6_tail = pick(sl, part="gp", method=SOFTMAX_FIXED, metric="slope_diff_vs_cme",
                   range="tail")
    s6_shr = pick(sl, part="gp", method=SOFTMAX_SHRINK, metric="slope_diff_vs_cme",
                  range="all")
    ratio = pick(sl, method=SOFTMAX_FIXED, metric="ratio_largest_to_smallest")
    ratio_shr = pick(sl, method=SOFTMAX_SHRINK, metric="ratio_largest_to_smallest")
    gp = _frame(results, "gp")
    large, small = max(params["gp_lengths"]), min(params["gp_lengths"])
    floor = pick(gp, method=SOFTMAX_FIXED, metric="diff_vs_cme", L=large)
    cme_gp = gp[(gp["method"] == CME) & (gp["metric"] == "worst_diff_vs_exact")]
    out.append(Verdict(
        claim="P6", statement="Softmax attention approaches CME attention at large L.",
        expected=(f"the log-log slope of ||softmax - CME|| (same kernel, h = lengthscale = "
                  f"{GP['lengthscale']}) in L on [{small}, {large}] has a 95% CI below 0 "
                  "(a floor is allowed and reported)"),
        measured=(f"slope {ci_text(s6)} on all L, {ci_text(s6_tail)} for L >= "
                  f"{params['tail_from']}; value at L = {large}: "
                  f"{ci_text(floor, '{:.3f}')} prior sd, {ci_text(ratio, '{:.3f}')} times "
                  f"that at L = {small}; shrinking h_L: slope {ci_text(s6_shr)}, ratio "
                  f"{ci_text(ratio_shr, '{:.3f}')}. CME attention vs the GP posterior mean "
                  f"by a direct solve: largest |difference| "
                  f"{float(cme_gp['value'].max()) if len(cme_gp) else float('nan'):.1e} "
                  "prior sd over all queries, sequences and L."),
        verdict=direction(s6),
        numbers={**ci_numbers(s6, "slope"),
                 "floor_at_largest_L": float(floor["value"]) if floor is not None else math.nan,
                 "ratio_largest_to_smallest": float(ratio["value"]) if ratio is not None
                 else math.nan},
    ))
    return out


def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row for the trained net: its held-out KL(exact || q) inside the training range.

    Told L, with a full-covariance Gaussian head, the net can express the exact
    (Gaussian) posterior of Bayesian linear regression: the floor is 0 nats. The value
    is the mean over the grid lengths inside ``train_len`` of the mean KL(exact || q) on
    the regression stage's fresh sequences, judged against :data:`NET_TOLERANCE`.
    """
    reg = _frame(results, "regression")
    lo, hi = params["train_len"]
    sel = reg[(reg["method"] == NET) & (reg["metric"] == "kl_forward")
              & (reg["L"] >= lo) & (reg["L"] <= hi)]
    value = float(sel["value"].mean()) if len(sel) else float("nan")
    se = (float(np.sqrt((sel["se"].astype(float) ** 2).sum()) / len(sel)) if len(sel)
          else float("nan"))
    return pd.DataFrame([convergence_row(
        NET, measure=f"mean KL(exact || q), nats, held-out sets at grid L in [{lo}, {hi}]",
        value=value, se=se, floor=0.0,
        floor_basis="0: told L, its full-covariance Gaussian head can express the exact "
                    "Gaussian posterior of Bayesian linear regression",
        tolerance=NET_TOLERANCE)])


def work(params: dict) -> float:
    """Compute of a preset, in millions of multiply-adds (roughly).

    Training: steps x batch x the cost of a one-block Set Transformer of width ``dim``
    (about ``L * dim * (12 * dim + 2 * L)`` per sequence, SAB) at log-uniform L in
    ``train_len``, times 3 for the backward pass. P5: the net's forward pass, the exact
    posterior and the two softmax smoothers (``L * Q`` kernel entries) per sequence and
    L. P6: simulating a GP on L + Q points (a Cholesky, ``(L + Q)^3 / 3``), the direct
    solve and CME (``L^3 / 3`` each) and the smoothers, per sequence and L. Bootstraps:
    num_resamples x sequences per (method, L, metric).
    """
    dim = float(params["dim"])
    lo, hi = (float(v) for v in params["train_len"])
    mean_l = (hi - lo) / np.log(hi / lo) if hi > lo else lo
    mean_l2 = (hi ** 2 - lo ** 2) / (2 * np.log(hi / lo)) if hi > lo else lo ** 2
    per_seq = dim * (12 * dim * mean_l + 2 * mean_l2)
    total = 3 * params["steps"] * params["batch_size"] * per_seq
    lengths = np.asarray(params["lengths"], float)
    q = float(params["num_queries"])
    total += params["num_sequences"] * float(
        (lengths * dim * (12 * dim + 2 * lengths) + 4 * lengths * q).sum())
    gl = np.asarray(params["gp_lengths"], float)
    gq = float(params["gp_queries"])
    total += params["gp_sequences"] * float(
        ((gl + gq) ** 3 / 3 + 2 * gl ** 3 / 3 + 6 * gl * gq).sum())
    total += params["num_resamples"] * (
        4 * 5 * params["num_sequences"] * len(lengths) + 4 * params["gp_sequences"] * len(gl))
    return total / 1e6


def figures(ctx, results: pd.DataFrame):
    from . import _figures_attention

    return _figures_attention.make(ctx, results)


EXPERIMENT = register(Experiment(
    name="attention-is-bayes",
    title="Attention as E[value | key]: CME and softmax attention vs exact predictive means",
    claims=("P5", "P6"),
    description=__doc__.split("\n\n", 1)[1].strip(),
    presets=PRESETS,
    stages=(Stage("train", _train), Stage("regression", _regression), Stage("gp", _gp),
            Stage("slopes", _slopes)),
    figures=figures,
    verdicts=verdicts,
    headline=headline,
    convergence=convergence,
    work=work,
))
