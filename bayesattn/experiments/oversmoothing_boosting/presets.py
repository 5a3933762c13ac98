"""What the oversmoothing-boosting experiment runs on: the stacks, the E3 collapse
thresholds, the E4 filters, the presets, the GP model and the cost."""

from __future__ import annotations

VARIANTS = ("plain", "residual", "twicing", "boosting")
E3_METRICS = ("mse_clean", "mse_posterior", "cosine", "effective_rank")
#: collapse thresholds of E3 (cosine at least, effective rank at most)
COLLAPSE_COSINE = 0.99
COLLAPSE_RANK = 1.05
#: filters of E4 that shrink (counted in the verdict) and the scope check
SHRINK_FILTERS = ("exact", "mismatch-x4", "mismatch-/4", "high-pass", "attention")
SCOPE_FILTERS = ("negated",)

PRESETS = {
    "smoke": {"L": 32, "channels": 4, "num_sequences": 24, "depths": [0, 1, 2, 4, 8, 16, 32],
              "kernel": "rbf", "lengthscale": 4.0, "noise_scale": 0.5, "bandwidth": 1.0,
              "spatial_bandwidth": None, "boost_lambda": 0.2, "num_resamples": 100,
              "sweep_kernels": ["rbf"], "sweep_lengthscales": [2.0, 8.0],
              "sweep_noise_scales": [0.2, 1.0], "sweep_sequences": 16,
              "posterior_sequences": 4, "posterior_draws": 100},
    "quick": {"L": 64, "channels": 4, "num_sequences": 256,
              "depths": [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32],
              "kernel": "rbf", "lengthscale": 4.0, "noise_scale": 0.5, "bandwidth": 1.0,
              "spatial_bandwidth": None, "boost_lambda": 0.2, "num_resamples": 1000,
              "sweep_kernels": ["rbf", "matern12"], "sweep_lengthscales": [1.0, 4.0, 16.0],
              "sweep_noise_scales": [0.1, 0.3, 1.0, 3.0], "sweep_sequences": 128,
              "posterior_sequences": 8, "posterior_draws": 400},
    "full": {"L": 128, "channels": 8, "num_sequences": 1024, "depths": list(range(33)),
             "kernel": "rbf", "lengthscale": 4.0, "noise_scale": 0.5, "bandwidth": 1.0,
             "spatial_bandwidth": None, "boost_lambda": 0.2, "num_resamples": 2000,
             "sweep_kernels": ["rbf", "matern12", "matern32", "matern52"],
             "sweep_lengthscales": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
             "sweep_noise_scales": [0.05, 0.1, 0.3, 1.0, 3.0, 10.0], "sweep_sequences": 512,
             "posterior_sequences": 16, "posterior_draws": 1000},
}


def _model(kernel: str, lengthscale: float, noise_scale: float):
    from bayesattn import models

    return models.get_sequence("gp-signal", kernel=kernel, lengthscale=lengthscale,
                               noise_scale=noise_scale)


def bootstrap_us(num_resamples: int, n: int) -> float:
    """Reference-CPU microseconds of one ``bootstrap_ci`` call on ``n`` values: a Python
    loop of ``num_resamples`` means (~3.5 us each plus ~16 ns per value)."""
    return num_resamples * (3.5 + 0.016 * n)


def work(params: dict) -> float:
    """Estimated reference-CPU microseconds (one thread) of the preset's loops.

    Units: microseconds, from timings of the pieces on the reference CPU. Depth stage:
    the exact GP posterior of ``num_sequences * channels`` sequences (a Cholesky solve
    each, ~0.003 L^3 us), the attention matrices (~0.03 L^2 us per sequence), 4 stacks
    of ``max(depths)`` layers (an L x L by L x d product, ~0.0005 L^2 d us per sequence;
    twicing two), the collapse metrics at each listed depth (~0.0003 L^2 d us) and one
    bootstrap CI per (variant, depth, metric) (:func:`bootstrap_us`). SNR stage, per
    (kernel, lengthscale, noise) case: a few L x L solves (~0.01 L^3 us), the attention
    matrices of ``sweep_sequences`` sequences and 3 bootstrap CIs.
    """
    L, d = int(params["L"]), int(params["channels"])
    R = int(params["num_resamples"])
    n, depths = int(params["num_sequences"]), {int(t) for t in params["depths"]}
    depth = (n * d * (0.003 * L**3 + 0.05 * L) + n * 0.03 * L * L
             + (len(VARIANTS) + 1) * max(depths) * n * 0.0005 * L * L * d
             + (len(VARIANTS) * len(depths) + 1) * n * 0.0003 * L * L * d
             + (len(VARIANTS) * len(depths) + 1) * len(E3_METRICS) * bootstrap_us(R, n))
    cases = (len(params["sweep_kernels"]) * len(params["sweep_lengthscales"])
             * len(params["sweep_noise_scales"]))
    m = int(params["sweep_sequences"])
    snr = cases * (0.01 * L**3 + m * d * 0.05 * L + m * 0.03 * L * L + 3 * bootstrap_us(R, m))
    draws = int(params["posterior_sequences"]) * int(params["posterior_draws"]) * L
    return float(depth + snr + 0.01 * draws)
