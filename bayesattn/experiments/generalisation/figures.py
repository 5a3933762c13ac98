"""Figures of the generalisation experiment (seaborn via bayesattn.plots; PNG + SVG), drawn
from the run folder: the summary and slopes stages' tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import FLAT_BAND, N_SLOPE_MAX, PRIMARY, RESOLVED_Z, slope_rows
from .presets import model as _model

_LOSS_LABEL = {"kl": "KL(exact ‖ q) [nats/sequence]", "nll": "NLL −log q(z | X) [nats/sequence]"}
_AXIS_LABEL = {"N": "training-set size N (sequences)", "L": "sequence length L (tokens)"}


def _lines(ax, frame: pd.DataFrame, x: str, hue: str, palette: dict, *, positive: bool,
           resolved_z: float | None = None) -> int:
    """One line with a 95% CI band per ``hue`` level; returns how many points were hidden.

    With ``resolved_z``, points whose mean is within ``resolved_z`` standard errors of 0
    get an open marker (they are left out of the slope fits).
    """
    hidden, unresolved = 0, False
    for level, group in frame.groupby(hue, sort=True):
        group = group.sort_values(x)
        if positive:
            hidden += int((group["value"] <= 0).sum())
            group = group[group["value"] > 0]
        if group.empty:
            continue
        color = palette[level]
        ax.plot(group[x], group["value"], marker="o", ms=4, color=color,
                label=f"{hue} = {int(level)}")
        low = group["ci_low"]
        if positive:  # a log axis: bands reach down to a third of the smallest mean
            low = low.clip(lower=frame.loc[frame["value"] > 0, "value"].min() / 3)
        ax.fill_between(group[x], low, group["ci_high"], color=color, alpha=0.18, lw=0)
        if resolved_z is not None:
            weak = group[group["value"] <= resolved_z * group["se"]]
            unresolved |= not weak.empty
            ax.plot(weak[x], weak["value"], marker="o", ms=6, ls="none", mfc="white",
                    color=color)
    if unresolved:
        ax.plot([], [], marker="o", ms=6, ls="none", mfc="white", color="0.3",
                label=f"gap < {resolved_z:g} se (not fitted)")
    return hidden


def _guide(ax, frame: pd.DataFrame, x: str, slope: float, label: str) -> None:
    """A dashed reference line x^slope through the geometric mean of the leftmost points."""
    first = frame[(frame[x] == frame[x].min()) & (frame["value"] > 0)]
    if first.empty:
        return
    xs = np.array(sorted(frame[x].unique()), float)
    y0 = float(np.exp(np.log(first["value"]).mean()))
    ax.plot(xs, y0 * (xs / xs[0]) ** slope, ls="--", color="0.35", lw=1.2, label=label)


def _loss_panels(summary: pd.DataFrame, objectives: list[str], primary: dict, x: str,
                 hue: str, guide: tuple[float, str] | None, resolved_z: float):
    import seaborn as sns
    from matplotlib.ticker import NullLocator

    from bayesattn.plots import subplots

    levels = sorted(summary[hue].unique())
    palette = dict(zip(levels, sns.color_palette("viridis", len(levels)), strict=True))
    fig, axes = subplots(len(objectives), 3, figsize=(15.5, 4.3 * len(objectives)),
                         squeeze=False)
    for row, objective in enumerate(objectives):
        loss = primary[objective]
        sub = summary[summary["objective"] == objective]
        for col, (part, title) in enumerate((("train", "training loss (its own N sequences)"),
                                             ("test", "test loss (fresh sequences)"),
                                             ("gap", "generalisation gap = test − train"))):
            ax = axes[row, col]
            data = sub[sub["metric"] == f"{part}_{loss}"]
            hidden = _lines(ax, data, x, hue, palette, positive=True,
                            resolved_z=resolved_z if part == "gap" else None)
            if part == "gap" and guide is not None:
                _guide(ax, data, x, *guide)
            note = f" ({hidden} point(s) ≤ 0 not shown)" if hidden else ""
            ax.set(xscale="log", yscale="log", xlabel=_AXIS_LABEL[x],
                   ylabel=f"{part} {_LOSS_LABEL[loss]}",
                   title=f"{title}{note}\nobjective: {objective}")
            ax.set_xticks(sorted(sub[x].unique()))
            ax.set_xticklabels([str(int(v)) for v in sorted(sub[x].unique())], fontsize=8)
            ax.xaxis.set_minor_locator(NullLocator())
        axes[row, 2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def _slope_panels(slopes: pd.DataFrame, objectives: list[str], flat_band, n_slope_max):
    import seaborn as sns
    from matplotlib.ticker import NullLocator

    from bayesattn.plots import subplots

    palette = dict(zip(objectives, sns.color_palette("colorblind", len(objectives)),
                       strict=True))
    fig, axes = subplots(1, 2, figsize=(12, 5.2))
    for ax, metric, by, title in (
            (axes[0], "slope_in_L", "N", "P7: slope of log gap in log L, per N"),
            (axes[1], "slope_in_N", "L", "P8: slope of log gap in log N, per L")):
        for i, objective in enumerate(objectives):
            data = slopes[(slopes["objective"] == objective) & (slopes["metric"] == metric)
                          & slopes["estimable"].astype(bool)].sort_values(by)
            if data.empty:
                continue
            xs = data[by].to_numpy(float) * (1.0 + 0.06 * i)  # dodge the arms
            err = np.vstack([data["value"] - data["ci_low"], data["ci_high"] - data["value"]])
            ax.errorbar(xs, data["value"], yerr=err, fmt="o", capsize=3,
                        color=palette[objective], label=f"objective: {objective} (95% CI)")
            missing = slopes[(slopes["objective"] == objective) & (slopes["metric"] == metric)
                             & ~slopes["estimable"].astype(bool)]
            for level in missing[by]:
                ax.plot([level * (1.0 + 0.06 * i)], [0.0], marker="x", ms=8, ls="none",
                        color=palette[objective])
            if len(missing):
                ax.plot([], [], marker="x", ls="none", color=palette[objective],
                        label=f"objective: {objective}, not estimable (< 3 resolved points)")
        ax.axhline(0, color="0.5", lw=0.8)
        if metric == "slope_in_L":
            ax.axhspan(*flat_band, color="tab:green", alpha=0.15, lw=0,
                       label=f"'flat' band [{flat_band[0]}, {flat_band[1]}]")
        else:
            ax.axhline(n_slope_max, color="tab:red", ls=":", lw=1.2,
                       label=f"criterion: CI upper < {n_slope_max}")
            ax.axhline(-0.5, color="0.35", ls="--", lw=1.0, label="N^-1/2 rate (−0.5)")
        levels = sorted(slopes.loc[slopes["metric"] == metric, by].unique())
        ax.set(xscale="log", xlabel=_AXIS_LABEL[by], ylabel="log-log slope (dimensionless)",
               title=title)
        ax.set_xticks(levels)
        ax.set_xticklabels([str(int(v)) for v in levels], fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return fig


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, set_style

    summary = _frame(results, "summary")
    slopes = slope_rows(results)
    objectives = list(ctx.params["objectives"])
    model = _model()
    what = (f"{model.name} (K={model.params['K']}, d={model.params['d']}), Set Transformer "
            f"trained {ctx.params['steps']} steps on N fixed sequences; 95% CIs")
    paths: list[Path] = []
    with set_style():
        fig = _loss_panels(summary, objectives, PRIMARY, "N", "L", (-0.5, "∝ N^-1/2"),
                           RESOLVED_Z)
        fig.suptitle(f"Loss vs training-set size, one line per L — {what}")
        paths += save_figure(fig, ctx.figures_dir, "gap_vs_N")

        fig = _loss_panels(summary, objectives, PRIMARY, "L", "N", None, RESOLVED_Z)
        fig.suptitle(f"Loss vs sequence length, one line per N — {what}")
        paths += save_figure(fig, ctx.figures_dir, "gap_vs_L")

        fig = _slope_panels(slopes, objectives, FLAT_BAND, N_SLOPE_MAX)
        fig.suptitle("Fitted log-log slopes of the generalisation gap (95% parametric-bootstrap "
                     "CIs)")
        paths += save_figure(fig, ctx.figures_dir, "gap_slopes")
    return paths
