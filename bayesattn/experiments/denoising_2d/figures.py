"""Figures of the denoising-2d experiment (E2; PNG + SVG via bayesattn.plots), drawn from
the run folder: the summarise stage's table and the train and evaluate stages' artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesattn.runner import pick
from bayesattn.runner import stage_frame as _frame

from .presets import BASELINE, NONINFERIORITY, VARIANTS


def _palette() -> dict:
    import seaborn as sns

    return dict(zip(VARIANTS, sns.color_palette("colorblind", len(VARIANTS)), strict=True))


def _image(frame: pd.DataFrame) -> np.ndarray:
    """A long (row, col, value) frame as a 2-D array."""
    return frame.pivot(index="row", columns="col", values="value").sort_index().to_numpy(float)


def _examples_figure(ctx, examples: pd.DataFrame) -> list[Path]:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    panels = list(dict.fromkeys(examples["panel"]))
    images = sorted(examples["image"].unique())
    lim = float(np.abs(examples["value"]).quantile(0.99))
    fig, axes = subplots(len(images), len(panels), figsize=(2.1 * len(panels) + 1.2,
                                                            2.2 * len(images) + 0.8),
                         squeeze=False)
    for r, i in enumerate(images):
        ex = examples[examples["image"] == i]
        clean = _image(ex[ex["panel"] == "clean"])
        for c, name in enumerate(panels):
            ax = axes[r][c]
            img = _image(ex[ex["panel"] == name])
            sns.heatmap(img, ax=ax, cmap="vlag", vmin=-lim, vmax=lim, square=True,
                        cbar=c == len(panels) - 1, xticklabels=False, yticklabels=False,
                        cbar_kws={"label": "pixel value", "shrink": 0.8})
            mse = float(((img - clean) ** 2).mean())
            ax.set_title(name if r == 0 else "", fontsize=9)
            ax.set_xlabel("" if name == "clean" else f"MSE to clean {mse:.3f}", fontsize=8)
            ax.set_ylabel(f"test image {i}\nrow" if c == 0 else "", fontsize=8)
    w = int(ctx.params["grid_width"])
    fig.suptitle(f"E2: example {w}x{w} test patches (columns: clean, noisy, exact posterior "
                 "mean, each trained variant; shared colour scale)")
    return save_figure(fig, ctx.figures_dir, "examples")


def _errorbar(ax, x, est, color, label=None, marker="o"):
    err = np.array([[est["value"] - est["ci_low"]], [est["ci_high"] - est["value"]]])
    ax.errorbar([x], [est["value"]], yerr=np.nan_to_num(np.abs(err)), fmt=marker, ms=7,
                color=color, capsize=4, label=label)


def _mse_figure(ctx, sm: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    palette = _palette()
    p = ctx.params
    fig, axes = subplots(1, 3, figsize=(15, 4.8), squeeze=False)
    specs = (("mse_clean", "MSE to clean image u"),
             ("mse_posterior", "MSE to exact posterior mean E[u | x] (log)"))
    for ax, (metric, label) in zip(axes[0][:2], specs, strict=True):
        for k, v in enumerate(VARIANTS):
            est = pick(sm, variant=v, metric=metric)
            if est is not None:
                _errorbar(ax, k, est, palette[v], v)
        if metric == "mse_clean":
            ref = pick(sm, variant="posterior-mean", metric=metric)
            if ref is not None:
                ax.axhline(float(ref["value"]), color="0.3", ls=":",
                           label="exact posterior mean (Bayes risk)")
            ax.legend(fontsize=8, loc="upper right")
        else:
            ax.set_yscale("log")
        ax.set_xticks(range(len(VARIANTS)), VARIANTS, fontsize=9)
        ax.set(xlabel="attention variant", ylabel=label.replace(" (log)", ""),
               title=label + ", mean and 95% CI")
    ax = axes[0][2]
    others = [v for v in VARIANTS if v != BASELINE]
    base = pick(sm, variant=BASELINE, metric="mse_clean")
    for k, v in enumerate(others):
        est = pick(sm, variant=v, against=BASELINE, metric="mse_clean_diff")
        if est is not None:
            _errorbar(ax, k, est, palette[v])
    ax.axhline(0.0, color="k", lw=1)
    if base is not None:
        ax.axhline(NONINFERIORITY * float(base["value"]), color="0.4", ls="--",
                   label=f"non-inferiority margin ({NONINFERIORITY:g} x MSE(sa+pe))")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(others)), others, fontsize=9)
    ax.set(xlabel="attention variant", ylabel=f"MSE(variant) - MSE({BASELINE})",
           title=f"paired difference to {BASELINE}, 95% CI\n(below 0: better than {BASELINE})")
    w = int(p["grid_width"])
    fig.suptitle(f"E2: {w}x{w} GP patches, {p['test_images']} test images, "
                 f"{p['train_seeds']} training seed(s), {p['steps']} steps each")
    return save_figure(fig, ctx.figures_dir, "mse_by_variant")


def _attention_figure(ctx, att: pd.DataFrame) -> list[Path]:
    import seaborn as sns

    from bayesattn.plots import save_figure, subplots

    panels = list(dict.fromkeys(att["panel"]))
    layers = sorted(att.loc[att["panel"] != "exact smoother", "layer"].unique())
    fig, axes = subplots(len(layers), len(panels), figsize=(2.6 * len(panels) + 0.5,
                                                            2.5 * len(layers) + 0.9),
                         squeeze=False)
    w = int(ctx.params["grid_width"])
    for r, li in enumerate(layers):
        for c, name in enumerate(panels):
            ax = axes[r][c]
            g = att[(att["panel"] == name)
                    & ((att["layer"] == li) if name != "exact smoother" else True)]
            if g.empty:
                ax.set_axis_off()
                continue
            sns.heatmap(_image(g), ax=ax, cmap="rocket_r", square=True, cbar=True,
                        xticklabels=False, yticklabels=False,
                        cbar_kws={"label": "weight", "shrink": 0.75})
            ax.plot([w // 2 + 0.5], [w // 2 + 0.5], "x", color="c", ms=8, mew=2)
            ax.set_title(name if name == "exact smoother" else f"{name}, layer {int(li)}",
                         fontsize=9)
            ax.set_xlabel("col", fontsize=8)
            ax.set_ylabel("row" if c == 0 else "", fontsize=8)
    fig.suptitle("E2: weights of the centre pixel (x) on test image 0: row of the exact "
                 "smoother W = S(S + s²I)⁻¹ vs head-averaged attention (twicing: 2A - A²)")
    return save_figure(fig, ctx.figures_dir, "attention_centre_pixel")


def _history_figure(ctx, hist: pd.DataFrame, sm: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    palette = _palette()
    fig, axes = subplots(1, 1, figsize=(8, 4.5), squeeze=False)
    ax = axes[0][0]
    window = max(1, len(hist) // (len(VARIANTS) * int(ctx.params["train_seeds"]) * 30))
    for (v, r), g in hist.groupby(["variant", "replicate"], sort=False):
        smooth = g["loss"].rolling(window, min_periods=1).mean()
        ax.plot(g["step"], smooth, color=palette[v], lw=1.4,
                label=v if int(r) == 0 else None)
    ref = pick(sm, variant="posterior-mean", metric="mse_clean")
    if ref is not None:
        ax.axhline(float(ref["value"]), color="0.3", ls=":",
                   label="exact posterior mean (test MSE)")
    ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel=f"training MSE to u (rolling mean, {window} steps)",
           title="E2: training curves (same data, steps and seed for every variant)")
    ax.legend(fontsize=8)
    return save_figure(fig, ctx.figures_dir, "training_curves")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    sm = _frame(results, "summarise")
    paths: list[Path] = []
    with set_style():
        paths += _examples_figure(ctx, ctx.artifact("evaluate", "examples"))
        paths += _mse_figure(ctx, sm)
        paths += _attention_figure(ctx, ctx.artifact("evaluate", "attention"))
        paths += _history_figure(ctx, ctx.artifact("train", "history"), sm)
    return paths
