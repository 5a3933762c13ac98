"""What the representations experiment runs on: the models, the encoder families, the
thresholds of the verdicts, the presets and the cost."""

from __future__ import annotations

CONCEPT = {"K": 4, "d": 2, "radius": 0.5}
MODEL_PARAMS = {"concept-mixture": CONCEPT}
ENCODER_FAMILIES = ("set-transformer", "transformer", "deepsets")
PRIMARY_PROBE = "mlp"  # the probe behind headline and verdicts when it was run
#: P1: the exact-posterior control must have excess risk below this (nats, CI upper bound)
CONTROL_TOL = 0.02
#: P2: a "minimal" representation puts equal-statistic sets this much closer than others
MINIMAL_RATIO = 0.1
#: P3: relative float32 tolerance on |log q(z | pi X) - log q(z | X)| / (1 + |log q|)
INVARIANCE_TOL = 1e-5
#: P3: an order-dependent control must move its output by at least this (relative)
CONTROL_SPREAD = 1e-3

# Per-token cost of a training step in dim^2 units: simulation, featurising, loss and
# optimiser cost about as much per token as a block of width ~57 (measured on one
# thread: 27 / 33 / 55 ms per Set Transformer step at dim 16 / 32 / 64, batch 64, L 32).
TOKEN_OVERHEAD = 3300.0

PRESETS = {
    "smoke": {"dim": 8, "num_heads": 2, "batch_size": 16, "lr": 2e-3,
              "sufficiency_models": ["concept-mixture"], "train_sizes": [16, 64],
              "steps": 3, "seq_len": [8, 16], "probes": ["linear"],
              "num_probe_train": 64, "num_probe_test": 64,
              "minimality_models": ["normal-mean", "gamma-poisson", "normal-inverse-gamma"],
              "objectives": ["mtp"], "minimality_steps": 3, "num_pairs": 32,
              "invariance_models": ["concept-mixture"], "invariance_steps": 2,
              "num_sequences": 8, "num_permutations": 2, "num_points": 4,
              "num_resamples": 100},
    "quick": {"dim": 32, "num_heads": 4, "batch_size": 64, "lr": 2e-3,
              "sufficiency_models": ["concept-mixture", "dirichlet-categorical"],
              "train_sizes": [32, 256, 2048], "steps": 500, "seq_len": [4, 32],
              "probes": ["linear", "mlp"], "num_probe_train": 2000, "num_probe_test": 2000,
              "minimality_models": ["normal-mean", "gamma-poisson", "normal-inverse-gamma"],
              "objectives": ["mtp"], "minimality_steps": 500, "num_pairs": 500,
              "invariance_models": ["concept-mixture", "normal-mean", "gamma-poisson",
                                    "dirichlet-categorical", "normal-inverse-gamma"],
              "invariance_steps": 100, "num_sequences": 64, "num_permutations": 8,
              "num_points": 8, "num_resamples": 1000},
    "full": {"dim": 64, "num_heads": 4, "batch_size": 256, "lr": 1e-3,
             "sufficiency_models": ["concept-mixture", "dirichlet-categorical"],
             "train_sizes": [32, 128, 512, 2048, 8192, 32768], "steps": 4000,
             "seq_len": [4, 32], "probes": ["linear", "mlp"], "num_probe_train": 8000,
             "num_probe_test": 8000,
             "minimality_models": ["normal-mean", "gamma-poisson", "normal-inverse-gamma"],
             "objectives": ["mtp", "kl"], "minimality_steps": 4000, "num_pairs": 2000,
             "invariance_models": ["concept-mixture", "normal-mean", "gamma-poisson",
                                   "dirichlet-categorical", "normal-inverse-gamma"],
             "invariance_steps": 1000, "num_sequences": 256, "num_permutations": 16,
             "num_points": 16, "num_resamples": 2000},
}


def make_model(name: str):
    """The model ``name`` with the parameters of :data:`MODEL_PARAMS`."""
    from bayesattn import models

    return models.get(name, **MODEL_PARAMS.get(name, {}))


def net_label(n: int) -> str:
    """The representation label of the P1 net trained on N sequences."""
    return f"net N={int(n)}"


def work(params: dict) -> float:
    """Compute asked for, in millions of token-passes x (dim^2 + TOKEN_OVERHEAD) (x 1e-6).

    Training: steps x batch x mean tokens per set per network (P1: models x train sizes;
    P2: models x objectives; P3: models x 3 encoder families); evaluation: the probe sets
    through every P1 representation, per probe kind (MLP probes counted 4x: their L-BFGS
    fits dominate), and the P2 pairs.
    """
    low, high = params["seq_len"]
    tokens = (low + high) / 2.0
    dim2 = float(params["dim"]) ** 2 + TOKEN_OVERHEAD
    batch = int(params["batch_size"])
    n_suf = len(params["sufficiency_models"])
    steps = (n_suf * len(params["train_sizes"]) * int(params["steps"])
             + len(params["minimality_models"]) * len(params["objectives"])
             * int(params["minimality_steps"])
             + len(params["invariance_models"]) * len(ENCODER_FAMILIES)
             * int(params["invariance_steps"]))
    probes = sum(4 if p == "mlp" else 1 for p in params["probes"])
    sets = int(params["num_probe_train"]) + int(params["num_probe_test"])
    evaluate = (n_suf * probes * (len(params["train_sizes"]) + 4) * sets
                + len(params["minimality_models"]) * 4 * int(params["num_pairs"]))
    return (steps * batch + evaluate) * tokens * dim2 * 1e-6
