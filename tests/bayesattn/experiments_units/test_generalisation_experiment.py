"""Unit tests of the helpers of the ``generalisation`` experiment (P7, P8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesattn.experiments.generalisation import claims, presets, stages


def _rows(values, ses, **keys):
    return pd.DataFrame([{**keys, "replicate": i, "value": v, "ci_low": v - 0.1,
                          "ci_high": v + 0.1, "se": s, "n": 10}
                         for i, (v, s) in enumerate(zip(values, ses, strict=True))])


def _summary(fn, sizes=(64, 256, 1024), lengths=(8, 32, 128), se=1e-4):
    return pd.DataFrame([{"metric": "gap_kl", "N": n, "L": v, "value": fn(n, v), "se": se}
                         for n in sizes for v in lengths])


def test_line_slopes_recovers_rates():
    summary = _summary(lambda n, v: 0.5 * n ** -0.5 * v ** 0.0)
    by_n = stages.line_slopes(summary, "gap_kl", x="L", by="N", num_resamples=200, seed=0)
    by_l = stages.line_slopes(summary, "gap_kl", x="N", by="L", num_resamples=200, seed=0)
    assert list(by_n["N"]) == [64, 256, 1024] and by_n["estimable"].all()
    assert np.allclose(by_n["value"], 0.0, atol=1e-9)
    assert np.allclose(by_l["value"], -0.5, atol=1e-9)
    assert (by_l["ci_low"] < -0.5).all() and (by_l["ci_high"] > -0.5).all()


def test_line_slopes_fits_only_resolved_points():
    # at N = 1024 the gap is <= 0 or within 2 se of 0: dropped from the N-slope fit
    summary = _summary(lambda n, v: {64: 8e-3, 256: 4e-3, 1024: -1e-4}[n], se=1e-3)
    by_l = stages.line_slopes(summary, "gap_kl", x="N", by="L", num_resamples=50, seed=0)
    assert not by_l["estimable"].any()  # only 2 resolved points per L (< 3)
    assert list(by_l["n"]) == [2, 2, 2] and list(by_l["points"]) == [3, 3, 3]
    by_l2 = stages.line_slopes(summary, "gap_kl", x="N", by="L", num_resamples=50, seed=0,
                               min_points=2)
    assert by_l2["estimable"].all()
    assert np.allclose(by_l2["value"], np.log(0.5) / np.log(4))
    assert (by_l2["x_low"] == 64).all() and (by_l2["x_high"] == 256).all()
    by_n = stages.line_slopes(summary, "gap_kl", x="L", by="N", num_resamples=50, seed=0)
    assert list(by_n["estimable"]) == [True, True, False]
    # a point just below 2 se is unresolved, just above is resolved
    edge = _summary(lambda n, v: 1.9e-3 if v == 8 else 2.1e-3, se=1e-3)
    out = stages.line_slopes(edge, "gap_kl", x="L", by="N", num_resamples=50, seed=0)
    assert list(out["n"]) == [2, 2, 2]


def _slopes(cis, estimable=None):
    estimable = estimable or [True] * len(cis)
    return pd.DataFrame([{"value": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "estimable": e}
                         for (lo, hi), e in zip(cis, estimable, strict=True)])


@pytest.mark.parametrize(("cis", "estimable", "expected"), [
    ([(-0.05, 0.05), (-0.08, 0.02)], None, "supported"),
    ([(-0.05, 0.05), (-0.3, 0.02)], None, "inconclusive"),           # one CI too wide
    ([(0.2, 0.4), (0.15, 0.3), (-0.05, 0.05)], None, "not supported"),  # rises at 2 of 3
    ([(0.2, 0.4), (-0.3, -0.2), (-0.05, 0.05)], None, "inconclusive"),  # mixed directions
    ([(-0.05, 0.05), (np.nan, np.nan)], [True, False], "inconclusive"),  # not all estimable
])
def test_band_verdict_two_sided(cis, estimable, expected):
    verdict, counts = claims.band_verdict(_slopes(cis, estimable), low=-0.1, high=0.1)
    assert verdict == expected
    assert counts["lines"] == len(cis)


def test_band_verdict_one_sided_for_rate_in_n():
    ok = _slopes([(-0.9, -0.4), (-0.7, -0.3)])
    assert claims.band_verdict(ok, low=-np.inf, high=-0.25)[0] == "supported"
    slow = _slopes([(-0.2, 0.1), (-0.1, 0.0), (-0.9, -0.4)])
    assert claims.band_verdict(slow, low=-np.inf, high=-0.25)[0] == "not supported"
    mixed = _slopes([(-0.9, -0.1), (-0.9, -0.4)])
    assert claims.band_verdict(mixed, low=-np.inf, high=-0.25)[0] == "inconclusive"


def test_verdicts_and_headline_from_synthetic_results():
    params = {**presets.PRESETS["smoke"], "train_sizes": [64, 256, 1024], "lengths": [8, 32, 128],
              "objectives": ["kl"]}
    summary = _summary(lambda n, v: 0.5 * n ** -0.6).assign(
        stage="summary", objective="kl", ci_low=lambda d: d["value"] * 0.9,
        ci_high=lambda d: d["value"] * 1.1)
    slopes = []
    for x, by in (("L", "N"), ("N", "L")):
        s = stages.line_slopes(summary, "gap_kl", x=x, by=by, num_resamples=200, seed=0)
        slopes.append(s.assign(stage="slopes", objective="kl", metric=f"slope_in_{x}",
                               loss="gap_kl"))
    results = pd.concat([summary, *slopes], ignore_index=True)
    out = {v.claim: v for v in claims.verdicts(results, params)}
    assert out["P7"].verdict == "supported" and out["P8"].verdict == "supported"
    assert out["P8"].numbers["median_slope"] == pytest.approx(-0.6)
    table = claims.headline(results)
    assert list(table.columns) == ["objective", "gap", "N", "L=8", "L=32", "L=128"]
    assert list(table["N"]) == [64, 256, 1024]


def test_verdicts_report_secondary_arm_with_the_same_criterion():
    params = {**presets.PRESETS["smoke"], "train_sizes": [64, 256, 1024], "lengths": [8, 32, 128],
              "objectives": ["npe", "kl"]}
    frames = []
    for objective, fn in (("npe", lambda n, v: 2.0 * n ** -0.5 * v ** 0.5),
                          ("kl", lambda n, v: 0.1 * n ** -1.0)):
        summary = _summary(fn, se=1e-8)
        for x, by in (("L", "N"), ("N", "L")):
            s = stages.line_slopes(summary, "gap_kl", x=x, by=by, num_resamples=200, seed=0)
            frames.append(s.assign(stage="slopes", objective=objective,
                                   metric=f"slope_in_{x}"))
    results = pd.concat(frames, ignore_index=True)
    out = {v.claim: v for v in claims.verdicts(results, params)}
    assert out["P7"].verdict == "not supported"  # primary arm (npe) rises like L^0.5
    assert out["P7"].numbers["above"] == 3
    assert "objective kl" in out["P7"].measured and "'supported'" in out["P7"].measured
    assert out["P8"].verdict == "supported"
    assert out["P8"].numbers["median_slope"] == pytest.approx(-0.5)


def test_gap_grid_is_generalisation_gap_plus_plateaus():
    from bayesattn.gaps import generalisation_gap

    model = presets.model()
    kw = {"train_sizes": [8, 16], "lengths": [4], "steps": 20, "batch_size": 8,
          "encoder_options": {"dim": 8, "num_heads": 2, "num_blocks": 1}, "num_test": 16,
          "seed": 3, "device": "cpu", "lr": 3e-3, "num_resamples": 20}
    ours, nets = stages.gap_grid(model, objective="npe", **kw)
    theirs = generalisation_gap(model, objective="npe", encoder="set-transformer", **kw)
    same = ours[ours["metric"] != "train_loss_plateau"].reset_index(drop=True)
    # train(threads="auto") may pick a different thread count for each call when the
    # machine is busy: sums then differ in the last digits (~1e-8), nothing more
    pd.testing.assert_frame_equal(same[list(theirs.columns)], theirs, check_exact=False,
                                  rtol=1e-5)
    plateau = ours[ours["metric"] == "train_loss_plateau"]
    assert len(plateau) == 2 and set(nets) == {(8, 4), (16, 4)}
    assert plateau[["value", "plateau_drop", "plateau_se"]].notna().all().all()


def _plateau_results(drops, ses, value=1.0):
    rows = [{"stage": "gaps", "objective": "npe", "replicate": 0, "N": 64 * (i + 1), "L": 8,
             "metric": "train_loss_plateau", "value": value, "se": s, "n": 300,
             "plateau_drop": d, "plateau_se": s, "plateau_relative_drop": d / (value + d)}
            for i, (d, s) in enumerate(zip(drops, ses, strict=True))]
    return pd.DataFrame(rows)


def test_convergence_by_training_loss_plateau():
    # still falling by 10% (20 se): not converged; flat within 3 se: converged;
    # a drop of 0.5% that is statistically resolved: converged (below 1% of the loss)
    res = _plateau_results([0.1, 0.001, 0.005], [0.005, 0.001, 0.0001])
    conv = claims.convergence(res, presets.PRESETS["quick"])
    assert list(conv["converged"]) == [False, True, True]
    assert conv["floor"].isna().all() and conv["excess"].isna().all()
    assert conv["network"].iloc[0] == "npe N=64 L=8"
    assert "plateau" in conv["floor_basis"].iloc[0]


def test_work_grows_with_size():
    w = {k: presets.work(v) for k, v in presets.PRESETS.items()}
    assert w["full"] > w["quick"] > w["smoke"] > 0
    base = presets.PRESETS["quick"]
    for key, bigger in (("steps", 600), ("batch_size", 128), ("dim", 32), ("num_blocks", 2),
                        ("replicates", 2), ("train_sizes", [*base["train_sizes"], 4096]),
                        ("lengths", [*base["lengths"], 128]), ("num_test", 4096),
                        ("objectives", ["npe", "kl", "npe"])):
        assert presets.work({**base, key: bigger}) > w["quick"], key
