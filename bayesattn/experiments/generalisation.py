"""Generalisation gap vs sequence length and training-set size (P7, P8).

On ``concept-mixture`` (K = 4 Gaussian concepts in 2-D, means at radius 0.5, unit
token noise; exact posterior by enumeration) one Set Transformer per (N, L) is
trained on a *fixed* training set of N sequences of exactly L tokens
(``bayesattn.gaps.generalisation_gap``, ``inference.fixed_training_set``) for a fixed
number of steps, then scored on its own training sequences and on fresh ones.

Two training objectives, each judged by its own ERM loss (nats per sequence):
``npe`` (the primary arm, listed first: supervised ERM on sampled labels z, paper 1's
setting; loss NLL = -log q(z | X), gap = test NLL - training NLL) and ``kl``
(distillation of the exact posterior; loss KL(p(z | X) || q(z | X)), so the test loss
is the excess risk over Bayes; the targets are deterministic given X). Verdicts are
stated for the first objective of the preset; the others are reported beside it.
Each point's 95% CI comes from a bootstrap over the training and the test sequences;
with several replicates (independent training sets and initialisations) the points
are averaged and the CI is normal with the larger of the within- and between-
replicate standard errors.

P7 (gap independent of L) is the log-log slope of the gap against L at each fixed N;
P8 (gap ~ N^-1/2 or faster) is the log-log slope against N at each fixed L, both from
``bayesattn.gaps.fit_slope`` (parametric bootstrap over the points' standard errors).
Only resolved points (mean gap > 2 standard errors) enter a fit, and a line needs 3 of
them: a gap indistinguishable from 0 has no usable logarithm. For P8 this drops the
smallest gaps (largest N), which makes the fitted decay shallower, i.e. conservative.
With a fixed step budget, large-N networks see each sequence fewer times, so the gap
there also reflects less fitting, not only more data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn.runner import (
    Experiment,
    Stage,
    StageOutput,
    Verdict,
    ci_text,
    combine_replicates,
    register,
)
from bayesattn.runner import stage_frame as _frame

from ._posteriors import exact_vs_net_draws

MODEL = {"name": "concept-mixture", "K": 4, "d": 2, "radius": 0.5}
#: the loss whose gap each training objective is judged by (its own ERM loss)
PRIMARY = {"npe": "nll", "kl": "kl"}
#: one row of the gap table per these keys (replicates are averaged)
GAP_KEYS = ("objective", "N", "L", "metric")
#: P7: a slope in L inside this band counts as flat (gap changes < 7% per doubling of L)
FLAT_BAND = (-0.1, 0.1)
#: P8: a slope in N below this counts as "about N^-1/2 or faster"
N_SLOPE_MAX = -0.25
#: a point enters a slope fit only when its mean gap exceeds this many standard errors
RESOLVED_Z = 2.0
#: resolved points a line needs for a slope
MIN_POINTS = 3

# Per-token cost of a training step in dim^2 units: simulation, featurising, loss and
# optimiser cost about as much per token as a block of width ~57 (measured on one
# thread: 27 / 33 / 55 ms per Set Transformer step at dim 16 / 32 / 64, batch 64, L 32).
TOKEN_OVERHEAD = 3300.0

PRESETS = {
    "smoke": {"train_sizes": [8, 16, 32], "lengths": [4, 8, 16], "steps": 10, "batch_size": 16,
              "dim": 8, "num_heads": 2, "num_blocks": 1, "lr": 3e-3, "num_test": 32,
              "replicates": 1, "objectives": ["npe"], "num_resamples": 100},
    "quick": {"train_sizes": [64, 128, 256, 512, 1024, 2048], "lengths": [8, 16, 32, 64],
              "steps": 300, "batch_size": 64, "dim": 16, "num_heads": 2, "num_blocks": 1,
              "lr": 3e-3, "num_test": 1024, "replicates": 1, "objectives": ["npe", "kl"],
              "num_resamples": 1000},
    "full": {"train_sizes": [64, 128, 256, 512, 1024, 2048, 4096, 8192],
             "lengths": [8, 16, 32, 64, 128, 256], "steps": 2000, "batch_size": 128, "dim": 64,
             "num_heads": 4, "num_blocks": 2, "lr": 1e-3, "num_test": 4096, "replicates": 3,
             "objectives": ["npe", "kl"], "num_resamples": 2000},
}


def _model():
    from bayesattn import models

    return models.get(MODEL["name"], K=MODEL["K"], d=MODEL["d"], radius=MODEL["radius"])


# stages -------------------------------------------------------------------------
def gap_grid(model, *, train_sizes, lengths, steps: int, batch_size: int, objective: str,
             encoder_options: dict, num_test: int, seed: int, device: str, lr: float,
             num_resamples: int, checkpoint_root=None) -> tuple[pd.DataFrame, dict]:
    """``bayesattn.gaps.generalisation_gap`` (a Set Transformer per (N, L)), plus one
    ``train_loss_plateau`` row per network from its training history: ``value`` is the
    mean training loss over the last 10% of the steps, ``plateau_drop``, ``plateau_se``
    and ``plateau_relative_drop`` the ``loss_plateau`` test against the 10% before it.

    Returns ``(frame, {(N, L): net})``.
    """
    from bayesattn.gaps import generalisation_gap
    from bayesattn.runner import loss_plateau

    frame, nets, histories = generalisation_gap(
        model, train_sizes=train_sizes, lengths=lengths, steps=steps, batch_size=batch_size,
        objective=objective, encoder="set-transformer", encoder_options=encoder_options,
        num_test=num_test, seed=seed, device=device, lr=lr, num_resamples=num_resamples,
        return_networks=True, return_histories=True, checkpoint_root=checkpoint_root)
    rows = []
    for (n, length), history in histories.items():
        try:
            plat = loss_plateau(history, "loss")
        except ValueError:  # too few steps to tell
            plat = dict.fromkeys(("last", "drop", "se", "relative_drop"), np.nan)
        rows.append({"N": n, "L": length, "metric": "train_loss_plateau",
                     "value": plat["last"], "ci_low": np.nan, "ci_high": np.nan,
                     "se": plat["se"], "n": len(history), "plateau_drop": plat["drop"],
                     "plateau_se": plat["se"], "plateau_relative_drop": plat["relative_drop"]})
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True), nets


def _gaps(ctx) -> StageOutput:
    """One network per (objective, replicate, N, L): train / test / gap rows and its
    training-loss plateau, and posterior draws of the first objective's networks at the
    smallest and largest N (smallest L)."""
    model, p = _model(), ctx.params
    options = {"dim": p["dim"], "num_heads": p["num_heads"], "num_blocks": p["num_blocks"]}
    frames, draws = [], {}
    for objective in p["objectives"]:
        for rep in range(int(p["replicates"])):
            frame, nets = gap_grid(
                model, train_sizes=p["train_sizes"], lengths=p["lengths"], steps=p["steps"],
                batch_size=p["batch_size"], objective=objective, encoder_options=options,
                num_test=p["num_test"], seed=ctx.seed_for("gaps", objective, rep),
                device=ctx.device, lr=p["lr"], num_resamples=p["num_resamples"],
                checkpoint_root=ctx.checkpoint_dir(f"{objective}-{rep}"))
            if not draws:  # overfitting made visible: exact vs net on fresh sequences
                length = min(p["lengths"])
                for n in sorted({min(p["train_sizes"]), max(p["train_sizes"])}):
                    draws.update(exact_vs_net_draws(ctx, model, nets[(n, length)], [length],
                                                    num_datasets=16, label=f"_N{n}"))
            frame.insert(0, "replicate", rep)
            frame.insert(0, "objective", objective)
            frames.append(frame)
    return StageOutput(pd.concat(frames, ignore_index=True), artifacts=draws)


def _summary(ctx) -> pd.DataFrame:
    return combine_replicates(ctx.results["gaps"], GAP_KEYS)


def line_slopes(summary: pd.DataFrame, metric: str, *, x: str, by: str,
                num_resamples: int, seed: int, min_z: float = RESOLVED_Z,
                min_points: int = MIN_POINTS) -> pd.DataFrame:
    """Log-log slope of ``metric`` against ``x`` on each line of fixed ``by``.

    Only *resolved* points enter a fit: mean > ``min_z`` x its standard error (a gap
    indistinguishable from 0 has no usable logarithm, and ``fit_slope``'s parametric
    bootstrap would drop its non-positive redraws, biasing the CI). A line needs
    ``min_points`` resolved points with distinct ``x``.

    Rows: ``by``, ``value, ci_low, ci_high, se, n`` (points used), ``points`` (points on
    the line), ``x_low, x_high`` (range fitted) and ``estimable`` (False, with NaN
    numbers, where too few points are resolved).
    """
    from bayesattn.gaps import fit_slope

    data = summary[summary["metric"] == metric]
    rows = []
    for level in sorted(data[by].unique()):
        line = data[data[by] == level]
        used = line[line["value"] > min_z * line["se"].fillna(np.inf)]
        row = {by: level, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "se": np.nan,
               "n": int(len(used)), "points": int(len(line)), "x_low": np.nan,
               "x_high": np.nan, "estimable": False}
        if used[x].nunique() >= max(2, min_points):
            est = fit_slope(used, metric, x=x, log_x=True, log_y=True,
                            num_resamples=num_resamples, seed=seed)
            row.update(est.row(), estimable=bool(np.isfinite(est.ci_low)),
                       x_low=used[x].min(), x_high=used[x].max())
        rows.append(row)
    return pd.DataFrame(rows)


def _slopes(ctx) -> pd.DataFrame:
    summary = ctx.results["summary"]
    frames = []
    for objective in ctx.params["objectives"]:
        sub = summary[summary["objective"] == objective]
        metric = f"gap_{PRIMARY[objective]}"
        for x, by in (("L", "N"), ("N", "L")):
            out = line_slopes(sub, metric, x=x, by=by,
                              num_resamples=ctx.params["num_resamples"],
                              seed=ctx.seed_for("slopes", objective, x))
            out.insert(0, "loss", metric)
            out.insert(0, "metric", f"slope_in_{x}")
            out.insert(0, "objective", objective)
            frames.append(out)
    return pd.concat(frames, ignore_index=True)


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


def _slope_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The slopes stage's rows with all its columns (also where none was estimable)."""
    sl = results[results["stage"] == "slopes"].copy()
    sl["estimable"] = sl["estimable"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return sl


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
    sl = _slope_rows(results)
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
        verdict=v7, numbers={**c7, "median_slope": _median(s7)},
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
        verdict=v8, numbers={**c8, "median_slope": _median(s8)},
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


def work(params: dict) -> float:
    """Compute asked for, in millions of token-passes x (dim^2 x blocks + TOKEN_OVERHEAD)
    (x 1e-6).

    One network per (objective, replicate, N, L): steps x batch x L tokens, plus scoring
    its N training and ``num_test`` test sequences once.
    """
    dim2 = float(params["dim"]) ** 2 * int(params["num_blocks"]) + TOKEN_OVERHEAD
    nets = len(params["objectives"]) * int(params["replicates"])
    sizes = [int(n) for n in params["train_sizes"]]
    per_length = (len(sizes) * int(params["steps"]) * int(params["batch_size"])
                  + sum(sizes) + len(sizes) * int(params["num_test"]))
    return nets * per_length * sum(int(v) for v in params["lengths"]) * dim2 * 1e-6


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


def figures(ctx, results: pd.DataFrame):
    from . import _figures_generalisation

    return _figures_generalisation.make(ctx, results)


EXPERIMENT = register(Experiment(
    name="generalisation",
    title="Generalisation gap vs sequence length and training-set size on concept-mixture",
    claims=("P7", "P8"),
    description=__doc__.split("\n\n", 1)[1].strip(),
    presets=PRESETS,
    stages=(Stage("gaps", _gaps), Stage("summary", _summary), Stage("slopes", _slopes)),
    figures=figures,
    verdicts=verdicts,
    headline=headline,
    convergence=convergence,
    work=work,
))
