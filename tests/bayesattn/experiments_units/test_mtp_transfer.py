"""Unit tests of the helpers of the ``mtp-transfer`` experiment (P9, P10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayesattn import models
from bayesattn.experiments import mtp_transfer as mt
from bayesattn.gaps import condition_number


def test_closeness_scales_kappa_exactly():
    base = np.asarray(models.get("unigram-mixture", K=3, V=20).params["word_probs"])
    channel = np.full((3, 3), 0.1 / 3) + 0.9 * np.eye(3)
    k0 = condition_number(base, channel)
    for c in (0.0, 0.5, 0.9):
        a = mt.closeness_word_probs(base, c)
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-12)
        assert (a >= 0).all()
        assert condition_number(a, channel) == pytest.approx(k0 / (1 - c), rel=1e-9)
    with pytest.raises(ValueError, match="closeness"):
        mt.closeness_word_probs(base, 1.0)
    # the experiment's model family uses the same construction
    model = mt._p9_model(0.75)
    np.testing.assert_allclose(model.params["word_probs"], mt.closeness_word_probs(base, 0.75))


def test_ratio_draws_rules_and_interval():
    point, draws = mt.ratio_draws([2.0, 1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                  [0.0, 0.0, 0.0], num_resamples=10, seed=0)
    np.testing.assert_array_equal(point, [2.0, np.inf, 0.0])  # den <= 0: inf if num > 0
    assert draws.shape == (10, 3) and (draws == point).all()
    # a wide denominator gives an infinite upper end, a tight one a finite interval
    _, d = mt.ratio_draws([1.0, 1.0], [0.01, 0.01], [0.1, 1.0], [0.2, 0.01],
                          num_resamples=2000, seed=1)
    assert mt.interval(d[:, 0])[1] == math.inf
    lo, hi = mt.interval(d[:, 1])
    assert 0.95 < lo < 1.0 < hi < 1.05
    # NaN draws count against both ends
    assert mt.interval(np.r_[np.ones(90), np.full(10, np.nan)]) == (-math.inf, math.inf)
    assert mt.interval(np.arange(101.0)) == (2.0, 98.0)


def test_rank_correlation_and_exponent():
    k = np.array([1.0, 2.0, 4.0, 8.0])
    assert mt.rank_correlation(k, k**2) == pytest.approx(1.0)
    assert mt.rank_correlation(k, [4, 3, 2, np.inf]) == pytest.approx(0.2)
    assert math.isnan(mt.rank_correlation(k, [1, 1, 1, 1]))
    assert mt.loglog_exponent(k, 3 * k**1.5) == pytest.approx(1.5)
    assert math.isnan(mt.loglog_exponent(k, [1, 2, 0, 4]))
    assert math.isnan(mt.loglog_exponent(k, [1, 2, np.inf, 4]))


def test_transfer_ratio_summary_recovers_a_quadratic_ratio():
    kappa = np.array([2.0, 4.0, 8.0, 16.0])
    per = pd.DataFrame({"closeness": [0.0, 0.5, 0.75, 0.875], "kappa2": kappa,
                        "pre": 0.01, "pre_se": 1e-5, "down": 0.01 * 0.01 * kappa**2,
                        "down_se": 1e-7, "n": 100})
    out = mt.transfer_ratio_summary(per, num_resamples=200, seed=0)
    ratio = out[out.metric == "transfer_ratio"]
    np.testing.assert_allclose(ratio["value"], 0.01 * kappa**2, rtol=1e-9)
    over = out[out.metric == "ratio_over_kappa"]
    np.testing.assert_allclose(over["value"], 0.01 * kappa, rtol=1e-9)
    expo = out[out.metric == "exponent_ratio_kappa"].iloc[0]
    assert expo["value"] == pytest.approx(2.0) and expo["ci_low"] < 2 < expo["ci_high"]
    rho = out[out.metric == "rank_corr_ratio_kappa"].iloc[0]
    assert rho["value"] == pytest.approx(1.0) and rho["ci_low"] == pytest.approx(1.0)
    verdict = mt.p9_verdict(out.assign(claim="P9"))
    assert verdict.verdict == "supported"  # ratio / kappa <= 0.16 < C and rising
    too_big = out.copy()
    sel = too_big.metric == "ratio_over_kappa"
    too_big.loc[sel, ["value", "ci_low", "ci_high"]] *= 100
    assert mt.p9_verdict(too_big).verdict == "not supported"


def _p10_frames(coarse, full, ns=(100, 400, 1600, 6400), se=1e-4):
    rows = []
    for pretext, fn in (("coarse", coarse), ("full", full)):
        for n in ns:
            v = fn(n)
            rows.append({"pretext": pretext, "readout": "pretext predictive", "N": n,
                         "metric": "downstream_excess_risk", "value": v,
                         "ci_low": v - 2 * se, "ci_high": v + 2 * se, "se": se, "n": 100})
    blind = pd.DataFrame(rows)
    out = []
    for pretext, g in blind.groupby("pretext"):
        for rng, data in (("all", g), ("tail", g.tail(3))):
            est, log_y = mt.excess_slope(data, num_resamples=200, seed=0)
            out.append({"pretext": pretext, "readout": "pretext predictive", "range": rng,
                        "N_low": int(data.N.min()), "N_high": int(data.N.max()),
                        "log_y": log_y, "metric": "slope_excess_vs_log_N", **est.row()})
    return blind, pd.DataFrame(out)


def test_p10_verdict_floor_and_decay():
    blind, summary = _p10_frames(lambda n: 0.3, lambda n: 2.0 / n**0.5)
    v = mt.p10_verdict(blind, summary, "pretext predictive")
    assert v.verdict == "supported"
    assert v.numbers["full_slope_value"] == pytest.approx(-0.5, abs=1e-6)
    blind, summary = _p10_frames(lambda n: 3.0 / n**0.5, lambda n: 2.0 / n**0.5)
    assert mt.p10_verdict(blind, summary, "pretext predictive").verdict == "not supported"
