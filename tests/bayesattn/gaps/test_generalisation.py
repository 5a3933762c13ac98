"""Generalisation gap: fixed training sets, per-sequence losses, slopes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import models
from bayesattn.gaps import fit_slope, generalisation_gap, sequence_losses
from bayesattn.inference import AmortizedPosterior, fixed_training_set
from bayesattn.inference._train import _Data


@pytest.fixture(scope="module")
def mixture():
    return models.get("concept-mixture", K=3, d=2)


def test_fixed_training_set_is_the_trainers(mixture):
    data = _Data(mixture, 8, (4, 9), 5, torch.device("cpu"), 20, [0])
    ours = fixed_training_set(mixture, 20, (4, 9), seed=5)
    for field in ("z", "x", "y", "mask"):
        assert torch.equal(getattr(data.fixed, field), getattr(ours, field))
    assert ours.mask.sum(-1).min() >= 4 and ours.mask.sum(-1).max() <= 9
    with pytest.raises(ValueError, match="train_size"):
        fixed_training_set(mixture, 0, 4)


def test_sequence_losses_match_direct_computation(mixture):
    net = AmortizedPosterior(mixture, encoder="deepsets", encoder_options={"dim": 16}, seed=0)
    batch = mixture.simulate(10, 6, seed=1)
    out = sequence_losses(net, mixture, batch, chunk=4)
    with torch.no_grad():
        q = net.posterior(batch.x.float(), batch.mask)
        nll = -q.log_prob(batch.z).double().numpy()
        p = mixture.exact_posterior(batch.x)
        kl = (p.probs * (p.logits - q.logits.double())).sum(-1).numpy()
    np.testing.assert_allclose(out["nll"], nll, rtol=1e-6)
    np.testing.assert_allclose(out["kl"], kl, rtol=1e-6, atol=1e-9)


def test_generalisation_gap_frame(mixture):
    frame = generalisation_gap(
        mixture, train_sizes=[4, 64], lengths=[6], steps=60, batch_size=16,
        encoder="deepsets", encoder_options={"dim": 16}, num_test=64, seed=0,
        num_resamples=200,
    )
    assert set(frame.columns) == {"N", "L", "metric", "value", "ci_low", "ci_high", "se", "n"}
    assert set(frame["metric"]) == {"train_nll", "test_nll", "gap_nll", "train_kl", "test_kl",
                                    "gap_kl"}
    wide = frame.pivot_table(index="N", columns="metric", values="value")
    np.testing.assert_allclose(wide["gap_nll"], wide["test_nll"] - wide["train_nll"], rtol=1e-9)
    # 60 steps on 4 sequences memorise them: training loss well below test loss
    assert wide.loc[4, "gap_nll"] > 0
    assert np.isfinite(frame[["value", "ci_low", "ci_high", "se"]].to_numpy()).all()


def test_fit_slope_on_exact_lines():
    n = np.array([10.0, 100.0, 1000.0])
    frame = pd.DataFrame({"N": n, "metric": "gap", "value": 3.0 * n**-0.5, "se": 0.0})
    est = fit_slope(frame, "gap", x="N", log_y=True)
    assert est.value == pytest.approx(-0.5, abs=1e-12) and est.n == 3
    frame2 = pd.DataFrame({"L": n, "metric": "gap", "value": 0.1 + 0.0 * n, "se": 0.01})
    flat = fit_slope(frame2, "gap", x="L", log_y=False, num_resamples=500)
    assert abs(flat.value) < 1e-12 and flat.ci_low < 0 < flat.ci_high
    with pytest.raises(ValueError, match="mean <= 0"):
        fit_slope(frame2.assign(value=-1.0), "gap", x="L", log_y=True)
    with pytest.raises(ValueError, match="distinct"):
        fit_slope(frame.iloc[:1], "gap", x="N")


def test_fit_slope_log_scale_ci_covers_the_true_rate_at_nominal_frequency():
    """Noisy points around 2 N^-1/2 (se = 30% of the mean, so normal redraws on the raw
    scale would often be <= 0): the 95% CI is always finite and covers -1/2 at its
    nominal rate within binomial error over 200 repetitions."""
    n = np.array([64, 128, 256, 512, 1024, 2048], float)
    truth = 2.0 * n**-0.5
    rng = np.random.default_rng(0)
    hits = 0
    reps = 200
    for r in range(reps):
        # observed means: log-normal around the truth with the delta-method log-scale sd
        obs = truth * np.exp(rng.normal(0.0, 0.3, size=n.size))
        frame = pd.DataFrame({"metric": "gap", "N": n, "value": obs, "se": 0.3 * obs})
        est = fit_slope(frame, "gap", x="N", log_y=True, num_resamples=400, seed=r)
        assert np.isfinite(est.ci_low) and np.isfinite(est.ci_high)
        hits += est.ci_low <= -0.5 <= est.ci_high
    coverage = hits / reps
    assert abs(coverage - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / reps) + 0.02
