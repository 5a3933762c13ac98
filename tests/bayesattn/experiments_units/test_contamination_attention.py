"""Unit tests of the contamination-attention experiment (E5): kernels, readout, verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import models
from bayesattn.experiments import contamination_attention as ca
from bayesattn.experiments.contamination_attention import claims, presets, stages

THETA = {"softmax": {"beta": 0.7}, "twicing-softmax": {"beta": 0.7}, "gaussian": {"h": 1.3},
         "bilateral": {"h": 1.3}, "twicing-gaussian": {"h": 1.3},
         "cme": {"h": 1.5, "ridge": 0.05}}


def _emb(b=3, L=10, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, L, K, generator=g, dtype=torch.float64)


def _softmax_rows(logits):
    return torch.softmax(logits, dim=-1)


def test_kernel_weights_match_independent_formulas():
    e = _emb()
    dot = e @ e.mT
    sq = ((e[:, :, None] - e[:, None]) ** 2).sum(-1)
    A_dot = _softmax_rows(0.7 * dot)
    A_dist = _softmax_rows(-sq / (2 * 1.3**2))
    want = {"softmax": A_dot, "gaussian": A_dist, "bilateral": A_dist,
            "twicing-softmax": 2 * A_dot - A_dot @ A_dot,
            "twicing-gaussian": 2 * A_dist - A_dist @ A_dist}
    gram = torch.exp(-sq / (2 * 1.5**2))
    L = e.shape[1]
    want["cme"] = torch.linalg.solve(gram + L * 0.05 * torch.eye(L, dtype=torch.float64),
                                     gram).mT  # W = kappa(e, E) (G + L lambda I)^-1
    for name in presets.KERNELS:
        W = stages.attention_weights(name, e, THETA[name])
        assert W.shape == (3, L, L) and W.dtype == torch.float64
        torch.testing.assert_close(W, want[name], atol=1e-9, rtol=1e-7)
        if name != "cme":
            torch.testing.assert_close(W.sum(-1), torch.ones(3, L, dtype=torch.float64))


def test_weights_agree_with_the_kernels_own_attend():
    e = _emb(2, 8, 3, seed=1)
    v = _emb(2, 8, 5, seed=2)
    for name in presets.KERNELS:
        kern, c = stages._kernel(name, THETA[name], e.shape[-1])
        q = (c * e)[:, None]
        inputs = {"positions": torch.zeros(2, 8, dtype=torch.float64)} \
            if name == "bilateral" else {}
        out = kern.attend(q, q, v[:, None], None, **inputs)[:, 0]
        torch.testing.assert_close(out.double(), stages.attention_weights(name, e, THETA[name]) @ v,
                                   atol=1e-9, rtol=1e-7)


def test_uniform_limits_and_participation():
    e = _emb()
    U = stages.attention_weights(presets.UNIFORM, e, {})
    for name, th in (("softmax", {"beta": 0.0}), ("gaussian", {"h": None}),
                     ("twicing-gaussian", {"h": math.inf}), ("bilateral", {"h": None})):
        torch.testing.assert_close(stages.attention_weights(name, e, th), U)
    np.testing.assert_allclose(stages.participation(U), 10.0)
    np.testing.assert_allclose(stages.participation(torch.eye(10, dtype=torch.float64)[None]), 1.0)


@pytest.mark.parametrize("name,params", [("concept-mixture", {"radius": 1.0}),
                                         ("unigram-mixture", {})])
def test_uniform_readout_is_the_exact_clean_posterior(name, params):
    model = presets.base_model(name, params)
    cm = models.contaminate(model, 0.2, "outlier")
    data = cm.simulate_contaminated(6, 12, seed=3)
    u = stages.embed(model, data.batch.x)
    torch.testing.assert_close(u.sum(-1), torch.zeros(6, 12, dtype=torch.float64),
                               atol=1e-9, rtol=0)
    log_w = torch.tensor(model.params["weights"], dtype=torch.float64).log()
    logq = stages.readout(stages.attention_weights(presets.UNIFORM, u, {}), u, log_w)
    exact = cm.clean_posterior(data.batch.x).logits
    torch.testing.assert_close(logq, exact, atol=1e-8, rtol=1e-8)
    np.testing.assert_allclose(stages.tv(logq, exact), 0.0, atol=1e-10)
    np.testing.assert_allclose(stages.kl(exact, logq), 0.0, atol=1e-10)
    # the eps-model posterior differs from the clean one on contaminated data
    assert stages.tv(cm.exact_posterior(data.batch.x).logits, exact).max() > 1e-3
    theta = presets.class_parameters(model)
    assert theta.shape[0] == model.params["K"]


def test_readout_is_the_mean_of_per_token_posteriors():
    u = _emb(2, 5, 3)
    log_w = torch.log(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    W = stages.attention_weights("gaussian", u, {"h": 0.8})
    per = torch.softmax(log_w + 5 * (W @ u), -1)  # (B, L, K)
    torch.testing.assert_close(stages.readout(W, u, log_w).exp(), per.mean(1))


def test_tv_and_kl():
    p = torch.log(torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]], dtype=torch.float64))
    q = torch.log(torch.tensor([[0.25, 0.25, 0.5], [0.1, 0.2, 0.7]], dtype=torch.float64))
    np.testing.assert_allclose(stages.tv(p, q), [0.5, 0.0])
    np.testing.assert_allclose(stages.kl(p, q), [math.log(2.0), 0.0], atol=1e-12)


def test_outlier_weight():
    U = torch.full((2, 4, 4), 0.25, dtype=torch.float64)
    replaced = torch.tensor([[True, False, False, False], [False] * 4])
    w = stages.outlier_weight(U, replaced)
    assert w[0] == pytest.approx(0.25) and math.isnan(w[1])
    eye = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
    assert stages.outlier_weight(eye, replaced)[0] == 0.0


def test_choose_budget_rule_and_grids():
    assert stages.choose([0.0, 0.01, 0.04, 0.2], [16, 14, 9, 3], 0.05) == 2  # sharpest in budget
    assert stages.choose([0.3, 0.2, 0.4], [16, 14, 9], 0.05) == 1  # none in budget: min TV
    p = presets.PRESETS["smoke"]
    assert len(presets.grid("cme", p)) == len(p["cme_h_grid"]) * len(p["ridge_grid"])
    assert any(math.isinf(t["h"]) for t in presets.grid("gaussian", p))


def test_bad_inputs():
    e = _emb()
    with pytest.raises(ValueError, match="unknown kernel"):
        stages.attention_weights("nope", e, {})
    with pytest.raises(ValueError, match="unknown kernel"):
        presets.grid("nope", presets.PRESETS["smoke"])
    with pytest.raises(ValueError, match="beta"):
        stages.attention_weights("softmax", e, {"beta": -1.0})
    with pytest.raises(ValueError, match="bandwidth"):
        stages.attention_weights("gaussian", e, {"h": 0.0})


def _table(diff_lo, diff_hi, lowest="gaussian"):
    rows = []
    params = {"L": 16, "test_sequences": 10, "clean_tv_budget": 0.05, "epsilons": [0.0, 0.2],
              "models": {"concept-mixture": {}, "unigram-mixture": {}}}
    for model in params["models"]:
        for kind in presets.KINDS:
            base = {"stage": "evaluate", "model": model, "kind": kind, "epsilon": 0.2,
                    "se": 0.01, "n": 10}
            rows.append({**base, "kernel": presets.UNIFORM, "metric": "tv_eps", "value": 0.3,
                         "ci_low": 0.2, "ci_high": 0.4})
            for k in presets.KERNELS:
                v = 0.05 if k == lowest else 0.2
                rows.append({**base, "kernel": k, "metric": "degradation", "value": v,
                             "ci_low": v - 0.01, "ci_high": v + 0.01})
                if k != "softmax":
                    rows.append({**base, "kernel": k, "against": "softmax",
                                 "metric": "degradation_diff", "value": (diff_lo + diff_hi) / 2,
                                 "ci_low": diff_lo, "ci_high": diff_hi})
    return pd.DataFrame(rows), params


def test_verdict_directions():
    assert claims.verdicts(*_table(-0.2, -0.05))[0].verdict == "supported"
    assert claims.verdicts(*_table(0.05, 0.2))[0].verdict == "not supported"
    assert claims.verdicts(*_table(-0.1, 0.05))[0].verdict == "inconclusive"
    # a dot-type kernel with the smallest degradation: not "supported"
    assert claims.verdicts(*_table(-0.2, -0.05, lowest="twicing-softmax"))[0].verdict \
        == "inconclusive"
    v = claims.verdicts(*_table(-0.2, -0.05))[0]
    assert v.claim == "E5" and "concept-mixture_outlier_diff" in v.numbers


def test_presets_registered():
    exp = ca.EXPERIMENT
    assert exp.claims == ("E5",) and set(exp.presets) >= {"smoke", "quick", "full"}
    assert set(presets.DISTANCE_TYPE) | set(presets.DOT_TYPE) == set(presets.KERNELS)


def test_work_grows_with_the_preset_size():
    smoke, quick, full = (presets.PRESETS[k] for k in ("smoke", "quick", "full"))
    assert 0 < presets.work(smoke) < presets.work(quick) < presets.work(full)
    base = dict(quick)
    for key, bigger in (("L", 32), ("test_sequences", 768), ("tune_sequences", 256),
                        ("num_resamples", 2000), ("epsilons", [0.0, 0.05, 0.1, 0.2, 0.3]),
                        ("beta_grid", list(base["beta_grid"]) + [8.0]),
                        ("posterior_draws", 800)):
        assert presets.work({**base, key: bigger}) > presets.work(base), key
    assert ca.EXPERIMENT.work is presets.work
