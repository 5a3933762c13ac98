"""Unit tests of the oversmoothing-boosting experiment's helpers (E3, E4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesattn.experiments.oversmoothing_boosting import (
    EXPERIMENT,
    claims,
    maths,
    presets,
    stages,
)


def _tokens(n=3, L=12, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, L, d))


def test_attention_matrix_is_row_stochastic_and_symmetric_kernel():
    x = _tokens()
    A = maths.attention_matrix(x, 1.5)
    assert A.shape == (3, 12, 12) and (A > 0).all()
    np.testing.assert_allclose(A.sum(-1), 1.0)
    Ap = maths.attention_matrix(x, 1.5, spatial_bandwidth=2.0)
    assert Ap[0, 0, -1] < A[0, 0, -1]  # the spatial term down-weights far tokens


def test_layers_and_collapse_metrics():
    x0 = _tokens()
    A = maths.attention_matrix(x0, 3.0)
    x = x0.copy()
    for _ in range(200):
        x = maths.layer("plain", A, x, x0, 0.2)
    assert maths.mean_pairwise_cosine(x).min() > 0.999
    np.testing.assert_allclose(maths.effective_rank(x), 1.0, atol=1e-3)
    np.testing.assert_allclose(maths.layer("twicing", A, x0, x0, 0.2), (2 * A - A @ A) @ x0)
    np.testing.assert_allclose(maths.layer("residual", A, x0, x0, 0.2), 0.5 * (x0 + A @ x0))
    # boosting with lambda > 0 has a non-collapsed fixed point
    xb = x0.copy()
    for _ in range(200):
        xb = maths.layer("boosting", A, xb, x0, 0.2)
    assert maths.effective_rank(xb).min() > 1.5
    with pytest.raises(ValueError, match="unknown variant"):
        maths.layer("nope", A, x0, x0, 0.2)
    # effective rank of an isotropic (orthonormal-column) matrix is d
    q = np.linalg.qr(np.random.default_rng(1).normal(size=(10, 4)))[0]
    np.testing.assert_allclose(maths.effective_rank(q), 4.0)


def test_smoother_matches_model_and_shrinkage_of_exact_w():
    model = presets._model("rbf", 3.0, 0.5)
    S = model.covariance(16)
    W = maths.smoother_matrix(S, 0.5)
    np.testing.assert_allclose(W, model.smoother(16).numpy(), atol=1e-10)
    r = maths.shrinkage(W, S, 0.5)
    assert r["beta"] < r["alpha"] and r["snr_gain"] > 1  # always so for the exact smoother
    hp = maths.shrinkage(np.eye(16) - W, S, 0.5)
    assert hp["beta"] > hp["alpha"] and hp["snr_gain"] < 1
    neg = maths.shrinkage(-W, S, 0.5)  # beta < alpha but SNR falls: outside the claim's scope
    assert neg["beta"] < neg["alpha"] and neg["snr_gain"] < 1
    # the scalar model: F = c I has alpha = beta = |c| and leaves the SNR unchanged
    c = maths.shrinkage(0.3 * np.eye(16), S, 0.5)
    assert c["alpha"] == pytest.approx(0.3) and c["snr_gain"] == pytest.approx(1.0)


def test_simulated_posterior_mean_is_w_x():
    model = presets._model("rbf", 3.0, 0.5)
    u, x, pm, _, _ = stages._simulate_tokens(model, 2, 16, 3, seed=0)
    assert u.shape == x.shape == pm.shape == (2, 16, 3)
    W = model.smoother(16).numpy()
    np.testing.assert_allclose(pm, W @ x, atol=1e-8)


def test_e4_cases_and_verdicts_from_a_small_table():
    rows = []
    for f, (a, b, g) in {"exact": (0.8, 0.4, 2.0), "high-pass": (0.2, 0.6, 0.5),
                         "negated": (0.8, 0.4, 0.1)}.items():
        for m, v in (("alpha", a), ("beta", b), ("snr_gain", g)):
            rows.append({"stage": "snr", "kernel": "rbf", "lengthscale": 1.0,
                         "noise_scale": 0.5, "filter": f, "metric": m, "value": v,
                         "ci_low": np.nan, "ci_high": np.nan, "se": np.nan, "n": 1})
    dep = []
    for v, (cos, rank) in {"plain": (0.999, 1.01), "residual": (0.5, 3.0),
                           "twicing": (0.6, 2.5), "boosting": (0.4, 3.2)}.items():
        for m, val in (("cosine", cos), ("effective_rank", rank), ("mse_clean", 0.3)):
            dep.append({"stage": "depth", "variant": v, "depth": 32, "metric": m,
                        "value": val, "ci_low": val * 0.999, "ci_high": min(val * 1.001, 1.0)
                        if m == "cosine" else val * 1.001, "se": 0.0, "n": 10})
    results = pd.DataFrame(rows + dep)
    cases = claims.e4_cases(results)
    assert dict(zip(cases["filter"], cases["iff_holds"], strict=True)) == {
        "exact": True, "high-pass": True, "negated": False}
    params = {"L": 8, "channels": 4, "num_sequences": 10}
    e3, e4 = claims.verdicts(results, params)
    assert e3.claim == "E3" and e3.verdict == "supported"
    assert e4.claim == "E4" and e4.verdict == "supported"
    assert e4.numbers["cases"] == 2 and e4.numbers["negated_iff_holds"] == 0
    table = claims.headline(results)
    assert list(table.columns) == ["stack", *presets.E3_METRICS]


def test_presets_registered():
    exp = EXPERIMENT
    assert exp.claims == ("E3", "E4") and set(exp.presets) >= {"smoke", "quick", "full"}


def test_work_grows_with_the_preset_size():
    smoke, quick, full = (presets.PRESETS[k] for k in ("smoke", "quick", "full"))
    assert 0 < presets.work(smoke) < presets.work(quick) < presets.work(full)
    base = dict(quick)
    for key, bigger in (("L", 128), ("channels", 8), ("num_sequences", 512),
                        ("depths", list(range(40))), ("num_resamples", 2000),
                        ("sweep_lengthscales", [0.5, 1.0, 4.0, 16.0]), ("sweep_sequences", 256)):
        assert presets.work({**base, key: bigger}) > presets.work(base), key
    assert EXPERIMENT.work is presets.work


def test_simulate_tokens_without_posterior_gives_the_same_tokens():
    model = presets._model("rbf", 4.0, 0.5)
    u, x, pm, _, post = stages._simulate_tokens(model, 2, 16, 3, seed=0)
    u2, x2, pm2, _, post2 = stages._simulate_tokens(model, 2, 16, 3, seed=0, posterior=False)
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_array_equal(x, x2)
    assert pm2 is None and post2 is None and pm.shape == x.shape
