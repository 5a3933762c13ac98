"""Unit tests of the robust-encoders experiment (E6): maths, verdict logic, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import metrics, models
from bayesattn.experiments import robust_encoders as re6
from bayesattn.experiments.robust_encoders import claims, presets, stages

PARAMS = {**presets.PRESETS["smoke"], "train_len": 8, "length_factor": 4, "eps": [0.0, 0.1, 0.2],
          "train_eps": [0.0], "replicates": 2}


# ----------------------------------------------------------------------------- maths
def test_paired_difference_and_contrast():
    after, before = np.array([3.0, 2.0, 1.0]), np.array([1.0, 1.0, 1.0])
    np.testing.assert_array_equal(stages.paired_difference(after, before), [2.0, 1.0, 0.0])
    std = (np.array([5.0, 5.0, 5.0]), np.array([1.0, 2.0, 3.0]))
    # variant degrades by (2, 1, 0), standard by (4, 3, 2): variant degrades 2 less
    np.testing.assert_array_equal(stages.contrast((after, before), std), [-2.0, -2.0, -2.0])
    # a variant equal to the standard has contrast 0
    np.testing.assert_array_equal(stages.contrast(std, std), np.zeros(3))


def test_paired_difference_rejects_unpaired_input():
    with pytest.raises(ValueError, match="same sequences"):
        stages.paired_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="same sequences"):
        stages.paired_difference(np.zeros((3, 2)), np.zeros((3, 2)))


def test_test_sets_are_nested_and_paired_over_eps():
    """Same seed: the eps = 0.2 set is the eps = 0 set with some tokens replaced."""
    base = presets.base_model(PARAMS)
    clean = models.contaminate(base, 0.0, "outlier").simulate_contaminated(64, 32, seed=5)
    dirty = models.contaminate(base, 0.2, "outlier").simulate_contaminated(64, 32, seed=5)
    same = (clean.batch.x == dirty.batch.x).all(-1)
    assert torch.equal(same, ~dirty.contaminated)
    assert 0.1 < dirty.contaminated.double().mean() < 0.3
    # eps = 0: the eps-model posterior is the clean posterior (KL exactly 0)
    cm0 = models.contaminate(base, 0.0, "swap")
    x = clean.batch.x
    kl = metrics.kl_per_dataset(cm0.exact_posterior(x), cm0.clean_posterior(x))
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)


def test_kl_is_exact_against_independent_enumeration():
    """The per-sequence KL(p_eps || q) equals a direct enumeration over the K concepts."""
    base = presets.base_model(PARAMS)
    cm = models.contaminate(base, 0.1, "outlier")
    x = cm.simulate_contaminated(8, 12, seed=1).batch.x
    means = np.asarray(base.params["means"])
    loc, sd = np.zeros(2), 10.0
    xs = x.numpy()
    loglik = np.zeros((8, 4))
    for k in range(4):
        clean = -0.5 * ((xs - means[k]) ** 2).sum(-1) - np.log(2 * np.pi)
        out = -0.5 * ((xs - loc) ** 2).sum(-1) / sd**2 - 2 * np.log(sd) - np.log(2 * np.pi)
        loglik[:, k] = np.logaddexp(np.log(0.9) + clean, np.log(0.1) + out).sum(-1)
    logp = loglik - np.logaddexp.reduce(loglik, axis=1, keepdims=True)
    q_logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)).double()
    q = torch.distributions.Categorical(logits=q_logits)
    logq = q.logits.numpy()
    expected = (np.exp(logp) * (logp - logq)).sum(-1)
    got = metrics.kl_per_dataset(cm.exact_posterior(x), q)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_boosting_at_lambda_zero_equals_standard():
    """With the same seed, boosting (lambda initialised at 0) starts as the standard net."""
    base = presets.base_model(PARAMS)
    std = stages.build_net(base, PARAMS, "standard", seed=3)
    boost = stages.build_net(base, PARAMS, "boosting", seed=3)
    x = base.simulate(5, 7, seed=0).x.float()
    with torch.no_grad():
        torch.testing.assert_close(std.posterior(x).logits, boost.posterior(x).logits)


def test_variant_nets_are_permutation_invariant_and_differ():
    base = presets.base_model(PARAMS)
    x = base.simulate(4, 9, seed=2).x.float()
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    outs = {}
    for variant in presets.VARIANTS:
        net = stages.build_net(base, PARAMS, variant, seed=1).eval()
        with torch.no_grad():
            a, b = net.posterior(x).logits, net.posterior(x[:, perm]).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        outs[variant] = a
    assert not torch.allclose(outs["standard"], outs["twicing"])
    assert not torch.allclose(outs["standard"], outs["distance"])


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="variant must be one of"):
        stages.build_net(presets.base_model(PARAMS), PARAMS, "bilateral", seed=0)
    with pytest.raises(ValueError, match="train_eps"):
        presets.regime_name(1.5)
    with pytest.raises(ValueError, match="length_factor"):
        presets.test_lengths({**PARAMS, "length_factor": 1})
    with pytest.raises(ValueError, match="signs must be"):
        claims.decide(["-", "?"])
    assert presets.regime_name(0.0) == "clean" and presets.regime_name(0.1) == "eps0.1-outlier"
    assert presets.test_lengths(PARAMS) == [8, 32]


# ----------------------------------------------------------------------------- verdicts
def test_decide_branches():
    assert claims.decide(["-", "0", "0"]) == "supported"
    assert claims.decide(["+", "0", "n/a"]) == "not supported"
    assert claims.decide(["-", "+"]) == "inconclusive"
    assert claims.decide(["0", "n/a"]) == "inconclusive"


def _row(**kw):
    value = kw.pop("value")
    half = kw.pop("half", 0.01)
    return {"stage": "evaluate", "regime": "clean", "replicate": presets.POOLED, "value": value,
            "ci_low": value - half, "ci_high": value + half, "se": half / 2, "n": 100, **kw}


def _results(contrast_value: float, net_kl: float = 0.05) -> pd.DataFrame:
    lengths = presets.test_lengths(PARAMS)
    rows = [_row(variant="standard", target="eps_model", kind="outlier", eps=0.0, L=lengths[0],
                 metric="kl", value=net_kl),
            _row(variant="prior", target="eps_model", kind="outlier", eps=0.0, L=lengths[0],
                 metric="kl", value=1.2)]
    for variant in presets.VARIANTS:
        for kind in presets.KINDS:
            for length in lengths:
                rows.append(_row(variant=variant, target="eps_model", kind=kind, eps=0.2,
                                 L=length, metric="degradation", value=0.3))
                if variant != presets.BASELINE:
                    rows.append(_row(variant=variant, target="eps_model", kind=kind, eps=0.2,
                                     L=length, metric="degradation_vs_standard",
                                     value=contrast_value))
        if variant != presets.BASELINE:
            rows.append(_row(variant=variant, target="eps_model", kind="none", eps=0.0,
                             L=lengths[1], metric="length_degradation_vs_standard",
                             value=contrast_value))
    # a per-replicate row that must be ignored by the verdicts
    rows.append({**rows[-1], "replicate": 0, "value": -5.0, "ci_low": -5.1, "ci_high": -4.9})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("value", "expected"), [(-0.1, "supported"), (0.1, "not supported"),
                                                 (0.0, "inconclusive")])
def test_verdict_branches(value, expected):
    out = claims.verdicts(_results(value), PARAMS)
    assert [v.claim for v in out] == ["E6"] * 3
    assert {v.verdict for v in out} == {expected}
    assert all("contrast" in v.measured for v in out)
    assert "outlier_L8_contrast" in out[0].numbers


def test_verdict_inconclusive_when_standard_did_not_learn():
    out = claims.verdicts(_results(-0.1, net_kl=1.0), PARAMS)
    assert {v.verdict for v in out} == {"inconclusive"}
    assert "did not learn" in out[0].measured


def test_headline_pivots_pooled_kl():
    rows = [_row(variant=v, target="eps_model", kind="swap", eps=e, L=8, metric="kl",
                 value=0.1 + e) for v in ("standard", "twicing") for e in (0.0, 0.2)]
    table = claims.headline(pd.DataFrame(rows))
    assert list(table.columns) == ["regime", "variant", "kind", "L", "eps=0", "eps=0.2"]
    assert table["eps=0.2"].tolist() == pytest.approx([0.3, 0.3])


def test_verdict_reports_decisive_cells_and_learned_lambda():
    res = _results(-0.1)
    train = pd.DataFrame([{"stage": "train", "regime": "clean", "variant": "boosting",
                           "replicate": r, "metric": "boost_lambda", "layer": 0,
                           "value": 0.01 * (r + 1)} for r in range(2)])
    out = {v.statement.split()[0]: v for v in claims.verdicts(pd.concat([res, train]), PARAMS)}
    assert "outlier L = 8 (-)" in out["boosting"].measured
    assert "learned lambda per layer (mean [min, max] over seeds): +0.015 [+0.010, +0.020]" in (
        out["boosting"].measured)
    assert "learned lambda" not in out["twicing"].measured


def test_convergence_rows_against_zero_kl():
    rows = []
    for rep in range(2):
        for variant in presets.VARIANTS:
            value = 0.05 if (variant == "twicing" and rep == 1) else 0.004
            rows.append({"stage": "evaluate", "regime": "clean", "variant": variant,
                         "replicate": rep, "target": "eps_model", "kind": "outlier",
                         "eps": 0.0, "L": 16, "metric": "kl", "value": value, "se": 0.001})
            rows.append({"stage": "evaluate", "regime": "clean", "variant": variant,
                         "replicate": rep, "target": "eps_model", "kind": "outlier",
                         "eps": 0.2, "L": 16, "metric": "kl", "value": 1.0, "se": 0.01})
    params = {**presets.PRESETS["quick"], "replicates": 2}
    conv = claims.convergence(pd.DataFrame(rows), params).set_index("network")
    assert len(conv) == 2 * len(presets.VARIANTS)
    assert (conv["floor"] == 0).all() and (conv["tolerance"] == presets.TOLERANCE_NATS).all()
    assert not conv.loc["clean:twicing (seed 1)", "converged"]  # 0.05 > 0.01 nats
    assert conv.loc["clean:twicing (seed 0)", "converged"]
    assert conv["converged"].sum() == 2 * len(presets.VARIANTS) - 1


def test_work_grows_with_the_preset_size():
    smoke, quick, full = (presets.PRESETS[k] for k in ("smoke", "quick", "full"))
    assert 0 < presets.work(smoke) < presets.work(quick) < presets.work(full)
    base = dict(quick)
    for key, bigger in (("steps", 2 * base["steps"]), ("batch_size", 128), ("dim", 64),
                        ("num_layers", 3),
                        ("replicates", 5), ("train_eps", [0.0, 0.1]), ("train_len", 32),
                        ("test_sequences", 1024), ("num_resamples", 2000),
                        ("eps", [0.0, 0.05, 0.1, 0.2, 0.3]), ("length_factor", 8)):
        assert presets.work({**base, key: bigger}) > presets.work(base), key
    assert re6.EXPERIMENT.work is presets.work
    assert re6.EXPERIMENT.convergence is claims.convergence
