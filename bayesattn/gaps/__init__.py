"""Gap studies: how far amortized attention is from the exact posterior.

Every study returns a tidy :class:`pandas.DataFrame` with one row per
(dataset or L, metric) and the columns ``metric, value, ci_low, ci_high, se, n``
plus the study's own keys (``L``, ``N``, ``candidate``, ``representation``...).

- Approximation: :func:`approximation_gap`, :func:`gap_vs_length`, :func:`loglog_slope`.
- Amortization (Cremer decomposition): :func:`amortization_gap`.
- Generalisation (P7, P8): :func:`generalisation_gap`, :func:`fit_slope`.
- Sufficiency (P1): :func:`sufficiency_gap`, :func:`bayes_risk`, :func:`fit_probe`.
- Minimality (P2): :func:`minimality`, :func:`equal_statistic_pairs`.
- Masked-token transfer (P9, P10): :func:`masked_token_transfer`, :func:`condition_number`.
"""

from ._amortization import amortization_gap
from ._approximation import (
    approximation_gap,
    gap_vs_length,
    loglog_slope,
    per_dataset_gaps,
    summarise,
)
from ._bayes import NoExactPredictive, bayes_risk, exact_target_predictive
from ._generalisation import fit_slope, generalisation_gap, sequence_losses
from ._minimality import EqualStatisticPairs, equal_statistic_pairs, minimality
from ._probe import fit_probe
from ._sufficiency import (
    PROBES,
    evaluate_representation,
    exact_posterior_features,
    first_token_features,
    probe_family,
    representation_of,
    simulate_sets,
    sufficiency_gap,
)
from ._transfer import (
    condition_number,
    masked_token_transfer,
    model_condition_number,
    sum_zero_basis,
    target_table,
)

__all__ = [
    "approximation_gap",
    "per_dataset_gaps",
    "summarise",
    "gap_vs_length",
    "loglog_slope",
    "amortization_gap",
    "generalisation_gap",
    "sequence_losses",
    "fit_slope",
    "NoExactPredictive",
    "bayes_risk",
    "exact_target_predictive",
    "fit_probe",
    "exact_posterior_features",
    "first_token_features",
    "representation_of",
    "simulate_sets",
    "sufficiency_gap",
    "EqualStatisticPairs",
    "equal_statistic_pairs",
    "minimality",
    "condition_number",
    "masked_token_transfer",
    "model_condition_number",
    "PROBES",
    "evaluate_representation",
    "probe_family",
    "sum_zero_basis",
    "target_table",
]
