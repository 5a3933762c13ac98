"""Figures of the robust-encoders experiment (E6; PNG + SVG via bayesattn.plots), drawn from
the run folder: the evaluate rows pooled over replicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .presets import BASELINE, KINDS, TARGETS, VARIANTS, pooled_rows, regime_name

#: line styles: the standard encoder thick underneath, boosting (often close to it) dashed
STYLES = {"standard": dict(lw=4, marker="o", ms=6, alpha=0.8),
          "twicing": dict(lw=1.8, marker="s", ms=4),
          "boosting": dict(lw=1.8, marker="^", ms=4, ls="--"),
          "distance": dict(lw=1.8, marker="D", ms=4, ls="-."),
          "prior": dict(lw=1.5, ls=":")}


def _palette() -> dict:
    import seaborn as sns

    colours = sns.color_palette("colorblind", len(VARIANTS))
    return {**dict(zip(VARIANTS, colours, strict=True)), "prior": (0.0, 0.0, 0.0)}


def _kl_figure(ctx, ev: pd.DataFrame, regime: str, target: str) -> list[Path]:
    """KL vs eps, one line + 95% CI band per variant; facets kind (rows) x L (columns)."""
    from bayesattn.plots import save_figure, subplots

    palette = _palette()
    sel = ev[(ev["metric"] == "kl") & (ev["target"] == target)
             & ((ev["regime"] == regime) | (ev["variant"] == "prior"))]
    lengths = sorted(int(v) for v in sel["L"].unique())
    fig, axes = subplots(len(KINDS), len(lengths), figsize=(5.2 * len(lengths),
                                                            3.8 * len(KINDS)),
                         squeeze=False, sharey=True)
    for row, kind in zip(axes, KINDS, strict=True):
        for ax, length in zip(row, lengths, strict=True):
            cell = sel[(sel["kind"] == kind) & (sel["L"] == length)]
            for variant in [*VARIANTS, "prior"]:
                g = cell[cell["variant"] == variant].sort_values("eps")
                if g.empty:
                    continue
                eps = g["eps"].to_numpy(float)
                style = STYLES.get(variant, dict(lw=2, marker="o", ms=4))
                ax.plot(eps, g["value"], color=palette[variant],
                        label="prior (uninformed q)" if variant == "prior" else variant,
                        **style)
                ax.fill_between(eps, np.maximum(g["ci_low"].to_numpy(float), 1e-6),
                                g["ci_high"].to_numpy(float), color=palette[variant],
                                alpha=0.2, lw=0)
            ax.set_yscale("log")
            ax.set_xticks(sorted(cell["eps"].unique()))
            ax.set(xlabel="contamination eps (fraction of tokens replaced)",
                   ylabel=f"mean {TARGETS[target]} (nats, log)",
                   title=f"{kind} contamination, test L = {length}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    reps = int(ctx.params["replicates"])
    fig.suptitle(f"E6: {TARGETS[target]} of trained encoders (regime {regime}, trained at "
                 f"L in [2, {ctx.params['train_len']}]); mean over {reps} training seed(s), "
                 "95% CI bands")
    return save_figure(fig, ctx.figures_dir, f"kl_{target}_{regime}".replace(".", "p"))


def _contrast_figure(ctx, ev: pd.DataFrame, regime: str) -> list[Path]:
    """Paired degradation contrasts vs the standard encoder, with 95% CIs."""
    from bayesattn.plots import save_figure, subplots

    palette = _palette()
    sel = ev[(ev["regime"] == regime)
             & ev["metric"].isin(["degradation_vs_standard", "length_degradation_vs_standard"])]
    fig, axes = subplots(1, len(TARGETS), figsize=(6.5 * len(TARGETS), 4.6), squeeze=False)
    variants = [v for v in VARIANTS if v != BASELINE]
    for ax, target in zip(axes[0], TARGETS, strict=True):
        g = sel[sel["target"] == target]
        cells = (g[["metric", "kind", "L"]].drop_duplicates()
                 .sort_values(["metric", "kind", "L"]).to_numpy().tolist())
        labels = [f"length\nL {min(ev['L']):g}->{int(L)}" if m.startswith("length")
                  else f"{kind}\nL = {int(L)}" for m, kind, L in cells]
        width = 0.8 / len(variants)
        for k, variant in enumerate(variants):
            for c, (m, kind, length) in enumerate(cells):
                r = g[(g["variant"] == variant) & (g["metric"] == m) & (g["kind"] == kind)
                      & (g["L"] == length)]
                if r.empty:
                    continue
                r = r.iloc[0]
                x = c + (k - (len(variants) - 1) / 2) * width
                err = np.array([[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]])
                ax.errorbar([x], [r["value"]], yerr=np.nan_to_num(err), fmt="o", capsize=3,
                            color=palette[variant], label=variant if c == 0 else None)
        ax.axhline(0.0, color="k", lw=1)
        ax.set_xticks(range(len(cells)), labels, fontsize=8)
        ax.set(ylabel="contrast vs standard (nats); < 0: degrades less",
               title=f"{TARGETS[target]}: degradation minus standard's")
        ax.legend(fontsize=8)
    fig.suptitle(f"E6: paired contrasts (eps {max(ctx.params['eps']):g} vs 0, and larger L at "
                 f"eps = 0), regime {regime}, 95% CIs")
    return save_figure(fig, ctx.figures_dir, f"contrasts_{regime}".replace(".", "p"))


def make(ctx, results: pd.DataFrame) -> list[Path]:
    from bayesattn.plots import set_style

    ev = pooled_rows(results)
    paths: list[Path] = []
    with set_style():
        for train_eps in ctx.params["train_eps"]:
            regime = regime_name(train_eps)
            for target in TARGETS:
                paths += _kl_figure(ctx, ev, regime, target)
            paths += _contrast_figure(ctx, ev, regime)
    return paths
