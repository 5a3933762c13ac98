"""Gap metrics: pure functions comparing a candidate posterior with a reference.

No probabilistic-programming or network imports: inputs are torch distributions,
tensors or NumPy arrays, outputs are :class:`Estimate` values with confidence
intervals (or small result dataclasses / tidy frames where said).

- divergences between distributions: :func:`kl_per_dataset`, :func:`kl_divergence`,
  :func:`tv_per_dataset`, :func:`total_variation`;
- two-sample statistics from draws: :func:`c2st`, :func:`mmd2`,
  :func:`energy_distance`, :func:`wasserstein2`;
- calibration: :func:`standardized_mean_error`, :func:`variance_ratio`,
  :func:`coverage`, :func:`sbc_ranks`, :func:`sbc_uniformity`;
- label switching: :func:`hungarian_permutation`, :func:`align_labels`,
  :func:`sorted_functional`;
- replicated runs: :func:`seed_interval` (Student-t over seeds), :func:`holm`,
  :func:`minimum_detectable_effect`, :func:`replicates_needed`.
"""

from ._calibration import (
    UniformityResult,
    coverage,
    sbc_ranks,
    sbc_uniformity,
    standardized_mean_error,
    variance_ratio,
)
from ._divergence import (
    closed_form_kl,
    kl_divergence,
    kl_per_dataset,
    total_variation,
    tv_per_dataset,
)
from ._estimate import Estimate, as_numpy, bootstrap_ci
from ._labels import align_labels, hungarian_permutation, sorted_functional
from ._moments import moments
from ._replication import holm, minimum_detectable_effect, replicates_needed, seed_interval
from ._twosample import TwoSampleResult, c2st, energy_distance, mmd2, wasserstein2

__all__ = [
    "Estimate",
    "as_numpy",
    "bootstrap_ci",
    "kl_per_dataset",
    "kl_divergence",
    "tv_per_dataset",
    "total_variation",
    "TwoSampleResult",
    "c2st",
    "mmd2",
    "energy_distance",
    "wasserstein2",
    "standardized_mean_error",
    "variance_ratio",
    "coverage",
    "sbc_ranks",
    "sbc_uniformity",
    "UniformityResult",
    "hungarian_permutation",
    "align_labels",
    "sorted_functional",
    "closed_form_kl",
    "moments",
    "seed_interval",
    "holm",
    "minimum_detectable_effect",
    "replicates_needed",
]
