"""Headline experiment: the approximation gap against sequence length (P4, P12, P13, P14).

On ``concept-mixture`` (K = 4 Gaussian concepts in 2-D, means at radius 0.5, unit
token noise) the exact posterior comes from enumeration, so the gap of any candidate
q(z | X) is exact. Candidates:

- a Set Transformer trained with the exact-KL objective on L in [8, 64] that is told
  L (``length_aware=True``), and the same network without L;
- paper 1's hand-set attention (no training): the exact oracle (gap 0, a check of the
  pipeline), the fixed-length oracle (built for L0 = 16, blind to L) and the hard
  (temperature -> 0) oracle.

Each is scored on fresh sequences of every L in the grid (inside and far beyond the
training range). Slopes of log KL against log L are fitted with bootstrap CIs inside
the training range and beyond it; no rate is assumed. P4 is decided by the sign of the
given-L net's slope inside the training range, unless its KL there is within the
convergence tolerance of its floor 0 at every L: then the error has nothing left to
lose and P4 is inconclusive. Each network's convergence is reported: the net told L
against its floor 0, the net without L (floor unknown) by a plateau test of its
training KL.
"""

from __future__ import annotations

from bayesattn.runner import Experiment, register

from .presets import CANDIDATES, GIVEN_L_TOLERANCE, MODEL, PRESETS

__all__ = ["CANDIDATES", "EXPERIMENT", "GIVEN_L_TOLERANCE", "MODEL", "PRESETS"]

EXPERIMENT = register(Experiment.from_parts(
    __name__,
    name="gap-vs-length",
    title="Approximation gap vs sequence length on concept-mixture",
    claims=("P4", "P12", "P13", "P14"),
    stages=("train", "evaluate", "slopes", "figure-data"),
))
