"""Heads x value width threshold (P11): the pooled summary must be as wide as the statistic.

Paper 1 reads multi-head attention as a set of conditional moments: each head returns a
weighted mean of its d_v-dimensional values, so one attention-pooling layer hands the
posterior head H * d_v numbers (plus L). The exact posterior is a function of L and a
minimal sufficient statistic of dimension s, so the error should drop sharply once
H * d_v reaches s and change little beyond it.

The library's attention layers tie the per-head value width to the model width
(d_v = dim / H, so H * d_v = dim always, and a LayerNorm follows the pooling). This
experiment therefore uses its own encoder, built from the library's softmax kernel: a
per-token MLP (width ``hidden``, no mixing across tokens), then ONE multi-head attention
pooling layer with a learned query per head, key width ``key_width`` and value width
d_v per head; the H * d_v pooled numbers, with log L appended, go straight to the
posterior head (no output projection, no norm), so H * d_v is exactly the width of the
bottleneck.

Models (exact posteriors, trained with the exact-KL objective at a fixed L):

- ``nig``: normal-inverse-gamma, z = (mu, sigma2); s = 2 (mean x, mean x^2). The head is
  a diagonal Gaussian on (mu, log sigma2); the best such Gaussian (moment matched) is
  reported as the family floor.
- ``mixture-K<K>``: concept-mixture with K Gaussian concepts at the vertices of a regular
  simplex in d = K - 1 dimensions (unit token noise), so the K - 1 log-likelihood ratios
  are K - 1 independent linear functions of mean x: s = K - 1.

Every configuration is scored on the same fresh sequences (KL(exact || q) per sequence);
ratios between width groups are paired bootstrap estimates over those sequences.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .network import build_net, net_classes
from .presets import (
    CONVERGENCE_TOLERANCE,
    DROP_FACTOR,
    NIG,
    PRESETS,
    configs,
    model_spec,
    simplex_means,
    width_group,
)

__all__ = ["CONVERGENCE_TOLERANCE", "DROP_FACTOR", "EXPERIMENT", "NIG", "PRESETS", "build_net",
           "configs", "model_spec", "net_classes", "simplex_means", "width_group"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="heads-width",
    title="Heads x value width threshold at the sufficient-statistic dimension",
    claims=("P11",),
    stages=("train", "evaluate", "threshold"),
))
