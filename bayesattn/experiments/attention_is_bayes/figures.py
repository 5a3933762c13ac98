"""Figures of the attention-is-bayes experiment (seaborn via bayesattn.plots; PNG + SVG),
drawn from the run folder: the regression and gp stages' tables and the figure-data
stage's fresh examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import (
    CME,
    CME_TOLERANCE,
    GP,
    LR_MODEL,
    NET,
    P5_CURVES,
    P5_L0,
    P6_CURVES,
    P6_L0,
    SOFTMAX_FIXED,
    SOFTMAX_SHRINK,
    example_lengths,
    silverman_bandwidth,
)


def _bands(ax, frame: pd.DataFrame, palette: dict, styles: dict | None = None,
           label_suffix: str = "") -> None:
    """One line per method with markers and its 95% CI as a band (x = L)."""
    for name, group in frame.groupby("method", sort=False):
        group = group.sort_values("L")
        color = palette[name]
        ax.plot(group["L"], group["value"], marker="o", ms=4, color=color,
                ls=(styles or {}).get(name, "-"), label=f"{name}{label_suffix}")
        if group["ci_low"].notna().any():
            ax.fill_between(group["L"], group["ci_low"].clip(lower=1e-300), group["ci_high"],
                            color=color, alpha=0.2, lw=0)


def _log_axes(ax, *, plain_y: bool = True) -> None:
    """Log-2 x axis and log y axis with plain-number labels (1, 2, 5 per decade).

    ``plain_y=False`` keeps power-of-ten labels only (for axes spanning many decades).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(NullFormatter())
    if plain_y:
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))


def _palette():
    import seaborn as sns

    colors = sns.color_palette("colorblind", 5)
    return {CME: colors[0], SOFTMAX_FIXED: colors[1], SOFTMAX_SHRINK: colors[2],
            NET: colors[3], "exact": "black"}


def _p5_errors(ctx, results, palette) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    reg = _frame(results, "regression")
    lo, hi = ctx.params["train_len"]
    fig, axes = subplots(1, 3, figsize=(15, 4.4))
    for ax, metric, ylabel, title in (
            (axes[0], "err_pred_sd", "RMS error / exact predictive sd",
             "Error in predictive-sd units"),
            (axes[1], "err_post_sd", "RMS error / posterior sd of q^T z",
             "Error in posterior-sd units")):
        data = reg[(reg["metric"] == metric) & (reg["method"] != CME)]
        _bands(ax, data, palette)
        ax.axvspan(lo, hi, color="0.85", alpha=0.5, lw=0, label="net training lengths")
        ax.set(xlabel="context length L (tokens)", ylabel=ylabel, title=title)
        _log_axes(ax)
    axes[0].legend(fontsize=8, loc="lower left")
    h0 = silverman_bandwidth(LR_MODEL["p"])
    note = f"fixed h = {h0:.2f}\nh_L = {h0:.2f} (L/{P5_L0})^(-1/{LR_MODEL['p'] + 4})"
    axes[0].text(0.98, 0.98, note, transform=axes[0].transAxes, ha="right", va="top", fontsize=8)
    cme = reg[reg["method"] == CME]
    for metric, label, ls in (("worst_err_pred_sd", "max over queries and sequences", "-"),
                              ("err_pred_sd", "mean RMS over sequences", "--")):
        sel = cme[cme["metric"] == metric].sort_values("L")
        ax = axes[2]
        ax.plot(sel["L"], sel["value"].clip(lower=1e-18), marker="o", ms=4, ls=ls,
                color=palette[CME], label=label)
    axes[2].axhline(CME_TOLERANCE, color="0.3", ls=":", label=f"P5 tolerance {CME_TOLERANCE:g}")
    axes[2].axhline(np.finfo(float).eps, color="0.6", ls="-.", label="float64 eps")
    axes[2].set(xlabel="context length L (tokens)",
                ylabel="|CME - exact| / predictive sd", title="CME attention: round-off only")
    _log_axes(axes[2], plain_y=False)
    axes[2].set_ylim(1e-18, 1e-6)
    axes[2].legend(fontsize=8, loc="upper left")
    fig.suptitle("P5, in-context linear regression (p = 2): attention readouts vs exact "
                 "posterior predictive mean (95% bootstrap CIs over sequences)")
    return save_figure(fig, ctx.out / "figures", "p5_error_vs_length")


