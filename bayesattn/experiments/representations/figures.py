"""Figures of the representations experiment (seaborn; PNG + SVG), drawn from the
sufficiency, minimality and invariance stages' tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import CONTROL_SPREAD, INVARIANCE_TOL, MINIMAL_RATIO


def _points_with_ci(ax, frame: pd.DataFrame, y: str, x: str, hue: str, palette,
                    offsets: dict) -> None:
    """Horizontal dot plot with 95% CI error bars, one colour per ``hue`` level."""
    cats = list(dict.fromkeys(frame[y]))
    pos = {c: i for i, c in enumerate(cats)}
    for level, group in frame.groupby(hue, sort=False):
        ys = group[y].map(pos).to_numpy() + offsets[level]
        vals = group[x].to_numpy()
        err = np.stack([vals - group["ci_low"].to_numpy(), group["ci_high"].to_numpy() - vals])
        ax.errorbar(vals, ys, xerr=np.nan_to_num(np.abs(err)), fmt="o", ms=5, capsize=3,
                    color=palette[level], label=level)
    ax.set_yticks(range(len(cats)), cats)
    ax.invert_yaxis()


def _offsets(levels: list[str], width: float = 0.5) -> dict:
    if len(levels) == 1:
        return {levels[0]: 0.0}
    return {lv: -width / 2 + width * i / (len(levels) - 1) for i, lv in enumerate(levels)}


def _sufficiency(ctx, results, frame_of, paths: list[Path]) -> None:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    suf = frame_of(results, "sufficiency")
    ex = suf[suf["metric"] == "excess_risk"]
    models = list(dict.fromkeys(ex["model"]))
    probes = list(dict.fromkeys(ex["probe"]))
    palette = dict(zip(probes, sns.color_palette("colorblind", len(probes)), strict=True))
    fig, axes = subplots(1, len(models), figsize=(7.0 * len(models), 0.5 * ex[
        "representation"].nunique() + 2.2), squeeze=False)
    for ax, name in zip(axes[0], models, strict=True):
        data = ex[ex["model"] == name]
        _points_with_ci(ax, data, "representation", "value", "probe", palette, _offsets(probes))
        ax.axvline(0.0, color="0.3", lw=1, ls="--")
        ax.set_xscale("symlog", linthresh=1e-2)
        lo = float(np.nanmin(data[["value", "ci_low"]].to_numpy()))
        hi = float(np.nanmax(data[["value", "ci_high"]].to_numpy()))
        ax.set_xlim(min(-0.01, 1.5 * lo), max(0.01, 1.5 * hi))
        ax.margins(y=0.08)
        ax.set(xlabel="excess risk over the exact Bayes risk [nats / sequence]", ylabel="",
               title=name)
        if name == models[-1]:
            ax.legend(title="probe", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("P1: probe excess risk per representation (95% bootstrap CIs; symlog axis)")
    paths += save_figure(fig, ctx.figures_dir, "sufficiency_excess_risk")

    nets = ex[ex["N"].notna()] if "N" in ex else ex.iloc[:0]
    if nets.empty:
        return
    fig, axes = subplots(1, len(models), figsize=(5.2 * len(models), 4.6), squeeze=False)
    for ax, name in zip(axes[0], models, strict=True):
        for probe in probes:
            data = nets[(nets["model"] == name) & (nets["probe"] == probe)].sort_values("N")
            color = palette[probe]
            ax.plot(data["N"], data["value"], marker="o", color=color, label=f"net, {probe}")
            ax.fill_between(data["N"], data["ci_low"], data["ci_high"], color=color,
                            alpha=0.2, lw=0)
            for ctrl, ls in (("control: exact posterior", ":"), ("control: first token", "--")):
                row = ex[(ex["model"] == name) & (ex["probe"] == probe)
                         & (ex["representation"] == ctrl)]
                if len(row):
                    ax.axhline(float(row["value"].iloc[0]), color=color, ls=ls, lw=1,
                               label=f"{ctrl.removeprefix('control: ')}, {probe}")
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-2)
        sizes = sorted(nets["N"].unique())
        ax.set_xticks(sizes, [str(int(n)) for n in sizes])
        ax.minorticks_off()
        ax.set(xlabel="training-set size N (sequences)",
               ylabel="excess risk [nats / sequence]", title=name)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.suptitle("P1: excess risk of trained Set Transformers vs N (95% CIs; symlog axis)")
    paths += save_figure(fig, ctx.figures_dir, "sufficiency_vs_N")


def _minimality(ctx, results, frame_of, paths: list[Path]) -> None:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    mini = frame_of(results, "minimality")
    ratio = mini[mini["metric"] == "distance_ratio"].copy()
    reps = list(dict.fromkeys(ratio["representation"]))
    palette = dict(zip(reps, sns.color_palette("colorblind", len(reps)), strict=True))
    fig, ax = subplots(figsize=(8.0, 0.55 * ratio["model"].nunique() * len(reps) / 2 + 2.5))
    # the exact control is ~1e-16 or exactly 0: drawn at the left edge of the log axis
    floor = 1e-4
    for col in ("value", "ci_low", "ci_high"):
        ratio[col] = ratio[col].clip(lower=floor)
    _points_with_ci(ax, ratio, "model", "value", "representation", palette,
                    _offsets(reps, 0.6))
    ax.axvline(MINIMAL_RATIO, color="0.3", ls="--", lw=1,
               label=f"threshold {MINIMAL_RATIO} (minimal below)")
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, None)
    ax.set(xlabel="mean distance, equal-statistic pairs / independent pairs (ratio; "
                  f"values < {floor:.0e} drawn at {floor:.0e})",
           ylabel="", title="P2: minimality ratio per model and representation (95% CIs)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    paths += save_figure(fig, ctx.figures_dir, "minimality_ratio")


def _invariance(ctx, results, frame_of, paths: list[Path]) -> None:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    inv = frame_of(results, "invariance")
    rel = inv[inv["metric"] == "max_rel_change"].copy()
    floor = 1e-17
    rel["shown"] = rel["value"].clip(lower=floor)
    outputs = rel["output"].astype(str) if "output" in rel else pd.Series("output", rel.index)
    rel["panel"] = np.where(outputs.str.startswith("log"), "log posterior density at fixed z",
                            "representation r(X) (features for the controls)")
    cands = list(dict.fromkeys(rel["candidate"]))
    models = list(dict.fromkeys(rel["model"]))
    panels = sorted(rel["panel"].unique(), reverse=True)
    palette = dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
    fig, axes = subplots(1, len(panels), figsize=(7.5 * len(panels), 0.5 * len(cands) + 3.0),
                         squeeze=False, sharey=True)
    for i, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        data = rel[rel["panel"] == panel]
        sns.stripplot(data, x="shown", y="candidate", hue="model", order=cands,
                      hue_order=models, palette=palette, dodge=True, size=6, jitter=False,
                      ax=ax, legend=i == len(panels) - 1)
        ax.set_xscale("log")
        ax.set_xlim(floor / 2, 1e2)
        ax.axvspan(floor / 2, INVARIANCE_TOL, color="tab:green", alpha=0.08, lw=0)
        ax.axvline(INVARIANCE_TOL, color="tab:green", ls="--", lw=1,
                   label=f"invariance tolerance {INVARIANCE_TOL:.0e}")
        ax.axvline(CONTROL_SPREAD, color="tab:red", ls=":", lw=1,
                   label=f"control threshold {CONTROL_SPREAD:.0e}")
        ax.set(xlabel="", ylabel="", title=panel)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.supxlabel(f"largest relative change |Δ| / (1 + |output|) over random permutations "
                  f"(exactly 0 drawn at {floor:.0e})")
    fig.suptitle("P3: output spread over random token permutations (log scale; float32 nets, "
                 "float64 exact posterior)")
    paths += save_figure(fig, ctx.figures_dir, "permutation_spread")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    paths: list[Path] = []
    _sufficiency(ctx, results, _frame, paths)
    _minimality(ctx, results, _frame, paths)
    _invariance(ctx, results, _frame, paths)
    return paths
