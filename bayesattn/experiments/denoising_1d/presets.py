"""What the denoising-1d experiment runs on: the signal families, the filters and their
tuning grids, the presets, the cost, and the helpers that stages and claims share."""

from __future__ import annotations

import numpy as np
import pandas as pd

FAMILIES = ("change-point", "gp-signal")
FILTERS = ("spatial", "spatial+twicing", "range", "sa+pe", "bilateral", "bilateral+twicing")
BILATERAL = ("bilateral", "bilateral+twicing")
#: non-bilateral filters; spatial+twicing is the control that separates the range factor's
#: gain from twicing's
OTHERS = ("spatial", "spatial+twicing", "range", "sa+pe")
REFERENCE = "posterior-mean"
METRICS = ("mse_clean", "psnr", "mse_posterior")
#: the tuned parameters of each filter (columns of the tune stage)
FILTER_PARAMS = {"spatial": ("sigma",), "spatial+twicing": ("sigma",), "range": ("h",),
                 "sa+pe": ("beta", "omega"), "bilateral": ("sigma", "h"),
                 "bilateral+twicing": ("sigma", "h")}

#: ``None`` in a bandwidth grid is an infinite bandwidth (that kernel factor switched off)
_INF = None
_SPATIAL = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, _INF]
_RANGE = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, _INF]
_FAMILY_PARAMS = {"change-point": {"K": 3, "stay": 0.95, "noise_scale": 0.75},
                  "gp-signal": {"kernel": "rbf", "lengthscale": 4.0, "amplitude": 1.0,
                                "noise_scale": 0.5}}

PRESETS = {
    "smoke": {"L": 32, "tune_sequences": 16, "test_sequences": 24, "families": _FAMILY_PARAMS,
              "spatial_grid": [0.5, 1.0, 2.0, 4.0, _INF], "range_grid": [0.2, 0.5, 1.0, _INF],
              "sa_beta_grid": [1.0, 4.0, 16.0], "sa_omega_grid": [0.5, 1.0, 2.0],
              "pe_dim": 8, "pe_base": 10000.0, "num_resamples": 100,
              "posterior_sequences": 2, "posterior_draws": 50},
    "quick": {"L": 64, "tune_sequences": 64, "test_sequences": 256, "families": _FAMILY_PARAMS,
              "spatial_grid": _SPATIAL, "range_grid": _RANGE,
              "sa_beta_grid": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
              "sa_omega_grid": [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0],
              "pe_dim": 8, "pe_base": 10000.0, "num_resamples": 1000,
              "posterior_sequences": 8, "posterior_draws": 400},
    "full": {"L": 128, "tune_sequences": 128, "test_sequences": 1024,
             "families": _FAMILY_PARAMS,
             "spatial_grid": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, _INF],
             "range_grid": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, _INF],
             "sa_beta_grid": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
             "sa_omega_grid": [0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
             "pe_dim": 8, "pe_base": 10000.0, "num_resamples": 2000,
             "posterior_sequences": 16, "posterior_draws": 1000},
}


def family_model(family: str, params: dict):
    from bayesattn import models

    return models.get_sequence(family, **params)


def dynamic_range(family: str, model) -> float:
    """Nominal peak-to-peak range R of the clean signal (the PSNR peak)."""
    if family == "change-point":
        mu = np.asarray(model.params["level_means"], dtype=np.float64)
        return float(mu.max() - mu.min()) if mu.size > 1 else 1.0
    return 4.0 * float(model.params["amplitude"])


def chosen_params(tune: pd.DataFrame, family: str, name: str) -> dict:
    """The grid point chosen on the tuning set for ``(family, filter)``."""
    row = tune[(tune["family"] == family) & (tune["filter"] == name)
               & tune["chosen"].astype(bool)].iloc[0]
    return {k: float(row[k]) for k in FILTER_PARAMS[name]}


def bootstrap_us(num_resamples: int, n: int) -> float:
    """Reference-CPU microseconds of one ``bootstrap_ci`` call on ``n`` values: a Python
    loop of ``num_resamples`` means (~3.5 us each plus ~16 ns per value)."""
    return num_resamples * (3.5 + 0.016 * n)


def work(params: dict) -> float:
    """Estimated reference-CPU microseconds (one thread) of the preset's loops.

    Units: microseconds, from timings of the pieces on the reference CPU. One filter
    pass on one sequence costs ~10 + 0.025 L^2 us (a twicing filter two passes); the tune
    stage runs every grid point of every filter on ``tune_sequences`` sequences per
    family, the evaluate stage each chosen filter on ``test_sequences``. The gp-signal
    family's exact posterior is a Cholesky solve per sequence (~0.003 L^3 us); the
    change-point forward-backward is linear in L. Then one bootstrap CI per (filter,
    metric) and per paired difference (:func:`bootstrap_us`), and the posterior draws
    (~0.2 us per drawn token).
    """
    L = int(params["L"])
    per_pass = 10.0 + 0.025 * L * L
    n_s, n_r = len(params["spatial_grid"]), len(params["range_grid"])
    n_sa = len(params["sa_beta_grid"]) * len(params["sa_omega_grid"])
    passes = 3 * n_s + n_r + n_sa + 3 * n_s * n_r  # twicing filters count twice
    n_fam = len(FAMILIES)
    n_tune, n = int(params["tune_sequences"]), int(params["test_sequences"])
    tune = n_fam * n_tune * passes * per_pass
    evaluate = n_fam * n * (len(FILTERS) + len(BILATERAL) + 1) * per_pass
    exact = (n_tune + n) * (0.003 * L**3 + 0.05 * L * n_fam)
    calls = n_fam * ((len(FILTERS) + 1) * len(METRICS) + len(BILATERAL) * len(OTHERS))
    boot = calls * bootstrap_us(int(params["num_resamples"]), n)
    draws = n_fam * min(int(params["posterior_sequences"]), n) * int(params["posterior_draws"]) * L
    return float(tune + evaluate + exact + boot + 0.2 * draws)