def _p6_errors(ctx, results, palette) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    gp = _frame(results, "gp")
    fig, axes = subplots(1, 2, figsize=(11.5, 4.4))
    diff = gp[gp["metric"] == "diff_vs_cme"]
    _bands(axes[0], diff, palette)
    axes[0].set(xlabel="context length L (tokens)", ylabel="RMS ||softmax - CME|| / prior sd",
                title=f"Softmax vs CME (fixed h = {GP['lengthscale']}; "
                      f"h_L = {GP['lengthscale']} (L/{P6_L0})^(-1/5))")
    axes[0].legend(fontsize=8, loc="lower left")
    truth = gp[gp["metric"] == "err_vs_truth"]
    _bands(axes[1], truth[truth["method"].isin([CME, SOFTMAX_FIXED, SOFTMAX_SHRINK])], palette)
    axes[1].set(xlabel="context length L (tokens)", ylabel="RMS error vs true f / prior sd",
                title="Distance to the true function f (CME = GP mean)")
    axes[1].legend(fontsize=8, loc="lower left")
    for ax in axes:
        _log_axes(ax)
    fig.suptitle(f"P6, GP regression (RBF lengthscale {GP['lengthscale']}, noise sd "
                 f"{GP['noise_scale']}): 95% bootstrap CIs over sequences")
    return save_figure(fig, ctx.out / "figures", "p6_softmax_vs_cme")


def _examples(ctx, palette) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    p = ctx.params
    lr_lengths = example_lengths(p["lengths"])
    gp_lengths = example_lengths(p["gp_lengths"])
    fig, axes = subplots(2, 2, figsize=(12, 8.5))
    for col, length in enumerate(lr_lengths):
        ax = axes[0, col]
        key, value = ctx.artifact("figure-data", f"p5_L{length}_tokens")
        pr = dict(zip(P5_CURVES, ctx.artifact("figure-data", f"p5_L{length}_curves"),
                      strict=True))
        t = pr["t"]
        ax.scatter(key, value, s=10, color="0.6", alpha=0.6,
                   label="tokens (key projected on u)")
        mean, sd = pr["exact"], pr["pred_sd"]
        ax.fill_between(t, mean - sd, mean + sd, color="0.8", alpha=0.6, lw=0,
                        label="exact ± 1 predictive sd")
        ax.plot(t, mean, color="black", lw=2.5, label="exact predictive mean")
        for name, ls in ((CME, "--"), (SOFTMAX_FIXED, "-"), (SOFTMAX_SHRINK, "-"),
                         (NET, "-.")):
            ax.plot(t, pr[name], color=palette[name], ls=ls, lw=1.6, label=name)
        ax.set(xlabel="query position t along u = (1, 1)/√2 (q = t u)",
               ylabel="value v", title=f"Linear regression, L = {length}")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    for col, length in enumerate(gp_lengths):
        ax = axes[1, col]
        keys, values = ctx.artifact("figure-data", f"p6_L{length}_tokens")
        pr = dict(zip(P6_CURVES, ctx.artifact("figure-data", f"p6_L{length}_curves"),
                      strict=True))
        q = pr["query"]
        ax.scatter(keys, values, s=10, color="0.6", alpha=0.7, label="tokens (k, v)")
        ax.plot(q, pr["truth"], color="0.4", lw=1, ls=":", label="true f")
        ax.plot(q, pr["exact"], color="black", lw=2.5, label="exact GP posterior mean")
        for name, ls in ((CME, "--"), (SOFTMAX_FIXED, "-"), (SOFTMAX_SHRINK, "-")):
            ax.plot(q, pr[name], color=palette[name], ls=ls, lw=1.6, label=name)
        ax.set(xlabel="input k (query position)", ylabel="value v",
               title=f"GP regression, L = {length}")
    axes[1, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Examples on fresh sequences: CME attention overlays the exact mean; softmax "
                 "smooths")
    return save_figure(fig, ctx.out / "figures", "examples")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    palette = _palette()
    paths: list[Path] = []
    with set_style():
        paths += _p5_errors(ctx, results, palette)
        paths += _p6_errors(ctx, results, palette)
        paths += _examples(ctx, palette)
    return paths
