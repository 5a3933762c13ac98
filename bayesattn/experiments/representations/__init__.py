"""Representations: sufficiency (P1), minimality (P2) and permutation invariance (P3).

Paper 1 says the latent posterior pi(X) = P(z | X) is a sufficient and minimal
representation of an exchangeable set, and that attention without positional
encoding is permutation invariant. Three measurements, each against exact posteriors:

- **P1 sufficiency** (``concept-mixture`` with a noisy label, K = 4 concepts at radius
  0.5 in 2-D; ``dirichlet-categorical`` with y = one more draw): a probe (linear and
  one-hidden-layer MLP, fitted on frozen features) predicts y; its test log loss minus
  the exact Bayes risk is the excess risk (nats, 95% bootstrap CI over test sets).
  Representations: the exact posterior predictive (control, ~0), the first token and
  the token mean without L (not sufficient, > 0), and Set Transformers trained with the
  exact-KL objective on fixed training sets of N sequences (N on a grid, equal steps).
  "-> 0 as N grows" is measured as the paired difference of per-sequence excess risk
  between the smallest and the largest N (same probe data, same test sequences).
- **P2 minimality** (``normal-mean``, ``gamma-poisson``, ``normal-inverse-gamma``):
  pairs of sets with equal sufficient statistics but different tokens vs independent
  sets of the same lengths; the ratio of mean representation distances (95% paired
  bootstrap CI) for a Set Transformer trained by masked-token prediction (MTP, the
  self-supervised objective of paper 1; no multi-task objective exists in the library),
  the same network at initialisation, and the controls exact posterior (log density at
  fixed prior draws, ~0) and sorted tokens (sufficient, not minimal, > 0).
- **P3 invariance**: every encoder family (set-transformer, transformer without
  positional encoding, deepsets), briefly trained with the KL objective on each model,
  is scored on random permutations of its tokens (padding moves with its mask): the
  largest and mean change, relative to 1 + |output|, of the pooled representation r(X)
  (which sets every posterior parameter; the verdict uses it) and of log q(z | X) at fixed
  points z (reported; float32 density evaluation in the tails amplifies rounding).
  Order-dependent controls: the first-token summary and, built here as a control only,
  the trained set transformer with an additive sinusoidal positional encoding.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .helpers import (
    mean_without_length,
    paired_difference,
    permute_sets,
    positional_control,
    spread,
)
from .presets import (
    CONCEPT,
    CONTROL_SPREAD,
    CONTROL_TOL,
    ENCODER_FAMILIES,
    INVARIANCE_TOL,
    MINIMAL_RATIO,
    MODEL_PARAMS,
    PRESETS,
    PRIMARY_PROBE,
)

__all__ = ["CONCEPT", "CONTROL_SPREAD", "CONTROL_TOL", "ENCODER_FAMILIES", "EXPERIMENT",
           "INVARIANCE_TOL", "MINIMAL_RATIO", "MODEL_PARAMS", "PRESETS", "PRIMARY_PROBE",
           "mean_without_length", "paired_difference", "permute_sets", "positional_control",
           "spread"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="representations",
    title="Sufficiency, minimality and permutation invariance of learned representations",
    claims=("P1", "P2", "P3"),
    stages=("train", "sufficiency", "minimality", "invariance"),
))
