"""Unit tests of the helpers of the ``attention-is-bayes`` experiment (P5, P6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import models
from bayesattn.experiments.attention_is_bayes import claims, presets, readouts, stages
from bayesattn.inference.oracle import cme_attention, gp_posterior_mean


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ bandwidths
def test_silverman_bandwidth_is_half_at_l0_for_two_dims():
    # (4 / 4)^(1/6) * 64^(-1/6) = 0.5
    assert presets.silverman_bandwidth(2, 64) == pytest.approx(0.5)
    assert presets.silverman_bandwidth(1, 100, scale=2.0) == pytest.approx(
        2.0 * (4 / 3) ** 0.2 * 100 ** -0.2)


def test_shrinking_bandwidth_rate():
    assert presets.shrinking_bandwidth(0.3, 16, 16, 1) == pytest.approx(0.3)
    ratio = (presets.shrinking_bandwidth(1.0, 32 * 64, 64, 2)
             / presets.shrinking_bandwidth(1.0, 64, 64, 2))
    assert ratio == pytest.approx(32 ** (-1 / 6))


# ------------------------------------------------------------------ softmax attention
def test_softmax_attention_is_nadaraya_watson():
    k = torch.randn(3, 7, 2, generator=_gen(), dtype=torch.float64)
    v = torch.randn(3, 7, 1, generator=_gen(1), dtype=torch.float64)
    q = torch.randn(3, 5, 2, generator=_gen(2), dtype=torch.float64)
    h = 0.7
    out = readouts.softmax_attention(k, v, q, bandwidth=h)
    w = torch.exp(-((q[:, :, None] - k[:, None]) ** 2).sum(-1) / (2 * h**2))  # (B, Q, L)
    nw = (w @ v) / w.sum(-1, keepdim=True)
    torch.testing.assert_close(out, nw)
    # the same as dot-product softmax attention with a key-norm bias
    logits = q @ k.mT / h**2 - (k**2).sum(-1)[:, None, :] / (2 * h**2)
    torch.testing.assert_close(out, torch.softmax(logits, -1) @ v)


def test_softmax_attention_limits_and_mask():
    k = torch.tensor([[[0.0], [1.0], [5.0]]], dtype=torch.float64)
    v = torch.tensor([[[1.0], [2.0], [9.0]]], dtype=torch.float64)
    q = torch.tensor([[[0.1], [4.8]]], dtype=torch.float64)
    near = readouts.softmax_attention(k, v, q, bandwidth=1e-3)
    torch.testing.assert_close(near[0, :, 0], torch.tensor([1.0, 9.0], dtype=torch.float64))
    wide = readouts.softmax_attention(k, v, q, bandwidth=1e6)
    torch.testing.assert_close(wide[0, :, 0], torch.full((2,), 4.0, dtype=torch.float64))
    mask = torch.tensor([[True, True, False]])
    masked = readouts.softmax_attention(k, v, q, bandwidth=1e6, mask=mask)
    torch.testing.assert_close(masked[0, :, 0], torch.full((2,), 1.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="bandwidth"):
        readouts.softmax_attention(k, v, q, bandwidth=0.0)


# ------------------------------------------------------------------ GP simulator and identity
def test_simulate_gp_shapes_seed_and_prior_variance():
    data = readouts.simulate_gp(400, 5, 3, lengthscale=0.1, noise_scale=0.3, seed=3)
    assert data["keys"].shape == (400, 5, 1) and data["values"].shape == (400, 5, 1)
    assert data["queries"].shape == (400, 3, 1) and data["f_queries"].shape == (400, 3)
    again = readouts.simulate_gp(400, 5, 3, lengthscale=0.1, noise_scale=0.3, seed=3)
    torch.testing.assert_close(data["values"], again["values"])
    assert bool(((data["keys"] >= 0) & (data["keys"] <= 1)).all())
    # Var(v) = prior variance 1 + noise variance 0.09; Var(f(q)) = 1
    assert float(data["values"].var()) == pytest.approx(1.09, rel=0.1)
    assert float(data["f_queries"].var()) == pytest.approx(1.0, rel=0.12)


def test_cme_with_gp_kernel_is_the_gp_posterior_mean():
    data = readouts.simulate_gp(4, 30, 6, lengthscale=0.1, noise_scale=0.3, seed=0)
    k, v, q = data["keys"], data["values"], data["queries"]
    direct = readouts.gp_mean_direct(k, v, q, lengthscale=0.1, noise_scale=0.3)
    cme = cme_attention(k, v, q, kernel="gaussian", bandwidth=0.1, ridge=0.3**2 / 30)[..., 0]
    torch.testing.assert_close(cme, direct, atol=1e-10, rtol=1e-8)
    oracle = gp_posterior_mean(k, v, q, noise_scale=0.3, bandwidth=0.1)[..., 0]
    torch.testing.assert_close(oracle, direct, atol=1e-10, rtol=1e-8)
    pr = readouts.gp_predictions(data, 30, chunk=3)
    assert set(pr) == {"exact", presets.CME, presets.SOFTMAX_FIXED, presets.SOFTMAX_SHRINK}
    assert np.abs(pr[presets.CME] - pr["exact"]).max() < 1e-10


def test_regression_predictions_cme_exact_without_net():
    model = models.get("linear-regression", p=2)
    batch = model.simulate(8, 12, seed=1)
    queries = torch.randn(8, 5, 2, generator=_gen(4), dtype=torch.float64)
    pr = readouts.regression_predictions(model, None, batch.x, queries)
    assert presets.NET not in pr
    assert pr["exact"].shape == (8, 5)
    assert np.abs(pr[presets.CME] - pr["exact"]).max() < 1e-10
    assert (pr["pred_sd"] > model.params["noise_scale"]).all()
    assert (pr["post_sd"] < pr["pred_sd"]).all()


# ------------------------------------------------------------------ metrics
def test_error_metrics():
    pred = np.array([[1.0, 2.0], [0.0, 0.0]])
    exact = np.array([[0.0, 0.0], [0.0, 0.0]])
    out = readouts.error_metrics(pred, exact, np.full((2, 2), 2.0), np.full((2, 2), 0.5))
    np.testing.assert_allclose(out["abs_err"], [np.sqrt(2.5), 0.0])
    np.testing.assert_allclose(out["err_pred_sd"], [np.sqrt(2.5) / 2, 0.0])
    np.testing.assert_allclose(out["err_post_sd"], [np.sqrt(2.5) * 2, 0.0])
    np.testing.assert_allclose(out["max_err_pred_sd"], [1.0, 0.0])


def test_ratio_ci():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.1, 200), rng.normal(4.0, 0.1, 300)
    est = readouts.ratio_ci(a, b, num_resamples=500, seed=1)
    assert est["value"] == pytest.approx(a.mean() / b.mean())
    assert est["ci_low"] < est["value"] < est["ci_high"]
    assert est["ci_high"] - est["ci_low"] < 0.01 and est["n"] == 200
    assert readouts.ratio_ci(a, b, num_resamples=500, seed=1) == est
    with pytest.raises(ValueError):
        readouts.ratio_ci(a, np.zeros(3))


# ------------------------------------------------------------------ verdicts
def _results(cme_worst: float, slope: tuple[float, float, float]) -> pd.DataFrame:
    rows = [{"stage": "regression", "method": presets.CME, "metric": "worst_err_pred_sd", "L": 4,
             "value": cme_worst},
            {"stage": "regression", "method": presets.NET, "metric": "err_pred_sd", "L": 4,
             "value": 0.2, "ci_low": 0.1, "ci_high": 0.3},
            {"stage": "gp", "method": presets.SOFTMAX_FIXED, "metric": "diff_vs_cme", "L": 8,
             "value": 0.3, "ci_low": 0.2, "ci_high": 0.4},
            {"stage": "gp", "method": presets.CME, "metric": "diff_vs_exact", "L": 8,
             "value": 1e-14, "ci_low": 1e-14, "ci_high": 1e-14},
            {"stage": "gp", "method": presets.CME, "metric": "worst_diff_vs_exact", "L": 8,
             "value": 3e-14}]
    v, lo, hi = slope
    for part, metric in (("regression", "slope_err_pred_sd"), ("gp", "slope_diff_vs_cme")):
        rows.append({"stage": "slopes", "part": part, "method": presets.SOFTMAX_FIXED,
                     "metric": metric, "range": "all", "value": v, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


PARAMS = {"lengths": [1, 4], "gp_lengths": [4, 8], "train_len": [1, 4], "tail_from": 4}


@pytest.mark.parametrize(("cme", "slope", "p5", "p6"), [
    (1e-14, (-0.3, -0.4, -0.2), "supported", "supported"),
    (1e-6, (-0.3, -0.4, -0.2), "not supported", "supported"),
    (1e-14, (0.1, -0.1, 0.3), "inconclusive", "inconclusive"),
    (1e-14, (0.3, 0.2, 0.4), "not supported", "not supported"),
])
def test_verdicts_follow_the_criteria(cme, slope, p5, p6):
    out = {v.claim: v for v in claims.verdicts(_results(cme, slope), PARAMS)}
    assert out["P5"].verdict == p5 and out["P6"].verdict == p6
    assert "n/a" in out["P5"].measured  # no tail slope in this table
    assert "3.0e-14" in out["P6"].measured
    table = claims.headline(_results(cme, slope))
    assert {"part", "method", "L=4"} <= set(table.columns)


def test_convergence_of_the_trained_net_against_floor_zero():
    def results(kl):
        return pd.DataFrame([{"stage": "regression", "method": presets.NET, "L": L,
                              "metric": "kl_forward", "value": kl if L <= 64 else 10 * kl,
                              "se": kl / 10} for L in (1, 8, 64, 512)])

    params = {"train_len": [1, 64]}
    ok = claims.convergence(results(presets.NET_TOLERANCE / 2), params).iloc[0]
    assert ok["converged"] and ok["floor"] == 0
    assert ok["value"] == pytest.approx(presets.NET_TOLERANCE / 2)  # grid L inside [1, 64] only
    bad = claims.convergence(results(2 * presets.NET_TOLERANCE), params).iloc[0]
    assert not bad["converged"] and bad["excess"] == pytest.approx(2 * presets.NET_TOLERANCE)


def test_net_kl_is_zero_for_the_exact_posterior_and_positive_for_an_untrained_net():
    model = presets.lr_model()
    net = stages._net(model, presets.PRESETS["smoke"], seed=0).eval()
    x = model.simulate(6, 8, seed=0).x
    kl = readouts.net_kl(model, net, x)
    assert kl.shape == (6,) and np.all(kl > 0)


def test_work_grows_with_size_and_orders_the_presets():
    base = dict(presets.PRESETS["quick"])
    w = presets.work(base)
    for key, bigger in (("steps", 8000), ("batch_size", 128), ("dim", 64),
                        ("train_len", [1, 128]), ("lengths", base["lengths"] + [1024]),
                        ("num_sequences", 400), ("gp_lengths", base["gp_lengths"] + [1024]),
                        ("gp_sequences", 128)):
        assert presets.work({**base, key: bigger}) > w, key
    works = [presets.work(dict(presets.PRESETS[p])) for p in ("smoke", "quick", "full")]
    assert works[0] < works[1] < works[2]
