"""What the contamination-attention experiment runs on: the kernels, contamination kinds and
metrics, the presets and their tuning grids, the models, the tuned parameters read back,
the cost."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

KINDS = ("outlier", "swap")
KERNELS = ("softmax", "gaussian", "bilateral", "twicing-softmax", "twicing-gaussian", "cme")
DISTANCE_TYPE = ("gaussian", "bilateral", "twicing-gaussian", "cme")
DOT_TYPE = ("softmax", "twicing-softmax")
UNIFORM = "uniform"
METRICS = ("tv_eps", "kl_eps", "tv_clean", "sqerr_eps", "sqerr_clean", "outlier_weight")
#: the tuned parameters of each kernel (columns of the tune stage)
KERNEL_PARAMS = {"softmax": ("beta",), "twicing-softmax": ("beta",), "gaussian": ("h",),
                 "bilateral": ("h",), "twicing-gaussian": ("h",), "cme": ("h", "ridge")}

_MODELS = {"concept-mixture": {"radius": 1.0}, "unigram-mixture": {}}
_BETA = [0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0]
_H = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, None]
PRESETS = {
    "smoke": {"L": 16, "models": _MODELS, "epsilons": [0.0, 0.2], "tune_sequences": 16,
              "test_sequences": 24, "clean_tv_budget": 0.05, "beta_grid": [0.0, 0.25, 1.0],
              "h_grid": [0.5, 2.0, None], "cme_h_grid": [1.0, 4.0], "ridge_grid": [0.01, 0.1],
              "num_resamples": 100, "posterior_sequences": 2, "posterior_draws": 50},
    "quick": {"L": 16, "models": _MODELS, "epsilons": [0.0, 0.05, 0.1, 0.2],
              "tune_sequences": 128, "test_sequences": 384, "clean_tv_budget": 0.05,
              "beta_grid": _BETA, "h_grid": _H, "cme_h_grid": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0],
              "ridge_grid": [0.01, 0.03, 0.1, 0.3, 1.0], "num_resamples": 1000,
              "posterior_sequences": 8, "posterior_draws": 400},
    "full": {"L": 32, "models": _MODELS, "epsilons": [0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3],
             "tune_sequences": 512, "test_sequences": 4096, "clean_tv_budget": 0.05,
             "beta_grid": _BETA + [8.0], "h_grid": [0.125] + _H,
             "cme_h_grid": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
             "ridge_grid": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0], "num_resamples": 2000,
             "posterior_sequences": 16, "posterior_draws": 1000},
}


def base_model(name: str, params: dict):
    from bayesattn import models

    return models.get(name, **params)


def class_parameters(model) -> np.ndarray:
    """theta_k of each class: concept means ``(K, d)`` or topic word distributions ``(K, V)``."""
    key = "means" if "means" in model.params else "word_probs"
    return np.asarray(model.params[key], dtype=np.float64)


def _bw(value) -> float:
    return math.inf if value is None else float(value)


def grid(name: str, p: dict) -> list[dict]:
    """The tuning grid of kernel ``name`` from preset ``p`` (``h = None`` = infinite)."""
    if name in ("softmax", "twicing-softmax"):
        return [{"beta": float(b)} for b in p["beta_grid"]]
    if name == "cme":
        return [{"h": float(h), "ridge": float(r)} for h in p["cme_h_grid"]
                for r in p["ridge_grid"]]
    if name in KERNEL_PARAMS:
        return [{"h": _bw(h)} for h in p["h_grid"]]
    raise ValueError(f"unknown kernel {name!r}; expected one of {KERNELS}.")


def chosen_params(tune: pd.DataFrame, model: str, name: str) -> dict:
    """The grid point chosen on the clean tuning set for ``(model, kernel)``."""
    row = tune[(tune["model"] == model) & (tune["kernel"] == name)
               & tune["chosen"].astype(bool)].iloc[0]
    return {k: (None if pd.isna(row[k]) or math.isinf(row[k]) else float(row[k]))
            for k in KERNEL_PARAMS[name]}


def bootstrap_us(num_resamples: int, n: int) -> float:
    """Reference-CPU microseconds of one ``bootstrap_ci`` call on ``n`` values: a Python
    loop of ``num_resamples`` means (~3.5 us each plus ~16 ns per value)."""
    return num_resamples * (3.5 + 0.016 * n)


def work(params: dict) -> float:
    """Estimated reference-CPU microseconds (one thread) of the preset's loops.

    Units: microseconds, from timings of the pieces on the reference CPU. One kernel on
    one sequence (weights, readout, metrics) costs ~16 + 0.025 L^2 us; the tune stage
    runs every grid point of every kernel on ``tune_sequences`` sequences per model, the
    evaluate stage 7 readouts (6 kernels + uniform) on ``test_sequences`` sequences per
    (model, kind, ε); then one bootstrap CI per (metric, kernel) and per degradation
    (difference), each :func:`bootstrap_us`. The exact posteriors are closed form
    (negligible); the posterior-draw stage is a small term.
    """
    L, n_models = int(params["L"]), len(params["models"])
    per_pass = 16.0 + 0.025 * L * L
    grid_points = (2 * len(params["beta_grid"]) + 3 * len(params["h_grid"])
                   + len(params["cme_h_grid"]) * len(params["ridge_grid"]))
    tune = n_models * int(params["tune_sequences"]) * grid_points * per_pass
    n, n_eps = int(params["test_sequences"]), len(params["epsilons"])
    cells = n_models * len(KINDS)
    evaluate = cells * n_eps * n * (len(KERNELS) + 1) * per_pass
    calls_per_cell = (n_eps * (1 + (len(KERNELS) + 1) * len(METRICS))
                      + (n_eps - 1) * (2 * len(KERNELS) + 1))
    boot = cells * calls_per_cell * bootstrap_us(int(params["num_resamples"]), n)
    draws = cells * 2 * int(params["posterior_sequences"]) * int(params["posterior_draws"]) * L
    return float(tune + evaluate + boot + 0.05 * draws)
