"""The claim length-awareness decides (P12): the calibration rule and the verdicts, the
headline table and the networks' convergence, all read from ``results.csv``."""

from __future__ import annotations

import numpy as np
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

from .presets import CONVERGENCE_TOLERANCE, COVERAGE_TOL, HEADS, MODELS, NETS, VR_TOL
from .presets import frame as _frame

#: Decision rules (docs/rules.md). Version 1: the rules its quick verdicts were decided by
#: up to issue 20's review, as docs/claims.md states them; a run records their hashes.
RULES = (
    Rule(
        claim="P12", version=1, kind="test",
        measures=("two verdicts per model. Calibration: at the smallest L (2), the "
                  "variance ratio q / exact and the 50 / 80 / 95% coverage. "
                  "Amortization gap: the paired difference, without L minus given L, of "
                  "the gap to the best member of the head family at L = 2."),
        decision=("Calibration: supported if the net without L is miscalibrated and the "
                  "net given L is calibrated; not supported if the net without L is "
                  "calibrated. \"Calibrated\" means a variance-ratio CI inside [0.8, "
                  "1.25] and every coverage CI reaching its nominal level ± 0.05. "
                  "Amortization gap: supported if it is above 0 on both models."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
    Rule(
        claim="P12", version=2, kind="test",
        measures=("calibration, per model: the log variance ratio q / exact of the net "
                  "that is not told L, at every L of the grid (not at the smallest L "
                  "only), as two one-sided cells per L (too wide, too narrow). The net told "
                  "L is reported beside it as the control. Amortization gap: per model, the "
                  "paired difference of the amortization gap without and with L at the "
                  "smallest L."),
        decision=(f"Calibration: supported if at some L the no-L net's variance ratio "
                  f"lies outside [{1 / VR_TOL:.2f}, {VR_TOL:.2f}] (its interval beyond one "
                  "edge; Holm over all cells); not supported if at every L it lies inside; "
                  "inconclusive otherwise. Amortization gap: supported if on every model "
                  "the difference's interval lies above 0; not supported if on some model "
                  "it lies below 0 (Holm over the models)."),
        multiplicity=("calibration: Holm over 2 × (number of lengths) cells, any one "
                      "supports; amortization gap: every model must hold, refutation "
                      "Holm-corrected"),
        replication=("at least 5 seeds (bayesattn sweep length-awareness --preset quick "
                     "--seeds 0-4); the mean over seeds with a Student-t 95% interval. One "
                     "run's verdict uses its own bootstrap interval."),
        decisions=(
            Decision(("too_wide_L*", "too_narrow_L*"), "above",
                     threshold=float(np.log(VR_TOL)), combine="any"),
            Decision(("*_gap_difference",), "above", threshold=0.0),
        ),
    ),
)


def classify(vr: dict | pd.Series | None, coverage: pd.DataFrame) -> str:
    """``"calibrated"``, ``"miscalibrated"`` or ``"undetermined"`` from 95% CIs.

    Calibrated: the variance-ratio CI lies inside [1/VR_TOL, VR_TOL] and every coverage
    CI reaches the band nominal +- COVERAGE_TOL. Miscalibrated: the variance-ratio CI lies
    outside [1/VR_TOL, VR_TOL], or some coverage CI lies outside nominal +- COVERAGE_TOL.

    Args:
        vr: Row with ``ci_low, ci_high`` of the variance ratio (None: missing).
        coverage: Rows with ``level, ci_low, ci_high`` (one per credible level).
    """
    if vr is None or len(coverage) == 0:
        return "undetermined"
    lo, hi = float(vr["ci_low"]), float(vr["ci_high"])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undetermined"
    vr_in = 1 / VR_TOL <= lo and hi <= VR_TOL
    vr_out = hi < 1 / VR_TOL or lo > VR_TOL
    dev_low = coverage["ci_high"] < coverage["level"] - COVERAGE_TOL
    dev_high = coverage["ci_low"] > coverage["level"] + COVERAGE_TOL
    cov_out = bool((dev_low | dev_high).any())
    if vr_out or cov_out:
        return "miscalibrated"
    return "calibrated" if vr_in else "undetermined"


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Variance ratio q/exact and coverage of central intervals per model, net and L."""
    cal = _frame(results, "calibrate")
    keep = cal[cal["metric"].isin(["variance_ratio", "coverage"])].copy()
    keep["quantity"] = np.where(
        keep["metric"] == "coverage",
        "coverage " + (100 * keep.get("level", pd.Series(0.0, index=keep.index)))
        .round().astype("Int64").astype(str) + "%",
        "variance ratio")
    table = keep.pivot_table(index=["model", "candidate", "quantity"], columns="L",
                             values="value", sort=False)
    table.columns = [f"L={int(c)}" for c in table.columns]
    return table.round(3).reset_index()


def _state(cal: pd.DataFrame, name: str, label: str, length: int) -> tuple[str, str]:
    sel = cal[(cal["model"] == name) & (cal["candidate"] == label) & (cal["L"] == length)]
    vr = pick(sel, metric="variance_ratio")
    cov = sel[sel["metric"] == "coverage"]
    text = (f"variance ratio {ci_text(vr, '{:.2f}')}; coverage "
            + ", ".join(f"{100 * r.level:.0f}%: {r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
                        for r in cov.itertuples()))
    return classify(vr, cov), text


def _vr_numbers(cal, name, label, length, prefix) -> dict[str, float]:
    sel = cal[(cal["model"] == name) & (cal["candidate"] == label) & (cal["L"] == length)]
    return {f"{prefix}_{k}": v for k, v in ci_numbers(
        pick(sel, metric="variance_ratio"), "variance_ratio").items()}


def _log_vr_cells(cal, name, label) -> dict[str, float]:
    """Two one-sided cells per L: ``too_wide_L<L>`` = log variance ratio and
    ``too_narrow_L<L>`` = minus it, each with its interval (the log is monotone)."""
    out: dict[str, float] = {}
    sel = cal[(cal["model"] == name) & (cal["candidate"] == label)
              & (cal["metric"] == "variance_ratio")]
    for r in sel.itertuples():
        lv, lo, hi = (float(np.log(x)) for x in (r.value, r.ci_low, r.ci_high))
        out.update({f"too_wide_L{int(r.L)}": lv, f"too_wide_L{int(r.L)}_ci_low": lo,
                    f"too_wide_L{int(r.L)}_ci_high": hi,
                    f"too_narrow_L{int(r.L)}": -lv, f"too_narrow_L{int(r.L)}_ci_low": -hi,
                    f"too_narrow_L{int(r.L)}_ci_high": -lo})
    return out


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    cal = _frame(results, "calibrate")
    amo = _frame(results, "amortization")
    small, large = int(min(params["lengths"])), int(max(params["lengths"]))
    lo, hi = params["train_len"]
    tol = (f"calibrated = 95% CI of the variance ratio q/exact inside [{1 / VR_TOL:.2f}, "
           f"{VR_TOL:.2f}] and every coverage CI (50/80/95%) reaching nominal +- "
           f"{COVERAGE_TOL:.2f}; miscalibrated = variance-ratio CI outside [{1 / VR_TOL:.2f}, "
           f"{VR_TOL:.2f}] or some coverage CI outside nominal +- {COVERAGE_TOL:.2f}")
    out = []
    for name in MODELS:
        blind, blind_text = _state(cal, name, "net (no L)", small)
        aware, aware_text = _state(cal, name, "net (given L)", small)
        _, blind_large = _state(cal, name, "net (no L)", large)
        if blind == "miscalibrated" and aware == "calibrated":
            verdict = "supported"
        elif blind == "calibrated":
            verdict = "not supported"
        else:
            verdict = "inconclusive"
        out.append(Verdict(
            claim="P12",
            statement=(f"{name}: without L the attention posterior is miscalibrated at small "
                       "L, and feeding L removes the miscalibration."),
            expected=(f"at the smallest L = {small} (trained on L in [{lo}, {hi}]) the net "
                      f"without L is miscalibrated and the net given L is calibrated ({tol})"),
            measured=(f"L = {small}: without L {blind_text} -> {blind}; given L {aware_text} "
                      f"-> {aware}. For reference, without L at L = {large}: {blind_large}."),
            verdict=verdict,
            numbers={**_vr_numbers(cal, name, "net (no L)", small, "no_L"),
                     **_vr_numbers(cal, name, "net (given L)", small, "given_L"),
                     **_log_vr_cells(cal, name, "net (no L)")},
        ))
    diffs = amo[(amo["metric"] == "amortization_gap_difference") & (amo["L"] == small)]
    parts, signs = [], []
    for name in MODELS:
        d = pick(diffs, model=name)
        g = pick(amo, model=name, candidate="net (no L)", L=small, metric="amortization_gap")
        b = pick(amo, model=name, candidate="net (no L)", L=small, metric="kl_best_in_family")
        parts.append(f"{name}: gap without L {ci_text(g, '{:.3g}')} nats, best in family "
                     f"{ci_text(b, '{:.3g}')}, paired difference (no L - given L) "
                     f"{ci_text(d, '{:.3g}')}")
        signs.append("n/a" if d is None else
                     "+" if d["ci_low"] > 0 else "-" if d["ci_high"] < 0 else "0")
    if signs and all(sg == "+" for sg in signs):
        amo_verdict = "supported"
    elif "-" in signs:
        amo_verdict = "not supported"
    else:
        amo_verdict = "inconclusive"
    out.append(Verdict(
        claim="P12",
        statement=("The length-awareness gap is an amortization gap: the head family holds a "
                   "better answer that the encoder without L does not pick."),
        expected=(f"at L = {small}, on both models, the amortization gap (KL(p||q) - KL(p||q*), "
                  "q* the best member of the head family per sequence) is larger without L than "
                  "with L: paired 95% bootstrap CI of the difference above 0"),
        measured="; ".join(parts) + ".",
        verdict=amo_verdict,
        numbers={**{f"{n}_{k}": v for n in MODELS for k, v in ci_numbers(
            pick(diffs, model=n), "gap_difference").items()},
                 **{k: v for n in MODELS for k, v in ci_numbers(
                     pick(diffs, model=n), f"{n}_gap_difference", named=True).items()}},
    ))
    return out


def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row per trained network (model x with/without L).

    Given L, both head families contain the exact posterior, so the floor is 0 nats of
    KL(exact || q); the value is the mean over the grid lengths inside ``train_len`` of
    the mean ``kl_amortized`` of the amortization stage (held-out sequences), judged
    against :data:`CONVERGENCE_TOLERANCE`. Without L the smallest reachable KL is not
    known (the net cannot know how sharp to be): it is judged by a plateau test of its
    training KL (last 10% of the steps against the 10% before: a drop within 3 SE or
    below 1%).
    """
    amo, tr = _frame(results, "amortization"), _frame(results, "train")
    lo, hi = params["train_len"]
    measure = f"mean KL(exact || q), nats, held-out sets at grid L in [{lo}, {hi}]"
    rows = []
    for name in MODELS:
        for _, aware, label in NETS:
            sel = amo[(amo["model"] == name) & (amo["candidate"] == label)
                      & (amo["metric"] == "kl_amortized") & (amo["L"] >= lo)
                      & (amo["L"] <= hi)]
            value = float(sel["value"].mean()) if len(sel) else float("nan")
            se = (float(np.sqrt((sel["se"].astype(float) ** 2).sum()) / len(sel))
                  if len(sel) else float("nan"))
            network = f"{name}: {label}"
            if aware:
                rows.append(convergence_row(
                    network, measure=measure, value=value, se=se, floor=0.0,
                    floor_basis=(f"0: the {HEADS[name]} head family contains the exact "
                                 "posterior, and the net is told L"),
                    tolerance=CONVERGENCE_TOLERANCE))
                continue
            flat, how = plateau_judgement(tr, "training KL", model=name, candidate=label)
            rows.append(convergence_row(
                network, measure=measure, value=value, se=se, floor=float("nan"),
                floor_basis=unknown_floor_basis(
                    "blind to L, it cannot reach the exact posterior and the best length-blind "
                    "answer is not known", how, "training KL"),
                tolerance=CONVERGENCE_TOLERANCE, converged=flat))
    return pd.DataFrame(rows)
