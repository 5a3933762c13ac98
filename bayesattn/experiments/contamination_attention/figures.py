"""Figures of the contamination-attention experiment (E5; PNG + SVG via bayesattn.plots),
drawn from the run folder: the evaluate table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayesattn.runner import stage_frame as _frame

from .presets import KERNELS, KINDS, UNIFORM

#: (colour index in seaborn's "colorblind" palette or a grey, line style, marker); bilateral
#: coincides with gaussian in a set (no positions), so it is drawn dashed on top of it
_STYLE = {"uniform": ("0.2", ":", "s"), "softmax": (0, "-", "o"),
          "twicing-softmax": (9, "-", "^"), "gaussian": (2, "-", "o"),
          "bilateral": (8, "--", "x"), "twicing-gaussian": (4, "-", "v"), "cme": (1, "-", "D")}


def _palette():
    import seaborn as sns

    cb = sns.color_palette("colorblind", 10)
    return {k: (c if isinstance(c, str) else cb[c]) for k, (c, _, _) in _STYLE.items()}


def _cells(ev: pd.DataFrame) -> list[tuple[str, str]]:
    return [(m, k) for m in ev["model"].unique() for k in KINDS]


def _band_plot(ax, ev, model, kind, metric, names, palette):
    for name in names:
        g = ev[(ev["model"] == model) & (ev["kind"] == kind) & (ev["kernel"] == name)
               & (ev["metric"] == metric)].sort_values("epsilon")
        if g.empty:
            continue
        _, ls, marker = _STYLE[name]
        label = "uniform (= clean posterior)" if name == "uniform" else name
        ax.plot(g["epsilon"], g["value"], marker=marker, ms=4, ls=ls, color=palette[name],
                label=label)
        ax.fill_between(g["epsilon"], g["ci_low"], g["ci_high"], color=palette[name],
                        alpha=0.15, lw=0)


def _error_figure(ctx, ev: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    palette, cells = _palette(), _cells(ev)
    rows = (("tv_eps", "TV to the ε-model posterior"),
            ("sqerr_eps", "sq. error of E[θ_z | X] vs ε-model"))
    fig, axes = subplots(len(rows), len(cells), figsize=(4.2 * len(cells), 3.4 * len(rows)),
                         squeeze=False)
    for r, (metric, label) in enumerate(rows):
        for c, (model, kind) in enumerate(cells):
            ax = axes[r][c]
            _band_plot(ax, ev, model, kind, metric, (UNIFORM, *KERNELS), palette)
            ax.set(xlabel="contamination ε (fraction of tokens)", ylabel=label,
                   title=f"{model} / {kind}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    p = ctx.params
    fig.suptitle(f"E5: error of each kernel's attention readout vs ε, mean and 95% bootstrap "
                 f"CI (L = {p['L']}, {p['test_sequences']} sequences per point; bandwidths "
                 "frozen from ε = 0)")
    return save_figure(fig, ctx.figures_dir, "error_vs_eps")


def _weight_figure(ctx, ev: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import save_figure, subplots

    palette, cells = _palette(), _cells(ev)
    fig, axes = subplots(1, len(cells), figsize=(4.2 * len(cells), 3.8), squeeze=False)
    for ax, (model, kind) in zip(axes[0], cells, strict=True):
        _band_plot(ax, ev, model, kind, "outlier_weight", (UNIFORM, *KERNELS), palette)
        ax.set(xlabel="contamination ε (fraction of tokens)",
               ylabel="weight share on replaced keys", title=f"{model} / {kind}")
        ax.set_xlim(0.0, 1.05 * float(ev["epsilon"].max()))
        ax.set_ylim(bottom=0.0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    fig.suptitle("E5: attention weight that clean query tokens put on replaced tokens "
                 "(share of Σ_j |W_ij|)\nmean and 95% CI over sequences with ≥ 1 replaced "
                 "token; uniform weighting = their replaced fraction")
    return save_figure(fig, ctx.figures_dir, "outlier_weight")


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    ev = _frame(results, "evaluate")
    ev = ev[ev["metric"].notna()]
    paths: list[Path] = []
    with set_style():
        paths += _error_figure(ctx, ev)
        paths += _weight_figure(ctx, ev)
    return paths
