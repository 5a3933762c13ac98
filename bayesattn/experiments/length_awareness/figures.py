"""Figures of the length-awareness experiment (seaborn + ArviZ; PNG + SVG), drawn from the run
folder: the calibrate and amortization stages' tables and the calibrate stage's SBC ranks.

- ``sbc_pit_ecdf``: ECDF-difference plots of the randomized PIT of the true latent
  (from SBC ranks) with ArviZ's simultaneous 95% band, with vs without L, at the
  smallest, a mid and the largest L;
- ``coverage_reliability``: empirical coverage of central credible intervals against
  the nominal level (curves from the PIT values, Wilson bands; points with Wilson error
  bars from ``metrics.coverage``);
- ``variance_ratio_vs_length``: variance ratio q/exact and standardized mean error
  against L (log x) with 95% bootstrap CIs;
- ``amortization_gap_vs_length``: KL of the amortized q and of the best member of the
  head family against L.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .presets import COVERAGE_TOL, MODELS, VR_TOL
from .presets import frame as _frame

NET_ORDER = ("net (given L)", "net (no L)")


def pit_coverage(pit: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Coverage of central intervals from PIT values: the fraction with |pit - 1/2| <= a/2.

    Args:
        pit: PIT values in (0, 1), shape (n,).
        levels: Credible levels a in (0, 1), shape (m,).

    Returns:
        Coverage per level, shape (m,).
    """
    pit = np.asarray(pit, dtype=float).reshape(-1, 1)
    levels = np.asarray(levels, dtype=float).reshape(1, -1)
    return (np.abs(pit - 0.5) <= levels / 2).mean(0)


