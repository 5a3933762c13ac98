"""Figures of the heads-width experiment (seaborn through bayesattn.plots; PNG + SVG),
drawn from the evaluate stage's table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame


def _panels(n: int):
    from bayesattn.plots import subplots

    fig, axes = subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    return fig, list(axes[0])


def _heatmap(ax, ev: pd.DataFrame, stat_dim: int, norm, cmap) -> object:
    import seaborn as sns
    from matplotlib.patches import Rectangle

    heads = sorted(ev["heads"].unique())
    widths = sorted(ev["value_width"].unique())
    grid = ev.pivot_table(index="heads", columns="value_width", values="value").reindex(
        index=heads, columns=widths)
    lo = ev.pivot_table(index="heads", columns="value_width", values="ci_low").reindex(
        index=heads, columns=widths)
    hi = ev.pivot_table(index="heads", columns="value_width", values="ci_high").reindex(
        index=heads, columns=widths)
    annot = np.array([[f"{grid.iloc[i, j]:.3g}\n[{lo.iloc[i, j]:.2g}, {hi.iloc[i, j]:.2g}]"
                       for j in range(len(widths))] for i in range(len(heads))])
    sns.heatmap(grid, ax=ax, norm=norm, cmap=cmap, annot=annot, fmt="", cbar=False,
                annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white")
    for i, h in enumerate(heads):
        for j, dv in enumerate(widths):
            if h * dv < stat_dim:  # below the sufficient-statistic dimension
                ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False,
                                       edgecolor="crimson", lw=2, ls="--"))
    ax.set(xlabel="value width per head d_v (numbers)", ylabel="heads H")
    return ax.collections[0]


def make(ctx, results: pd.DataFrame) -> list[Path]:
    import seaborn as sns
    from matplotlib.colors import LogNorm

    from bayesattn.plots import save_figure, set_style

    ev = _frame(results, "evaluate")
    ints = {"heads": int, "value_width": int, "width": int, "stat_dim": int}
    kl = ev[ev["metric"] == "kl_forward"].astype(ints)
    floors = ev[ev["metric"] == "kl_floor"]
    model_keys = list(dict.fromkeys(kl["model"]))
    L = ctx.params["L"]
    paths: list[Path] = []
    with set_style():
        # 1. heatmap of KL over heads x value width, one panel per model
        fig, axes = _panels(len(model_keys))
        positive = kl["value"][kl["value"] > 0]
        vmin = float(positive.min()) if len(positive) else 1e-3
        vmax = float(kl["value"].max()) if len(kl) else 1.0
        norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.01))
        mesh = None
        for ax, key in zip(axes, model_keys, strict=True):
            sub = kl[kl["model"] == key]
            s = int(sub["stat_dim"].iloc[0])
            mesh = _heatmap(ax, sub, s, norm, "rocket_r")
            ax.set_title(f"{key}: s = {s}\n(dashed red: H·d_v < s)")
        if mesh is not None:
            fig.colorbar(mesh, ax=axes, label="KL(exact ‖ q) [nats], log scale", shrink=0.9)
        fig.suptitle(f"Posterior error over heads × value width (L = {L}; mean [95% CI])")
        paths += save_figure(fig, ctx.figures_dir, "heads_width_heatmap")

        # 2. error against total value width H * d_v, statistic dimension marked
        fig, axes = _panels(len(model_keys))
        heads = sorted(kl["heads"].unique())
        palette = dict(zip(heads, sns.color_palette("colorblind", len(heads)), strict=True))
        offsets = dict(zip(heads, np.linspace(-0.06, 0.06, len(heads)), strict=True))
        for ax, key in zip(axes, model_keys, strict=True):
            sub = kl[kl["model"] == key]
            s = int(sub["stat_dim"].iloc[0])
            for h in heads:
                g = sub[sub["heads"] == h].sort_values("width")
                if g.empty:
                    continue
                x = g["width"].to_numpy(float) * 2.0 ** offsets[h]  # small jitter on log2 x
                err = np.vstack([(g["value"] - g["ci_low"]).clip(lower=0),
                                 (g["ci_high"] - g["value"]).clip(lower=0)])
                ax.errorbar(x, g["value"], yerr=err, fmt="o-", ms=5, capsize=3,
                            color=palette[h], label=f"H = {h}")
            ax.axvline(s, color="crimson", ls="--", lw=1.5, label=f"s = {s} (statistic dim.)")
            fl = floors[floors["model"] == key]
            if len(fl):
                r = fl.iloc[0]
                ax.axhline(r["value"], color="0.3", ls=":", lw=1.5,
                           label="best diagonal Gaussian (family floor)")
                ax.axhspan(r["ci_low"], r["ci_high"], color="0.5", alpha=0.2, lw=0)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ticks = sorted(sub["width"].unique())
            ax.set_xticks(ticks, [str(int(t)) for t in ticks])
            ax.set(xlabel="total value width H·d_v (numbers pooled)",
                   ylabel="KL(exact ‖ q) [nats]", title=f"{key}: error vs H·d_v")
            ax.legend(fontsize=8)
        fig.suptitle(f"Error vs pooled width at L = {L} (mean over test sequences, 95% "
                     "bootstrap CIs)")
        paths += save_figure(fig, ctx.figures_dir, "error_vs_width")
    return paths
