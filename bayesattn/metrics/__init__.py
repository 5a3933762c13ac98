"""Gap metrics: pure functions comparing a candidate posterior with a reference.

No probabilistic-programming or network imports: inputs are torch distributions,
tensors or NumPy arrays, outputs are :class:`Estimate` values with confidence
intervals.
"""

from ._estimate import Estimate, as_numpy, bootstrap_ci

__all__ = ["Estimate", "as_numpy", "bootstrap_ci"]