def wilson_band(p: np.ndarray, n: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson interval of proportions ``p`` (array) from ``n`` trials each."""
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    p = np.asarray(p, dtype=float)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


#: Lowest value a log-scale band is drawn to (the figure titles say so).
LOG_FLOOR = 1e-9


def _band(ax, frame: pd.DataFrame, color, label: str, log: bool = False, **kw) -> None:
    frame = frame.sort_values("L")
    ax.plot(frame["L"], frame["value"], marker="o", ms=4, color=color, label=label, **kw)
    # on a log axis a CI reaching 0 or below (the best-in-family fit is exact to ~1e-7,
    # its noise straddles 0) is drawn down to LOG_FLOOR, not to 1e-300
    low = frame["ci_low"].clip(lower=LOG_FLOOR) if log else frame["ci_low"]
    ax.fill_between(frame["L"], low, frame["ci_high"], color=color, alpha=0.2, lw=0)


def _length_axis(ax, lengths: list[int]) -> None:
    """Log x axis with the evaluated lengths as plain-number ticks."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _shown_lengths(lengths: list[int], train_len) -> list[int]:
    """Smallest, one inside the training range, largest (distinct, sorted)."""
    lo, hi = train_len
    inside = [v for v in lengths if lo < v < hi] or lengths
    mid = inside[len(inside) // 2]
    return sorted({min(lengths), mid, max(lengths)})


def make(ctx, results: pd.DataFrame) -> list[Path]:
    import arviz as az
    import seaborn as sns
    from scipy import stats

    from bayesattn.plots import save_figure, set_style, subplots

    cal = _frame(results, "calibrate")
    amo = _frame(results, "amortization")
    ranks = ctx.artifact("calibrate", "sbc_ranks")
    lo, hi = ctx.params["train_len"]
    lengths = sorted(int(v) for v in cal["L"].unique())
    models = list(MODELS)
    palette = dict(zip(NET_ORDER, sns.color_palette("colorblind", 2), strict=True))
    folder = ctx.out / "figures"
    paths: list[Path] = []
    with set_style():
        # 1. PIT ECDF difference with simultaneous bands (ArviZ), with vs without L
        shown = _shown_lengths(lengths, (lo, hi))
        fig, axes = subplots(len(models), len(shown), figsize=(4.2 * len(shown),
                                                                3.4 * len(models)),
                             squeeze=False, sharey="row")
        grid = np.linspace(0, 1, 101)
        for i, name in enumerate(models):
            for j, length in enumerate(shown):
                ax = axes[i, j]
                for k, label in enumerate(NET_ORDER):
                    sel = ranks[(ranks["model"] == name) & (ranks["candidate"] == label)
                                & (ranks["L"] == length)]
                    pit = np.array(sel["pit"], dtype=float)  # writable: plot_ecdf sorts in place
                    with warnings.catch_warnings():  # the PIT is continuous, as assumed
                        warnings.filterwarnings("ignore", "Assuming variable is continuous")
                        az.plot_ecdf(pit, cdf=stats.uniform(0, 1).cdf,
                                     eval_points=grid, difference=True,
                                     confidence_bands=k == 0, ci_prob=0.95, ax=ax,
                                     plot_kwargs={"color": palette[label], "label": label},
                                     fill_kwargs={"color": "0.6", "alpha": 0.3,
                                                  "label": "95% simultaneous band"},
                                     random_state=ctx.seed_for("figures", name, length))
                inside = "in" if lo <= length <= hi else "beyond"
                ax.set_title(f"{name}\nL = {length} ({inside} training range)", fontsize=11)
                ax.set(xlabel="PIT of the true latent (randomized SBC rank)",
                       ylabel="ECDF − uniform CDF" if j == 0 else "")
        axes[0, -1].legend(fontsize=8, loc="lower right")
        fig.suptitle("SBC: PIT ECDF difference, net given L vs net without L "
                     "(flat inside the band = calibrated)")
        paths += save_figure(fig, folder, "sbc_pit_ecdf")

        # 2. reliability: coverage vs nominal level
        levels = np.linspace(0.05, 0.95, 19)
        cov = cal[cal["metric"] == "coverage"]
        colors = dict(zip(lengths, sns.color_palette("viridis", len(lengths)), strict=True))
        fig, axes = subplots(len(models), 2, figsize=(10, 4.2 * len(models)), squeeze=False,
                             sharex=True, sharey=True)
        for i, name in enumerate(models):
            for j, label in enumerate(NET_ORDER):
                ax = axes[i, j]
                ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=1, label="nominal")
                ax.fill_between([0, 1], [-COVERAGE_TOL, 1 - COVERAGE_TOL],
                                [COVERAGE_TOL, 1 + COVERAGE_TOL], color="0.85", lw=0,
                                label=f"nominal ± {COVERAGE_TOL}")
                for length in lengths:
                    sel = ranks[(ranks["model"] == name) & (ranks["candidate"] == label)
                                & (ranks["L"] == length)]
                    c = pit_coverage(sel["pit"].to_numpy(), levels)
                    low, high = wilson_band(c, len(sel))
                    ax.plot(levels, c, color=colors[length], lw=1.5, label=f"L = {length}")
                    ax.fill_between(levels, low, high, color=colors[length], alpha=0.15, lw=0)
                    pts = cov[(cov["model"] == name) & (cov["candidate"] == label)
                              & (cov["L"] == length)]
                    ax.errorbar(pts["level"], pts["value"],
                                yerr=[(pts["value"] - pts["ci_low"]).clip(lower=0),
                                      (pts["ci_high"] - pts["value"]).clip(lower=0)],
                                fmt="o", ms=3, color=colors[length], capsize=2)
                ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{name}: {label}",
                       xlabel="nominal credible level of the central interval",
                       ylabel="empirical coverage of the true latent")
        axes[0, 1].legend(fontsize=7, loc="upper left", ncol=2)
        fig.suptitle("Calibration reliability (curves from PIT, 95% Wilson bands; points: "
                     "metrics.coverage with Wilson CIs)")
        paths += save_figure(fig, folder, "coverage_reliability")

        # 3. variance ratio and standardized mean error vs L
        fig, axes = subplots(2, len(models), figsize=(5.5 * len(models), 8), squeeze=False,
                             sharex=True)
        for j, name in enumerate(models):
            for i, (metric, ylabel) in enumerate((
                    ("variance_ratio", "variance ratio Var_q / Var_exact"),
                    ("standardized_mean_error", "|mean_q − mean_exact| / sd_exact"))):
                ax = axes[i, j]
                for label in NET_ORDER:
                    sel = cal[(cal["model"] == name) & (cal["candidate"] == label)
                              & (cal["metric"] == metric)]
                    _band(ax, sel, palette[label], label, log=metric == "variance_ratio")
                ax.axvspan(lo, hi, color="0.9", lw=0, label="training lengths", zorder=0)
                if metric == "variance_ratio":
                    ax.axhline(1, color="0.3", ls="--", lw=1, label="exact (ratio 1)")
                    ax.axhspan(1 / VR_TOL, VR_TOL, color="tab:green", alpha=0.12, lw=0,
                               label=f"tolerance [{1 / VR_TOL:.2f}, {VR_TOL:.2f}]")
                    ax.set_yscale("log")
                    ax.set_title(f"{name}: posterior variance ratio")
                else:
                    ax.set_title(f"{name}: standardized mean error")
                ax.set(ylabel=ylabel, xlabel="sequence length L (tokens)" if i == 1 else "")
                _length_axis(ax, lengths)
        axes[0, 0].legend(fontsize=8)
        fig.suptitle("Moments of q against the exact posterior, 95% bootstrap CIs over sequences")
        paths += save_figure(fig, folder, "variance_ratio_vs_length")

        # 4. amortization gap
        fig, axes = subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
        for j, name in enumerate(models):
            ax = axes[0, j]
            for label in NET_ORDER:
                for metric, ls, what in (("kl_amortized", "-", "amortized q"),
                                         ("kl_best_in_family", ":", "best in family q*")):
                    sel = amo[(amo["model"] == name) & (amo["candidate"] == label)
                              & (amo["metric"] == metric)]
                    sel = sel[sel["value"] > 0]
                    if len(sel):
                        _band(ax, sel, palette[label], f"{label}: {what}", log=True, ls=ls)
            ax.axvspan(lo, hi, color="0.9", lw=0, label="training lengths", zorder=0)
            ax.set(yscale="log", xlabel="sequence length L (tokens)",
                   ylabel="KL(exact ‖ q) [nats]", title=f"{name}: amortization gap")
            _length_axis(ax, lengths)
        axes[0, 0].legend(fontsize=7)
        fig.suptitle("Cremer decomposition: amortized KL vs best member of the head family "
                     f"(95% bootstrap CIs; bands reaching 0 drawn down to {LOG_FLOOR:.0e})")
        paths += save_figure(fig, folder, "amortization_gap_vs_length")
    return paths
