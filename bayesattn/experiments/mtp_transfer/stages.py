"""The stages of mtp-transfer: the exact condition numbers (kappa), the P9 networks per
closeness (closeness), the P10 networks per pretext and N (blindspot), and the bound's
slack, ratios and slopes (summary), with the statistics the summary stage uses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput, combine_replicates

from .presets import (
    BLINDSPOT_METRICS,
    BOUND_C,
    PRETEXTS,
    encoder_options,
    p9_model,
    p10_model,
)


# ------------------------------------------------------------------ stage 1: exact kappa
def kappa(ctx) -> StageOutput:
    import arviz as az

    from bayesattn.gaps import model_condition_number, sum_zero_basis, target_table

    p = ctx.params
    grid = sorted({*np.linspace(0.0, 0.95, int(p["kappa_grid"])).round(6).tolist(),
                   *map(float, p["closeness"])})
    nan = float("nan")
    rows = []
    for c in grid:
        model = p9_model(c)
        ax = np.asarray(model.params["word_probs"])
        u = sum_zero_basis(ax.shape[0])
        values = {"kappa2": model_condition_number(model, pretext="full"),
                  "sigma_min_x": float(np.linalg.svd(ax.T @ u, compute_uv=False).min()),
                  "sigma_max_y": float(np.linalg.svd(target_table(model).T @ u,
                                                     compute_uv=False).max())}
        rows += [{"claim": "P9", "model": model.name, "closeness": float(c), "pretext": "full",
                  "metric": k, "value": v, "ci_low": nan, "ci_high": nan, "se": nan, "n": 0}
                 for k, v in values.items()]
    m10 = p10_model()
    for pretext in PRETEXTS:
        rows.append({"claim": "P10", "model": m10.name, "closeness": nan, "pretext": pretext,
                     "metric": "kappa2", "value": model_condition_number(m10, pretext=pretext),
                     "ci_low": nan, "ci_high": nan, "se": nan, "n": 0})
    # the exact posteriors of z that define the Bayes risks: P9 family at L = 16
    draws = {}
    for c in map(float, p["closeness"]):
        model = p9_model(c)
        batch = model.simulate(8, 16, seed=ctx.seed_for("kappa", "draws", c))
        post = model.exact_posterior(batch.x)
        with seeded(ctx.seed_for("kappa", "sample", c)):
            z = post.sample((200,)).numpy()  # (draws, datasets)
        draws[f"posterior_exact_c{c:g}"] = az.from_dict(
            posterior={"z": z[None]}, observed_data={"x": batch.x.numpy()},
            dims={"z": ["dataset"], "x": ["dataset", "token"]},
            attrs={"model": model.name, "closeness": c, "L": 16, "posterior": "exact"})
    return StageOutput(pd.DataFrame(rows), artifacts=draws)


# ------------------------------------------------------------------ stage 2: P9 training
def head_floor(model, *, width: int, seq_len, num_train_probe: int, num_test: int, seed: int,
               num_resamples: int) -> dict:
    """The downstream linear probe's floor: its excess risk on the exact log predictive.

    Rebuilds the probe and test sequences ``masked_token_transfer`` uses with this ``seed``
    (``seed + 101``, ``seed + 202``), gives the probe ``width`` features: ``log P(y | X)``
    (exact, C columns) and ``width - C`` independent N(0, 1) columns, and returns the
    bootstrap row of its excess risk over the exact Bayes risk (nats per sequence). With
    the same width, probe data and L2 penalty as the probe on the network, this is the
    probe's estimation error on a representation that holds everything y needs.
    """
    import torch

    from bayesattn.gaps import (
        bayes_risk,
        evaluate_representation,
        exact_posterior_features,
        fit_probe,
        simulate_sets,
        target_table,
    )
    from bayesattn.metrics import bootstrap_ci

    exact = exact_posterior_features(model)
    num_classes = target_table(model).shape[1]
    gen = torch.Generator().manual_seed(int(seed) + 404)

    def feats(batch):
        f = evaluate_representation(exact, batch.x, batch.mask, "exact log predictive")
        pad = max(0, int(width) - f.shape[1])
        noise = torch.randn(f.shape[0], pad, generator=gen, dtype=torch.float64)
        return torch.cat([f, noise], -1)

    probe_set = simulate_sets(model, num_train_probe, seq_len, seed=seed + 101)
    test = simulate_sets(model, num_test, seq_len, seed=seed + 202)
    down = fit_probe(feats(probe_set), probe_set.y, feats(test), test.y, kind="categorical",
                     seed=seed, num_classes=num_classes, hidden=0)
    bayes = bayes_risk(model, test.x, test.y, test.mask).numpy()
    return bootstrap_ci(down - bayes, num_resamples=num_resamples, seed=seed).row()


def closeness(ctx) -> pd.DataFrame:
    from bayesattn.gaps import masked_token_transfer

    p = ctx.params
    frames = []
    for c in map(float, p["closeness"]):
        model = p9_model(c)
        for r in range(int(p["replicates"])):
            seed = ctx.seed_for("closeness", c, r)
            df = masked_token_transfer(
                model, pretext="full", steps=p["p9_steps"], batch_size=p["batch_size"],
                seq_len=tuple(p["seq_len"]), num_train_probe=p["num_train_probe"],
                num_test=p["num_test"], seed=seed, encoder_options=encoder_options(p),
                device=ctx.device, lr=float(p.get("lr", 1e-3)),
                num_resamples=p["num_resamples"])
            floor = head_floor(model, width=int(p["dim"]), seq_len=tuple(p["seq_len"]),
                               num_train_probe=p["num_train_probe"], num_test=p["num_test"],
                               seed=seed, num_resamples=p["num_resamples"])
            base = df[df["metric"] == "downstream_excess_risk"].iloc[0].to_dict()
            df = pd.concat([df, pd.DataFrame([{**base, "readout": "exact log predictive + noise",
                                               "metric": "downstream_floor", **floor}])],
                           ignore_index=True)
            df.insert(0, "replicate", r)
            df.insert(0, "closeness", c)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ stage 3: P10 training
def blindspot(ctx) -> pd.DataFrame:
    from bayesattn.gaps import masked_token_transfer

    p = ctx.params
    model = p10_model()
    frames = []
    for steps in map(int, p["steps_grid"]):
        for pretext in PRETEXTS:
            for r in range(int(p["replicates"])):
                df = masked_token_transfer(
                    model, pretext=pretext, steps=steps, batch_size=p["batch_size"],
                    seq_len=tuple(p["seq_len"]), num_train_probe=p["num_train_probe"],
                    num_test=p["num_test"], seed=ctx.seed_for("blindspot", pretext, steps, r),
                    encoder_options=encoder_options(p), device=ctx.device,
                    lr=float(p.get("lr", 1e-3)),
                    readouts={"representation": "linear", "predictive": "mlp"},
                    probe_hidden=p["probe_hidden"], num_resamples=p["num_resamples"])
                df = df[df["metric"].isin(BLINDSPOT_METRICS)].copy()
                df["readout"] = df["readout"].replace({"predictive": "pretext predictive"})
                df = df[["pretext", "steps", "batch_size", "readout", "metric", "value",
                         "ci_low", "ci_high", "se", "n"]]
                df.insert(3, "N", steps * int(p["batch_size"]))
                df.insert(0, "replicate", r)
                frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ stage 4: summaries
def ratio_draws(num, num_se, den, den_se, *, num_resamples: int, seed: int):
    """Point ratios ``num / den`` and parametric-bootstrap draws ``(num_resamples, P)``.

    Numerator and denominator are redrawn independently from ``Normal(value, se)``. A
    ratio whose denominator is <= 0 (the pretext at or below its Bayes risk) is ``+inf``
    when the numerator is > 0, and 0 otherwise (no downstream excess to bound).
    """
    num, den = np.asarray(num, float), np.asarray(den, float)
    num_se = np.nan_to_num(np.asarray(num_se, float))
    den_se = np.nan_to_num(np.asarray(den_se, float))

    def ratio(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, np.inf, 0.0))

    rng = np.random.default_rng(seed)
    shape = (int(num_resamples), num.size)
    draws = ratio(rng.normal(num, num_se, shape), rng.normal(den, den_se, shape))
    return ratio(num, den), draws


def interval(draws, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval by order statistics (infinities allowed); an undefined (NaN)
    draw counts against both ends: -inf for the lower and +inf for the upper bound."""
    d = np.asarray(draws, float).ravel()
    if d.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low = np.sort(np.where(np.isnan(d), -np.inf, d))
    high = np.sort(np.where(np.isnan(d), np.inf, d))
    n = d.size
    return float(low[int(math.floor(alpha * (n - 1)))]), \
        float(high[int(math.ceil((1 - alpha) * (n - 1)))])


