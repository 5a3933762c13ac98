"""bayesattn.check: posterior, attention and sufficiency checks (issue 6, section 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import distributions as td

from bayesattn import models
from bayesattn.check import (
    CheckResult,
    assert_posterior_close,
    check_attention_is_bayes,
    check_posterior,
    check_sufficient,
)
from bayesattn.inference import DEFAULT_GATE, Reference
from bayesattn.inference._diagnostics import iid_diagnostics
from bayesattn.inference.oracle import ConceptMixtureOracle

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"num_sequences": 8, "seq_len": 8}


# ---------------------------------------------------------------------- helpers
def _normal_mean():
    return models.get("normal-mean")


def _shifted(model, shift):
    def candidate(x):
        d = model.exact_posterior(x)
        return td.MultivariateNormal(d.mean + shift, d.covariance_matrix)
    return candidate


def _widened(model, factor):
    def candidate(x):
        d = model.exact_posterior(x)
        return td.MultivariateNormal(d.mean, factor * d.covariance_matrix)
    return candidate


def _beta_prior(model):
    a, b = model.params["a"], model.params["b"]

    def candidate(x):
        n = x.shape[0]
        return td.Beta(torch.full((n,), float(a)), torch.full((n,), float(b)))
    return candidate


# ---------------------------------------------------------------------- exact posteriors pass
@pytest.mark.parametrize(
    "name", ["concept-mixture", "normal-mean", "dirichlet-categorical", "beta-bernoulli"]
)
def test_exact_posterior_passes_with_zero_statistic(name):
    m = models.get(name)
    result = check_posterior(m.exact_posterior, m, **SMALL)
    assert isinstance(result, CheckResult)
    assert result.passed and bool(result)
    assert result.statistic == pytest.approx(0.0, abs=1e-10)
    assert result.reference == "exact" and not result.invalid
    assert result.per_dataset.shape == (8,)
    assert "passed" in result.message and name in result.message


def test_model_given_by_name_and_module_with_posterior_method():
    m = models.get("concept-mixture")
    assert check_posterior(m.exact_posterior, "concept-mixture", **SMALL).passed
    assert check_posterior(ConceptMixtureOracle(m), m, **SMALL).passed


def test_variable_lengths_use_the_mask():
    m = models.get("beta-bernoulli")
    result = check_posterior(m.exact_posterior, m, num_sequences=8, seq_len=(2, 12))
    assert result.passed
    assert result.details["seq_len"][0] >= 2 and result.details["seq_len"][1] <= 12
    tokens_only = check_posterior(lambda x: m.exact_posterior(x), m, num_sequences=8,
                                  seq_len=(2, 12))
    assert not tokens_only.passed and tokens_only.invalid
    assert "fn(x, mask)" in tokens_only.message


# ---------------------------------------------------------------------- wrong candidates fail
@pytest.mark.parametrize(
    "make, hint",
    [
        (lambda m: _shifted(m, 0.5), "mean is off"),
        (lambda m: _widened(m, 9.0), "over-dispersed"),
    ],
    ids=["shifted-mean", "over-dispersed"],
)
def test_wrong_continuous_candidate_fails_naming_worst_sequence(make, hint):
    m = _normal_mean()
    result = check_posterior(make(m), m, **SMALL)
    assert not result.passed and not result.invalid
    assert result.statistic > 0.05
    worst = result.worst[0]
    assert f"sequence {worst.index} (L=8)" in result.message
    assert "> tol 0.05" in result.message and hint in result.message
    assert set(worst.expected) == {"mean", "sd"} and set(worst.got) == {"mean", "sd"}
    assert worst.value == pytest.approx(result.per_dataset.max())


def test_prior_as_candidate_fails():
    m = models.get("beta-bernoulli")
    result = check_posterior(_beta_prior(m), m, num_sequences=8, seq_len=32)
    assert not result.passed
    assert result.message.startswith("check_posterior FAILED (beta-bernoulli)")
    assert "sequence" in result.message and "expected mean" in result.message


def test_probabilities_path():
    m = models.get("concept-mixture")
    k = m.params["K"]
    exact_probs = check_posterior(lambda x: m.exact_posterior(x).probs, m, **SMALL)
    assert exact_probs.passed and exact_probs.statistic == pytest.approx(0, abs=1e-10)
    uniform = check_posterior(lambda x: torch.full((x.shape[0], k), 1.0 / k), m, **SMALL)
    assert not uniform.passed and not uniform.invalid
    w = uniform.worst[0]
    assert f"sequence {w.index} (L=8): expected P(z=" in uniform.message
    assert "got 0.25" in uniform.message


def test_zero_probability_where_exact_has_mass_gives_infinite_kl():
    m = models.get("concept-mixture")
    hard = ConceptMixtureOracle(m, mode="hard")  # one-hot readout
    result = check_posterior(hard, m, num_sequences=8, seq_len=2)
    assert not result.passed and result.statistic == math.inf
    assert "got 0 (KL inf)" in result.message and "zero density" in result.message


# ---------------------------------------------------------------------- bad candidates
def _boom(x):
    raise RuntimeError("boom")


BAD = [
    ("concept-mixture", lambda x: torch.full((x.shape[0], 3), 1 / 3), "expected (B, K) = (8, 4)"),
    ("concept-mixture", lambda x: torch.full((x.shape[0], 4), 0.3), "unnormalised"),
    ("concept-mixture", lambda x: torch.full((x.shape[0], 4), 0.25).log(), "negative prob"),
    ("concept-mixture", lambda x: torch.full((x.shape[0], 4), float("nan")), "NaN/inf"),
    ("concept-mixture", lambda x: td.Categorical(logits=torch.zeros(2, 4)),
     "batch_shape (2,); expected (8,)"),
    ("concept-mixture", lambda x: td.Normal(0.0, 1.0), "expected a torch.distributions.Categ"),
    ("normal-mean", lambda x: td.Normal(torch.zeros(x.shape[0], 2), 1.0), "Independent"),
    ("normal-mean", lambda x: "posterior", "returned str; expected a torch.distributions"),
    ("normal-mean", lambda x: torch.zeros(x.shape[0], 2), "continuous latent"),
    ("normal-mean", lambda x: np.zeros((x.shape[0], 2)), "returned an ndarray of shape (8, 2)"),
    ("normal-mean", lambda x: td.Exponential(torch.ones(x.shape[0], 3)),
     "returned an Exponential with batch_shape (8, 3)"),
    ("normal-mean", _boom, "raised RuntimeError: boom"),
    ("beta-bernoulli", lambda x: td.Normal(torch.zeros(x.shape[0]), 1.0), "wrong support"),
    ("beta-bernoulli",
     lambda x: td.Beta(torch.full((x.shape[0],), float("nan")), torch.ones(x.shape[0]),
                       validate_args=False), "NaN/inf"),
    ("gamma-poisson", lambda x: td.Gamma(-torch.ones(x.shape[0]), 1.0), "raised ValueError"),
]


@pytest.mark.parametrize("name, candidate, fragment", BAD)
def test_bad_candidate_gives_failed_result_with_clear_message(name, candidate, fragment):
    result = check_posterior(candidate, name, **SMALL)
    assert not result.passed and result.invalid
    assert math.isnan(result.statistic)
    assert fragment in result.message, result.message
    assert result.message.startswith(f"check_posterior FAILED ({name})")


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"model": "concept-mixtur"}, ValueError, "concept-mixture"),
        ({"model": 3}, TypeError, "ExchangeableModel"),
        ({"seq_len": 0}, ValueError, "seq_len"),
        ({"seq_len": (5, 2)}, ValueError, "low <= high"),
        ({"num_sequences": 0}, ValueError, "num_sequences"),
        ({"tol": 0.0}, ValueError, "tol"),
        ({"tol": -1}, ValueError, "tol"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"candidate": "not callable"}, TypeError, "candidate"),
    ],
)
def test_bad_arguments_raise(kwargs, error, fragment):
    m = models.get("beta-bernoulli")
    args = {"candidate": m.exact_posterior, "model": m, **kwargs}
    with pytest.raises(error, match=fragment):
        check_posterior(args.pop("candidate"), args.pop("model"), **args)


def test_assert_posterior_close():
    m = _normal_mean()
    assert assert_posterior_close(m.exact_posterior, m, **SMALL).passed
    with pytest.raises(AssertionError, match=r"sequence \d+ \(L=8\)"):
        assert_posterior_close(_shifted(m, 1.0), m, **SMALL)
    with pytest.raises(AssertionError, match="raised RuntimeError: boom"):
        assert_posterior_close(_boom, m, **SMALL)


def test_monte_carlo_kl_is_deterministic_and_leaves_global_rng_alone():
    m = models.get("beta-bernoulli")

    def kumaraswamy(x):  # no closed-form KL(Beta || Kumaraswamy): Monte Carlo path
        d = m.exact_posterior(x)
        return td.Kumaraswamy(d.concentration1, d.concentration0)

    state = torch.random.get_rng_state()
    a = check_posterior(kumaraswamy, m, seed=3, **SMALL)
    b = check_posterior(kumaraswamy, m, seed=3, **SMALL)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.statistic == b.statistic and np.isfinite(a.statistic) and a.statistic > 0
    assert a.message == b.message


def test_repr_and_html():
    m = models.get("concept-mixture")
    ok = check_posterior(m.exact_posterior, m, **SMALL)
    bad = check_posterior(lambda x: torch.full((x.shape[0], 4), 0.25), m, **SMALL)
    assert "PASSED" in repr(ok) and "FAILED" in repr(bad)
    assert "<table>" in bad._repr_html_() and "FAILED" in bad._repr_html_()


# ---------------------------------------------------------------------- sample-based references
def _draws_reference(model, num_sequences=3, seq_len=8, num_draws=600, seed=0):
    """A Reference that holds only draws (as an MCMC one does), made from exact draws.

    ``idata`` is left out (the draws are stored directly) to keep ArviZ out of this test.
    """
    batch = model.simulate(num_sequences, seq_len, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 100)
        z = model.exact_posterior(batch.x).sample((num_draws,))  # (S, B, *latent)
    return Reference(model=model, x=batch.x, mask=batch.mask, method="nuts", distribution=None,
                     idata=None, diagnostics=iid_diagnostics(num_sequences, num_draws),
                     gate=DEFAULT_GATE, seed=seed, wall_time_s=0.0, _draws=z)


def test_sample_reference_path_energy_and_c2st():
    m = _normal_mean()
    ref = _draws_reference(m)
    good = check_posterior(m.exact_posterior, m, reference=ref)
    assert good.passed and good.reference == "nuts"
    assert "energy coefficient" in good.statistic_name
    bad = check_posterior(_shifted(m, 0.5), m, reference=ref)
    assert not bad.passed and f"sequence {bad.worst[0].index} (L=8)" in bad.message
    one = _draws_reference(m, num_sequences=1, num_draws=200)
    c2 = check_posterior(_shifted(m, 1.0), m, reference=one, sample_statistic="c2st")
    assert not c2.passed and "C2ST" in c2.statistic_name


@pytest.mark.slow
def test_nuts_reference_path_logistic_regression():
    m = models.get("logistic-regression")
    opts = {"num_samples": 300, "num_warmup": 300, "num_chains": 4}

    def prior(x):
        scale = m.params["prior_scale"]
        return td.Independent(td.Normal(torch.zeros(x.shape[0], 2, dtype=torch.float64),
                                        scale), 1)

    result = check_posterior(prior, m, num_sequences=2, seq_len=8, reference_options=opts)
    assert result.reference == "nuts" and np.isfinite(result.statistic)
    assert "diagnostics" in result.details
    assert not result.passed and "sequence" in result.message  # the prior is not the posterior


# ---------------------------------------------------------------------- attention is Bayes
def _softmax_attention(queries, keys, values):
    weights = torch.softmax(queries @ keys.mT, dim=-1)  # (B, Q, L)
    return weights @ values  # (B, Q, 1)


def test_cme_identity_passes_for_library_and_fails_for_softmax():
    ok = check_attention_is_bayes(seq_len=(1, 8, 32))
    assert ok.passed and ok.statistic < 1e-9
    bad = check_attention_is_bayes(_softmax_attention, seq_len=(1, 8, 32))
    assert not bad.passed and bad.statistic > 1e-3
    assert f"sequence {bad.worst[0].index} (L=" in bad.message and "expected" in bad.message


def test_cme_bad_attention_output_is_a_failed_result():
    wrong = check_attention_is_bayes(lambda q, k, v: q @ k.mT, seq_len=4)
    assert wrong.invalid and "expected (B, Q, 1)" in wrong.message
    raises = check_attention_is_bayes(lambda q, k, v: _boom(q), seq_len=4)
    assert raises.invalid and "raised RuntimeError: boom" in raises.message


def test_concept_mixture_oracle_passes_and_perturbed_fails():
    m = models.get("concept-mixture")
    assert check_attention_is_bayes(task="concept-mixture").passed
    logp = check_attention_is_bayes(lambda x: m.exact_posterior(x).logits,
                                    task="concept-mixture", model=m)
    assert logp.passed
    perturbed = ConceptMixtureOracle(m, mode="fixed-length", L0=16.0)
    bad = check_attention_is_bayes(perturbed, task="concept-mixture", model=m)
    assert not bad.passed and "TV" in bad.statistic_name
    assert bad.worst[0].length != 16 and "expected P(z=" in bad.message


@pytest.mark.parametrize(
    "kwargs, error",
    [({"task": "kernel"}, ValueError), ({"task": "cme", "model": "concept-mixture"}, TypeError),
     ({"seq_len": 0}, ValueError), ({"tol": 0}, ValueError)],
)
def test_attention_bad_arguments_raise(kwargs, error):
    with pytest.raises(error):
        check_attention_is_bayes(**kwargs)


# ---------------------------------------------------------------------- sufficiency
SUFF = {"num_train": 2000, "num_test": 1000, "seq_len": 8}


def _mean_and_count(x, mask):
    m = mask[..., None].to(x.dtype)
    count = mask.sum(-1, keepdim=True).to(x.dtype)  # (B, 1)
    return torch.cat([(x * m).sum(1) / count, count], dim=-1)  # (B, d + 1)


def test_sufficient_statistic_passes_first_token_fails():
    m = _normal_mean()
    ok = check_sufficient(_mean_and_count, m, **SUFF)
    assert ok.passed, ok.message
    assert "excess risk" in ok.message and "recoverable" in ok.message
    bad = check_sufficient(lambda x: x[:, 0], m, **SUFF)
    assert not bad.passed and bad.statistic > ok.statistic
    assert "loses information" in bad.message


def test_sufficient_bad_representation_and_arguments():
    m = _normal_mean()
    flat = check_sufficient(lambda x: x[:, 0, 0], m, **SUFF)
    assert flat.invalid and "(B, d)" in flat.message
    raises = check_sufficient(_boom, m, **SUFF)
    assert raises.invalid and "raised RuntimeError: boom" in raises.message
    with pytest.raises(ValueError, match="exact posterior"):
        check_sufficient(_mean_and_count, "logistic-regression", **SUFF)
    with pytest.raises(ValueError, match="tol"):
        check_sufficient(_mean_and_count, m, tol=0, **SUFF)
