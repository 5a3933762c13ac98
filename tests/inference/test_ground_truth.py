"""Ground truth: exact posteriors vs NUTS, SBC, the convergence gate, the Pyro twin.

Tolerances come from Monte Carlo standard errors: a NUTS mean must lie within
``Z`` MCSEs of the exact mean, with MCSE = sd / sqrt(ESS_bulk); a NUTS sd within
``Z`` standard errors of the exact sd, with se(sd) ~= sd * sqrt((kurtosis - 1) / (4 ESS))
(we use the Gaussian value 1/sqrt(2 ESS) times a factor 1.5 for heavier tails).
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from bayesattn import inference, models
from bayesattn.inference import UnconvergedReferenceError
from bayesattn.models import NoExactPosterior

Z = 4.5  # two-sided family-wise level well below 1e-3 per test for the sizes used here

CONTINUOUS_EXACT = [
    n for n in models.names()
    if models.get(n).has_exact_posterior and not models.get(n).latent_is_discrete
]
MCMC_ONLY = [n for n in models.names() if not models.get(n).has_exact_posterior]
EXACT = [n for n in models.names() if models.get(n).has_exact_posterior]


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTINUOUS_EXACT)
def test_nuts_matches_exact_posterior(name):
    m = models.get(name)
    batch = m.simulate(3, 12, seed=21)
    exact = inference.reference_posterior(m, batch.x, method="exact")
    ref = inference.reference_posterior(
        m, batch.x, method="nuts", num_samples=1000, num_warmup=700, seed=5
    )
    assert ref.converged, ref.diagnostics
    ess = torch.tensor(ref.diagnostics["ess_bulk"].to_numpy()).reshape(
        (-1,) + (1,) * len(m.latent_shape)
    )
    sd = exact.stddev
    mean_err = (ref.mean - exact.mean).abs() / (sd / ess.sqrt())
    assert float(mean_err.max()) < Z, mean_err
    sd_err = (ref.stddev - sd).abs() / (1.5 * sd / (2 * ess).sqrt())
    assert float(sd_err.max()) < Z, sd_err


def _importance_mean(m, x, num_draws, seed):
    """Self-normalised importance sampling from the prior using the Pyro pieces."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = m.pyro_prior("cpu").sample((num_draws,))  # (N, *latent)
    loglik = m.pyro_likelihood(z.unsqueeze(1)).log_prob(x[0])  # (N, L)
    logw = loglik.sum(-1)
    w = torch.softmax(logw, 0)
    ess = float(1.0 / (w**2).sum())
    zf = z.reshape(num_draws, -1)
    mean = (w[:, None] * zf).sum(0)
    var = (w[:, None] * (zf - mean) ** 2).sum(0)
    return mean, var, ess


@pytest.mark.slow
@pytest.mark.parametrize("name", MCMC_ONLY)
def test_nuts_matches_importance_sampling_without_closed_form(name):
    """Independent check where no closed form exists: IS from the prior (low-dim, small L)."""
    m = models.get(name)
    batch = m.simulate(1, 10, seed=8)
    ref = inference.reference_posterior(m, batch.x, num_samples=1000, num_warmup=700, seed=2)
    assert ref.method == "nuts" and ref.converged, ref.diagnostics
    is_mean, is_var, is_ess = _importance_mean(m, batch.x, 200_000, seed=3)
    assert is_ess > 2000
    nuts_mean = ref.mean.reshape(-1)
    ess = float(ref.diagnostics["ess_bulk"].iloc[0])
    se = (is_var / ess + is_var / is_ess).sqrt()
    assert float(((nuts_mean - is_mean).abs() / se).max()) < Z


@pytest.mark.slow
@pytest.mark.parametrize("name", EXACT)
def test_simulation_based_calibration_of_exact_posterior(name):
    """Ranks of the true z among posterior draws are uniform (KS, Bonferroni over coords)."""
    m = models.get(name)
    n_sims, n_draws = 300, 99
    batch = m.simulate(n_sims, 8, seed=123)
    post = m.exact_posterior(batch.x)
    gen = torch.Generator().manual_seed(7)
    if m.latent_is_discrete:
        # Randomised PIT for a discrete latent: F(z-1) + U * p(z).
        probs = post.probs
        cdf_below = (probs.cumsum(-1) - probs).gather(-1, batch.z.long()[:, None])[:, 0]
        p_true = probs.gather(-1, batch.z.long()[:, None])[:, 0]
        u = (cdf_below + torch.rand(n_sims, generator=gen, dtype=torch.float64) * p_true)[:, None]
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(9)
            draws = post.sample((n_draws,))  # (M, N, *latent)
        flat_d = draws.reshape(n_draws, n_sims, -1)
        flat_z = batch.z.reshape(n_sims, -1)
        ranks = (flat_d < flat_z).sum(0).double()  # (N, coords)
        jitter = torch.rand(ranks.shape, generator=gen, dtype=torch.float64)
        u = (ranks + jitter) / (n_draws + 1)
    n_coords = u.shape[1]
    pvals = [stats.kstest(u[:, j].numpy(), "uniform").pvalue for j in range(n_coords)]
    assert min(pvals) > 0.01 / n_coords, pvals


@pytest.mark.slow
def test_pyro_nuts_backend_agrees_with_exact():
    m = models.get("beta-bernoulli", a=2.0, b=3.0)
    batch = m.simulate(1, 20, seed=0)
    ref = inference.reference_posterior(
        m, batch.x, method="pyro-nuts", num_samples=300, num_warmup=200, num_chains=4, seed=0
    )
    exact = m.exact_posterior(batch.x)
    assert ref.idata.posterior.sizes["chain"] == 4
    draws = ref.draws()
    ess = float(ref.diagnostics["ess_bulk"].iloc[0])
    assert ess > 200
    err = abs(float(draws.mean()) - float(exact.mean[0])) / (float(exact.stddev[0]) / ess**0.5)
    assert err < Z


