"""The claim heads-width decides (P11): the decision rule and verdict, the headline table
and the networks' convergence, all read from ``results.csv``."""

from __future__ import annotations

import pandas as pd

from bayesattn.runner import (
    Decision,
    Rule,
    Verdict,
    ci_numbers,
    ci_text,
    convergence_row,
    pick,
    plateau_judgement,
    unknown_floor_basis,
)
from bayesattn.runner import stage_frame as _frame

from .presets import CONVERGENCE_TOLERANCE, DROP_FACTOR, configs, model_spec


# ----------------------------------------------------------------------------- report
def headline(results: pd.DataFrame) -> pd.DataFrame:
    """KL(exact || q) [95% CI] in nats per model and heads (rows) and value width (columns)."""
    ev = _frame(results, "evaluate")
    ev = ev[ev["metric"].isin(["kl_forward", "kl_floor"])].copy()
    ev["cell"] = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]"
                  for v, lo, hi in zip(ev["value"], ev["ci_low"], ev["ci_high"], strict=True)]
    ev["model"] = [f"{m} (s={int(s)})" for m, s in zip(ev["model"], ev["stat_dim"], strict=True)]
    table = ev.pivot_table(index=["model", "heads"], columns="value_width", values="cell",
                           aggfunc="first", sort=False)
    table.columns = [f"d_v={int(c)}" if c > 0 else "family floor" for c in table.columns]
    table = table.fillna("").reset_index()
    table["heads"] = [int(h) if h > 0 else "-" for h in table["heads"]]
    return table

