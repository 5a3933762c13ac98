"""Unit tests of the denoising-1d experiment's filters, tuning and verdict (E1)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayesattn.experiments.denoising_1d import EXPERIMENT, claims, filters, presets, stages


def _y(n=3, L=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, L))


def test_filters_are_row_stochastic_and_limits():
    y = _y()
    pe = filters.positional_encoding(16, 8, 10000.0)
    assert pe.shape == (16, 8)
    for name in presets.FILTERS:
        th = {"sigma": 2.0, "h": 0.5, "beta": 2.0, "omega": 1.0}
        A = filters.weights(name, y, {k: th[k] for k in presets.FILTER_PARAMS[name]}, pe)
        assert A.shape == (3, 16, 16) and (A >= 0).all()
        np.testing.assert_allclose(A.sum(-1), 1.0)
    # infinite range bandwidth: bilateral = spatial; infinite spatial: bilateral = range
    sp = filters.apply_filter("spatial", y, {"sigma": 2.0})
    np.testing.assert_allclose(
        filters.apply_filter("bilateral", y, {"sigma": 2.0, "h": math.inf}), sp)
    rg = filters.apply_filter("range", y, {"h": 0.7})
    np.testing.assert_allclose(
        filters.apply_filter("bilateral", y, {"sigma": math.inf, "h": 0.7}), rg)
    # both infinite: the global mean; tiny bandwidth: the identity
    glob = filters.apply_filter("spatial", y, {"sigma": math.inf})
    np.testing.assert_allclose(glob, np.repeat(y.mean(1, keepdims=True), 16, 1))
    np.testing.assert_allclose(filters.apply_filter("spatial", y, {"sigma": 0.05}), y, atol=1e-12)
    # twicing is (2A - A^2) y
    th = {"sigma": 2.0, "h": 0.5}
    A = filters.weights("bilateral", y, th)
    want = np.einsum("nij,nj->ni", 2 * A - A @ A, y)
    np.testing.assert_allclose(filters.apply_filter("bilateral+twicing", y, th), want)
    with pytest.raises(ValueError, match="unknown filter"):
        filters.weights("nope", y, {})
    with pytest.raises(ValueError, match="positional encoding"):
        filters.weights("sa+pe", y, {"beta": 1.0, "omega": 1.0})


def test_sa_pe_logits_are_entangled():
    y = _y(1, 8)
    pe = filters.positional_encoding(8, 8, 10000.0)
    lg = filters.sa_pe_logits(y, 1.0, 1.0, pe)[0]
    c = np.full(8, 1 / math.sqrt(8))
    cp = pe @ c
    want = (np.outer(y[0], y[0]) + np.outer(y[0], cp) + np.outer(cp, y[0]) + pe @ pe.T)
    np.testing.assert_allclose(lg, want / math.sqrt(8), atol=1e-12)


def test_grid_and_infinite_bandwidth():
    p = presets.PRESETS["smoke"]
    g = filters.grid("bilateral", p)
    assert len(g) == len(p["spatial_grid"]) * len(p["range_grid"])
    assert any(math.isinf(t["h"]) for t in g)
    assert len(filters.grid("sa+pe", p)) == len(p["sa_beta_grid"]) * len(p["sa_omega_grid"])


def test_simulated_posterior_means():
    cp = presets.family_model("change-point", {"K": 3, "stay": 0.9, "noise_scale": 0.5})
    u, y, pm, _, _ = stages._simulate("change-point", cp, 4, 12, seed=0)
    assert u.shape == y.shape == pm.shape == (4, 12)
    gp = presets.family_model("gp-signal", {"kernel": "rbf", "lengthscale": 3.0,
                                            "noise_scale": 0.5})
    u, y, pm, _, _ = stages._simulate("gp-signal", gp, 3, 10, seed=0)
    np.testing.assert_allclose(pm, y @ gp.smoother(10).numpy().T, atol=1e-8)
    assert presets.dynamic_range("change-point", cp) == 4.0
    assert presets.dynamic_range("gp-signal", gp) == 4.0


def _table(diff_lo, diff_hi, lowest_bilateral=True):
    rows = []
    for family in presets.FAMILIES:
        for f in presets.FILTERS:
            v = 0.1 if f == "bilateral" and lowest_bilateral else 0.2
            rows.append({"stage": "evaluate", "family": family, "filter": f,
                         "metric": "mse_clean", "value": v, "ci_low": v - 0.01,
                         "ci_high": v + 0.01, "se": 0.005, "n": 10})
        for b in presets.BILATERAL:
            for f in presets.OTHERS:
                rows.append({"stage": "evaluate", "family": family, "filter": b, "against": f,
                             "metric": "mse_clean_diff", "value": (diff_lo + diff_hi) / 2,
                             "ci_low": diff_lo, "ci_high": diff_hi, "se": 0.01, "n": 10})
    return pd.DataFrame(rows)


def test_verdict_directions():
    params = {"L": 16, "test_sequences": 10, "tune_sequences": 5}
    assert claims.verdicts(_table(-0.2, -0.05), params)[0].verdict == "supported"
    assert claims.verdicts(_table(0.05, 0.2), params)[0].verdict == "not supported"
    assert claims.verdicts(_table(-0.1, 0.05), params)[0].verdict == "inconclusive"
    assert claims.verdicts(_table(-0.2, -0.05, False), params)[0].verdict == "inconclusive"


def test_presets_registered():
    exp = EXPERIMENT
    assert exp.claims == ("E1",) and set(exp.presets) >= {"smoke", "quick", "full"}


def test_work_grows_with_the_preset_size():
    smoke, quick, full = (presets.PRESETS[k] for k in ("smoke", "quick", "full"))
    assert 0 < presets.work(smoke) < presets.work(quick) < presets.work(full)
    base = dict(quick)
    for key, bigger in (("L", 128), ("test_sequences", 512), ("tune_sequences", 128),
                        ("num_resamples", 2000), ("spatial_grid", [0.1] + base["spatial_grid"]),
                        ("sa_beta_grid", base["sa_beta_grid"] + [128.0]),
                        ("posterior_draws", 800)):
        assert presets.work({**base, key: bigger}) > presets.work(base), key
    assert EXPERIMENT.work is presets.work
