"""Figures of the change-point-attention experiment (E7, E8; PNG + SVG via bayesattn.plots),
drawn from the run folder: the evaluate and attention tables and the attention stage's
artifacts (one sequence's co-segmentation and learned attention)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import REFERENCE, VARIANTS, normalise_rows


def _palette(variants):
    import seaborn as sns

    return dict(zip(variants, sns.color_palette("colorblind", len(variants)), strict=True))


def _errorbar(ax, g: pd.DataFrame, x, color, label, marker="o", ls="-"):
    lo = np.nan_to_num(g["value"] - g["ci_low"])
    hi = np.nan_to_num(g["ci_high"] - g["value"])
    ax.errorbar(x, g["value"], yerr=np.vstack([lo, hi]), marker=marker, ls=ls, color=color,
                capsize=3, label=label)


def _mse_figure(ctx, ev: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    p = ctx.params
    variants = [v for v in VARIANTS if v in set(ev["variant"])]
    pal = _palette(variants)
    panels = (("mse_posterior", "MSE to exact posterior mean (signal units²)",
               "MSE to E[u | x]"),
              ("mse_posterior_norm", "MSE to E[u | x] / mean Var[u | x] (ratio)",
               "MSE to E[u | x] in posterior-variance units"),
              ("mse_clean", "MSE to clean signal u (signal units²)", "MSE to clean signal"))
    fig, axes = subplots(1, 3, figsize=(16, 4.8), squeeze=False)
    for ax, (metric, label, title) in zip(axes[0], panels, strict=True):
        for v in variants:
            g = ev[(ev["variant"] == v) & (ev["metric"] == metric)].sort_values("L")
            _errorbar(ax, g, g["L"], pal[v], v)
        if metric == "mse_clean":
            g = ev[(ev["variant"] == REFERENCE) & (ev["metric"] == metric)].sort_values("L")
            _errorbar(ax, g, g["L"], "0.3", "exact posterior mean (floor)", "s", ":")
        ax.axvline(p["train_len"], color="0.5", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        lengths = sorted(int(v) for v in ev["L"].dropna().unique())
        ax.set_xticks(lengths, [str(v) for v in lengths])
        ax.set(xlabel="test sequence length L (tokens, log scale)", ylabel=label,
               title=f"{title} (mean, 95% CI)")
    handles, labels = axes[0][2].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    fig.suptitle(f"E7: per-token denoisers trained at L = {p['train_len']} (dashed line), "
                 "tested at longer L")
    return save_figure(fig, ctx.figures_dir, "mse_vs_length")


def _heatmap_figure(ctx) -> list[Path]:
    from matplotlib.gridspec import GridSpec

    from bayesattn.plots import save_figure, subplots

    coseg = np.asarray(ctx.artifact("attention", "coseg"))
    sig = ctx.artifact("attention", "coseg_signals")
    shown = [v for v in ("bilateral", "sinusoidal", "none", "alibi")
             if v in ctx.params["variants"]][:3]
    mats = [("exact co-segmentation, rows normalised", normalise_rows(coseg))]
    mats += [(f"{v}: last-layer attention (head mean)",
              np.asarray(ctx.artifact("attention", f"attention_{v}"))) for v in shown]
    n = len(mats)
    fig, _ = subplots(1, 1, figsize=(4.4 * n + 1, 8.6))
    fig.clear()
    gs = GridSpec(2, n, figure=fig, height_ratios=[1, 2.2])
    top = fig.add_subplot(gs[0, :])
    top.plot(sig["position"], sig["noisy"], ".", color="0.6", ms=5, label="noisy x")
    top.plot(sig["position"], sig["clean"], color="k", lw=2, label="clean u")
    top.plot(sig["position"], sig[REFERENCE], color="C3", ls=":", lw=2,
             label="exact posterior mean")
    top.set(xlabel="position i", ylabel="signal value", title="test sequence",
            xlim=(-0.5, len(sig) - 0.5))
    top.legend(fontsize=8, ncol=3)
    vmax = max(float(np.quantile(m, 0.99)) for _, m in mats)
    for k, (title, m) in enumerate(mats):
        ax = fig.add_subplot(gs[1, k])
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, origin="upper")
        ax.grid(False)
        ax.set(xlabel="key position j", ylabel="query position i", title=title)
        ax.title.set_fontsize(9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="row weight")
    fig.suptitle(f"E8: exact posterior co-segmentation P(s_i = s_j | x) vs learned attention "
                 f"on one test sequence (L = {len(sig)}; networks trained at L = "
                 f"{ctx.params['train_len']})")
    return save_figure(fig, ctx.figures_dir, "coseg_vs_attention")


def _rows_figure(ctx, at: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    L0 = int(ctx.params["attention_lengths"][0])
    at = at[(at["L"] == L0)]
    variants = [v for v in VARIANTS if v in set(at["variant"])]
    pal = _palette(variants)
    fig, axes = subplots(1, 2, figsize=(14, 4.8), squeeze=False)
    seen: set[tuple[str, str]] = set()
    for ax, metric, label in zip(axes[0], ("spearman", "kl"),
                                 ("row Spearman correlation with co-segmentation",
                                  "KL(co-segmentation row || attention row) (nats)"),
                                 strict=True):
        g0 = at[at["metric"] == metric]
        for k, v in enumerate(variants):
            for j, layer in enumerate(("first", "last")):
                for name, marker, off in ((v, "o", -0.12), (f"spatial@{v}", "x", 0.12)):
                    g = g0[(g0["variant"] == name) & (g0["layer"] == layer)
                           & (g0["head"] == "mean")]
                    if g.empty:
                        continue
                    x = [k + (j - 0.5) * 0.4 + off]
                    kind = "learned attention" if name == v else "its spatial factor"
                    lab = None if (kind, metric) in seen else kind
                    seen.add((kind, metric))
                    _errorbar(ax, g, x, pal[v] if name == v else "0.4", lab, marker, "")
        for name, ls in (("spatial-tuned", "--"), ("uniform", ":")):
            g = g0[g0["variant"] == name]
            if len(g):
                ax.axhline(float(g["value"].iloc[0]), color="0.3", ls=ls,
                           label=f"{name} baseline")
        ax.set_xticks(range(len(variants)),
                      [f"{v}\n(first | last layer)" for v in variants], fontsize=8)
        ax.set(ylabel=label, title=f"{label.split(' (')[0]}, L = {L0}, head mean, 95% CI")
        ax.legend(fontsize=8)
    fig.suptitle("E8: learned attention rows vs the exact posterior co-segmentation "
                 "(oracle: correlation 1, KL 0)")
    return save_figure(fig, ctx.figures_dir, "attention_rows")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    paths: list[Path] = []
    with set_style():
        paths += _mse_figure(ctx, _frame(results, "evaluate"))
        paths += _heatmap_figure(ctx)
        paths += _rows_figure(ctx, _frame(results, "attention"))
    return paths
