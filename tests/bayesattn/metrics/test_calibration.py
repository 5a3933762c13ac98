"""Calibration metrics on a conjugate normal-mean toy whose posterior is known exactly.

Prior z ~ N(0, 1) per coordinate, tokens x_i | z ~ N(z, 1), L tokens: the posterior is
N(sum(x) / (L + 1), 1 / (L + 1)).
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesattn.metrics import (
    Estimate,
    UniformityResult,
    coverage,
    sbc_ranks,
    sbc_uniformity,
    standardized_mean_error,
    variance_ratio,
)


def _normal_mean_toy(seed, *, datasets=400, dim=2, length=5, draws=500, sd_scale=1.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(datasets, dim))  # truth from the prior
    x = z[:, None, :] + rng.normal(size=(datasets, length, dim))  # (B, L, d)
    mean = x.sum(1) / (length + 1)
    sd = np.sqrt(1.0 / (length + 1)) * sd_scale
    samples = mean + sd * rng.normal(size=(draws, datasets, dim))  # (S, B, d)
    return z, samples


def test_exact_posterior_covers_at_nominal_levels():
    z, samples = _normal_mean_toy(0)
    levels = (0.5, 0.8, 0.9, 0.95)
    frame = coverage(samples, z, levels=levels)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["level", "value", "ci_low", "ci_high", "se", "n", "metric"]
    assert (frame["metric"] == "coverage").all() and (frame["n"] == z.size).all()
    num_draws = samples.shape[0]
    for row in frame.itertuples():
        # binomial noise over n checks plus O(1/S) from interval ends set by S draws
        slack = 4 * np.sqrt(row.level * (1 - row.level) / row.n) + 2 / num_draws
        assert abs(row.value - row.level) < slack, row
        assert row.ci_low <= row.value <= row.ci_high
        assert row.se == pytest.approx(np.sqrt(row.value * (1 - row.value) / row.n))
    # Wilson interval at 99.9% contains the nominal level (up to the O(1/S) term)
    strict = coverage(samples, z, levels=levels, ci_level=0.999)
    assert ((strict["ci_low"] - 2 / num_draws <= strict["level"])
            & (strict["level"] <= strict["ci_high"] + 2 / num_draws)).all()


def test_overconfident_posterior_undercovers():
    z, samples = _normal_mean_toy(1, sd_scale=0.5)
    frame = coverage(samples, z, levels=(0.5, 0.9))
    assert (frame["ci_high"] < frame["level"]).all(), frame


def test_wilson_interval_hand_computed():
    # 8 of 10 covered at the 0.5 level: Wilson 95% interval (0.4902, 0.9433)
    draws = np.tile(np.linspace(-1, 1, 101)[:, None], (1, 10))  # (S=101, B=10)
    truth = np.array([0.0] * 8 + [5.0] * 2)
    row = coverage(draws, truth, levels=(0.5,)).iloc[0]
    assert row["value"] == pytest.approx(0.8)
    assert row["ci_low"] == pytest.approx(0.4901625, abs=1e-6)
    assert row["ci_high"] == pytest.approx(0.9433178, abs=1e-6)


def test_sbc_exact_is_uniform_and_overconfident_is_not():
    z, samples = _normal_mean_toy(2, datasets=1000, dim=1, draws=99)
    ranks = sbc_ranks(samples, z, seed=0)
    assert ranks.shape == z.shape and ranks.dtype == np.int64
    assert ranks.min() >= 0 and ranks.max() <= 99
    res = sbc_uniformity(ranks, 99)
    assert isinstance(res, UniformityResult) and isinstance(res.statistic, Estimate)
    assert res.p_value > 1e-3, res
    assert res.statistic.value < res.ecdf_band
    assert res.dof == res.bins - 1 and res.statistic.n == 1000
    z, bad = _normal_mean_toy(2, datasets=1000, dim=1, draws=99, sd_scale=0.5)
    res_bad = sbc_uniformity(sbc_ranks(bad, z), 99)
    assert res_bad.p_value < 1e-3, res_bad
    assert res_bad.statistic.value > res_bad.ecdf_band


def test_sbc_ranks_count_and_break_ties_uniformly():
    draws = np.array([[0.0, 1.0], [2.0, 1.0], [3.0, 1.0]])  # (S=3, B=2)
    truth = np.array([2.5, 5.0])
    np.testing.assert_array_equal(sbc_ranks(draws, truth), [2, 3])
    # all draws tie with the truth: ranks uniform on 0..S
    ranks = sbc_ranks(np.zeros((4, 5000)), np.zeros(5000), seed=3)
    counts = np.bincount(ranks, minlength=5)
    assert counts.size == 5
    expected = 1000
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected * 0.8)), counts
    assert sbc_uniformity(ranks, 4).p_value > 1e-3


def test_sbc_uniformity_uneven_bins_and_validation():
    ranks = np.arange(11).repeat(30)  # perfectly uniform on 0..10
    res = sbc_uniformity(ranks, 10, bins=4)  # 11 values into 4 bins of sizes 3, 3, 3, 2
    assert res.chi2 == pytest.approx(0.0, abs=1e-12) and res.p_value == pytest.approx(1.0)
    assert res.statistic.value == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"integers in 0..10, got values in \[0, 11\]"):
        sbc_uniformity(np.array([0, 11]), 10)
    with pytest.raises(ValueError, match="bins"):
        sbc_uniformity(ranks, 10, bins=12)
    with pytest.raises(ValueError, match="num_samples"):
        sbc_uniformity(ranks, 0)


def test_standardized_mean_error():
    rng = np.random.default_rng(4)
    mean, sd = rng.normal(size=(20, 3)), rng.uniform(0.5, 2.0, size=(20, 3))
    est = standardized_mean_error(mean, mean, sd)
    assert isinstance(est, Estimate) and est.value == 0.0 and est.n == 20
    q = mean + np.array([1.0, 2.0, 2.0]) * sd  # errors of 1, 2, 2 sds
    assert standardized_mean_error(q, mean, sd).value == pytest.approx(5 / 3)
    assert standardized_mean_error(q, mean, sd, reduce="rms").value == pytest.approx(np.sqrt(3))
    assert standardized_mean_error(q, mean, sd, reduce="max").value == pytest.approx(2.0)
    with pytest.raises(ValueError, match="reduce"):
        standardized_mean_error(q, mean, sd, reduce="median")
    with pytest.raises(ValueError, match="positive"):
        standardized_mean_error(q, mean, -sd)
    with pytest.raises(ValueError, match=r"same shape.*\(20, 3\).*\(20, 2\)"):
        standardized_mean_error(q, mean, sd[:, :2])


def test_variance_ratio():
    rng = np.random.default_rng(5)
    var = rng.uniform(0.1, 3.0, size=(15, 2, 2))
    assert variance_ratio(var, var).value == pytest.approx(1.0)
    doubled_sd = variance_ratio(4.0 * var, var)
    assert doubled_sd.value == pytest.approx(4.0) and doubled_sd.n == 15
    assert variance_ratio(4.0 * var, var, log=True).value == pytest.approx(np.log(4.0))
    # geometric mean over coordinates: ratios 4 and 1/4 average to 1
    mixed = var * np.array([4.0, 0.25])
    assert variance_ratio(mixed, var).value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive variances"):
        variance_ratio(np.zeros_like(var), var)


def test_coverage_validation():
    samples, truth = np.zeros((10, 4, 2)), np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"truth: expected shape \(4, 2\).*got \(4, 3\)"):
        coverage(samples, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="levels"):
        coverage(samples, truth, levels=(0.5, 1.0))
    with pytest.raises(ValueError, match="S >= 2"):
        coverage(samples[:1], truth)
    bad = truth.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        coverage(samples, bad)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(2, 10))
def test_moment_metrics_invariant_to_dataset_order(seed, batch):
    rng = np.random.default_rng(seed)
    q, r, s = rng.normal(size=(3, batch, 2))
    s, v = np.abs(s) + 0.1, np.abs(q) + 0.1
    perm = rng.permutation(batch)
    a = standardized_mean_error(q, r, s).value
    assert standardized_mean_error(q[perm], r[perm], s[perm]).value == pytest.approx(a)
    b = variance_ratio(v, s).value
    assert variance_ratio(v[perm], s[perm]).value == pytest.approx(b)
