"""The stages of attention-is-bayes: train the net, score the P5 readouts on linear
regression and the P6 readouts on GP regression, fit slopes and floors, and compute the
fresh examples the figures overlay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn.runner import StageOutput, loss_plateau

from .._posteriors import exact_vs_net_draws
from .presets import (
    CME,
    GP,
    NET,
    P5_CURVES,
    P6_CURVES,
    SOFTMAX_FIXED,
    SOFTMAX_SHRINK,
    example_lengths,
    lr_model,
)
from .readouts import (
    error_metrics,
    gp_predictions,
    net_kl,
    ratio_ci,
    regression_predictions,
    simulate_gp,
)


# ------------------------------------------------------------------ P5: linear regression
def _net(model, params, seed: int):
    from bayesattn.inference import AmortizedPosterior

    return AmortizedPosterior(
        model, encoder="set-transformer", head="gaussian-full", length_aware=True, seed=seed,
        encoder_options={"dim": params["dim"], "num_heads": params["num_heads"],
                         "block": params["block"]},
    )


def train(ctx) -> StageOutput:
    model, p = lr_model(), ctx.params
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


def regression(ctx) -> StageOutput:
    model, p = lr_model(), ctx.params
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
def gp(ctx) -> StageOutput:
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
def slopes(ctx) -> pd.DataFrame:
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


# ------------------------------------------------------------------ figure data
def figure_data(ctx) -> StageOutput:
    """The fresh examples of the ``examples`` figure, as float64 arrays.

    P5, at each length of :func:`example_lengths` of the P5 grid: one linear-regression
    sequence, its tokens (``p5_L<L>_tokens``: key projected on u = (1, 1)/sqrt(2), value)
    and the exact predictive mean and sd and every readout at 121 queries q = t u, t in
    [-3, 3] (``p5_L<L>_curves``, rows :data:`P5_CURVES`). P6, at each length of the GP
    grid: one GP sequence, its tokens (``p6_L<L>_tokens``: k, v) and the true f, the exact
    GP mean and the attention readouts at 200 uniform queries in increasing order
    (``p6_L<L>_curves``, rows :data:`P6_CURVES`).

    No measurement is added to ``results.csv`` (the table is empty): the figures read
    these arrays, so drawing never runs a network or simulates data.
    """
    import torch

    p = ctx.params
    model = lr_model()
    net = _load_net(ctx, model)
    dim = model.params["p"]
    u = torch.full((dim,), 1.0 / np.sqrt(dim), dtype=torch.float64)
    t = torch.linspace(-3, 3, 121, dtype=torch.float64)
    arrays = {}
    for length in example_lengths(p["lengths"]):
        batch = model.simulate(1, length, seed=ctx.seed_for("figure-p5", length))
        queries = (t[:, None] * u)[None]  # (1, Q, p): points along the direction u
        pr = regression_predictions(model, net, batch.x, queries, ctx.device)
        x = batch.x[0].numpy()
        arrays[f"p5_L{length}_tokens"] = np.stack([x[:, :dim] @ u.numpy(), x[:, dim]])
        arrays[f"p5_L{length}_curves"] = np.stack(
            [t.numpy(), *(pr[name][0] for name in P5_CURVES[1:])])
    grid = torch.linspace(0, 1, 200, dtype=torch.float64)
    for length in example_lengths(p["gp_lengths"]):
        data = simulate_gp(1, length, grid.numel(), lengthscale=GP["lengthscale"],
                           noise_scale=GP["noise_scale"], seed=ctx.seed_for("figure-p6", length))
        order = data["queries"][0, :, 0].argsort()
        data["queries"] = data["queries"][:, order]
        data["f_queries"] = data["f_queries"][:, order]
        pr = gp_predictions(data, length)
        arrays[f"p6_L{length}_tokens"] = np.stack([data["keys"][0, :, 0].numpy(),
                                                   data["values"][0, :, 0].numpy()])
        arrays[f"p6_L{length}_curves"] = np.stack(
            [data["queries"][0, :, 0].numpy(), data["f_queries"][0].numpy(),
             *(pr[name][0] for name in P6_CURVES[2:])])
    return StageOutput(pd.DataFrame(), artifacts=arrays)
