"""Helpers of the representations experiment (P1, P2, P3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import models
from bayesattn.experiments.representations import claims, helpers, presets


def test_mean_without_length_ignores_padding_and_count():
    model = models.get("normal-mean", d=2)
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [99.0, 99.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    out = helpers.mean_without_length(model)(x, mask)
    assert out.shape == (1, 2)
    torch.testing.assert_close(out, torch.tensor([[2.0, 3.0]], dtype=torch.float64))
    # the same set repeated twice has the same summary: the count L is not in it
    x2 = torch.cat([x[:, :2], x[:, :2]], 1)
    out2 = helpers.mean_without_length(model)(x2, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(out, out2)


def test_mean_without_length_one_hot_tokens():
    model = models.get("dirichlet-categorical", K=3)
    x = torch.tensor([[0, 0, 2, 1]])
    out = helpers.mean_without_length(model)(x, torch.tensor([[True, True, True, False]]))
    torch.testing.assert_close(out, torch.tensor([[2 / 3, 0.0, 1 / 3]], dtype=torch.float64))


def test_paired_difference_is_the_mean_difference_with_a_ci():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 400)
    per = np.stack([a + 0.5, a], -1)  # a large common component, constant difference
    row = helpers.paired_difference(per, 0, 1, seed=0, num_resamples=200)
    assert row["value"] == pytest.approx(0.5)
    assert row["ci_low"] == pytest.approx(0.5) and row["ci_high"] == pytest.approx(0.5)
    assert row["n"] == 400


def test_permute_sets_moves_mask_with_tokens_and_is_seeded():
    x = torch.arange(10, dtype=torch.float64).reshape(2, 5, 1)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    xs, masks = helpers.permute_sets(x, mask, 3, seed=1)
    xs2, _ = helpers.permute_sets(x, mask, 3, seed=1)
    assert len(xs) == len(masks) == 3
    for xp, mp, xq in zip(xs, masks, xs2, strict=True):
        torch.testing.assert_close(xp, xq)
        for b in range(2):
            # the multiset of real tokens is unchanged
            assert sorted(xp[b][mp[b]].flatten().tolist()) == sorted(
                x[b][mask[b]].flatten().tolist())
            assert int(mp[b].sum()) == int(mask[b].sum())
    assert any(not torch.equal(xp, x) for xp in xs)


def test_spread_measures():
    base = np.array([[0.0, -1.0], [2.0, 3.0]])
    permuted = [base + np.array([[0.0, 0.5], [0.0, 0.0]]),
                base + np.array([[0.1, 0.0], [0.0, -0.4]])]
    s = helpers.spread(base, permuted)
    np.testing.assert_allclose(s["max_abs"], [0.5, 0.4])
    np.testing.assert_allclose(s["mean_abs"], [0.6 / 4, 0.4 / 4])
    np.testing.assert_allclose(s["max_rel"], [0.5 / 2.0, 0.4 / 4.0])
    zero = helpers.spread(base, [base.copy()])
    assert all(np.all(v == 0) for v in zero.values())


def test_positional_control_depends_on_order_and_net_does_not():
    model = models.get("concept-mixture", K=3, d=2)
    net = helpers.build_net(model, {"dim": 8, "num_heads": 2}, seed=0).eval()
    batch = model.simulate(4, 6, seed=3)
    xs, masks = helpers.permute_sets(batch.x, batch.mask, 1, seed=0)
    control = helpers.positional_control(net)
    with torch.no_grad():
        a = net.posterior(batch.x, batch.mask).logits
        b = net.posterior(xs[0], masks[0]).logits
        c = control(batch.x, batch.mask).logits
        d = control(xs[0], masks[0]).logits
    assert float((a - b).abs().max()) < 1e-5
    assert float((c - d).abs().max()) > 1e-3


def test_primary_probe_prefers_mlp_when_present():
    assert claims.primary_probe(pd.DataFrame({"probe": ["linear", "mlp"]})) == "mlp"
    assert claims.primary_probe(pd.DataFrame({"probe": ["linear"]})) == "linear"
    assert claims.primary_probe(pd.DataFrame({"x": [1]})) == presets.PRIMARY_PROBE


def _p3_results(encoder_value: float, control_value: float) -> pd.DataFrame:
    rows = [{"stage": "invariance", "model": "m", "candidate": e, "kind": "encoder",
             "metric": "max_rel_change", "value": encoder_value}
            for e in presets.ENCODER_FAMILIES]
    rows.append({"stage": "invariance", "model": "m", "candidate": "control: x",
                 "kind": "control", "metric": "max_rel_change", "value": control_value})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("enc", "ctrl", "want"), [
    (1e-7, 1.0, "supported"),
    (1e-3, 1.0, "not supported"),
    (1e-7, 1e-6, "inconclusive"),
])
def test_p3_verdict_thresholds(enc, ctrl, want):
    assert claims._p3_verdict(_p3_results(enc, ctrl)).verdict == want


def test_p3_verdict_judges_the_representation_not_the_log_density():
    frame = _p3_results(1e-7, 1.0).assign(output="representation r(X)")
    tail = frame.assign(output="log q(z | X)", value=[1e-3] * 3 + [1.0])  # ill-conditioned
    v = claims._p3_verdict(pd.concat([frame, tail], ignore_index=True))
    assert v.verdict == "supported"
    assert v.numbers["worst_encoder_log_q_rel_change"] == pytest.approx(1e-3)


def test_fit_row_carries_the_plateau_test():
    hist = pd.DataFrame({"loss": np.r_[np.linspace(2.0, 1.0, 80), np.full(20, 1.0)]})
    row = helpers.plateau_numbers(hist)
    assert row["plateau_last"] == pytest.approx(1.0)
    assert np.isnan(helpers.plateau_numbers(hist.head(3))["plateau_drop"])


def _train_rows(stage, drops, **keys):
    return [{"stage": stage, **keys, "metric": "final_train_loss", "value": 1.0, "se": 0.01,
             "plateau_last": 1.0, "plateau_drop": d, "plateau_se": 0.001,
             "plateau_relative_drop": d / (1.0 + d), **({"N": 32} if stage == "train" else {})}
            for d in drops]


def test_convergence_rows_from_training_plateaus():
    rows = (_train_rows("train", [0.2], model="concept-mixture", representation="net N=32",
                        objective="kl")
            + _train_rows("minimality", [0.0005], model="normal-mean",
                          representation="net (mtp)", objective="mtp")
            + _train_rows("invariance", [np.nan], model="normal-mean", candidate="deepsets",
                          kind="training"))
    conv = claims.convergence(pd.DataFrame(rows), presets.PRESETS["quick"])
    assert list(conv["network"]) == ["P1 concept-mixture net N=32", "P2 normal-mean net (mtp)",
                                     "P3 normal-mean deepsets"]
    # still falling 20% (200 se): no; flat within 3 se: yes; history too short: no
    assert list(conv["converged"]) == [False, True, False]
    assert conv["floor"].isna().all()


def test_work_grows_with_size():
    w = {k: presets.work(v) for k, v in presets.PRESETS.items()}
    assert w["full"] > w["quick"] > w["smoke"] > 0
    base = presets.PRESETS["quick"]
    for key, bigger in (("steps", 1000), ("batch_size", 128), ("dim", 64),
                        ("train_sizes", [32, 256, 2048, 8192]), ("minimality_steps", 1000),
                        ("invariance_steps", 200), ("num_probe_train", 8000),
                        ("objectives", ["mtp", "kl"])):
        assert presets.work({**base, key: bigger}) > w["quick"], key
