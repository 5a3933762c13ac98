"""Generalisation gap vs sequence length and training-set size (P7, P8).

On ``concept-mixture`` (K = 4 Gaussian concepts in 2-D, means at radius 0.5, unit
token noise; exact posterior by enumeration) one Set Transformer per (N, L) is
trained on a *fixed* training set of N sequences of exactly L tokens
(``bayesattn.gaps.generalisation_gap``, ``inference.fixed_training_set``) for a fixed
number of steps, then scored on its own training sequences and on fresh ones.

Two training objectives, each judged by its own ERM loss (nats per sequence):
``npe`` (the primary arm, listed first: supervised ERM on sampled labels z, paper 1's
setting; loss NLL = -log q(z | X), gap = test NLL - training NLL) and ``kl``
(distillation of the exact posterior; loss KL(p(z | X) || q(z | X)), so the test loss
is the excess risk over Bayes; the targets are deterministic given X). Verdicts are
stated for the first objective of the preset; the others are reported beside it.
Each point's 95% CI comes from a bootstrap over the training and the test sequences;
with several replicates (independent training sets and initialisations) the points
are averaged and the CI is normal with the larger of the within- and between-
replicate standard errors.

P7 (gap independent of L) is the log-log slope of the gap against L at each fixed N;
P8 (gap ~ N^-1/2 or faster) is the log-log slope against N at each fixed L, both from
``bayesattn.gaps.fit_slope`` (parametric bootstrap over the points' standard errors).
Only resolved points (mean gap > 2 standard errors) enter a fit, and a line needs 3 of
them: a gap indistinguishable from 0 has no usable logarithm. For P8 this drops the
smallest gaps (largest N), which makes the fitted decay shallower, i.e. conservative.
With a fixed step budget, large-N networks see each sequence fewer times, so the gap
there also reflects less fitting, not only more data.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    FLAT_BAND,
    GAP_KEYS,
    MIN_POINTS,
    MODEL,
    N_SLOPE_MAX,
    PRESETS,
    PRIMARY,
    RESOLVED_Z,
)

__all__ = ["EXPERIMENT", "FLAT_BAND", "GAP_KEYS", "MIN_POINTS", "MODEL", "N_SLOPE_MAX",
           "PRESETS", "PRIMARY", "RESOLVED_Z"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="generalisation",
    title="Generalisation gap vs sequence length and training-set size on concept-mixture",
    claims=("P7", "P8"),
    stages=("gaps", "summary", "slopes"),
))
