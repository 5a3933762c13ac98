"""The claims mtp-transfer decides (P9, P10): decision rules and verdicts, the headline table
and the networks' convergence, all read from ``results.csv``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn.runner import Rule, Verdict, ci_numbers, ci_text, combine_replicates, pick
from bayesattn.runner import stage_frame as _frame

from .presets import (
    BLIND_TOL,
    BOUND_C,
    FLOOR_SLOPE,
    HEAD_TOL,
    MUCH_SMALLER,
    PRETEXT_TOL,
    PRETEXTS,
    READOUTS,
)


# ------------------------------------------------------------------ verdicts
def _fmt(est, fmt="{:.3g}") -> str:
    return ci_text(est, fmt)

#: Decision rules (docs/rules.md). Version 1: the rules its quick verdicts were decided by
#: up to issue 20's review, as docs/claims.md states them; a run records their hashes.
RULES = (
    Rule(
        claim="P9", version=1, kind="test",
        measures=("the bound's slack. That is the downstream excess, minus the linear "
                  "probe's own floor, minus κ₂ × the pretext excess (constant C = 1)."),
        decision=("The verdict is supported when two conditions hold: the slack's 95% "
                  "CI is below 0 at every κ₂, and the ratio (downstream net of floor / "
                  "pretext) rises with κ₂ (Spearman CI above 0, with every pretext "
                  "excess resolved from 0). It is not supported if some slack CI lies "
                  "above 0 or the correlation is negative."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
    Rule(
        claim="P10", version=1, kind="test",
        measures=("the downstream excess risk against the number of pretraining sets N, "
                  "read out in two ways: an MLP on the pretext predictive, and a linear "
                  "probe on the pooled representation."),
        decision=("Each readout gets its own verdict. It is supported when two "
                  "conditions hold. First, the coarse pretext keeps an excess whose CI "
                  "is above 0 at the largest N, with a tail slope whose CI lower end is "
                  "above -0.15. Second, full MTP decays (slope CI below 0) to less than "
                  "half the coarse excess. It is not supported if the coarse excess "
                  "decays, the full excess rises, or full is not below coarse."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
)


def p9_verdict(summary: pd.DataFrame) -> Verdict:
    """P9 from the bound's slack per closeness (package docstring): violated where the slack
    CI lies above 0, verified where it lies below 0; "worsens with kappa_2" from the rank
    correlation of the ratio, tested only when every pretext excess is resolved from 0."""
    ratios = summary[summary["metric"] == "transfer_ratio"].sort_values("kappa2")
    over = summary[summary["metric"] == "ratio_over_kappa"].sort_values("kappa2")
    slack = summary[summary["metric"] == "bound_slack"].sort_values("kappa2")
    pre = summary[summary["metric"] == "pretext_excess"].sort_values("kappa2")
    net = summary[summary["metric"] == "downstream_net_excess"].sort_values("kappa2")
    rho = pick(summary, metric="rank_corr_ratio_kappa")
    expo = pick(summary, metric="exponent_ratio_kappa")
    if len(slack):
        listing = "; ".join(
            f"kappa={s.kappa2:.3g}: pretext {p.value:.4f} [{p.ci_low:.4f}, {p.ci_high:.4f}], "
            f"downstream net of floor {d.value:.4f} [{d.ci_low:.4f}, {d.ci_high:.4f}], slack "
            f"{s.value:+.4f} [{s.ci_low:+.4f}, {s.ci_high:+.4f}], ratio {r.value:.3g} "
            f"[{r.ci_low:.3g}, {r.ci_high:.3g}]"
            for s, p, d, r in zip(slack.itertuples(), pre.itertuples(), net.itertuples(),
                                  ratios.itertuples(), strict=True))
        violated = bool((slack["ci_low"] > 0).any())
        bounded = bool((slack["ci_high"] < 0).all())
        at_zero = pre[pre["ci_low"] <= 0]
    else:  # a summary without slack rows: the bound read from ratio / kappa alone
        listing = "; ".join(
            f"kappa={r.kappa2:.3g}: ratio {r.value:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
            for r in ratios.itertuples())
        violated = bool((over["ci_low"] > BOUND_C).any())
        bounded = bool(len(over)) and bool((over["ci_high"] <= BOUND_C).all())
        at_zero = pre
    identified = len(at_zero) == 0
    rising = rho is not None and rho["ci_low"] > 0
    falling = identified and rho is not None and rho["ci_high"] < 0
    if violated or falling:
        verdict = "not supported"
    elif bounded and rising and identified:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    if len(at_zero):
        zero_txt = (" The pretext network is at its Bayes risk (excess CI reaches 0) at kappa = "
                    + ", ".join(f"{k:.3g}" for k in at_zero["kappa2"])
                    + ": there the ratio is undefined and the bound holds unless the downstream "
                    "excess net of its floor is clearly positive"
                    + (" (it is: the bound is violated)." if violated else " (it is not)."))
    else:
        zero_txt = ""
    return Verdict(
        claim="P9", statement=("MTP transfer is bounded by the condition number: downstream "
                               "excess risk <~ kappa_2 x pretext excess risk, and transfer "
                               "worsens as sigma_min(A_x'U) -> 0."),
        expected=(f"slack = (downstream excess - linear-probe floor) - C kappa_2 pretext excess "
                  f"with C = {BOUND_C:g} below 0 (95% CI) at every closeness, and Spearman "
                  f"correlation of ratio (downstream net of floor / pretext) with kappa_2 having "
                  f"95% CI > 0 with every pretext excess resolved from 0; not supported if some "
                  f"slack CI lies above 0 (downstream clearly above what the bound allows, "
                  f"also where the pretext excess is 0) or the correlation CI lies below 0; "
                  f"inconclusive otherwise (e.g. both excesses at 0: the ratio is undefined)"),
        measured=(f"unigram-mixture, topics moved together (nats; pretext per hidden token, "
                  f"downstream per sequence): {listing}. Spearman(ratio, kappa) "
                  f"{_fmt(rho, '{:+.2f}')}; log-log exponent of ratio in kappa "
                  f"{_fmt(expo, '{:+.2f}')} (1 = O(kappa)); 95% CIs.{zero_txt}"),
        verdict=verdict,
        numbers={"max_slack": float(slack["value"].max()) if len(slack) else math.nan,
                 "max_slack_ci_low": float(slack["ci_low"].max()) if len(slack) else math.nan,
                 "max_slack_ci_high": float(slack["ci_high"].max()) if len(slack) else math.nan,
                 "levels_pretext_at_zero": float(len(at_zero)) if len(slack) else math.nan,
                 "max_ratio_over_kappa": float(over["value"].max()) if len(over) else math.nan,
                 "max_ratio_over_kappa_ci_high": (float(over["ci_high"].max()) if len(over)
                                                  else math.nan),
                 **{f"rank_corr_{k}": v for k, v in ci_numbers(rho).items()},
                 **{f"exponent_{k}": v for k, v in ci_numbers(expo).items()}},
    )


def p10_verdict(blind: pd.DataFrame, summary: pd.DataFrame, readout: str) -> Verdict:
    ex = combine_replicates(blind[blind["metric"] == "downstream_excess_risk"],
                            ["pretext", "readout", "N"])
    ex = ex[ex["readout"] == readout]
    n_max = int(ex["N"].max())
    coarse = pick(ex, pretext="coarse", N=n_max)
    full = pick(ex, pretext="full", N=n_max)
    s_coarse = pick(summary, metric="slope_excess_vs_log_N", pretext="coarse", readout=readout,
                    range="tail")
    s_full = pick(summary, metric="slope_excess_vs_log_N", pretext="full", readout=readout,
                  range="all")
    if any(e is None for e in (coarse, full, s_coarse, s_full)):
        verdict = "inconclusive"
    else:
        coarse_log = bool(s_coarse["log_y"])
        floor = coarse["ci_low"] > 0 and coarse_log and s_coarse["ci_low"] > FLOOR_SLOPE
        decays = s_full["ci_high"] < 0
        smaller = full["ci_high"] < MUCH_SMALLER * coarse["ci_low"]
        no_floor = coarse["ci_high"] <= 0 or (coarse_log and s_coarse["ci_high"] < FLOOR_SLOPE)
        if floor and decays and smaller:
            verdict = "supported"
        elif no_floor or s_full["ci_low"] > 0 or full["ci_low"] >= coarse["ci_high"]:
            verdict = "not supported"
        else:
            verdict = "inconclusive"

    def slope_txt(s):
        if s is None:
            return "n/a"
        unit = "log-log" if bool(s["log_y"]) else "linear excess on log N"
        return f"{_fmt(s, '{:+.3f}')} ({unit}, N in [{int(s['N_low'])}, {int(s['N_high'])}])"

    return Verdict(
        claim="P10",
        statement=("A pretext blind to a posterior direction the task needs leaves a downstream "
                   f"excess-risk floor that more data does not remove; full MTP -> 0 "
                   f"(readout: {readout})."),
        expected=(f"coarse pretext: excess risk at the largest N with 95% CI > 0 and slope of "
                  f"log excess on log N over the largest N values with CI lower end > "
                  f"{FLOOR_SLOPE}; full MTP: slope over all N with CI < 0 and excess at the "
                  f"largest N below {MUCH_SMALLER:g} x the coarse one (full CI upper end < "
                  f"{MUCH_SMALLER:g} x coarse CI lower end); not supported if the coarse "
                  f"slope CI lies below {FLOOR_SLOPE} or its excess CI reaches 0, the full "
                  f"slope CI lies above 0, or full is not below coarse"),
        measured=(f"concept-mixture K=3, d=2, readout '{readout}': downstream excess risk at "
                  f"N={n_max}: coarse {_fmt(coarse, '{:.4f}')}, full {_fmt(full, '{:.4f}')} "
                  f"nats; slope coarse {slope_txt(s_coarse)}, full {slope_txt(s_full)}; 95% "
                  f"bootstrap CIs."),
        verdict=verdict,
        numbers={**{f"coarse_{k}": v for k, v in ci_numbers(coarse, "excess").items()},
                 **{f"full_{k}": v for k, v in ci_numbers(full, "excess").items()},
                 **{f"coarse_slope_{k}": v for k, v in ci_numbers(s_coarse, "value").items()},
                 **{f"full_slope_{k}": v for k, v in ci_numbers(s_full, "value").items()}},
    )


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    summary = _frame(results, "summary")
    blind = _frame(results, "blindspot")
    return [p9_verdict(summary), p10_verdict(blind, summary, "pretext predictive"),
            p10_verdict(blind, summary, "representation")]


# ------------------------------------------------------------------ convergence
def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row per P9 network (pretext encoder and its downstream linear probe) and per
    P10 encoder at the largest N (the smaller N are the sweep in N, short on purpose)."""
    from bayesattn.runner import convergence_row

    rows = []
    cl = _frame(results, "closeness")
    for (c, r), g in cl.groupby(["closeness", "replicate"]):
        m = g.set_index("metric")
        kappa = float(m.loc["kappa2", "value"])
        name = f"P9 c={c:g} (kappa2={kappa:.3g})" + (f" rep {int(r)}" if r else "")
        pre, down = m.loc["pretext_excess_risk"], m.loc["downstream_excess_risk"]
        rows.append(convergence_row(
            f"{name}: MTP encoder", measure="pretext excess risk, nats per hidden token",
            value=pre["value"], se=pre["se"], floor=0.0, tolerance=PRETEXT_TOL,
            floor_basis="0: the categorical token head can express the exact predictive"))
        if "downstream_floor" in m.index:
            fl = m.loc["downstream_floor"]
            rows.append(convergence_row(
                f"{name}: linear probe on it", se=float(np.hypot(down["se"], fl["se"])),
                measure="downstream excess risk, nats per sequence",
                value=down["value"], floor=fl["value"], tolerance=HEAD_TOL,
                floor_basis=("same probe, data and width on the exact log P(y | X) + noise "
                             f"columns (its estimation error; se {fl['se']:.4f}). The probe "
                             "itself is fitted to its optimum (L-BFGS); an excess over this "
                             "floor is the downstream excess the frozen representation "
                             "causes, which P9 bounds by kappa_2 x the pretext excess")))
    blind = _frame(results, "blindspot")
    pre = blind[blind["metric"] == "pretext_excess_risk"]
    if len(pre):
        n_max = pre["N"].max()
        for (pretext, r), g in pre[pre["N"] == n_max].groupby(["pretext", "replicate"]):
            row = g.iloc[0]
            basis = ("0: the Bernoulli head can express the exact law of the sign"
                     if pretext == "coarse" else
                     "0 is a lower bound: the diagonal-Normal token head cannot express the "
                     "exact mixture predictive, so the excess over 0 bounds the one over the "
                     "head's best member from above")
            rows.append(convergence_row(
                f"P10 {pretext} pretext, N={int(n_max)}" + (f" rep {int(r)}" if r else ""),
                measure="pretext excess risk, nats per hidden token", value=row["value"],
                se=row["se"], floor=0.0, tolerance=BLIND_TOL, floor_basis=basis))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ headline
