"""Unit tests of the helpers of the ``mtp-transfer`` experiment (P9, P10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayesattn import models
from bayesattn.experiments.mtp_transfer import claims, presets, stages
from bayesattn.gaps import condition_number


def test_closeness_scales_kappa_exactly():
    base = np.asarray(models.get("unigram-mixture", K=3, V=20).params["word_probs"])
    channel = np.full((3, 3), 0.1 / 3) + 0.9 * np.eye(3)
    k0 = condition_number(base, channel)
    for c in (0.0, 0.5, 0.9):
        a = presets.closeness_word_probs(base, c)
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-12)
        assert (a >= 0).all()
        assert condition_number(a, channel) == pytest.approx(k0 / (1 - c), rel=1e-9)
    with pytest.raises(ValueError, match="closeness"):
        presets.closeness_word_probs(base, 1.0)
    # the experiment's model family uses the same construction
    model = presets.p9_model(0.75)
    np.testing.assert_allclose(model.params["word_probs"], presets.closeness_word_probs(base, 0.75))


def test_ratio_draws_rules_and_interval():
    point, draws = stages.ratio_draws([2.0, 1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                  [0.0, 0.0, 0.0], num_resamples=10, seed=0)
    np.testing.assert_array_equal(point, [2.0, np.inf, 0.0])  # den <= 0: inf if num > 0
    assert draws.shape == (10, 3) and (draws == point).all()
    # a wide denominator gives an infinite upper end, a tight one a finite interval
    _, d = stages.ratio_draws([1.0, 1.0], [0.01, 0.01], [0.1, 1.0], [0.2, 0.01],
                          num_resamples=2000, seed=1)
    assert stages.interval(d[:, 0])[1] == math.inf
    lo, hi = stages.interval(d[:, 1])
    assert 0.95 < lo < 1.0 < hi < 1.05
    # NaN draws count against both ends
    assert stages.interval(np.r_[np.ones(90), np.full(10, np.nan)]) == (-math.inf, math.inf)
    assert stages.interval(np.arange(101.0)) == (2.0, 98.0)


def test_rank_correlation_and_exponent():
    k = np.array([1.0, 2.0, 4.0, 8.0])
    assert stages.rank_correlation(k, k**2) == pytest.approx(1.0)
    assert stages.rank_correlation(k, [4, 3, 2, np.inf]) == pytest.approx(0.2)
    assert math.isnan(stages.rank_correlation(k, [1, 1, 1, 1]))
    assert stages.loglog_exponent(k, 3 * k**1.5) == pytest.approx(1.5)
    assert math.isnan(stages.loglog_exponent(k, [1, 2, 0, 4]))
    assert math.isnan(stages.loglog_exponent(k, [1, 2, np.inf, 4]))


def test_transfer_ratio_summary_recovers_a_quadratic_ratio():
    kappa = np.array([2.0, 4.0, 8.0, 16.0])
    per = pd.DataFrame({"closeness": [0.0, 0.5, 0.75, 0.875], "kappa2": kappa,
                        "pre": 0.01, "pre_se": 1e-5, "down": 0.01 * 0.01 * kappa**2,
                        "down_se": 1e-7, "n": 100})
    out = stages.transfer_ratio_summary(per, num_resamples=200, seed=0)
    ratio = out[out.metric == "transfer_ratio"]
    np.testing.assert_allclose(ratio["value"], 0.01 * kappa**2, rtol=1e-9)
    over = out[out.metric == "ratio_over_kappa"]
    np.testing.assert_allclose(over["value"], 0.01 * kappa, rtol=1e-9)
    expo = out[out.metric == "exponent_ratio_kappa"].iloc[0]
    assert expo["value"] == pytest.approx(2.0) and expo["ci_low"] < 2 < expo["ci_high"]
    rho = out[out.metric == "rank_corr_ratio_kappa"].iloc[0]
    assert rho["value"] == pytest.approx(1.0) and rho["ci_low"] == pytest.approx(1.0)
    verdict = claims.p9_verdict(out.assign(claim="P9"))
    assert verdict.verdict == "supported"  # ratio / kappa <= 0.16 < C and rising
    slack = out[out.metric == "bound_slack"]
    np.testing.assert_allclose(slack["value"], 0.01 * 0.01 * kappa**2 - 0.01 * kappa)
    too_big = stages.transfer_ratio_summary(per.assign(down=per["down"] * 100),
                                            num_resamples=200, seed=0)
    assert claims.p9_verdict(too_big).verdict == "not supported"
    # without slack rows (older summaries) the bound is read from ratio / kappa
    old = out[~out.metric.isin(["bound_slack", "pretext_excess", "downstream_net_excess"])]
    assert claims.p9_verdict(old).verdict == "supported"
    old = old.copy()
    sel = old.metric == "ratio_over_kappa"
    old.loc[sel, ["value", "ci_low", "ci_high"]] *= 100
    assert claims.p9_verdict(old).verdict == "not supported"


def _zero_pretext_level(down_last, down_se_last=0.002):
    """Four closeness levels; at the last the pretext excess is 0 within its CI."""
    kappa = np.array([4.0, 8.0, 16.0, 38.0])
    return pd.DataFrame({"closeness": [0.0, 0.5, 0.75, 0.9], "kappa2": kappa,
                         "pre": [0.004, 0.004, 0.003, -0.0001],
                         "pre_se": [0.0005, 0.0005, 0.0005, 0.0003],
                         "down": [0.004, 0.008, 0.01, down_last],
                         "down_se": [0.002, 0.002, 0.002, down_se_last],
                         "floor": 0.002, "floor_se": 0.001, "n": 2000})


def test_p9_verdict_zero_pretext_denominator():
    # the floor is subtracted from the downstream excess, its se added in quadrature
    out = stages.transfer_ratio_summary(_zero_pretext_level(0.003), num_resamples=500, seed=0)
    net = out[out.metric == "downstream_net_excess"].sort_values("kappa2")
    np.testing.assert_allclose(net["value"], [0.002, 0.006, 0.008, 0.001])
    np.testing.assert_allclose(net["se"], np.hypot(0.002, 0.001))
    # pretext at its Bayes risk and downstream at its floor: the ratio is undefined, the
    # bound is not refuted -> inconclusive (not "not supported")
    v = claims.p9_verdict(out)
    assert v.verdict == "inconclusive"
    assert v.numbers["levels_pretext_at_zero"] == 1
    assert "Bayes risk" in v.measured and "(it is not)" in v.measured
    # the same zero pretext excess with a clearly positive downstream excess refutes it
    out = stages.transfer_ratio_summary(_zero_pretext_level(0.08), num_resamples=500, seed=0)
    v = claims.p9_verdict(out)
    assert v.verdict == "not supported" and v.numbers["max_slack_ci_low"] > 0
    assert "violated" in v.measured


def _closeness_frame(pre, down, floor, se=0.0005):
    rows = []
    for c, k, p_, d, f in zip([0.0, 0.9], [3.8, 38.3], pre, down, floor, strict=True):
        for metric, v in (("kappa2", k), ("pretext_excess_risk", p_),
                          ("downstream_excess_risk", d), ("downstream_floor", f)):
            rows.append({"stage": "closeness", "closeness": c, "replicate": 0,
                         "metric": metric, "value": v, "ci_low": v - 2 * se,
                         "ci_high": v + 2 * se, "se": se, "n": 2000, "pretext": "full",
                         "N": np.nan})
    for pretext, v in (("coarse", 0.0001), ("full", 0.02)):
        for n, extra in ((1024, 0.1), (65536, 0.0)):
            rows.append({"stage": "blindspot", "closeness": np.nan, "replicate": 0,
                         "metric": "pretext_excess_risk", "value": v + extra, "ci_low": v,
                         "ci_high": v, "se": se, "n": 2000, "pretext": pretext, "N": n})
    return pd.DataFrame(rows)


def test_convergence_rows_against_floors():
    results = _closeness_frame(pre=[0.001, 0.01], down=[0.02, 0.05], floor=[0.015, 0.01])
    conv = claims.convergence(results, presets.PRESETS["quick"])
    assert len(conv) == 6  # 2 x (encoder, probe) for P9 + the 2 P10 encoders at N max
    by = conv.set_index("network")["converged"]
    assert by["P9 c=0 (kappa2=3.8): MTP encoder"]  # 0.001 <= PRETEXT_TOL
    assert not by["P9 c=0.9 (kappa2=38.3): MTP encoder"]  # 0.01 > PRETEXT_TOL
    assert by["P9 c=0 (kappa2=3.8): linear probe on it"]  # 0.005 over its floor
    assert not by["P9 c=0.9 (kappa2=38.3): linear probe on it"]  # 0.04 over its floor
    row = conv.set_index("network").loc["P9 c=0.9 (kappa2=38.3): linear probe on it"]
    assert row["floor"] == pytest.approx(0.01) and row["excess"] == pytest.approx(0.04)
    assert by["P10 coarse pretext, N=65536"] and not by["P10 full pretext, N=65536"]


def test_work_grows_with_size():
    w = {k: presets.work(v) for k, v in presets.PRESETS.items()}
    assert w["full"] > w["quick"] > w["smoke"] > 0
    base = presets.PRESETS["quick"]
    for key, bigger in (("p9_steps", 2000), ("batch_size", 128), ("dim", 64),
                        ("replicates", 2), ("num_train_probe", 16000),
                        ("steps_grid", [4, 16, 64, 256, 1024, 4096]),
                        ("closeness", [0.0, 0.25, 0.5, 0.75, 0.9])):
        assert presets.work({**base, key: bigger}) > w["quick"], key


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
            est, log_y = stages.excess_slope(data, num_resamples=200, seed=0)
            out.append({"pretext": pretext, "readout": "pretext predictive", "range": rng,
                        "N_low": int(data.N.min()), "N_high": int(data.N.max()),
                        "log_y": log_y, "metric": "slope_excess_vs_log_N", **est.row()})
    return blind, pd.DataFrame(out)


def test_p10_verdict_floor_and_decay():
    blind, summary = _p10_frames(lambda n: 0.3, lambda n: 2.0 / n**0.5)
    v = claims.p10_verdict(blind, summary, "pretext predictive")
    assert v.verdict == "supported"
    assert v.numbers["full_slope_value"] == pytest.approx(-0.5, abs=1e-6)
    blind, summary = _p10_frames(lambda n: 3.0 / n**0.5, lambda n: 2.0 / n**0.5)
    assert claims.p10_verdict(blind, summary, "pretext predictive").verdict == "not supported"