#: Decision rules (docs/rules.md). Version 1: the rules its quick verdicts were decided by
#: up to issue 20's review, as docs/claims.md states them; a run records their hashes.
RULES = (
    Rule(
        claim="P11", version=1, kind="test",
        measures=("mean KL(exact ‖ q) for configurations below s, between s and 2s, and "
                  "at 2s or more (paired bootstrap ratios)."),
        decision=("For each model the verdict is supported when three conditions hold: "
                  "the drop ratio KL(below s) / KL(s to 2s) has a CI lower end ≥ 3, "
                  "every configuration below s is separated from every configuration at "
                  "or above s, and the further ratio beyond 2s stays below the drop. It "
                  "is not supported if the drop's CI upper end is below 3."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
    Rule(
        claim="P11", version=2, kind="sanity", key="nig_drop_ratio",
        measures=("per model, the drop ratio KL(H·d_v < s) / KL(s ≤ H·d_v < 2s) of mean "
                  "KL(exact ‖ q). A sanity check: a readout of width below s cannot carry "
                  "an s-dimensional statistic, whatever the architecture, so the drop "
                  "counts a bottleneck's dimensions and is not specific to attention (a "
                  "mean-pooling bottleneck is the control still to run)."),
        decision=(f"Passes if, on every model, the drop ratio's interval lies above "
                  f"{DROP_FACTOR:g}; fails if on some model it lies below (Holm over the "
                  "models)."),
        multiplicity="every model must pass; a failure is Holm-corrected over the models",
        replication=("at least 5 seeds (bayesattn sweep heads-width --preset quick --seeds "
                     "0-4); the mean over seeds with a Student-t 95% interval. One run's "
                     "verdict uses its own paired bootstrap interval."),
        decisions=(Decision(("*_drop_ratio",), "above", threshold=DROP_FACTOR),),
    ),
)


def model_verdict(drop, above, separation) -> str:
    """Verdict of one model from its drop ratio, above-threshold ratio and CI separation.

    supported: drop ratio CI low >= DROP_FACTOR, every below-threshold config's CI above
    every config's CI at or above s (separation > 1), and the above ratio's CI high below
    the drop ratio's CI low. not supported: drop ratio CI high < DROP_FACTOR, or the above
    ratio's CI low above the drop ratio's CI high. inconclusive otherwise.
    """
    if drop is None:
        return "inconclusive"
    if drop["ci_high"] < DROP_FACTOR or (above is not None
                                          and above["ci_low"] > drop["ci_high"]):
        return "not supported"
    if (drop["ci_low"] >= DROP_FACTOR and separation is not None
            and separation["value"] > 1 and above is not None
            and above["ci_high"] < drop["ci_low"]):
        return "supported"
    return "inconclusive"


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    th = _frame(results, "threshold")
    parts, per_model, numbers = [], [], {}
    for key in params["models"]:
        s = model_spec(key, params["radius"])["stat_dim"]
        drop = pick(th, model=key, metric="drop_ratio") if len(th) else None
        above = pick(th, model=key, metric="above_ratio") if len(th) else None
        sep = pick(th, model=key, metric="separation") if len(th) else None
        v = model_verdict(drop, above, sep)
        per_model.append(v)
        sep_text = "n/a" if sep is None else f"{sep['value']:.2f}"
        parts.append(f"{key} (s={s}): drop KL(w<s)/KL(s<=w<2s) = {ci_text(drop, '{:.2f}')}, "
                     f"beyond KL(s<=w<2s)/KL(w>=2s) = {ci_text(above, '{:.2f}')}, "
                     f"CI separation {sep_text} -> {v}")
        numbers.update({f"{key}_{k}": val for k, val in ci_numbers(drop, "drop").items()})
        numbers.update(ci_numbers(drop, f"{key}_drop_ratio", named=True))
        numbers.update({f"{key}_above_{k}": val
                        for k, val in ci_numbers(above, "ratio").items()})
    if per_model and all(v == "supported" for v in per_model):
        overall = "supported"
    elif "not supported" in per_model:
        overall = "not supported"
    else:
        overall = "inconclusive"
    return [Verdict(
        claim="P11",
        statement=("Heads x value width must reach the dimension s of the minimal sufficient "
                   "statistic: the error drops sharply there and changes little beyond."),
        expected=(f"for every model, mean KL(exact || q) over configs with H*d_v < s is >= "
                  f"{DROP_FACTOR:g}x that over s <= H*d_v < 2s (95% CI low >= {DROP_FACTOR:g}), "
                  "every below-s config's CI lies above every config's CI at H*d_v >= s, and "
                  "the further ratio KL(s <= H*d_v < 2s) / KL(H*d_v >= 2s) stays below the "
                  f"drop (CI high < drop CI low); not supported if the drop's CI high < "
                  f"{DROP_FACTOR:g} or the further ratio clearly exceeds the drop"),
        measured=(f"at L = {params['L']} (paired 95% bootstrap CIs over test sequences): "
                  + "; ".join(parts) + "."),
        verdict=overall, numbers=numbers,
    )]


def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row per trained configuration: its held-out KL(exact || q) against its floor.

    With H * d_v >= s the bottleneck can carry the sufficient statistic (and log L is
    appended), so the floor is that of the head family: 0 for the categorical head of a
    mixture, the best diagonal Gaussian (the ``kl_floor`` rows) for NIG; converged means
    within :data:`CONVERGENCE_TOLERANCE` of it. Below s the best a width-w summary can do
    is not known: those configurations are judged by a plateau test of the training KL
    (last 10% of the steps against the 10% before: a drop within 3 SE or below 1%).
    """
    ev, tr = _frame(results, "evaluate"), _frame(results, "train")
    measure = f"mean KL(exact || q), nats, held-out sets at L = {params['L']}"
    rows = []
    for cfg in configs(params):
        est = pick(ev, config=cfg["config"], metric="kl_forward")
        value = float(est["value"]) if est is not None else float("nan")
        se = float(est["se"]) if est is not None else float("nan")
        if cfg["width"] >= cfg["stat_dim"]:
            floor_row = pick(ev, model=cfg["model"], metric="kl_floor")
            if floor_row is not None:
                floor = float(floor_row["value"])
                basis = (f"best diagonal Gaussian on (mu, log sigma2) (H*d_v = {cfg['width']} "
                         f">= s = {cfg['stat_dim']}: the summary can carry the statistic)")
            else:
                floor = 0.0
                basis = (f"0: H*d_v = {cfg['width']} >= s = {cfg['stat_dim']}, so the summary "
                         "can carry the statistic and the head can express the exact posterior")
            rows.append(convergence_row(cfg["config"], measure=measure, value=value, se=se,
                                        floor=floor, floor_basis=basis,
                                        tolerance=CONVERGENCE_TOLERANCE))
            continue
        flat, how = plateau_judgement(tr, "training KL", config=cfg["config"])
        rows.append(convergence_row(
            cfg["config"], measure=measure, value=value, se=se, floor=float("nan"),
            floor_basis=unknown_floor_basis(
                f"H*d_v = {cfg['width']} < s = {cfg['stat_dim']}, the best summary of that "
                "width is not known", how, "training KL"),
            tolerance=CONVERGENCE_TOLERANCE, converged=flat))
    return pd.DataFrame(rows)
