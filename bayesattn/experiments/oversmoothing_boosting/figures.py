"""Figures of the oversmoothing-boosting experiment (E3, E4; PNG + SVG via
bayesattn.plots), drawn from the depth and snr stages' tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .claims import e4_cases
from .presets import COLLAPSE_COSINE, SCOPE_FILTERS, SHRINK_FILTERS, VARIANTS

_LABELS = {"mse_clean": "MSE to clean signal u (log)",
           "mse_posterior": "MSE to exact posterior mean W x (log)",
           "cosine": "mean pairwise token cosine similarity",
           "effective_rank": "effective rank of token matrix"}


def _depth_figure(ctx, dep: pd.DataFrame) -> list[Path]:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    p = ctx.params
    fig, axes = subplots(2, 2, figsize=(11, 8.5))
    palette = dict(zip(VARIANTS, sns.color_palette("colorblind", len(VARIANTS)), strict=True))
    ref = dep[dep["variant"] == "posterior-mean"]
    for ax, metric in zip(axes.ravel(), _LABELS, strict=True):
        for v in VARIANTS:
            g = dep[(dep["variant"] == v) & (dep["metric"] == metric)].sort_values("depth")
            x = g["depth"].to_numpy(float) + 1.0  # depth 0 shown at 1 on the log axis
            ax.plot(x, g["value"], "o-", ms=4, color=palette[v], label=v)
            ax.fill_between(x, g["ci_low"], g["ci_high"], color=palette[v], alpha=0.2, lw=0)
        r = ref[ref["metric"] == metric]
        if len(r) and metric != "mse_posterior":
            ax.axhline(float(r["value"].iloc[0]), color="0.3", ls=":",
                       label="exact posterior mean W x")
        if metric == "cosine":
            ax.axhline(COLLAPSE_COSINE, color="crimson", ls="--", lw=1,
                       label=f"collapse threshold {COLLAPSE_COSINE}")
        if metric == "effective_rank":
            ax.axhline(1.0, color="crimson", ls="--", lw=1, label="rank 1 (collapsed)")
            ax.set_ylim(0.9, p["channels"] + 0.1)
        if metric.startswith("mse"):
            ax.set_yscale("log")
        ax.set_xscale("log", base=2)
        ax.set(xlabel="depth + 1 (layers applied + 1, log2)", ylabel=_LABELS[metric],
               title=_LABELS[metric].replace(" (log)", "") + " vs depth")
        ax.legend(fontsize=8)
    fig.suptitle(f"E3: stacking a fixed NLM attention A (L = {p['L']}, d = {p['channels']}, "
                 f"{p['num_sequences']} GP sequences, noise s = {p['noise_scale']}); "
                 "mean, 95% bootstrap CI")
    return save_figure(fig, ctx.figures_dir, "depth_oversmoothing")


def _snr_figure(ctx, cases: pd.DataFrame) -> list[Path]:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    filters = [f for f in SHRINK_FILTERS + SCOPE_FILTERS if f in set(cases["filter"])]
    palette = dict(zip(filters, sns.color_palette("colorblind", len(filters)), strict=True))
    markers = dict(zip(filters, "osD^vP", strict=False))
    fig, (ax1, ax2) = subplots(1, 2, figsize=(12, 5))
    for f in filters:
        c = cases[cases["filter"] == f]
        ok, bad = c[c["iff_holds"]], c[~c["iff_holds"]]
        ax1.scatter(ok["alpha"], ok["beta"], color=palette[f], marker=markers[f], s=30,
                    label=f"{f}" + (f" ({len(bad)} iff fails, red edge)" if len(bad) else ""))
        if len(bad):
            ax1.scatter(bad["alpha"], bad["beta"], color=palette[f], marker=markers[f], s=60,
                        edgecolor="crimson", lw=1.5)
        x = c["alpha"] - c["beta"]
        ax2.scatter(x[c["iff_holds"]], c["snr_gain"][c["iff_holds"]], color=palette[f],
                    marker=markers[f], s=30, label=f)
        if len(bad):
            ax2.scatter(x[~c["iff_holds"]], c["snr_gain"][~c["iff_holds"]], color=palette[f],
                        marker=markers[f], s=60, edgecolor="crimson", lw=1.5)
    hi = float(np.nanmax(cases[["alpha", "beta"]].to_numpy())) * 1.05
    ax1.plot([0, hi], [0, hi], color="0.3", ls="--", lw=1, label="beta = alpha")
    ax1.set(xlabel="signal shrinkage alpha (RMS gain on u)",
            ylabel="noise shrinkage beta (RMS gain on noise)",
            title="Shrinkage of each filter (below the diagonal: beta < alpha)")
    ax1.legend(fontsize=8)
    ax2.axhline(1.0, color="0.3", ls="--", lw=1)
    ax2.axvline(0.0, color="0.3", ls="--", lw=1)
    ax2.set_yscale("log")
    ax2.set(xlabel="alpha - beta", ylabel="SNR(y + F y) / SNR(y) (log)",
            title="Boosting gain vs alpha - beta (iff: upper right / lower left)")
    ax2.legend(fontsize=8)
    fig.suptitle(f"E4: residual = boosting over {len(cases) // max(len(filters), 1)} settings "
                 "(kernel x lengthscale x noise level); red edge: iff violated")
    return save_figure(fig, ctx.figures_dir, "snr_boosting")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    paths: list[Path] = []
    with set_style():
        paths += _depth_figure(ctx, _frame(results, "depth"))
        paths += _snr_figure(ctx, e4_cases(results))
    return paths
