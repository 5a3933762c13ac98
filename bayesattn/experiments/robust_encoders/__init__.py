"""Trained amortized encoders under contamination and at larger L (E6).

Paper 2 (docs/claims.md#e6) suggests that twicing attention and boosting residuals are more
robust to contaminated tokens, and that distance kernels do not let large-norm outliers
soak up the attention weight. Paper 2's formulation of E6 is our reconstruction (see
docs/claims.md#e6; its full text was not available). Setting: ``concept-mixture`` (K = 4
Gaussian concepts in d = 2, means on a circle of radius ``radius`` = 0.6, unit token
noise, so that one sequence of L_train = 16 tokens leaves real posterior uncertainty).
Four amortized posteriors ``AmortizedPosterior(encoder="transformer", head=
"categorical")`` (pre-norm, no positional encoding, mean pooling, log L appended) differ
only in the attention: standard (softmax, residual "standard"), twicing (kernel
"twicing" = (2A - A^2)V over softmax), boosting (residual "boosting": x + Attn(x) +
lambda (x0 - x)) and distance (kernel "gaussian", -||q - k||^2 logits). Each is trained
with the same budget, seed and data (objective "kl" against the exact posterior, lengths
drawn log-uniformly in [2, L_train], ``train``'s default) on clean data (regime "clean";
the full preset adds a regime trained on the eps-outlier model against its own exact
posterior), for ``replicates`` independent training seeds. Tests: ``contaminate(model,
eps, kind)`` with kind "outlier" (a token replaced w.p. eps by a draw from N(0, 10^2 I))
or "swap" (by a token of another concept), eps in {0, 0.05, 0.1, 0.2}, at L_train and at
4 L_train (the first L_train tokens of each test sequence form its L_train version).
Every net sees the same test sequences (a fresh set per replicate); the eps-sets share
the clean draw and the contamination uniforms, so a sequence at eps = 0.2 is its eps = 0
version with about 20% of the tokens replaced. Measured per sequence, exactly by
enumeration: KL(p_eps || q) (the eps-model posterior, the robust Bayes target) and
KL(p_clean || q) (the clean model's posterior on the same contaminated tokens), with
percentile-bootstrap CIs over sequences, pooled over replicates with
``combine_replicates`` (rows with replicate = -1). Degradation of a variant = KL(eps =
0.2) - KL(eps = 0), per sequence; its contrast with the standard encoder is paired over
the same sequences. Length degradation = KL(4 L_train) - KL(L_train) at eps = 0, also
paired.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    BASELINE,
    KINDS,
    LEARNED_FRACTION,
    POOLED,
    PRESETS,
    TARGETS,
    TOLERANCE_NATS,
    VARIANTS,
)

__all__ = ["BASELINE", "EXPERIMENT", "KINDS", "LEARNED_FRACTION", "POOLED", "PRESETS",
           "TARGETS", "TOLERANCE_NATS", "VARIANTS"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="robust-encoders",
    title="Trained attention encoders under contamination and at larger L: standard vs "
          "twicing vs boosting vs distance (concept-mixture)",
    claims=("E6",),
    stages=("train", "evaluate", "draws"),
))
