"""The claim denoising-1d decides (E1): the decision rule and verdict, and the headline
table, all read from ``results.csv``."""

from __future__ import annotations

import pandas as pd

from bayesattn.runner import Decision, Rule, Verdict, ci_numbers, ci_text, pick
from bayesattn.runner import stage_frame as _frame

from .presets import BILATERAL, FAMILIES, FILTERS, METRICS, OTHERS, REFERENCE, chosen_params

#: Decision rules (docs/rules.md). Version 1: the rules its quick verdicts were decided by
#: up to issue 20's review, as docs/claims.md states them; a run records their hashes.
RULES = (
    Rule(
        claim="E1", version=1, kind="test",
        measures=("the MSE to the clean signal, plus paired bootstrap CIs of "
                  "MSE(bilateral-type) − MSE(other)."),
        decision=("The verdict is supported when, on both signal families, a "
                  "bilateral-type filter has the lowest MSE and is significantly better "
                  "than every non-bilateral filter. It is not supported if some "
                  "non-bilateral filter is significantly better on either family."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
    Rule(
        claim="E1", version=2, kind="test", key="change-point_diff_spatial",
        measures=("per signal family and competitor (spatial, spatial+twicing, range, "
                  "SA+PE), the paired difference MSE(best bilateral-type filter) − "
                  "MSE(competitor) to the clean signal. Limit: the best bilateral-type "
                  "filter is picked on the same test sequences (best of 2), a small "
                  "optimistic bias; choosing it on a held-out half is still to do."),
        decision=("Supported if every difference's interval lies below 0 (the bilateral "
                  "filter beats every competitor on every family); not supported if some "
                  "difference lies above 0, or is exactly 0 in every seed (a tie is no "
                  "win), Holm over the cells; inconclusive otherwise."),
        multiplicity=("every cell must hold (no correction for support); refutation "
                      "Holm-corrected over the 8 cells"),
        replication=("at least 5 seeds (bayesattn sweep denoising-1d --preset quick --seeds "
                     "0-4); the mean over seeds with a Student-t 95% interval. One run's "
                     "verdict uses its own paired bootstrap interval."),
        decisions=(Decision(("*_diff_*",), "below", threshold=0.0),),
    ),
)


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