def _cell(est) -> str:
    if est is None:
        return "n/a"
    return f"{est['value']:.4f} [{est['ci_low']:.4f}, {est['ci_high']:.4f}]"


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Excess risks (nats): P9 per closeness (with the probe's floor, the bound's slack and
    the ratio net of the floor), P10 per pretext and readout at the extreme N."""
    rows = []
    cl = combine_replicates(_frame(results, "closeness"), ["closeness", "metric"])
    summary = _frame(results, "summary")
    for c, g in cl.groupby("closeness"):
        m = g.set_index("metric")
        rows.append({"claim": "P9", "setting": f"closeness c={c:g}",
                     "kappa2": f"{m.loc['kappa2', 'value']:.3g}",
                     "pretext excess": _cell(m.loc["pretext_excess_risk"]),
                     "downstream excess": _cell(m.loc["downstream_excess_risk"]),
                     "probe floor": (_cell(m.loc["downstream_floor"])
                                     if "downstream_floor" in m.index else "n/a"),
                     "slack": _cell(pick(summary, metric="bound_slack", closeness=c)),
                     "ratio": _cell(pick(summary, metric="transfer_ratio", closeness=c))})
    blind = _frame(results, "blindspot")
    ex = combine_replicates(blind, ["pretext", "readout", "N", "metric"])
    kap = _frame(results, "kappa")
    for pretext in PRETEXTS:
        kv = pick(kap, claim="P10", pretext=pretext, metric="kappa2")
        for n in sorted({int(ex["N"].min()), int(ex["N"].max())}):
            pre = pick(ex, pretext=pretext, N=n, metric="pretext_excess_risk")
            for readout in READOUTS:
                rows.append({
                    "claim": "P10", "setting": f"{pretext} pretext, {readout}, N={n}",
                    "kappa2": "n/a" if kv is None else f"{kv['value']:.3g}",
                    "pretext excess": _cell(pre),
                    "downstream excess": _cell(pick(ex, pretext=pretext, readout=readout, N=n,
                                                    metric="downstream_excess_risk")),
                    "probe floor": "—", "slack": "—", "ratio": "—"})
    return pd.DataFrame(rows)
