"""Replication statistics: Student-t over seeds, Holm's correction, power."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesattn.metrics import holm, minimum_detectable_effect, replicates_needed, seed_interval


def test_seed_interval_uses_the_t_quantile_of_r_minus_one_degrees():
    # two seeds: the 95% t quantile with 1 degree of freedom is 12.706 (not 1.96)
    est = seed_interval([1.0, 3.0])
    se = np.std([1.0, 3.0], ddof=1) / math.sqrt(2)
    assert est.value == 2.0 and est.n == 2
    assert est.ci_high - est.value == pytest.approx(12.7062 * se, rel=1e-4)
    assert est.ci_low == pytest.approx(2 * est.value - est.ci_high)


def test_seed_interval_covers_the_mean_at_its_level():
    # coverage by simulation over 4000 experiments of 3 seeds: 0.95 +- 4 MC standard errors
    rng = np.random.default_rng(0)
    n = 4000
    hits = 0
    for _ in range(n):
        est = seed_interval(rng.normal(1.5, 2.0, size=3))
        hits += est.ci_low <= 1.5 <= est.ci_high
    mcse = math.sqrt(0.95 * 0.05 / n)
    assert abs(hits / n - 0.95) < 4 * mcse


def test_one_seed_gives_no_interval_and_bad_input_is_refused():
    est = seed_interval([0.3])
    assert est.value == 0.3 and math.isnan(est.ci_low) and math.isnan(est.ci_high)
    with pytest.raises(ValueError, match="none"):
        seed_interval([])
    with pytest.raises(ValueError, match="finite"):
        seed_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="level"):
        seed_interval([1.0, 2.0], level=1.5)


def _holm_by_definition(p, alpha):
    """Holm's procedure as a sequence of tests: reject while p_(k) <= alpha / (m - k + 1)."""
    m = len(p)
    rejected = set()
    for k, i in enumerate(sorted(range(m), key=lambda j: (p[j], j))):
        if p[i] <= alpha / (m - k):
            rejected.add(i)
        else:
            break
    return rejected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8),
       st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_adjusted_values_reject_what_the_step_down_procedure_rejects(p, alpha):
    adjusted = holm(p)
    assert set(np.flatnonzero(adjusted <= alpha)) == _holm_by_definition(p, alpha)
    assert np.all(adjusted >= np.asarray(p)) and np.all(adjusted <= 1)


def test_holm_keeps_the_family_wise_error_under_alpha_for_null_cells():
    # 6 independent null p-values, 20000 families: P(any rejection) <= 0.05 + 4 MC se
    rng = np.random.default_rng(1)
    fams = 20000
    any_reject = np.mean([np.any(holm(rng.uniform(size=6)) <= 0.05) for _ in range(fams)])
    assert any_reject < 0.05 + 4 * math.sqrt(0.05 * 0.95 / fams)


def test_holm_refuses_what_is_not_a_p_value():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.3])
    with pytest.raises(ValueError, match="none"):
        holm([])


def test_minimum_detectable_effect_has_the_stated_power():
    # a z test of an effect equal to the MDE rejects with probability 0.8 (simulated)
    se = 0.3
    mde = minimum_detectable_effect(se)
    assert mde == pytest.approx(2.8016 * se, rel=1e-4)
    rng = np.random.default_rng(2)
    est = rng.normal(mde, se, size=40000)
    power = np.mean(np.abs(est / se) > 1.959964)
    assert abs(power - 0.8) < 4 * math.sqrt(0.8 * 0.2 / est.size)
    assert minimum_detectable_effect(se, two_sided=False) < mde


def test_replicates_needed_makes_the_mde_reach_the_effect():
    for effect, sd in itertools.product([0.1, 0.5, -0.5], [0.2, 1.0]):
        n = replicates_needed(effect, sd)
        assert minimum_detectable_effect(sd / math.sqrt(n)) <= abs(effect)
        if n > 1:
            assert minimum_detectable_effect(sd / math.sqrt(n - 1)) > abs(effect)
    with pytest.raises(ValueError, match="non-zero"):
        replicates_needed(0.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        minimum_detectable_effect(-1.0)
