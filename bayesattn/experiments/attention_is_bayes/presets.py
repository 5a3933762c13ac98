"""What the attention-is-bayes experiment runs on: the regression model, the GP, the
hand-set bandwidths, the method names, the presets and the cost."""

from __future__ import annotations

import numpy as np

LR_MODEL = {"name": "linear-regression", "p": 2, "prior_scale": 1.0, "noise_scale": 0.5}
GP = {"lengthscale": 0.1, "noise_scale": 0.3, "prior_sd": 1.0}
P5_L0 = 64  # Silverman's rule is applied at this length to hand-set the fixed bandwidth
P6_L0 = 16  # the shrinking GP bandwidth equals the lengthscale at this length
CME_TOLERANCE = 1e-8  # P5: CME error bound, in units of the predictive sd
#: Largest mean KL(exact || q) (nats) over the trained lengths at which the trained net
#: counts as converged (floor 0). The net enters no verdict; it is the amortized
#: reference beside the hand-set readouts, whose errors are 0.1-1 predictive sd. A KL of
#: 0.01 nats allows a mean shift of about 0.14 posterior sd, well below that.
NET_TOLERANCE = 0.01

CME = "CME attention"
SOFTMAX_FIXED = "softmax (fixed h)"
SOFTMAX_SHRINK = "softmax (shrinking h_L)"
NET = "trained net"

#: Rows of the figure-data stage's ``p5_L<L>_curves`` and ``p6_L<L>_curves`` arrays: the
#: query coordinate (t along u for P5, k for P6), then the curves the ``examples`` figure
#: draws there.
P5_CURVES = ("t", "exact", "pred_sd", CME, SOFTMAX_FIXED, SOFTMAX_SHRINK, NET)
P6_CURVES = ("query", "truth", "exact", CME, SOFTMAX_FIXED, SOFTMAX_SHRINK)

PRESETS = {
    "smoke": {"lengths": [1, 4, 16, 64], "num_sequences": 12, "num_queries": 8,
              "gp_lengths": [4, 16, 64], "gp_sequences": 8, "gp_queries": 16,
              "steps": 2, "batch_size": 16, "lr": 5e-3, "dim": 8, "num_heads": 2,
              "block": "sab",
              "train_len": [1, 16], "num_resamples": 100, "tail_from": 16},
    # the trained net: 4000 steps at lr 5e-3 (was 1000 at 2e-3). Mean KL(exact || q) over
    # L in [1, 64]: 0.060 nats after 2000 steps, 0.034 after 4000 (0.035 at lr 1e-2), still
    # falling; it enters no verdict, so it is reported as not converged (issue 12)
    "quick": {"lengths": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], "num_sequences": 200,
              "num_queries": 32, "gp_lengths": [4, 8, 16, 32, 64, 128, 256, 512],
              "gp_sequences": 64, "gp_queries": 64, "steps": 4000, "batch_size": 64,
              "lr": 5e-3, "dim": 32, "num_heads": 4, "block": "sab", "train_len": [1, 64],
              "num_resamples": 1000, "tail_from": 64},
    "full": {"lengths": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
             "num_sequences": 1000, "num_queries": 64,
             "gp_lengths": [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
             "gp_sequences": 256, "gp_queries": 128, "steps": 4000, "batch_size": 256,
             "lr": 2e-3, "dim": 64, "num_heads": 4, "block": "sab", "train_len": [1, 128],
             "num_resamples": 2000, "tail_from": 128},
}


# ------------------------------------------------------------------ pure helpers
def silverman_bandwidth(dim: int, length: float = P5_L0, scale: float = 1.0) -> float:
    """Silverman's rule of thumb ``scale (4 / (d + 2))^(1/(d+4)) n^(-1/(d+4))`` for n = length."""
    return float(scale * (4.0 / (dim + 2)) ** (1.0 / (dim + 4)) * length ** (-1.0 / (dim + 4)))


def shrinking_bandwidth(h0: float, length: float, l0: float, dim: int) -> float:
    """``h0 (L / L0)^(-1/(d+4))``: the bandwidth rate that balances NW bias and variance."""
    return float(h0 * (length / l0) ** (-1.0 / (dim + 4)))


def example_lengths(lengths: list[int]) -> list[int]:
    """The two lengths of the ``examples`` figure: the smallest grid length >= min(8,
    largest) and the largest."""
    return [min(v for v in lengths if v >= min(8, max(lengths))), max(lengths)]


def lr_model():
    """The ``linear-regression`` model of :data:`LR_MODEL` (P5)."""
    from bayesattn import models

    return models.get(LR_MODEL["name"], p=LR_MODEL["p"], prior_scale=LR_MODEL["prior_scale"],
                      noise_scale=LR_MODEL["noise_scale"])


def work(params: dict) -> float:
    """Compute of a preset, in millions of multiply-adds (roughly).

    Training: steps x batch x the cost of a one-block Set Transformer of width ``dim``
    (about ``L * dim * (12 * dim + 2 * L)`` per sequence, SAB) at log-uniform L in
    ``train_len``, times 3 for the backward pass. P5: the net's forward pass, the exact
    posterior and the two softmax smoothers (``L * Q`` kernel entries) per sequence and
    L. P6: simulating a GP on L + Q points (a Cholesky, ``(L + Q)^3 / 3``), the direct
    solve and CME (``L^3 / 3`` each) and the smoothers, per sequence and L. Bootstraps:
    num_resamples x sequences per (method, L, metric).
    """
    dim = float(params["dim"])
    lo, hi = (float(v) for v in params["train_len"])
    mean_l = (hi - lo) / np.log(hi / lo) if hi > lo else lo
    mean_l2 = (hi ** 2 - lo ** 2) / (2 * np.log(hi / lo)) if hi > lo else lo ** 2
    per_seq = dim * (12 * dim * mean_l + 2 * mean_l2)
    total = 3 * params["steps"] * params["batch_size"] * per_seq
    lengths = np.asarray(params["lengths"], float)
    q = float(params["num_queries"])
    total += params["num_sequences"] * float(
        (lengths * dim * (12 * dim + 2 * lengths) + 4 * lengths * q).sum())
    gl = np.asarray(params["gp_lengths"], float)
    gq = float(params["gp_queries"])
    total += params["gp_sequences"] * float(
        ((gl + gq) ** 3 / 3 + 2 * gl ** 3 / 3 + 6 * gl * gq).sum())
    total += params["num_resamples"] * (
        4 * 5 * params["num_sequences"] * len(lengths) + 4 * params["gp_sequences"] * len(gl))
    return total / 1e6
