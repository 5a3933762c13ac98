"""What the generalisation experiment runs on: the model, the objectives and the loss each is
judged by, the slope criteria, the presets, the cost; and the slopes stage's rows as the
claims and figures read them."""

from __future__ import annotations

import pandas as pd

MODEL = {"name": "concept-mixture", "K": 4, "d": 2, "radius": 0.5}
#: the loss whose gap each training objective is judged by (its own ERM loss)
PRIMARY = {"npe": "nll", "kl": "kl"}
#: one row of the gap table per these keys (replicates are averaged)
GAP_KEYS = ("objective", "N", "L", "metric")
#: P7: a slope in L inside this band counts as flat (gap changes < 7% per doubling of L)
FLAT_BAND = (-0.1, 0.1)
#: P8: a slope in N below this counts as "about N^-1/2 or faster"
N_SLOPE_MAX = -0.25
#: a point enters a slope fit only when its mean gap exceeds this many standard errors
RESOLVED_Z = 2.0
#: resolved points a line needs for a slope
MIN_POINTS = 3

# Per-token cost of a training step in dim^2 units: simulation, featurising, loss and
# optimiser cost about as much per token as a block of width ~57 (measured on one
# thread: 27 / 33 / 55 ms per Set Transformer step at dim 16 / 32 / 64, batch 64, L 32).
TOKEN_OVERHEAD = 3300.0

PRESETS = {
    "smoke": {"train_sizes": [8, 16, 32], "lengths": [4, 8, 16], "steps": 10, "batch_size": 16,
              "dim": 8, "num_heads": 2, "num_blocks": 1, "lr": 3e-3, "num_test": 32,
              "replicates": 1, "objectives": ["npe"], "num_resamples": 100},
    "quick": {"train_sizes": [64, 128, 256, 512, 1024, 2048], "lengths": [8, 16, 32, 64],
              "steps": 300, "batch_size": 64, "dim": 16, "num_heads": 2, "num_blocks": 1,
              "lr": 3e-3, "num_test": 1024, "replicates": 1, "objectives": ["npe", "kl"],
              "num_resamples": 1000},
    "full": {"train_sizes": [64, 128, 256, 512, 1024, 2048, 4096, 8192],
             "lengths": [8, 16, 32, 64, 128, 256], "steps": 2000, "batch_size": 128, "dim": 64,
             "num_heads": 4, "num_blocks": 2, "lr": 1e-3, "num_test": 4096, "replicates": 3,
             "objectives": ["npe", "kl"], "num_resamples": 2000},
}


def model():
    """The ``concept-mixture`` model of :data:`MODEL`."""
    from bayesattn import models

    return models.get(MODEL["name"], K=MODEL["K"], d=MODEL["d"], radius=MODEL["radius"])


def work(params: dict) -> float:
    """Compute asked for, in millions of token-passes x (dim^2 x blocks + TOKEN_OVERHEAD)
    (x 1e-6).

    One network per (objective, replicate, N, L): steps x batch x L tokens, plus scoring
    its N training and ``num_test`` test sequences once.
    """
    dim2 = float(params["dim"]) ** 2 * int(params["num_blocks"]) + TOKEN_OVERHEAD
    nets = len(params["objectives"]) * int(params["replicates"])
    sizes = [int(n) for n in params["train_sizes"]]
    per_length = (len(sizes) * int(params["steps"]) * int(params["batch_size"])
                  + sum(sizes) + len(sizes) * int(params["num_test"]))
    return nets * per_length * sum(int(v) for v in params["lengths"]) * dim2 * 1e-6


def slope_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The slopes stage's rows with all its columns (also where none was estimable)."""
    sl = results[results["stage"] == "slopes"].copy()
    sl["estimable"] = sl["estimable"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return sl