def rank_correlation(x, y) -> float:
    """Spearman correlation (average ranks; infinities rank highest); NaN if y is constant
    or has NaNs."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.isnan(y).any() or len(y) < 2:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def loglog_exponent(x, y) -> float:
    """Least-squares slope of log y on log x; NaN unless every y is finite and > 0."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(y) < 2 or not (np.isfinite(y).all() and (y > 0).all()) or np.unique(x).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _row(value, lo, hi, draws, n, **keys) -> dict:
    d = np.asarray(draws, float)
    d = d[np.isfinite(d)]
    se = float(d.std(ddof=1)) if d.size > 1 and np.isfinite([lo, hi]).all() else float("inf")
    return {**keys, "value": float(value), "ci_low": lo, "ci_high": hi, "se": se, "n": int(n)}


def transfer_ratio_summary(per_level: pd.DataFrame, *, num_resamples: int, seed: int,
                           level: float = 0.95) -> pd.DataFrame:
    """Bound slack, ratio, ratio / kappa, their rank correlation with kappa, the exponent.

    Args:
        per_level: One row per closeness with columns ``closeness, kappa2, down, down_se,
            pre, pre_se, n`` (downstream and pretext excess risks and their standard
            errors) and optionally ``floor, floor_se``: the downstream head's floor, which
            is subtracted from ``down`` (its standard error added in quadrature).

    Returns:
        Rows with metrics ``pretext_excess``, ``downstream_net_excess`` (downstream minus
        floor), ``bound_slack`` (``downstream_net_excess - C kappa_2 pretext_excess``,
        normal 95% CI), ``transfer_ratio`` and ``ratio_over_kappa`` (parametric bootstrap)
        per closeness, and ``rank_corr_ratio_kappa`` and ``exponent_ratio_kappa`` (one each).
    """
    per_level = per_level.sort_values("kappa2").copy()
    if "floor" in per_level:
        per_level["down"] = per_level["down"] - per_level["floor"]
        per_level["down_se"] = np.hypot(np.nan_to_num(per_level["down_se"].to_numpy(float)),
                                        np.nan_to_num(per_level["floor_se"].to_numpy(float)))
    kappa = per_level["kappa2"].to_numpy(float)
    point, draws = ratio_draws(per_level["down"], per_level["down_se"], per_level["pre"],
                               per_level["pre_se"], num_resamples=num_resamples, seed=seed)
    z = float(_normal_quantile(0.5 + level / 2))
    rows = []
    for j, c in enumerate(per_level["closeness"]):
        n = int(per_level["n"].iloc[j])
        keys = {"closeness": float(c), "kappa2": float(kappa[j])}
        down, pre = float(per_level["down"].iloc[j]), float(per_level["pre"].iloc[j])
        down_se = float(np.nan_to_num(per_level["down_se"].iloc[j]))
        pre_se = float(np.nan_to_num(per_level["pre_se"].iloc[j]))
        slack = down - BOUND_C * kappa[j] * pre
        slack_se = float(np.hypot(down_se, BOUND_C * kappa[j] * pre_se))
        for metric, v, se in (("pretext_excess", pre, pre_se),
                              ("downstream_net_excess", down, down_se),
                              ("bound_slack", slack, slack_se)):
            rows.append({**keys, "metric": metric, "value": v, "ci_low": v - z * se,
                         "ci_high": v + z * se, "se": se, "n": n})
        for metric, scale in (("transfer_ratio", 1.0), ("ratio_over_kappa", kappa[j])):
            lo, hi = interval(draws[:, j] / scale, level)
            rows.append(_row(point[j] / scale, lo, hi, draws[:, j] / scale, n, **keys,
                             metric=metric))
    total = int(per_level["n"].sum())
    for metric, fn in (("rank_corr_ratio_kappa", rank_correlation),
                       ("exponent_ratio_kappa", loglog_exponent)):
        stats = np.array([fn(kappa, d) for d in draws])
        lo, hi = interval(stats, level)
        rows.append(_row(fn(kappa, point), lo, hi, stats, total, closeness=float("nan"),
                         kappa2=float("nan"), metric=metric))
    return pd.DataFrame(rows)


