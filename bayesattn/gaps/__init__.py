"""Gap studies: how far amortized attention is from the exact posterior.

Every study returns a tidy :class:`pandas.DataFrame` with one row per
(dataset or L, metric) and the columns ``metric, value, ci_low, ci_high`` (plus
``se, n`` and the study's own keys such as ``L`` or ``representation``).
"""
