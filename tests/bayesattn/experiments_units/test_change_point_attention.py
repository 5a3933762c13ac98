"""Unit tests of the change-point-attention experiment (E7, E8): row metrics, spatial
baselines, the per-token denoisers and the verdict logic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy, spearmanr

from bayesattn.experiments import change_point_attention as cpa
from bayesattn.experiments.change_point_attention import claims, presets, stages


def _rows(n=4, L=12, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((n, L)) + 0.01
    a = rng.random((n, L)) + 0.01
    return p / p.sum(-1, keepdims=True), a / a.sum(-1, keepdims=True)


def test_row_kl_matches_scipy_and_limits():
    p, a = _rows()
    want = [entropy(pi, ai) for pi, ai in zip(p, a, strict=True)]
    np.testing.assert_allclose(presets.row_kl(p, a), want)
    np.testing.assert_allclose(presets.row_kl(p, p), 0.0, atol=1e-12)
    u = np.full_like(p, 1.0 / p.shape[-1])
    np.testing.assert_allclose(presets.row_kl(p, u), math.log(p.shape[-1]) - entropy(p, axis=-1))
    # zero attention weight where p > 0: clamped, finite and large
    a0 = a.copy()
    a0[:, 0] = 0.0
    assert np.isfinite(presets.row_kl(p, a0)).all()
    assert (presets.row_kl(p, a0) > presets.row_kl(p, a)).all()
    with pytest.raises(ValueError, match="same length"):
        presets.row_kl(p, a[:, :-1])


def test_row_spearman_matches_scipy():
    p, a = _rows(3, 10, seed=1)
    want = [spearmanr(pi, ai).statistic for pi, ai in zip(p, a, strict=True)]
    np.testing.assert_allclose(presets.row_spearman(p, a), want, atol=1e-12)
    np.testing.assert_allclose(presets.row_spearman(p, p**3), 1.0)  # monotone transform
    np.testing.assert_allclose(presets.row_spearman(p, -p), -1.0)
    assert np.isnan(presets.row_spearman(p, np.ones_like(p))).all()  # constant row


def test_normalise_and_spatial_rows():
    c = np.array([[1.0, 0.5, 0.5], [0.2, 1.0, 0.8], [0.0, 0.5, 1.0]])
    np.testing.assert_allclose(presets.normalise_rows(c).sum(-1), 1.0)
    with pytest.raises(ValueError, match="nonnegative"):
        presets.normalise_rows(-c)
    L = 9
    g = presets.spatial_rows(L, 2.0)
    i = np.arange(L)
    w = np.exp(-((i[:, None] - i[None]) ** 2) / 8.0)
    np.testing.assert_allclose(g, w / w.sum(-1, keepdims=True))
    lap = presets.spatial_rows(L, 2.0, "laplacian")
    w = np.exp(-np.abs(i[:, None] - i[None]) / 2.0)
    np.testing.assert_allclose(lap, w / w.sum(-1, keepdims=True))
    np.testing.assert_allclose(presets.spatial_rows(L, math.inf), 1.0 / L)
    np.testing.assert_allclose(presets.spatial_rows(L, [1.0, 3.0]),
                               (presets.spatial_rows(L, 1.0) + presets.spatial_rows(L, 3.0)) / 2)
    with pytest.raises(ValueError, match="form"):
        presets.spatial_rows(L, 1.0, "box")
    with pytest.raises(ValueError, match="positive"):
        presets.spatial_rows(L, 0.0)


def test_oracle_attention_is_exact_on_a_change_point_sequence():
    model = presets._model({"model": {"K": 3, "stay": 0.9, "noise_scale": 0.75}})
    batch = model.simulate(2, 10, seed=3)
    c = model.co_segmentation(batch.x).numpy()
    target = presets.normalise_rows(c)
    np.testing.assert_allclose(presets.row_kl(target, target), 0.0, atol=1e-12)
    np.testing.assert_allclose(presets.row_spearman(target, target), 1.0)
    # the uniform row: KL = log L - entropy of the normalised co-segmentation row
    np.testing.assert_allclose(presets.row_kl(target, np.full_like(target, 0.1)),
                               math.log(10) - entropy(target, axis=-1), atol=1e-12)


def test_denoisers_shapes_weights_and_seeding():
    import torch

    net_cfg = {"dim": 8, "num_heads": 2, "num_layers": 2, "ff_mult": 2}
    x = np.random.default_rng(0).normal(size=(3, 7))
    for v in presets.VARIANTS:
        net = stages._net(v, net_cfg, seed=1)
        out, ws = stages._predict(net, x, chunk=2, weights=True)
        assert out.shape == (3, 7) and len(ws) == 2
        for w in ws:
            assert w.shape == (3, 2, 7, 7)
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
        bws = stages.learned_bandwidths(net)
        assert all(len(b) == (2 if v in presets.RELATIVE else 0) for b in bws)
        twin = stages._net(v, net_cfg, seed=1)
        for (k, a), (_, b) in zip(net.state_dict().items(), twin.state_dict().items(),
                                     strict=True):
            assert torch.equal(a, b), k
    # a set model (no positions) is permutation equivariant
    net = stages._net("none", net_cfg, seed=2)
    perm = np.random.default_rng(1).permutation(7)
    np.testing.assert_allclose(stages._predict(net, x[:, perm], 3),
                               stages._predict(net, x, 3)[:, perm], atol=1e-5)
    with pytest.raises(ValueError, match="unknown variant"):
        stages._net("rope", net_cfg, seed=0)


def test_combine_adds_standard_errors():
    a = {"value": 2.0, "se": 0.3, "n": 5}
    b = {"value": 0.5, "se": 0.4, "n": 7}
    c = stages._combine(a, b)
    assert c["value"] == 1.5 and c["se"] == pytest.approx(0.5) and c["n"] == 12
    assert c["ci_low"] == pytest.approx(1.5 - 0.98) and c["ci_high"] == pytest.approx(2.48)


# ----------------------------------------------------------------------------- verdicts
_PARAMS = {"test_lengths": [64, 256], "variants": ["none", "sinusoidal", "bilateral"],
           "steps": 10, "attention_lengths": [64]}


def _est(value, half=0.1):
    return {"value": value, "ci_low": value - half, "ci_high": value + half, "se": half / 2,
            "n": 10}


def _e7_results(diff: float, inc: float) -> pd.DataFrame:
    rows = []
    for L in (64, 256):
        for v, m in (("none", 0.5), ("sinusoidal", 0.4), ("bilateral", 0.4 + diff)):
            rows.append({"stage": "evaluate", "variant": v, "L": L, "metric": "mse_posterior",
                         **_est(m)})
        for o in ("none", "sinusoidal"):
            rows.append({"stage": "evaluate", "variant": "bilateral", "against": o, "L": L,
                         "metric": "mse_posterior_diff", **_est(diff)})
            if L == 256:
                rows.append({"stage": "evaluate", "variant": "bilateral", "against": o,
                             "L": L, "metric": "increase_diff", **_est(inc)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("diff, inc, want", [(-0.3, -0.3, "supported"),
                                             (-0.3, 0.0, "inconclusive"),
                                             (0.3, -0.3, "not supported"),
                                             (-0.3, 0.3, "not supported")])
def test_e7_verdict_branches(diff, inc, want):
    v = claims.e7_verdict(_e7_results(diff, inc), _PARAMS)
    assert v.claim == "E7" and v.verdict == want
    assert "L=256" in v.measured and "L256_diff_none" in v.numbers


def _e8_results(rho_diff: float, kl_diff: float) -> pd.DataFrame:
    rows = [{"stage": "attention", "variant": "spatial-tuned", "metric": "bandwidth",
             "value": 4.0, "n": 1}]
    for name, layer in (("bilateral", "last"), ("bilateral", "first"), ("none", "last"),
                        ("spatial@bilateral", "last")):
        for metric in ("spearman", "kl"):
            rows.append({"stage": "attention", "variant": name, "L": 64, "layer": layer,
                         "head": "mean", "metric": metric, **_est(0.5)})
    for metric, d in (("spearman_diff", rho_diff), ("kl_diff", kl_diff)):
        rows.append({"stage": "attention", "variant": "bilateral", "L": 64, "layer": "last",
                     "head": "mean", "against": "spatial@bilateral", "metric": metric,
                     **_est(d)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("rho, kl, want", [(0.3, -0.3, "supported"), (0.3, 0.0, "inconclusive"),
                                           (-0.3, -0.3, "not supported"),
                                           (0.3, 0.3, "not supported")])
def test_e8_verdict_branches(rho, kl, want):
    v = claims.e8_verdict(_e8_results(rho, kl), _PARAMS)
    assert v.claim == "E8" and v.verdict == want
    assert "rho_diff_spatial" in v.numbers and "bilateral last" in v.measured


def test_missing_estimates_are_inconclusive():
    empty = pd.DataFrame({"stage": ["evaluate", "attention"], "variant": ["x", "y"],
                          "metric": ["m", "m"], "value": [0.0, 0.0]})
    assert claims.e7_verdict(empty, _PARAMS).verdict == "inconclusive"
    assert claims.e8_verdict(empty, _PARAMS).verdict == "inconclusive"


def _convergence_results(bilateral_mse, none_drop):
    """A synthetic results frame: floor 0.04 at L = 64; the other nets within 5% of it."""
    rows = [{"stage": "evaluate", "variant": presets.REFERENCE, "L": 64, "metric": "mse_clean",
             "value": 0.04, "se": 0.001}]
    for v in presets.VARIANTS:
        val = bilateral_mse if v == "bilateral" else 0.3 if v == "none" else 0.041
        rows.append({"stage": "evaluate", "variant": v, "L": 64, "metric": "mse_clean",
                     "value": val, "se": 0.001})
        rows.append({"stage": "evaluate", "variant": v, "L": 256, "metric": "mse_clean",
                     "value": 1.0, "se": 0.001})
        drop = none_drop if v == "none" else 0.0
        rows += [{"stage": "train", "variant": v, "metric": "plateau_drop", "value": drop,
                  "se": 0.001},
                 {"stage": "train", "variant": v, "metric": "plateau_relative_drop",
                  "value": drop / 0.3}]
    return pd.DataFrame(rows)


def test_convergence_against_the_posterior_mean_floor():
    params = dict(presets.PRESETS["quick"])
    conv = claims.convergence(_convergence_results(0.05, 0.0), params).set_index("network")
    assert list(conv.index) == list(presets.VARIANTS)
    assert not conv.loc["bilateral", "converged"]  # excess 0.01 > 10% of 0.04
    assert conv.loc["bilateral", "excess"] == pytest.approx(0.01)
    assert conv.loc["sinusoidal", "converged"] and conv.loc["alibi", "converged"]
    assert conv.loc["none", "converged"] and math.isnan(conv.loc["none", "floor"])
    conv = claims.convergence(_convergence_results(0.042, 0.05), params).set_index("network")
    assert conv.loc["bilateral", "converged"]
    assert not conv.loc["none", "converged"]  # its training loss still falls


def test_work_grows_with_the_preset_size():
    smoke, quick, full = (presets.PRESETS[k] for k in ("smoke", "quick", "full"))
    assert 0 < presets.work(smoke) < presets.work(quick) < presets.work(full)
    base = dict(quick)
    for key, bigger in (("steps", 2 * base["steps"]), ("batch_size", 2 * base["batch_size"]),
                        ("train_len", 128),
                        ("net", {**base["net"], "dim": 64}),
                        ("net", {**base["net"], "num_layers": 3}),
                        ("test_sequences", {k: 2 * v for k, v in
                                            base["test_sequences"].items()}),
                        ("attention_sequences", {k: 2 * v for k, v in
                                                 base["attention_sequences"].items()}),
                        ("num_resamples", 2000)):
        assert presets.work({**base, key: bigger}) > presets.work(base), key
    assert cpa.EXPERIMENT.work is presets.work
    assert cpa.EXPERIMENT.convergence is claims.convergence
