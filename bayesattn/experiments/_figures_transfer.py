"""Figures of the mtp-transfer experiment (seaborn via bayesattn.plots; PNG + SVG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


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

    from ._verdicts import combine_replicates
    from ._verdicts import stage_frame as _frame
    from .mtp_transfer import BOUND_C, PRETEXTS, READOUTS

    paths: list[Path] = []
    kap = _frame(results, "kappa")
    summary = _frame(results, "summary")
    cl = combine_replicates(_frame(results, "closeness"), ["closeness", "metric"])

    # 1. P9: exact kappa_2 vs closeness with the measured ratio, and the excess risks
    curve = kap[(kap["claim"] == "P9") & (kap["metric"] == "kappa2")].sort_values("closeness")
    smin = kap[(kap["claim"] == "P9") & (kap["metric"] == "sigma_min_x")].sort_values(
        "closeness")
    ratio = summary[summary["metric"] == "transfer_ratio"].sort_values("closeness")
    fig, axes = subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    ax.plot(curve["closeness"], BOUND_C * curve["value"], color="black",
            label=f"bound C·κ₂ (exact κ₂, C = {BOUND_C:g})")
    pos = ratio["value"] > 0
    ax.errorbar(ratio["closeness"][pos], ratio["value"][pos],
                yerr=_yerr(ratio["value"][pos], ratio["ci_low"][pos], ratio["ci_high"][pos],
                           floor=1e-3),
                fmt="o", color=sns.color_palette("colorblind")[1], capsize=4,
                label="measured ratio downstream / pretext excess (95% CI)")
    ax.set(yscale="log", xlabel="closeness c of the topics (0 = original, → 1 = identical)",
           ylabel="κ₂ and excess-risk ratio (dimensionless)",
           title="P9: condition number vs topic closeness")
    twin = ax.twinx()
    twin.plot(smin["closeness"], smin["value"], color="0.5", ls="--",
              label="σ_min(A_xᵀU) (right axis)")
    twin.set(ylabel="σ_min(A_xᵀU)", ylim=(0, None))
    twin.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")

    ax = axes[1]
    pal = sns.color_palette("colorblind", 2)
    series = ((pal[0], "pretext_excess_risk", "pretext (nats / hidden token)"),
              (pal[1], "downstream_excess_risk", "downstream (nats / sequence)"))
    for color, metric, label in series:
        d = cl[cl["metric"] == metric].sort_values("closeness")
        k = cl[cl["metric"] == "kappa2"].set_index("closeness").loc[d["closeness"], "value"]
        ax.errorbar(k.to_numpy(), d["value"], yerr=_yerr(d["value"], d["ci_low"], d["ci_high"]),
                    fmt="o-", color=color, capsize=4, label=label)
    ax.axhline(0, color="0.4", lw=0.8)
    ticks = sorted(cl.loc[cl["metric"] == "kappa2", "value"].unique())
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.minorticks_off()
    ax.set(xlabel="exact condition number κ₂ (one point per closeness c)",
           ylabel="excess risk over exact Bayes risk [nats]",
           title="P9: excess risks after MTP pretraining + linear probe")
    ax.legend(fontsize=8)
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
