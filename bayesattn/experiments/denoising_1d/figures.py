"""Figures of the denoising-1d experiment (E1; PNG + SVG via bayesattn.plots), drawn from
the run folder: the evaluate stage's table and its example curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import FAMILIES, FILTERS, REFERENCE


def _palette():
    import seaborn as sns

    return dict(zip(FILTERS, sns.color_palette("colorblind", len(FILTERS)), strict=True))


def _examples_figure(ctx, examples: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    palette = _palette()
    fig, axes = subplots(len(FAMILIES), 2, figsize=(13, 4.2 * len(FAMILIES)), squeeze=False)
    for row, family in zip(axes, FAMILIES, strict=True):
        ex = examples[examples["family"] == family]

        def curve(name, ex=ex):
            g = ex[ex["curve"] == name].sort_values("position")
            return g["position"].to_numpy(float), g["value"].to_numpy(float)

        for ax, group in zip(row, (("spatial", "range", "sa+pe"),
                                   ("bilateral", "bilateral+twicing", "spatial+twicing")),
                             strict=True):
            x, y = curve("noisy")
            ax.plot(x, y, ".", color="0.6", ms=4, label="noisy y")
            ax.plot(*curve("clean"), color="k", lw=2, label="clean u")
            ax.plot(*curve(REFERENCE), color="0.35", ls=":", lw=2,
                    label="exact posterior mean")
            for f in group:
                if f in FILTERS:
                    ax.plot(*curve(f), color=palette[f], lw=1.5, label=f)
            ax.set(xlabel="position i", ylabel="signal",
                   title=f"{family}: " + ", ".join(group))
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle("E1: one example test sequence per family, each filter at its tuned bandwidth")
    return save_figure(fig, ctx.figures_dir, "examples")


def _mse_figure(ctx, ev: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    palette = _palette()
    p = ctx.params
    fig, axes = subplots(1, 2, figsize=(12, 4.8), squeeze=False)
    for ax, metric, label in zip(axes[0], ("mse_clean", "mse_posterior"),
                                 ("MSE to clean signal u (log)",
                                  "MSE to exact posterior mean (log)"), strict=True):
        width = 0.8 / len(FILTERS)
        for k, f in enumerate(FILTERS):
            for fi, family in enumerate(FAMILIES):
                g = ev[(ev["family"] == family) & (ev["filter"] == f) & (ev["metric"] == metric)]
                if g.empty:
                    continue
                r = g.iloc[0]
                x = fi + (k - (len(FILTERS) - 1) / 2) * width
                err = np.array([[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]])
                ax.errorbar([x], [r["value"]], yerr=np.nan_to_num(err), fmt="o", ms=6,
                            color=palette[f], capsize=3, label=f if fi == 0 else None)
        if metric == "mse_clean":
            for fi, family in enumerate(FAMILIES):
                g = ev[(ev["family"] == family) & (ev["filter"] == REFERENCE)
                       & (ev["metric"] == metric)]
                if len(g):
                    ax.hlines(float(g["value"].iloc[0]), fi - 0.45, fi + 0.45, color="0.3",
                              ls=":", label="exact posterior mean" if fi == 0 else None)
        ax.set_yscale("log")
        ax.set_xticks(range(len(FAMILIES)), FAMILIES)
        ax.set(ylabel=label, title=label.replace(" (log)", "") + ", mean and 95% CI")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(f"E1: denoising MSE per filter (L = {p['L']}, {p['test_sequences']} test "
                 "sequences per family; bandwidths tuned on a separate set)")
    return save_figure(fig, ctx.figures_dir, "mse_by_filter")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    paths: list[Path] = []
    with set_style():
        paths += _examples_figure(ctx, ctx.artifact("evaluate", "examples"))
        paths += _mse_figure(ctx, _frame(results, "evaluate"))
    return paths
