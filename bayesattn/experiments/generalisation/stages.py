"""The stages of generalisation: one network per (objective, replicate, N, L) and its gaps,
their average over replicates, and the log-log slopes of the gap in L and in N."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn.runner import StageOutput, combine_replicates

from .._posteriors import exact_vs_net_draws
from .presets import GAP_KEYS, MIN_POINTS, PRIMARY, RESOLVED_Z
from .presets import model as _model


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


def gaps(ctx) -> StageOutput:
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


def summary(ctx) -> pd.DataFrame:
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


def slopes(ctx) -> pd.DataFrame:
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
