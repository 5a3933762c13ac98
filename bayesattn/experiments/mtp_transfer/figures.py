"""Figures of the mtp-transfer experiment (seaborn via bayesattn.plots; PNG + SVG), drawn from
the run folder: the closeness, blindspot and summary stages' tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import combine_replicates
from bayesattn.runner import stage_frame as _frame

from .presets import BOUND_C, PRETEXTS, READOUTS


def _kappa_axis(ax, ticks) -> None:
    """A zero line, and a log x axis labelled at the measured condition numbers."""
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(list(ticks), [f"{t:.3g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("exact condition number κ₂ (one point per closeness c)")


def _legend_on_top(ax) -> None:
    """Room above the error bars for the legend, then the legend."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.3 * (hi - lo))
    ax.legend(fontsize=8, loc="upper left")


def _yerr(values, low, high, floor: float | None = None):
    """Asymmetric error bars; infinite or missing ends are drawn up to the axis edge."""
    v = np.asarray(values, float)
    lo, hi = np.asarray(low, float), np.asarray(high, float)
    if floor is not None:
        lo = np.maximum(lo, floor)
    top = np.nanmax(np.where(np.isfinite(hi), hi, v)) * 10 if len(v) else 1.0
    hi = np.where(np.isfinite(hi), hi, top)
    lo = np.where(np.isfinite(lo), lo, v)
    return np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


def make(ctx, results: pd.DataFrame) -> list[Path]:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    paths: list[Path] = []
    summary = _frame(results, "summary")
    cl = combine_replicates(_frame(results, "closeness"), ["closeness", "metric"])

    # 1. P9: the bound itself, both sides per closeness (what the verdict's slack compares)
    net = summary[summary["metric"] == "downstream_net_excess"].sort_values("kappa2")
    pre = summary[summary["metric"] == "pretext_excess"].sort_values("kappa2")
    fig, axes = subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    pal = sns.color_palette("colorblind", 4)
    if len(net) and len(pre):
        k = net["kappa2"].to_numpy(float)
        allowed = BOUND_C * pre["kappa2"].to_numpy(float) * pre["value"].to_numpy(float)
        a_lo = BOUND_C * pre["kappa2"].to_numpy(float) * pre["ci_low"].to_numpy(float)
        a_hi = BOUND_C * pre["kappa2"].to_numpy(float) * pre["ci_high"].to_numpy(float)
        ax.errorbar(k * 0.97, allowed, yerr=[allowed - a_lo, a_hi - allowed], fmt="s--",
                    color="black", capsize=4,
                    label=f"bound C·κ₂·pretext excess (C = {BOUND_C:g})")
        ax.errorbar(k * 1.03, net["value"], yerr=[net["value"] - net["ci_low"],
                                                  net["ci_high"] - net["value"]],
                    fmt="o-", color=pal[1], capsize=4,
                    label="downstream excess − linear-probe floor")
        _kappa_axis(ax, k)
    ax.set(ylabel="nats (downstream per sequence)",
           title="P9 bound: violated where orange lies clearly above black")
    _legend_on_top(ax)

    ax = axes[1]
    series = ((pal[0], "pretext_excess_risk", "pretext (nats / hidden token)"),
              (pal[1], "downstream_excess_risk", "downstream (nats / sequence)"),
              (pal[2], "downstream_floor",
               "linear-probe floor: same probe on exact log P(y|X) + noise"))
    for color, metric, label in series:
        d = cl[cl["metric"] == metric].sort_values("closeness")
        if d.empty:
            continue
        k = cl[cl["metric"] == "kappa2"].set_index("closeness").loc[d["closeness"], "value"]
        ax.errorbar(k.to_numpy(), d["value"], yerr=_yerr(d["value"], d["ci_low"], d["ci_high"]),
                    fmt="o-", color=color, capsize=4, label=label)
    _kappa_axis(ax, sorted(cl.loc[cl["metric"] == "kappa2", "value"].unique()))
    ax.set(ylabel="excess risk over exact Bayes risk [nats]",
           title="P9: excess risks after MTP pretraining + linear probe")
    _legend_on_top(ax)
    fig.suptitle("unigram-mixture (K=3, V=20): transfer vs condition number, 95% bootstrap CIs")
    paths += save_figure(fig, ctx.figures_dir, "kappa_vs_closeness")

    # 2. P10: downstream excess risk vs N, coarse vs full, for both readouts
    blind = _frame(results, "blindspot")
    ex = combine_replicates(blind, ["pretext", "readout", "N", "metric"])
    ex = ex[ex["metric"] == "downstream_excess_risk"]
    fig, axes = subplots(1, 2, figsize=(12, 4.6), sharey=True)
    colors = dict(zip(PRETEXTS, sns.color_palette("colorblind", 4)[2:], strict=True))
    positive = ex.loc[ex["value"] > 0, "value"]
    floor = float(positive.min()) / 5 if len(positive) else 1e-4
    for ax, readout in zip(axes, READOUTS[::-1], strict=True):
        for pretext in PRETEXTS:
            d = ex[(ex["readout"] == readout) & (ex["pretext"] == pretext)].sort_values("N")
            ax.plot(d["N"], d["value"].clip(lower=floor), marker="o", color=colors[pretext],
                    label=f"{pretext} pretext")
            ax.fill_between(d["N"], d["ci_low"].clip(lower=floor),
                            d["ci_high"].clip(lower=floor), color=colors[pretext], alpha=0.2,
                            lw=0)
        probe = "MLP probe on the pretext predictive" if readout == "pretext predictive" \
            else "linear probe on the encoder representation"
        ax.set(xscale="log", yscale="log", xlabel="pretraining sequences N (steps × batch)",
               ylabel="downstream excess risk [nats / sequence]",
               title=f"readout: {probe}")
        ax.legend(fontsize=8)
    fig.suptitle(f"P10: concept-mixture (K=3, d=2) — coarse (sign of x₀) vs full MTP; "
                 f"values ≤ {floor:.1e} drawn at that level; 95% bootstrap CIs")
    paths += save_figure(fig, ctx.figures_dir, "excess_vs_N")
    return paths
