"""Length-awareness gap (P12): calibration of attention posteriors with and without L.

Softmax attention pools tokens into averages, so a network that never sees the number
of tokens L cannot tell how sharp the exact posterior should be (docs/claims.md#p12).
Two conjugate models give exact posteriors that sharpen with L: ``normal-mean``
(d = 1, unit noise, N(0, 1) prior; Gaussian head) and ``dirichlet-categorical``
(K = 3, alpha = 1; Dirichlet head). On each, two Set Transformers are trained with
the exact-KL objective on a range of L (preset ``train_len``: [2, 32] in quick,
[2, 64] in full), one told log L (``length_aware=True``) and
one not. Each is scored on fresh sequences at every L of the grid (inside and beyond
the training range): coverage of central credible intervals at 50/80/95% against the
true latent (Wilson CIs), SBC ranks of the true latent among posterior draws, the
standardized mean error and the variance ratio against the exact posterior (bootstrap
CIs over sequences), and the amortization gap (Cremer et al. 2018: KL of the
amortized q against the best member of the same head family, per sequence).
For the Dirichlet latent, coverage and SBC use one coordinate per sequence (coordinate
b mod K for sequence b), so the Wilson intervals count independent checks.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import (
    CONVERGENCE_TOLERANCE,
    COVERAGE_TOL,
    HEADS,
    LEVELS,
    MODELS,
    NETS,
    PRESETS,
    VR_TOL,
)

__all__ = ["CONVERGENCE_TOLERANCE", "COVERAGE_TOL", "EXPERIMENT", "HEADS", "LEVELS", "MODELS",
           "NETS", "PRESETS", "VR_TOL"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="length-awareness",
    title="Length-awareness gap: calibration with and without L (normal-mean, "
          "dirichlet-categorical)",
    claims=("P12",),
    stages=("train", "calibrate", "amortization"),
))
