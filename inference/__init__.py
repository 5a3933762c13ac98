"""bayesattn.inference: ground-truth posteriors.

``reference_posterior(model, x, method="auto"|"exact"|"nuts"|"pyro-nuts")`` returns a
:class:`Reference` with draws, mean, log_prob (exact only), ArviZ ``idata``,
per-dataset ``diagnostics`` and a ``converged`` gate.
"""

from ._diagnostics import DEFAULT_GATE, ConvergenceGate, per_dataset_diagnostics
from ._ground_truth import METHODS, reference_posterior
from ._reference import Reference, UnconvergedReferenceError

__all__ = [
    "DEFAULT_GATE",
    "METHODS",
    "ConvergenceGate",
    "Reference",
    "UnconvergedReferenceError",
    "per_dataset_diagnostics",
    "reference_posterior",
]
