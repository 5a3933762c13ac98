"""The claims generalisation decides (P7, P8): decision rules and verdicts, the headline table
and the networks' convergence, all read from ``results.csv``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn.runner import Decision, Rule, Verdict, ci_text
from bayesattn.runner import stage_frame as _frame

from .presets import FLAT_BAND, MIN_POINTS, N_SLOPE_MAX, PRIMARY, RESOLVED_Z, slope_rows


# verdicts -------------------------------------------------------------------------
def band_verdict(slopes: pd.DataFrame, *, low: float, high: float) -> tuple[str, dict]:
    """Verdict from per-line slope CIs against the band ``[low, high]``.

    ``supported`` when every line is estimable and its 95% CI lies inside the band;
    ``not supported`` when on a majority of all lines the CI lies entirely outside it
    (all above ``high``, or all below ``low``); ``inconclusive`` otherwise. Use
    ``low = -inf`` for a one-sided criterion. Returns the verdict and counts.
    """
    est = slopes[slopes["estimable"].astype(bool)]
    inside = int(((est["ci_low"] >= low) & (est["ci_high"] <= high)).sum())
    above = int((est["ci_low"] > high).sum())
    below = int((est["ci_high"] < low).sum())
    total = len(slopes)
    counts = {"lines": total, "estimable": len(est), "inside": inside, "above": above,
              "below": below}
    if total and inside == total:
        return "supported", counts
    if total and max(above, below) > total / 2:
        return "not supported", counts
    return "inconclusive", counts


V2_REPLICATION = ("at least 5 seeds (bayesattn sweep generalisation --preset quick --seeds "
                  "0-4); the mean over seeds with a Student-t 95% interval. One run's "
                  "verdict uses its own parametric-bootstrap interval.")

#: Decision rules (docs/rules.md). Version 1: the rules its quick verdicts were decided by
#: up to issue 20's review, as docs/claims.md states them; a run records their hashes.
RULES = (
    Rule(
        claim="P7", version=1, kind="test",
        measures=("at each N, the log-log slope of the gap (test NLL − training NLL) "
                  "against L."),
        decision=("The verdict is supported when every slope's 95% CI lies inside "
                  "[-0.1, 0.1]. It is not supported when the CI lies outside that band "
                  "at a majority of the N. Only gaps more than 2 standard errors above "
                  "0 enter a fit, and a fit needs at least 3 of them."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
    Rule(
        claim="P8", version=1, kind="test",
        measures="at each L, the log-log slope of the gap against N.",
        decision=("The verdict is supported when the CI's upper end is below -0.25 at "
                  "every L. It is not supported when the CI's lower end is above -0.25 "
                  "at a majority of the L."),
        multiplicity="none",
        replication=("one run seed; intervals over test sequences only (no training "
                     "randomness)"),
    ),
    Rule(
        claim="P7", version=2, kind="test", key="slope_L_N64",
        measures=("at each N, the log-log slope in L of the generalisation gap (test − "
                  "training loss); a slope that cannot be fitted (fewer than 3 resolved "
                  "gaps) is a missing cell and makes the verdict inconclusive."),
        decision=("One direction, as the paper's bound is: supported if at every N the "
                  "slope's interval lies below +0.1 (the gap does not grow with L beyond "
                  "L^0.1); not supported if at some N it lies above +0.1 (Holm over the N); "
                  "inconclusive otherwise. A gap that falls with L is consistent with an "
                  "L-independent bound."),
        multiplicity="every N must hold; a refutation is Holm-corrected over the N",
        replication=V2_REPLICATION,
        decisions=(Decision(("slope_L_N*",), "below", threshold=0.1),),
    ),
    Rule(
        claim="P8", version=2, kind="test", key="slope_N_L64",
        measures=("at each L, the log-log slope in N of the generalisation gap. Limit: the "
                  "quick preset trains every N for the same number of steps, so small N "
                  "see many more epochs than large N; a fixed-epochs control is still to "
                  "run."),
        decision=("Supported if at every L the slope's interval lies below -0.4 (N^-1/2 up "
                  "to 0.1 in the exponent); not supported if at some L it lies above -0.4 "
                  "(Holm over the L); inconclusive otherwise."),
        multiplicity="every L must hold; a refutation is Holm-corrected over the L",
        replication=V2_REPLICATION,
        decisions=(Decision(("slope_N_L*",), "below", threshold=-0.4),),
    ),
)


def _listing(slopes: pd.DataFrame, by: str) -> str:
    parts = []
    for r in slopes.itertuples():
        if r.estimable:
            text = (f"{ci_text(r._asdict())} ({int(r.n)} of {int(r.points)} points resolved, "
                    f"{int(r.x_low)}..{int(r.x_high)})")
        else:
            text = f"not estimable ({int(r.n)} of {int(r.points)} points resolved)"
        parts.append(f"{by}={int(getattr(r, by))}: {text}")
    return "; ".join(parts)


def _cells(slopes: pd.DataFrame, name: str, by: str) -> dict[str, float]:
    """One cell per line: ``<name>_<by><value>`` with its interval (NaN if not estimable)."""
    out: dict[str, float] = {}
    for r in slopes.itertuples():
        ok = bool(r.estimable)
        key = f"{name}_{by}{int(getattr(r, by))}"
        out.update({key: float(r.value) if ok else float("nan"),
                    f"{key}_ci_low": float(r.ci_low) if ok else float("nan"),
                    f"{key}_ci_high": float(r.ci_high) if ok else float("nan")})
    return out


def _median(slopes: pd.DataFrame) -> float:
    est = slopes[slopes["estimable"].astype(bool)]
    return float(est["value"].median()) if len(est) else float("nan")


def _secondary(sl: pd.DataFrame, objective: str, metric: str, by: str, band) -> str:
    lines = sl[(sl["objective"] == objective) & (sl["metric"] == metric)].sort_values(by)
    verdict, counts = band_verdict(lines, low=band[0], high=band[1])
    return (f" Secondary arm (objective {objective}, gap in {PRIMARY[objective]}): "
            f"{_listing(lines, by)}; the same criterion would say '{verdict}' "
            f"({counts['inside']} of {counts['lines']} inside).")


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    sl = slope_rows(results)
    main = params["objectives"][0]
    loss = PRIMARY[main]
    unit = "KL(exact || q)" if loss == "kl" else "NLL -log q(z | X)"
    others = list(params["objectives"][1:])
    out = []

    s7 = sl[(sl["objective"] == main) & (sl["metric"] == "slope_in_L")].sort_values("N")
    v7, c7 = band_verdict(s7, low=FLAT_BAND[0], high=FLAT_BAND[1])
    extra7 = "".join(_secondary(sl, o, "slope_in_L", "N", FLAT_BAND) for o in others)
    out.append(Verdict(
        claim="P7", statement="At fixed N, the generalisation gap does not depend on L.",
        expected=(f"log-log slope of the gap ({unit}, test - train, nats per sequence) in L: "
                  f"95% CI inside [{FLAT_BAND[0]}, {FLAT_BAND[1]}] at every N (supported; "
                  f"fits use points with gap > {RESOLVED_Z:g} se, >= {MIN_POINTS} per N); "
                  f"CI entirely outside that band at a majority of the N (not supported); "
                  "otherwise inconclusive"),
        measured=(f"slope in L on [{min(params['lengths'])}, {max(params['lengths'])}] per N "
                  f"(95% parametric-bootstrap CIs): {_listing(s7, 'N')}. Inside the band at "
                  f"{c7['inside']} of {c7['lines']} N, above at {c7['above']}, below at "
                  f"{c7['below']}; median slope {_median(s7):+.2f}.{extra7}"),
        verdict=v7, numbers={**c7, "median_slope": _median(s7), **_cells(s7, "slope_L", "N")},
    ))

    s8 = sl[(sl["objective"] == main) & (sl["metric"] == "slope_in_N")].sort_values("L")
    v8, c8 = band_verdict(s8, low=-np.inf, high=N_SLOPE_MAX)
    extra8 = "".join(_secondary(sl, o, "slope_in_N", "L", (-np.inf, N_SLOPE_MAX))
                     for o in others)
    out.append(Verdict(
        claim="P8", statement="The generalisation gap falls with N like N^-1/2 or faster.",
        expected=(f"log-log slope of the gap ({unit}) in N: 95% CI upper bound < "
                  f"{N_SLOPE_MAX} at every L (supported; fits use points with gap > "
                  f"{RESOLVED_Z:g} se, >= {MIN_POINTS} per L); CI lower bound > {N_SLOPE_MAX} "
                  "at a majority of the L (not supported); otherwise inconclusive"),
        measured=(f"slope in N on [{min(params['train_sizes'])}, "
                  f"{max(params['train_sizes'])}] per L (95% CIs): {_listing(s8, 'L')}. "
                  f"Below {N_SLOPE_MAX} at {c8['inside']} of {c8['lines']} L; median slope "
                  f"{_median(s8):+.2f}.{extra8}"),
        verdict=v8, numbers={**c8, "median_slope": _median(s8), **_cells(s8, "slope_N", "L")},
    ))
    return out


def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row per network, judged by a plateau of its training loss: every network is
    trained on a fixed, finite set of N sequences on purpose, so its floor (the smallest
    test error reachable from N sequences) is not known and not 0."""
    from bayesattn.runner import convergence_row, is_plateau

    gaps = _frame(results, "gaps")
    rows = []
    for r in gaps[gaps["metric"] == "train_loss_plateau"].itertuples():
        stats = {k: float(getattr(r, f"plateau_{k}", np.nan))  # all-NaN columns are dropped
                 for k in ("drop", "se", "relative_drop")}
        known = all(np.isfinite(float(v)) for v in stats.values())
        before = r.value + stats["drop"]
        rep = f" rep {int(r.replicate)}" if int(params.get("replicates", 1)) > 1 else ""
        rows.append(convergence_row(
            f"{r.objective} N={int(r.N)} L={int(r.L)}{rep}",
            measure=(f"training loss ({'KL(exact || q)' if r.objective == 'kl' else 'NLL'}, "
                     "nats per sequence, minibatches of the training set, last 10% of steps)"),
            value=r.value, se=stats["se"], floor=np.nan,
            # the threshold of _convergence.is_plateau: a drop within 3 SE or below 1% of the loss
            tolerance=max(3 * stats["se"], 0.01 * abs(before)) if known else 0.0,
            converged=known and is_plateau(stats),
            floor_basis=(f"floor unknown: trained on N = {int(r.N)} fixed sequences on "
                         "purpose; judged by a plateau of the training loss (last 10% of "
                         f"steps vs the 10% before: drop {stats['drop']:+.4f}, se "
                         f"{stats['se']:.4f}, {100 * stats['relative_drop']:+.2f}%; a "
                         "plateau if within 3 SE or < 1%)")))
    return pd.DataFrame(rows)



def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Gap (test - train, nats per sequence) with 95% CI: rows N, columns L."""
    su = _frame(results, "summary")
    frames = []
    for objective in dict.fromkeys(su["objective"]):
        metric = f"gap_{PRIMARY[objective]}"
        sub = su[(su["objective"] == objective) & (su["metric"] == metric)].copy()
        sub["cell"] = [f"{v:.2e} [{lo:.1e}, {hi:.1e}]"
                       for v, lo, hi in zip(sub["value"], sub["ci_low"], sub["ci_high"],
                                            strict=True)]
        table = sub.pivot(index="N", columns="L", values="cell")
        table.columns = [f"L={int(c)}" for c in table.columns]
        table = table.reset_index()
        table["N"] = table["N"].astype(int)
        table.insert(0, "gap", metric)
        table.insert(0, "objective", objective)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)
