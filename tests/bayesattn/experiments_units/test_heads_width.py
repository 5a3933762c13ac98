"""Unit tests of the heads-width experiment's helpers (P11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import models
from bayesattn.experiments.heads_width import claims, network, presets, stages


def test_simplex_means_is_a_centred_regular_simplex():
    for K in (2, 3, 4, 6):
        m = presets.simplex_means(K, 0.7)
        assert m.shape == (K, K - 1)
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 0.7)
        np.testing.assert_allclose(m.mean(0), 0.0, atol=1e-12)
        d = np.linalg.norm(m[:, None] - m[None], axis=-1)[~np.eye(K, dtype=bool)]
        np.testing.assert_allclose(d, d[0])  # all vertices equally far apart
        assert np.linalg.matrix_rank(m[1:] - m[0]) == K - 1  # statistic dimension K - 1
    with pytest.raises(ValueError, match="K must"):
        presets.simplex_means(1, 1.0)
    with pytest.raises(ValueError, match="radius"):
        presets.simplex_means(3, 0.0)


def test_model_spec_configs_and_groups():
    assert presets.model_spec("nig", 0.5)["stat_dim"] == 2
    spec = presets.model_spec("mixture-K5", 0.5)
    assert spec["stat_dim"] == 4 and np.asarray(spec["params"]["means"]).shape == (5, 4)
    with pytest.raises(ValueError, match="unknown model key"):
        presets.model_spec("mixture-Kx", 0.5)
    grid = presets.configs({"models": ["nig", "mixture-K4"], "heads": [1, 2],
                       "value_widths": [1, 3], "radius": 0.5})
    assert len(grid) == 8 and {c["width"] for c in grid} == {1, 2, 3, 6}
    assert len({c["config"] for c in grid}) == 8
    assert [presets.width_group(w, 3) for w in (1, 2, 3, 5, 6, 12)] == [
        "below", "below", "at", "at", "above", "above"]


def _pool(heads=2, value_width=3, in_dim=2):
    pool_cls, _ = network.net_classes()
    torch.manual_seed(0)
    return pool_cls(in_dim, heads, value_width, hidden=8, key_width=4)


def test_attention_pool_width_permutation_and_padding_invariance():
    pool = _pool()
    x = torch.randn(3, 7, 2)
    out = pool(x)
    assert out.shape == (3, 6) and pool.out_dim == 6
    perm = torch.randperm(7)
    torch.testing.assert_close(pool(x[:, perm]), out)
    padded = torch.cat([x, 100 * torch.randn(3, 4, 2)], dim=1)  # (3, 11, 2)
    mask = torch.arange(11)[None].expand(3, -1) < 7
    torch.testing.assert_close(pool(padded, mask), out)


def test_heads_width_posterior_has_the_controlled_bottleneck():
    model = models.get("concept-mixture", means=presets.simplex_means(4, 0.5).tolist())
    cfg = {"model": "mixture-K4", "heads": 3, "value_width": 2}
    params = {"hidden": 8, "key_width": 4, "radius": 0.5}
    net = network.build_net(model, cfg, params, seed=3)
    assert net.rep_dim == 3 * 2 + 1  # H * d_v pooled numbers plus log L
    batch = model.simulate(5, 6, seed=0)
    q = net.posterior(batch.x.float(), batch.mask)
    assert tuple(q.batch_shape) == (5,) and q.probs.shape == (5, 4)
    same = network.build_net(model, cfg, params, seed=3)
    for a, b in zip(net.state_dict().values(), same.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # seeded construction is reproducible


def test_gaussian_floor_small_for_a_nearly_gaussian_posterior():
    model = models.get("normal-inverse-gamma")
    few = model.exact_posterior(model.simulate(6, 2, seed=0).x)
    many = model.exact_posterior(model.simulate(6, 400, seed=0).x)
    f_few = stages.gaussian_floor(few, num_samples=4000, seed=1)
    f_many = stages.gaussian_floor(many, num_samples=4000, seed=1)
    assert f_few.shape == (6,)
    assert np.all(f_many < 0.02) and f_many.mean() < f_few.mean()
    np.testing.assert_array_equal(f_few, stages.gaussian_floor(few, num_samples=4000, seed=1))


def test_paired_ratio():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, size=(200, 1))
    values = np.hstack([4 * base, 4 * base, base, base])  # exact ratio 4 on every row
    est = stages.paired_ratio(values, [True, True, False, False], [False, False, True, True],
                          num_resamples=200, seed=0)
    assert est.value == pytest.approx(4.0)
    assert est.ci_low == pytest.approx(4.0) and est.ci_high == pytest.approx(4.0)
    assert stages.paired_ratio(values, [False] * 4, [True] * 4, num_resamples=10, seed=0) is None


def _est(value, lo, hi):
    return {"value": value, "ci_low": lo, "ci_high": hi}


def test_model_verdict_rules():
    sep_ok, sep_bad = {"value": 2.0}, {"value": 0.8}
    assert claims.model_verdict(_est(10, 6, 15), _est(1.2, 1.0, 1.5), sep_ok) == "supported"
    assert claims.model_verdict(_est(10, 6, 15), _est(1.2, 1.0, 1.5), sep_bad) == "inconclusive"
    assert claims.model_verdict(_est(10, 6, 15), None, sep_ok) == "inconclusive"
    assert claims.model_verdict(_est(1.5, 1.2, 2.0), _est(1, 1, 1), sep_ok) == "not supported"
    assert claims.model_verdict(_est(4, 3.5, 5), _est(8, 6, 10), sep_ok) == "not supported"
    assert claims.model_verdict(_est(4, 2.5, 6), _est(1, 1, 1), sep_ok) == "inconclusive"
    assert claims.model_verdict(None, None, None) == "inconclusive"


def test_verdicts_and_headline_from_a_results_table():
    params = {"models": ["nig"], "radius": 0.5, "L": 32}
    th = pd.DataFrame([
        {"stage": "threshold", "model": "nig", "metric": "drop_ratio", **_est(8, 5, 12)},
        {"stage": "threshold", "model": "nig", "metric": "above_ratio", **_est(1.1, 0.9, 1.3)},
        {"stage": "threshold", "model": "nig", "metric": "separation", **_est(3, np.nan, np.nan)},
    ])
    ev = pd.DataFrame([
        {"stage": "evaluate", "model": "nig", "heads": h, "value_width": dv, "stat_dim": 2,
         "metric": "kl_forward", **_est(v, v / 2, v * 2)}
        for h, dv, v in ((1, 1, 1.0), (1, 2, 0.1), (2, 1, 0.1), (2, 2, 0.09))
    ])
    results = pd.concat([ev, th], ignore_index=True)
    (v,) = claims.verdicts(results, params)
    assert v.claim == "P11" and v.verdict == "supported"
    assert v.numbers["nig_drop"] == 8 and "nig (s=2)" in v.measured
    table = claims.headline(results)
    assert list(table.columns) == ["model", "heads", "d_v=1", "d_v=2"]
    assert table.iloc[0]["d_v=1"] == "1 [0.5, 2]"


def _conv_results(at_kl: float, below_drop: float) -> pd.DataFrame:
    params = {"models": ["nig"], "heads": [1, 2], "value_widths": [1], "radius": 0.5,
              "L": 32}
    ev, tr = [], []
    for cfg in presets.configs(params):
        value = 1.0 if cfg["width"] < cfg["stat_dim"] else at_kl
        ev.append({"stage": "evaluate", **cfg, "metric": "kl_forward", "value": value,
                   "se": value / 10})
        tr += [{"stage": "train", **cfg, "metric": "plateau_drop", "value": below_drop,
                "se": 0.01},
               {"stage": "train", **cfg, "metric": "plateau_relative_drop",
                "value": below_drop / 1.0, "se": np.nan}]
    ev.append({"stage": "evaluate", "model": "nig", "config": "nig-floor", "heads": 0,
               "value_width": 0, "width": 0, "stat_dim": 2, "metric": "kl_floor",
               "value": 0.02, "se": 0.001})
    return pd.DataFrame(ev + tr), params


def test_convergence_against_family_floor_and_plateau_below_s():
    results, params = _conv_results(at_kl=0.025, below_drop=0.001)
    table = claims.convergence(results, params).set_index("network")
    assert list(table.index) == ["nig-H1-dv1", "nig-H2-dv1"]
    at = table.loc["nig-H2-dv1"]
    assert at["floor"] == pytest.approx(0.02) and at["excess"] == pytest.approx(0.005)
    assert at["converged"]
    below = table.loc["nig-H1-dv1"]
    assert np.isnan(below["floor"]) and below["converged"]  # training KL flat
    results, params = _conv_results(at_kl=0.02 + 2 * presets.CONVERGENCE_TOLERANCE,
                                     below_drop=0.2)
    table = claims.convergence(results, params).set_index("network")
    assert not table.loc["nig-H2-dv1", "converged"]
    assert not table.loc["nig-H1-dv1", "converged"]  # still falling by 20%, 20 SE


def test_work_grows_with_size_and_orders_the_presets():
    base = dict(presets.PRESETS["quick"])
    w = presets.work(base)
    for key, bigger in (("steps", 1600), ("batch_size", 256), ("hidden", 64), ("L", 64),
                        ("heads", [1, 2, 4, 8]), ("value_widths", [1, 2, 3, 4]),
                        ("models", ["nig", "mixture-K4", "mixture-K6"]),
                        ("num_sequences", 512)):
        assert presets.work({**base, key: bigger}) > w, key
    works = [presets.work(dict(presets.PRESETS[p])) for p in ("smoke", "quick", "full")]
    assert works[0] < works[1] < works[2]
