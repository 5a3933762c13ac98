"""Rules as code: bayesattn.runner.Decision / decide, against scipy's t tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bayesattn.runner import Decision, Gate, Rule, decide


def _seeds(key, values):
    return [{key: float(v)} for v in values]


def test_pooled_interval_is_the_student_t_interval_over_seeds():
    values = [-0.31, -0.12, -0.25, -0.40, -0.18]
    r = decide(Decision(("slope",), "below"), _seeds("slope", values))
    lo, hi = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))
    (cell,) = r.cells
    assert cell.ci_low == pytest.approx(lo) and cell.ci_high == pytest.approx(hi)
    # one-sided p of H0: mean >= 0, as scipy computes it
    p = stats.ttest_1samp(values, 0.0, alternative="less").pvalue
    assert cell.p_support == pytest.approx(p)
    assert r.verdict == "supported" and r.basis == "seeds" and r.seeds == 5


def test_each_branch_of_a_rule_with_an_equivalence_margin():
    d = Decision(("slope",), "below", threshold=0.0, margin=0.1)
    assert decide(d, _seeds("slope", [-0.5, -0.6, -0.55, -0.45, -0.52])).verdict == "supported"
    # the other side: not supported
    assert decide(d, _seeds("slope", [0.5, 0.6, 0.55, 0.45, 0.52])).verdict == "not supported"
    # a tiny but certain decrease, inside the margin: no practical change -> not supported
    flat = decide(d, _seeds("slope", [-0.03, -0.02, -0.025, -0.035, -0.028]))
    assert flat.verdict == "not supported" and flat.cells[0].outcome == "equivalent"
    # noisy, straddling both 0 and the margin: inconclusive
    assert decide(d, _seeds("slope", [-0.4, 0.3, -0.2, 0.25, 0.1])).verdict == "inconclusive"
    # without a margin the tiny decrease is support
    tiny = decide(Decision(("slope",), "below"),
                  _seeds("slope", [-0.03, -0.02, -0.025, -0.035, -0.028]))
    assert tiny.verdict == "supported"


def test_one_seed_uses_its_own_interval_and_says_so():
    d = Decision(("gap",), "above", ci={"gap": ("lo", "hi")})
    r = decide(d, [{"gap": 0.2, "lo": 0.1, "hi": 0.3}])
    assert r.verdict == "supported" and r.basis == "one seed"
    assert "training randomness not included" in r.text
    se = 0.2 / (2 * stats.norm.ppf(0.975))
    assert r.cells[0].p_support == pytest.approx(stats.norm.sf(0.2 / se))
    # no interval in a single seed: nothing can be decided
    assert decide(Decision(("gap",), "above"), [{"gap": 0.2}]).verdict == "inconclusive"


def test_holm_guards_a_rule_that_any_one_cell_can_refute():
    # Every cell must hold (combine="all"); one cell at p = 0.02 against the claim would
    # refute it uncorrected (0.02 <= 0.025) but not after Holm over 3 cells (0.06).
    d = Decision(("a", "b", "c"), "below", combine="all")
    t = stats.t.isf(0.02, df=4)  # a mean t SEs above 0 gives one-sided p = 0.02
    base = np.array([-1.0, 1.0, -0.5, 0.5, 0.0])
    vals = base / base.std(ddof=1) * math.sqrt(5)  # sd = sqrt(5): se = 1
    seeds = [{"a": -5.0 + v, "b": -5.0 + v, "c": t + v} for v in vals]
    r = decide(d, seeds)
    assert r.cells[2].p_against == pytest.approx(0.02)
    assert r.verdict == "inconclusive"
    one = decide(Decision(("c",), "below"), [{"c": s["c"]} for s in seeds])
    assert one.verdict == "not supported"


def test_any_cell_support_is_holm_corrected():
    t = stats.t.isf(0.02, df=4)
    base = np.array([-1.0, 1.0, -0.5, 0.5, 0.0])
    vals = base / base.std(ddof=1) * math.sqrt(5)
    seeds = [{"a": t + v, "b": v, "c": v} for v in vals]
    assert decide(Decision(("a", "b", "c"), "above", combine="any"), seeds).verdict \
        == "inconclusive"
    assert decide(Decision(("a",), "above"), seeds).verdict == "supported"


def test_a_closed_gate_makes_the_claim_untestable():
    g = Gate("max_kl", "below", 0.005, "the network is at its floor at every length")
    d = Decision(("slope",), "below", gate=g)
    seeds = [{"slope": -1.0 + 0.01 * i, "max_kl": 0.001} for i in range(5)]
    r = decide(d, seeds)
    assert r.verdict == "inconclusive" and r.gated and "floor" in r.text
    seeds = [{"slope": -1.0 + 0.01 * i, "max_kl": 0.1} for i in range(5)]
    assert decide(d, seeds).verdict == "supported"


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-5, 5), min_size=2, max_size=8),
       shift=st.floats(-3, 3), margin=st.floats(0.01, 2))
def test_reflecting_the_data_and_the_prediction_gives_the_same_verdict(values, shift, margin):
    """'below t' on x decides as 'above -t' on -x (the rule has no preferred direction)."""
    below = decide(Decision(("k",), "below", threshold=shift, margin=margin),
                   _seeds("k", values))
    above = decide(Decision(("k",), "above", threshold=-shift, margin=margin),
                   _seeds("k", [-v for v in values]))
    assert below.verdict == above.verdict


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-5, 5), min_size=3, max_size=8), step=st.floats(0.01, 5))
def test_moving_every_seed_towards_the_prediction_never_weakens_the_verdict(values, step):
    rank = {"not supported": 0, "inconclusive": 1, "supported": 2}
    d = Decision(("k",), "below")
    before = decide(d, _seeds("k", values)).verdict
    after = decide(d, _seeds("k", [v - step for v in values])).verdict
    assert rank[after] >= rank[before]


def test_bad_decisions_and_numbers_are_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="predicts"):
        Decision(("k",), "lower")
    with pytest.raises(ValueError, match="combine"):
        Decision(("k",), "below", combine="some")
    with pytest.raises(ValueError, match="margin"):
        Decision(("k",), "below", margin=0.0)
    with pytest.raises(ValueError, match="lack"):
        decide(Decision(("k",), "below"), [{"j": 1.0}])
    with pytest.raises(ValueError, match="at least one seed"):
        decide(Decision(("k",), "below"), [])


def test_rule_picks_the_decision_its_numbers_fit_and_hashes_stay_stable():
    cal = Decision(("ratio",), "below", threshold=0.8)
    gap = Decision(("gap",), "above")
    rule = Rule("P12", 2, "test", "m", "d", decisions=(cal, gap))
    assert rule.decision_for({"gap": 1.0}) is gap
    with pytest.raises(ValueError, match="decides on"):
        rule.decision_for({"other": 1.0})
    plain = Rule("P12", 1, "test", "m", "d")
    assert plain.decision_for({"x": 1.0}) is None
    # decisions enter the hash; a rule without them hashes as before they existed
    assert rule.sha256 != Rule("P12", 2, "test", "m", "d", decisions=(cal,)).sha256
    assert plain.sha256 == Rule("P12", 1, "test", "m", "d", decisions=()).sha256


def test_a_pattern_key_makes_one_cell_per_matching_number():
    d = Decision(("kl_diff_L*",), "above", combine="any")
    seeds = [{"kl_diff_L128": 0.01 + e, "kl_diff_L16": 0.2 + e, "kl_diff_L2": -0.001 + e,
              "kl_diff_L2_ci_low": 0.0, "other": 1.0} for e in (0.0, 0.001, -0.001, 0.002)]
    r = decide(d, seeds)
    assert [c.key for c in r.cells] == ["kl_diff_L2", "kl_diff_L16", "kl_diff_L128"]
    assert r.verdict == "supported"
    with pytest.raises(ValueError, match="other cells"):
        decide(d, [seeds[0], {"kl_diff_L2": 0.0}])
    assert not d.fits({"other": 1.0})


def test_an_exact_tie_in_every_seed_is_no_effect():
    d = Decision(("diff_a", "diff_b"), "below")
    seeds = [{"diff_a": -0.5 + 0.01 * i, "diff_b": 0.0} for i in range(5)]
    r = decide(d, seeds)
    assert [c.outcome for c in r.cells] == ["supported", "equivalent"]
    assert r.verdict == "not supported"


def test_practical_support_needs_the_interval_beyond_the_margin():
    seeds = _seeds("slope", [-0.13, -0.11, -0.12, -0.125, -0.115])  # CI ~[-0.134, -0.106]
    plain = Decision(("slope",), "below", margin=0.1)
    strict = Decision(("slope",), "below", margin=0.1, practical=True)
    assert decide(plain, seeds).verdict == "supported"
    assert decide(strict, seeds).verdict == "supported"
    # an interval that reaches into the margin: support by sign only, not practical
    seeds = _seeds("slope", [-0.16, -0.08, -0.12, -0.14, -0.10])
    r = decide(strict, seeds)
    assert r.cells[0].ci_low < -0.1 < r.cells[0].ci_high < 0
    assert decide(plain, seeds).verdict == "supported" and r.verdict == "inconclusive"
    with pytest.raises(ValueError, match="margin"):
        Decision(("slope",), "below", practical=True)
    # the new field at its default leaves the hash of rules stated before it unchanged
    old = Rule("P4", 2, "test", "m", "d", decisions=(plain,))
    assert "practical" not in old.sha256 and old.sha256 == Rule(
        "P4", 2, "test", "m", "d", decisions=(Decision(("slope",), "below", margin=0.1,
                                                       practical=False),)).sha256
    assert Rule("P4", 3, "test", "m", "d", decisions=(strict,)).sha256 != Rule(
        "P4", 3, "test", "m", "d", decisions=(plain,)).sha256
