"""Figures of the gap-vs-length experiment (seaborn; PNG + SVG), drawn from the run folder:
the evaluate stage's table and the figure-data stage's fresh posteriors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import GIVEN_L_TOLERANCE, MODEL


def _errorbar_lines(ax, frame: pd.DataFrame, hue: str, palette) -> None:
    for name, group in frame.groupby(hue, sort=False):
        group = group.sort_values("L")
        color = palette[name]
        ax.plot(group["L"], group["value"], marker="o", ms=4, color=color, label=name)
        ax.fill_between(group["L"], group["ci_low"].clip(lower=1e-300),
                        group["ci_high"], color=color, alpha=0.2, lw=0)


def make(ctx, results: pd.DataFrame) -> list[Path]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    from bayesattn.plots import save_figure, set_style

    ev = _frame(results, "evaluate")
    lo, hi = ctx.params["train_len"]
    names = list(dict.fromkeys(ev["candidate"]))
    palette = dict(zip(names, sns.color_palette("colorblind", len(names)), strict=True))
    paths: list[Path] = []
    with set_style():
        # 1. KL and TV against L, log-log, with 95% bootstrap CIs
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, metric, label in ((axes[0], "kl_forward", "KL(exact ‖ q) [nats]"),
                                  (axes[1], "tv", "total variation distance")):
            data = ev[(ev["metric"] == metric) & (ev["value"] > 1e-12)]
            _errorbar_lines(ax, data, "candidate", palette)
            ax.axvspan(lo, hi, color="0.85", alpha=0.5, lw=0, label="training lengths")
            ax.set(xscale="log", yscale="log", xlabel="sequence length L (tokens)",
                   ylabel=label)
        tol = axes[0].axhline(GIVEN_L_TOLERANCE, color="0.3", ls=":", lw=1.2,
                              label="convergence tolerance (net given L)")
        axes[0].legend(handles=[tol], fontsize=8, loc="lower left")
        axes[0].set_title("KL vs L (exact oracle: < 1e-12, below the axis)")
        axes[1].set_title("Total variation vs L")
        axes[1].legend(fontsize=8, loc="lower left")
        fig.suptitle(f"{MODEL['name']} (K={MODEL['K']}, d={MODEL['d']}): "
                     "approximation gap vs length, 95% bootstrap CIs")
        fig.tight_layout()
        paths += save_figure(fig, ctx.out / "figures", "gap_vs_length")
        plt.close(fig)

        # 2. entropy tracking (P14)
        ent = ev[ev["metric"].isin(["entropy_q", "entropy_exact"])
                 & ev["candidate"].str.startswith("net")]
        exact = ent[(ent["metric"] == "entropy_exact")
                    & (ent["candidate"] == "net (given L)")].assign(candidate="exact posterior")
        shown = pd.concat([ent[ent["metric"] == "entropy_q"], exact])
        pal = {**palette, "exact posterior": "black"}
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        _errorbar_lines(ax, shown, "candidate", pal)
        ax.axvspan(lo, hi, color="0.85", alpha=0.5, lw=0, label="training lengths")
        ax.set(xscale="log", xlabel="sequence length L (tokens)",
               ylabel="mean posterior entropy [nats]",
               title="Predicted vs exact posterior entropy")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths += save_figure(fig, ctx.out / "figures", "entropy_vs_length")
        plt.close(fig)

        # 3. posterior overlay and 4. calibration, on fresh sequences (figure-data stage)
        overlay = ctx.artifact("figure-data", "overlay").assign(
            L=lambda f: "L = " + f["L"].astype(str),
            dataset=lambda f: "dataset " + f["dataset"].astype(str))
        g = sns.catplot(overlay, x="concept", y="probability", hue="posterior", row="L",
                        col="dataset", kind="bar", height=2.2, aspect=1.2,
                        palette={"exact": "0.3", "net (given L)": palette["net (given L)"]})
        g.set_axis_labels("concept k", "P(z = k | X)")
        g.set_titles("{row_name}, {col_name}")
        g.figure.suptitle("Exact vs amortized posterior on fresh sequences", y=1.02)
        paths += save_figure(g.figure, ctx.out / "figures", "posterior_overlay")
        plt.close(g.figure)

        cal = ctx.artifact("figure-data", "calibration").copy()
        cal["bin"] = pd.cut(cal["confidence"], np.linspace(0.25, 1.0, 7), include_lowest=True)
        rel = cal.groupby(["L", "bin"], observed=True).agg(
            confidence=("confidence", "mean"), accuracy=("correct", "mean"),
            count=("correct", "size")).reset_index()
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        ax.plot([0.25, 1], [0.25, 1], color="0.5", ls="--", lw=1, label="perfect calibration")
        rel["L"] = "L = " + rel["L"].astype(str)
        sns.lineplot(rel, x="confidence", y="accuracy", hue="L", marker="o", ax=ax,
                     palette="colorblind", legend="full")
        ax.set(xlabel="predicted probability of the most likely concept",
               ylabel="fraction where it is the true z",
               title="Calibration of the trained net (given L)")
        fig.tight_layout()
        paths += save_figure(fig, ctx.out / "figures", "calibration")
        plt.close(fig)
    return paths
