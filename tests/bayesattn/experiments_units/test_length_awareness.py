"""Unit tests of the helpers of the length-awareness experiment (P12)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesattn.experiments.length_awareness import claims, figures, presets, stages


def _coverage(values, half=0.02):
    return pd.DataFrame([{"level": a, "value": v, "ci_low": v - half, "ci_high": v + half}
                         for a, v in zip(presets.LEVELS, values, strict=True)])


def test_one_coordinate_picks_b_mod_c():
    draws = np.arange(2 * 5 * 3).reshape(2, 5, 3).astype(float)
    truth = np.arange(5 * 3).reshape(5, 3).astype(float)
    d1, t1 = stages.one_coordinate(draws, truth)
    assert d1.shape == (2, 5) and t1.shape == (5,)
    for b in range(5):
        assert t1[b] == truth[b, b % 3]
        np.testing.assert_array_equal(d1[:, b], draws[:, b, b % 3])


def test_one_coordinate_rejects_bad_shapes():
    with pytest.raises(ValueError, match="expected draws"):
        stages.one_coordinate(np.zeros((4, 5)), np.zeros(5))


def test_randomized_pit_is_uniform_for_uniform_ranks():
    s = 9
    ranks = np.random.default_rng(0).integers(0, s + 1, size=20_000)
    pit = stages.randomized_pit(ranks, s, seed=1)
    assert ((pit > 0) & (pit < 1)).all()
    # within a rank's cell
    assert (np.floor(pit * (s + 1)) == ranks).all()
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    with pytest.raises(ValueError, match="ranks must lie"):
        stages.randomized_pit(np.array([s + 1]), s, seed=0)


def test_randomized_pit_detects_overconfidence():
    # truths beyond all draws (overconfident q) pile ranks at the ends
    ranks = np.r_[np.zeros(500, int), np.full(500, 9)]
    pit = stages.randomized_pit(ranks, 9, seed=0)
    assert stats.kstest(pit, "uniform").pvalue < 1e-6


def test_classify_three_states():
    good_vr = {"ci_low": 0.9, "ci_high": 1.1}
    assert claims.classify(good_vr, _coverage(presets.LEVELS)) == "calibrated"
    # overconfident: variance ratio CI below 1/1.25
    assert claims.classify({"ci_low": 0.3, "ci_high": 0.5}, _coverage(presets.LEVELS)) \
        == "miscalibrated"
    # coverage CI entirely below nominal - tol
    assert claims.classify(good_vr, _coverage([0.5, 0.6, 0.95])) == "miscalibrated"
    # coverage off but inside the tolerance: still calibrated
    assert claims.classify(good_vr, _coverage([0.47, 0.8, 0.95])) == "calibrated"
    # variance-ratio CI straddling the tolerance edge, coverage fine: undetermined
    assert claims.classify({"ci_low": 1.1, "ci_high": 1.4}, _coverage(presets.LEVELS)) \
        == "undetermined"
    assert claims.classify(None, _coverage(presets.LEVELS)) == "undetermined"
    assert claims.classify({"ci_low": np.nan, "ci_high": np.nan}, _coverage(presets.LEVELS)) \
        == "undetermined"


def test_pit_coverage_and_wilson_band():
    pit = np.array([0.5, 0.3, 0.9, 0.01])
    cov = figures.pit_coverage(pit, np.array([0.1, 0.5, 0.95]))
    np.testing.assert_allclose(cov, [0.25, 0.5, 0.75])
    uniform = np.random.default_rng(0).uniform(size=50_000)
    np.testing.assert_allclose(figures.pit_coverage(uniform, np.array([0.5, 0.8])), [0.5, 0.8],
                               atol=0.01)
    low, high = figures.wilson_band(np.array([0.0, 0.5, 1.0]), 100)
    assert (low <= np.array([0.0, 0.5, 1.0]) + 1e-12).all()
    assert (high >= np.array([0.0, 0.5, 1.0]) - 1e-12).all()
    assert 0.39 < low[1] < 0.41 and 0.59 < high[1] < 0.61


def test_shown_lengths():
    assert figures._shown_lengths([2, 4, 8, 16, 32, 64, 256], (2, 32)) == [2, 8, 256]
    assert figures._shown_lengths([2, 64], (2, 16)) == [2, 64]


def _results(blind_vr, aware_vr, diff):
    rows = []
    for name in presets.MODELS:
        for label, vr in (("net (no L)", blind_vr), ("net (given L)", aware_vr)):
            rows.append({"stage": "calibrate", "model": name, "candidate": label, "L": 2,
                         "metric": "variance_ratio", "value": np.mean(vr), "ci_low": vr[0],
                         "ci_high": vr[1]})
            for a in presets.LEVELS:
                rows.append({"stage": "calibrate", "model": name, "candidate": label, "L": 2,
                             "metric": "coverage", "level": a, "value": a, "ci_low": a - 0.02,
                             "ci_high": a + 0.02})
        rows.append({"stage": "amortization", "model": name,
                     "candidate": "net (no L) - net (given L)", "L": 2,
                     "metric": "amortization_gap_difference", "value": np.mean(diff),
                     "ci_low": diff[0], "ci_high": diff[1]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("blind", "aware", "diff", "expected"), [
    ((0.3, 0.4), (0.95, 1.05), (0.1, 0.2), ("supported", "supported")),
    ((0.95, 1.05), (0.95, 1.05), (-0.2, -0.1), ("not supported", "not supported")),
    ((0.3, 0.4), (0.3, 0.4), (-0.1, 0.1), ("inconclusive", "inconclusive")),
])
def test_verdicts_follow_the_intervals(blind, aware, diff, expected):
    params = {"lengths": [2], "train_len": [2, 32]}
    out = claims.verdicts(_results(blind, aware, diff), params)
    assert [v.claim for v in out] == ["P12"] * 3
    assert out[0].verdict == out[1].verdict == expected[0]
    assert out[2].verdict == expected[1]
    assert "variance ratio" in out[0].measured


def test_headline_pivots_variance_ratio_and_coverage():
    table = claims.headline(_results((0.3, 0.4), (0.95, 1.05), (0.1, 0.2)))
    assert set(table["quantity"]) == {"variance ratio", "coverage 50%", "coverage 80%",
                                      "coverage 95%"}
    assert "L=2" in table.columns
    assert len(table) == 2 * 2 * 4


def _conv_results(given_kl: float, blind_drop: float) -> pd.DataFrame:
    rows = []
    for name in presets.MODELS:
        for _, _, label in presets.NETS:
            for L in (2, 8, 32, 128):
                kl = given_kl if L <= 32 else 10 * given_kl
                rows.append({"stage": "amortization", "model": name, "candidate": label,
                             "L": L, "metric": "kl_amortized", "value": kl, "se": kl / 10})
            rows += [{"stage": "train", "model": name, "candidate": label,
                      "metric": "plateau_drop", "value": blind_drop, "se": 0.001},
                     {"stage": "train", "model": name, "candidate": label,
                      "metric": "plateau_relative_drop", "value": blind_drop / 0.1}]
    return pd.DataFrame(rows)


def test_convergence_given_l_against_floor_blind_by_plateau():
    params = {"train_len": [2, 32]}
    ok = claims.convergence(_conv_results(presets.CONVERGENCE_TOLERANCE / 2, 0.0), params)
    assert len(ok) == 4 and ok["converged"].all()
    given = ok[ok["network"].str.endswith("(given L)")]
    assert (given["floor"] == 0).all()
    assert given["value"].to_numpy() == pytest.approx(presets.CONVERGENCE_TOLERANCE / 2)
    assert ok[ok["network"].str.endswith("(no L)")]["floor"].isna().all()
    bad = claims.convergence(_conv_results(2 * presets.CONVERGENCE_TOLERANCE, 0.05), params)
    assert not bad["converged"].any()  # above tolerance; blind training KL still falling


def test_work_grows_with_size_and_orders_the_presets():
    base = dict(presets.PRESETS["quick"])
    w = presets.work(base)
    for key, bigger in (("steps", 3000), ("batch_size", 128), ("dim", 32), ("num_blocks", 2),
                        ("train_len", [2, 64]), ("lengths", base["lengths"] + [512]),
                        ("num_sequences", 1024), ("gap_sequences", 256), ("fit_steps", 100)):
        assert presets.work({**base, key: bigger}) > w, key
    works = [presets.work(dict(presets.PRESETS[p])) for p in ("smoke", "quick", "full")]
    assert works[0] < works[1] < works[2]