def test_exact_reference_api():
    m = models.get("normal-mean")
    batch = m.simulate(4, 10, seed=0)
    ref = inference.reference_posterior(m, batch.x, num_samples=50, seed=3)
    assert ref.method == "exact" and ref.converged and ref.is_exact
    s = ref.sample(7, seed=1)
    assert s.shape == (7, 4, *m.latent_shape)
    assert torch.equal(s, ref.sample(7, seed=1))
    assert ref.mean.shape == (4, *m.latent_shape)
    assert ref.log_prob(batch.z).shape == (4,)
    assert ref.idata.posterior["z"].dims[:3] == ("chain", "draw", "dataset")
    assert ref.idata.posterior.sizes["chain"] == 4 and ref.idata.posterior.sizes["draw"] == 50
    assert set(ref.diagnostics.columns) >= {"r_hat", "ess_bulk", "ess_tail", "divergences"}


def test_discrete_reference_mean_is_probabilities():
    m = models.get("concept-mixture")
    batch = m.simulate(3, 5, seed=0)
    ref = inference.reference_posterior(m, batch.x)
    torch.testing.assert_close(ref.mean, m.exact_posterior(batch.x).probs)
    with pytest.raises(TypeError, match="discrete"):
        _ = ref.stddev
    with pytest.raises(ValueError, match="discrete"):
        inference.reference_posterior(m, batch.x, method="nuts")


def test_unconverged_reference_refuses_to_be_ground_truth():
    m = models.get("beta-bernoulli")
    batch = m.simulate(2, 10, seed=0)
    ref = inference.reference_posterior(m, batch.x, method="nuts", num_samples=15,
                                        num_warmup=10, seed=0)
    assert not ref.converged
    assert {"posterior", "sample_stats", "observed_data"} <= set(ref.idata.groups())
    assert len(ref.diagnostics) == 2  # still readable
    with pytest.raises(UnconvergedReferenceError, match="ess_bulk"):
        _ = ref.mean
    with pytest.raises(UnconvergedReferenceError):
        ref.sample(5)
    loose = inference.reference_posterior(m, batch.x, method="nuts", num_samples=15,
                                          num_warmup=10, seed=0, allow_unconverged=True)
    assert loose.mean.shape == (2,)
    with pytest.raises(NoExactPosterior, match="log_prob"):
        loose.log_prob(loose.mean)
    with pytest.raises(ValueError, match="stores 60"):
        loose.sample(61)


def test_nuts_sample_stats_and_masks():
    m = models.get("gamma-poisson")
    batch = m.simulate(2, 12, seed=1)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 6:] = False
    ref = inference.reference_posterior(m, batch.x, mask=mask, method="nuts", num_samples=600,
                                        num_warmup=500, seed=4, allow_unconverged=True)
    ss = ref.idata.sample_stats
    assert {"diverging", "n_steps", "acceptance_rate", "energy", "lp", "step_size"} <= set(ss)
    assert ss["diverging"].dims == ("chain", "draw", "dataset")
    exact = m.exact_posterior(batch.x, mask)
    ess = torch.tensor(ref.diagnostics["ess_bulk"].to_numpy())
    err = (ref.draws().mean(0) - exact.mean).abs() / (exact.stddev / ess.sqrt())
    assert float(err.max()) < Z


def test_reference_posterior_input_errors():
    m = models.get("beta-bernoulli")
    x = m.simulate(2, 5, seed=0).x
    with pytest.raises(ValueError, match="method"):
        inference.reference_posterior(m, x, method="gibbs")
    with pytest.raises(ValueError, match="num_samples"):
        inference.reference_posterior(m, x, num_samples=0)
    with pytest.raises(TypeError, match="ExchangeableModel"):
        inference.reference_posterior("beta-bernoulli", x)
    with pytest.raises(ValueError, match="support"):
        inference.reference_posterior(m, x + 2)
    no_closed_form = models.get(MCMC_ONLY[0])
    with pytest.raises(NoExactPosterior):
        inference.reference_posterior(
            no_closed_form, no_closed_form.simulate(1, 3, seed=0).x, method="exact"
        )


def test_reference_does_not_change_global_state():
    import jax

    m = models.get("beta-bernoulli")
    x = m.simulate(2, 5, seed=0).x
    x64_before = bool(jax.config.jax_enable_x64)
    rng = torch.random.get_rng_state()
    dtype = torch.get_default_dtype()
    inference.reference_posterior(m, x, num_samples=10)
    m.log_joint(m.simulate(2, 5, seed=1).z, x, backend="numpyro")
    assert bool(jax.config.jax_enable_x64) == x64_before
    assert torch.equal(rng, torch.random.get_rng_state())
    assert torch.get_default_dtype() == dtype


def test_gate_requires_four_chains():
    m = models.get("beta-bernoulli")
    x = m.simulate(1, 10, seed=0).x
    ref = inference.reference_posterior(m, x, method="nuts", num_chains=2, num_samples=1000,
                                        num_warmup=500, seed=0)
    assert float(ref.diagnostics["ess_bulk"].min()) > 400  # would pass on ESS alone
    assert not ref.converged
    with pytest.raises(UnconvergedReferenceError, match="ran 2 chains"):
        _ = ref.mean
    one = inference.reference_posterior(m, x, method="nuts", num_chains=1, num_samples=50,
                                        num_warmup=50, seed=0)
    assert not one.converged and one.diagnostics["r_hat"].isna().all()