def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def excess_slope(summary: pd.DataFrame, *, num_resamples: int, seed: int):
    """Slope of the downstream excess risk on log N: log-log when every mean is more than
    2 standard errors above 0 (``fit_slope``'s delta method is poor closer to 0), else
    linear in the excess (only its sign is then comparable). Returns ``(Estimate, log_y)``."""
    from bayesattn.gaps import fit_slope

    data = summary.assign(metric="downstream_excess_risk")
    log_y = bool((data["value"] > 2 * data["se"].fillna(0)).all())
    est = fit_slope(data, "downstream_excess_risk", x="N", log_x=True, log_y=log_y,
                    num_resamples=num_resamples, seed=seed)
    return est, log_y


def summary(ctx) -> pd.DataFrame:
    p = ctx.params
    rows = []
    # P9
    cl = combine_replicates(ctx.results["closeness"], ["closeness", "metric"])
    wide = []
    for c, g in cl.groupby("closeness"):
        m = g.set_index("metric")
        wide.append({"closeness": float(c), "kappa2": float(m.loc["kappa2", "value"]),
                     "down": m.loc["downstream_excess_risk", "value"],
                     "down_se": m.loc["downstream_excess_risk", "se"],
                     "pre": m.loc["pretext_excess_risk", "value"],
                     "pre_se": m.loc["pretext_excess_risk", "se"],
                     **({"floor": m.loc["downstream_floor", "value"],
                         "floor_se": m.loc["downstream_floor", "se"]}
                        if "downstream_floor" in m.index else {}),
                     "n": int(m.loc["downstream_excess_risk", "n"])})
    p9 = transfer_ratio_summary(pd.DataFrame(wide), num_resamples=p["num_resamples"],
                                seed=ctx.seed_for("summary", "P9"))
    p9.insert(0, "claim", "P9")
    rows.append(p9)
    # P10
    bs = ctx.results["blindspot"]
    comb = combine_replicates(bs, ["pretext", "readout", "N", "metric"])
    comb = comb[comb["metric"] == "downstream_excess_risk"]
    out = []
    for (pretext, readout), g in comb.groupby(["pretext", "readout"], sort=False):
        g = g.sort_values("N")
        tail = g.tail(int(p["floor_points"]))
        for rng, data in (("all", g), ("tail", tail)):
            if data["N"].nunique() < 2:
                continue
            est, log_y = excess_slope(data, num_resamples=p["num_resamples"],
                                      seed=ctx.seed_for("summary", "P10", pretext, readout))
            out.append({"claim": "P10", "pretext": pretext, "readout": readout, "range": rng,
                        "N_low": int(data["N"].min()), "N_high": int(data["N"].max()),
                        "log_y": log_y, "metric": "slope_excess_vs_log_N", **est.row()})
    rows.append(pd.DataFrame(out))
    return pd.concat(rows, ignore_index=True)
