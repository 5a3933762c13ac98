"""Approximation gap: zero for the exact posterior, closed forms, slopes, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn import models
from bayesattn.gaps import approximation_gap, gap_vs_length, loglog_slope, per_dataset_gaps
from bayesattn.inference.oracle import ConceptMixtureOracle

COLUMNS = ["metric", "value", "ci_low", "ci_high", "se", "n"]


@pytest.fixture(scope="module")
def mixture():
    return models.get("concept-mixture", K=3, d=2)


@pytest.fixture(scope="module")
def normal():
    return models.get("normal-mean", d=2)


def _metric(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame.loc[frame["metric"] == name].iloc[0]


def test_exact_posterior_has_zero_gap_discrete(mixture):
    x = mixture.simulate(16, 12, seed=0).x
    p = mixture.exact_posterior(x)
    out = approximation_gap(p, p)
    assert list(out.columns) == COLUMNS
    for name in ("kl_forward", "kl_reverse", "tv"):
        assert abs(_metric(out, name)["value"]) < 1e-12
    ent = out.set_index("metric")["value"]
    assert ent["entropy_q"] == pytest.approx(ent["entropy_exact"], abs=1e-12)


def test_exact_posterior_has_zero_gap_continuous(normal):
    x = normal.simulate(8, 10, seed=1).x
    p = normal.exact_posterior(x)
    out = approximation_gap(p, p).set_index("metric")["value"]
    assert abs(out["kl_forward"]) < 1e-10 and abs(out["kl_reverse"]) < 1e-10
    assert abs(out["mean_error_sd"]) < 1e-10 and abs(out["log_var_ratio"]) < 1e-10


def test_shifted_gaussian_matches_closed_form(normal):
    """q = p shifted by delta * sd in every coordinate: KL = 0.5 dᵀ Σ⁻¹ d, error = delta."""
    x = normal.simulate(6, 10, seed=2).x
    p = normal.exact_posterior(x)
    delta = 0.3
    shift = delta * p.stddev
    q = torch.distributions.MultivariateNormal(p.mean + shift, scale_tril=p.scale_tril)
    per = per_dataset_gaps(q, p)
    kl = per.loc[per["metric"] == "kl_forward", "value"].to_numpy()
    sol = torch.linalg.solve(p.covariance_matrix, shift.unsqueeze(-1)).squeeze(-1)
    expected = 0.5 * (shift * sol).sum(-1).numpy()
    np.testing.assert_allclose(kl, expected, rtol=1e-10)
    err = per.loc[per["metric"] == "mean_error_sd", "value"].to_numpy()
    np.testing.assert_allclose(err, delta, rtol=1e-10)


def test_overconfident_q_has_negative_log_var_ratio(normal):
    x = normal.simulate(6, 10, seed=3).x
    p = normal.exact_posterior(x)
    q = torch.distributions.MultivariateNormal(p.mean, scale_tril=0.5 * p.scale_tril)
    out = approximation_gap(q, p).set_index("metric")["value"]
    assert out["log_var_ratio"] == pytest.approx(np.log(0.25), rel=1e-10)


class _DrawsReference:
    """Stands in for an MCMC Reference: draws only, no density."""

    def __init__(self, draws: torch.Tensor):
        self._d = draws
        self.distribution = None
        self.num_datasets = draws.shape[1]

    def draws(self):
        return self._d

    def sample(self, n, *, seed=0):
        return self._d[:n]


def test_mcmc_style_reference_uses_moments(normal):
    x = normal.simulate(20, 10, seed=4).x
    p = normal.exact_posterior(x)
    s = 4000
    with torch.random.fork_rng():
        torch.manual_seed(0)
        draws = p.sample((s,))
    per = per_dataset_gaps(p, _DrawsReference(draws))
    assert set(per["metric"]) == {"mean_error_sd", "log_var_ratio", "posterior_sd"}
    err = per.loc[per["metric"] == "mean_error_sd", "value"].to_numpy()
    # each coordinate's draw-mean error is N(0, 1/S) in sd units: E|.| = sqrt(2/(pi S))
    assert err.mean() < 4 * np.sqrt(2 / (np.pi * s))
    lvr = per.loc[per["metric"] == "log_var_ratio", "value"].to_numpy()
    assert np.abs(lvr).max() < 6 * np.sqrt(2 / s)  # sd of a log sample variance ≈ sqrt(2/S)


def test_sample_metrics_are_near_chance_for_the_exact_posterior(normal):
    x = normal.simulate(3, 10, seed=5).x
    p = normal.exact_posterior(x)
    out = approximation_gap(p, p, num_samples=400, sample_metrics=True).set_index("metric")
    assert abs(out.loc["c2st", "value"] - 0.5) < 0.1
    assert out.loc["w2", "value"] < 0.5 * float(p.stddev.mean())


def test_gap_vs_length_exact_oracle_is_zero_and_fixed_length_is_not(mixture):
    exact = ConceptMixtureOracle(mixture, mode="exact")
    summary = gap_vs_length(exact, mixture, [2, 8, 32], num_sequences=32, seed=0)
    assert list(summary.columns) == ["L", *COLUMNS]
    assert summary.loc[summary["metric"] == "kl_forward", "value"].abs().max() < 1e-10
    # a float64 oracle gets float64 tokens: even TV (first order) is at round-off
    assert summary.loc[summary["metric"] == "tv", "value"].abs().max() < 1e-14
    # overlapping concepts, so that the posterior is not yet a point mass at L = 32
    vague = models.get("concept-mixture", K=3, d=2, radius=0.5)
    fixed = ConceptMixtureOracle(vague, mode="fixed-length", L0=8)
    out = gap_vs_length(fixed, vague, [2, 8, 32], num_sequences=32, seed=0)
    kl = out.loc[out["metric"] == "kl_forward"].set_index("L")["value"]
    assert kl[8] < 1e-10 and kl[2] > 1e-3 and kl[32] > 1e-3


def test_loglog_slope_recovers_a_power_law():
    rng = np.random.default_rng(0)
    rows = []
    for length in (4, 16, 64, 256):
        vals = 2.0 * length**-0.5 * rng.lognormal(0.0, 0.3, size=200)
        rows += [{"L": length, "dataset": i, "metric": "err", "value": v}
                 for i, v in enumerate(vals)]
    est = loglog_slope(pd.DataFrame(rows), "err", num_resamples=400)
    assert est.ci_low < -0.5 < est.ci_high
    assert est.ci_high - est.ci_low < 0.1 and est.n == 4


def test_loglog_slope_of_hard_oracle_is_negative(mixture):
    hard = ConceptMixtureOracle(mixture, mode="hard")
    _, per = gap_vs_length(hard, mixture, [2, 4, 8, 16], num_sequences=64, seed=1,
                           per_sequence=True)
    est = loglog_slope(per, "tv", num_resamples=300)
    assert est.ci_high < 0


def test_bad_input(mixture, normal):
    x = mixture.simulate(4, 5, seed=0).x
    p = mixture.exact_posterior(x)
    with pytest.raises(ValueError, match="batch_shape"):
        per_dataset_gaps(mixture.exact_posterior(x[:3]), p)
    with pytest.raises(TypeError, match="Reference or a torch Distribution"):
        per_dataset_gaps(p, "not a reference")
    with pytest.raises(TypeError, match="exact Categorical"):
        xn = normal.simulate(4, 5, seed=0).x
        per_dataset_gaps(p, normal.exact_posterior(xn))
    with pytest.raises(ValueError, match="lengths"):
        gap_vs_length(ConceptMixtureOracle(mixture), mixture, [0, 4])
    with pytest.raises(TypeError, match="posterior"):
        gap_vs_length(42, mixture, [4])
    with pytest.raises(ValueError, match="metric"):
        loglog_slope(pd.DataFrame({"L": [1, 2], "dataset": [0, 0], "metric": ["a", "a"],
                                   "value": [1.0, 2.0]}), "b")
