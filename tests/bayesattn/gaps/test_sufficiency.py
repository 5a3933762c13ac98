"""Bayes risk, the probe and the sufficiency-gap study (P1)."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as pdist
import pytest
import torch

from bayesattn import models
from bayesattn.gaps._bayes import NoExactPredictive, bayes_risk
from bayesattn.gaps._probe import fit_probe
from bayesattn.gaps._sufficiency import representation_of, sufficiency_gap
from bayesattn.inference import AmortizedPosterior

COLUMNS = ["representation", "model", "L_min", "L_max", "num_train", "probe", "metric",
           "value", "ci_low", "ci_high", "se", "n"]


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- Bayes risk
@pytest.mark.parametrize("name, kw", [("concept-mixture", {"K": 3, "radius": 1.0}),
                                      ("unigram-mixture", {"K": 3, "V": 6})])
def test_bayes_risk_equals_enumeration_with_log_joint(name, kw):
    m = models.get(name, **kw)
    b = m.simulate(12, 4, seed=3)
    mask = torch.ones(12, 4, dtype=torch.bool)
    mask[:5, 2:] = False  # some shorter sets
    k = m.params["K"]
    with_y = torch.stack([m.log_joint(torch.full((12,), c), b.x, b.y, mask=mask)
                          for c in range(k)])
    without = torch.stack([m.log_joint(torch.full((12,), c), b.x, mask=mask) for c in range(k)])
    expected = -(with_y.logsumexp(0) - without.logsumexp(0))
    torch.testing.assert_close(bayes_risk(m, b.x, b.y, mask), expected, atol=1e-10, rtol=0)


def _evidence_gamma_poisson(m, x):
    a, b = m.params["a"], m.params["b"]
    s, n = x.sum(-1), x.shape[-1]
    return (torch.lgamma(a + s) - math.lgamma(a) + a * math.log(b) - (a + s) * math.log(b + n)
            - torch.lgamma(x + 1).sum(-1))


def _evidence_dirichlet(m, x):
    alpha = torch.tensor(m._alpha, dtype=torch.float64)
    counts = torch.nn.functional.one_hot(x, len(alpha)).sum(-2).to(torch.float64)
    return (torch.lgamma(alpha.sum()) - torch.lgamma(alpha.sum() + counts.sum(-1))
            + (torch.lgamma(alpha + counts) - torch.lgamma(alpha)).sum(-1))


def _evidence_nig(m, x):
    p = m.params
    n = x.shape[-1]
    xbar = x.mean(-1)
    k_n, a_n = p["k0"] + n, p["a0"] + n / 2
    b_n = (p["b0"] + 0.5 * ((x - xbar[:, None]) ** 2).sum(-1)
           + p["k0"] * n * (xbar - p["m0"]) ** 2 / (2 * k_n))
    return (math.lgamma(a_n) - math.lgamma(p["a0"]) + p["a0"] * math.log(p["b0"])
            - a_n * torch.log(b_n) + 0.5 * math.log(p["k0"] / k_n)
            - 0.5 * n * math.log(2 * math.pi))


@pytest.mark.parametrize("name, evidence", [("gamma-poisson", _evidence_gamma_poisson),
                                            ("dirichlet-categorical", _evidence_dirichlet),
                                            ("normal-inverse-gamma", _evidence_nig)])
def test_bayes_risk_equals_evidence_ratio(name, evidence):
    """-log P(y | X) = log p(X) - log p(X, y): marginal likelihoods in closed form."""
    m = models.get(name)
    b = m.simulate(10, 5, seed=4)
    joint = torch.cat([b.x, b.y[:, None].to(b.x.dtype)], dim=1)
    expected = evidence(m, b.x) - evidence(m, joint)
    torch.testing.assert_close(bayes_risk(m, b.x, b.y), expected, atol=1e-10, rtol=0)


def test_bayes_risk_normal_mean_equals_joint_gaussian_conditional():
    """x_i = z + e_i, y = 1'z + eps are jointly Gaussian: p(y | x) = p(x, y) / p(x)."""
    d, length, tau, m0 = 2, 3, 1.3, 0.4
    cov = [[1.0, 0.3], [0.3, 0.5]]
    m = models.get("normal-mean", d=d, prior_mean=m0, prior_scale=tau, noise_cov=cov)
    b = m.simulate(6, length, seed=5)
    sig = torch.tensor(cov, dtype=torch.float64)
    n = length * d
    big = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    big[:n, :n] = tau**2 * torch.ones(length, length, dtype=torch.float64).kron(torch.eye(d))
    big[:n, :n] += torch.eye(length, dtype=torch.float64).kron(sig)
    big[:n, n] = big[n, :n] = tau**2
    big[n, n] = d * tau**2 + 1.0
    mean = torch.full((n + 1,), m0, dtype=torch.float64)
    mean[n] = d * m0
    flat = torch.cat([b.x.reshape(6, n), b.y[:, None]], -1)
    lp_joint = torch.distributions.MultivariateNormal(mean, big).log_prob(flat)
    lp_x = torch.distributions.MultivariateNormal(mean[:n], big[:n, :n]).log_prob(flat[:, :n])
    torch.testing.assert_close(bayes_risk(m, b.x, b.y), lp_x - lp_joint, atol=1e-10, rtol=0)


class _ExponentialRate(models.ExchangeableModel):
    """Gamma-exponential: exact posterior, no closed-form predictive registered here."""

    name = "test-exponential-rate"

    def __init__(self, a=3.0, b=2.0):
        super().__init__(a=a, b=b)
        from torch.distributions import constraints
        self.token_support = constraints.positive

    def pyro_prior(self, device=None):
        return pdist.Gamma(self.tensor(self.params["a"], device),
                           self.tensor(self.params["b"], device))

    def pyro_likelihood(self, z):
        return pdist.Exponential(z)

    def pyro_target(self, z):
        return pdist.Exponential(z)

    def numpyro_prior(self):
        raise NotImplementedError

    def numpyro_likelihood(self, z):
        raise NotImplementedError

    def numpyro_target(self, z):
        raise NotImplementedError

    def exact_posterior(self, x, mask=None):
        x, mask = self.validate_tokens(x, mask)
        m = mask.to(torch.float64)
        return torch.distributions.Gamma(self.params["a"] + m.sum(-1),
                                         self.params["b"] + (x * m).sum(-1))


def test_monte_carlo_bayes_risk_only_on_request_and_close_to_the_lomax_predictive():
    m = _ExponentialRate()
    b = m.simulate(8, 4, seed=6)
    with pytest.raises(NoExactPredictive, match="mc_samples"):
        bayes_risk(m, b.x, b.y)
    post = m.exact_posterior(b.x)
    a, r = post.concentration, post.rate
    exact = -(torch.log(a) + a * torch.log(r) - (a + 1) * torch.log(r + b.y))  # Lomax
    mc = bayes_risk(m, b.x, b.y, mc_samples=20000, seed=1)
    # log-mean-exp of 20000 draws: relative sd of P(y|z) across draws is < 2 here, so the
    # log estimate has sd < 2 / sqrt(20000) = 0.014; 0.06 is > 4 sd.
    assert float((mc - exact).abs().max()) < 0.06


def test_bayes_risk_rejects_bad_targets():
    m = models.get("concept-mixture")
    b = m.simulate(4, 3, seed=0)
    with pytest.raises(ValueError, match="expected shape"):
        bayes_risk(m, b.x, b.y[:3])
    with pytest.raises(NoExactPredictive):
        lr = models.get("logistic-regression")
        bb = lr.simulate(2, 3, seed=0)
        bayes_risk(lr, bb.x, bb.y)


# ----------------------------------------------------------------------------- probe
def test_linear_probe_is_deterministic_and_near_bayes_when_well_specified():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.distributions.Categorical(logits=x @ w).sample()
    bayes = -torch.distributions.Categorical(logits=x[2000:] @ w).log_prob(y[2000:]).numpy()
    nll = fit_probe(x[:2000], y[:2000], x[2000:], y[2000:])
    np.testing.assert_array_equal(nll, fit_probe(x[:2000], y[:2000], x[2000:], y[2000:]))
    gap = nll - bayes
    se = gap.std() / math.sqrt(len(gap))
    # 18 parameters, 2000 sequences: estimation costs about 18 / (2 * 2000) = 0.0045 nats
    assert -3 * se < gap.mean() < 3 * se + 2 * 18 / (2 * 2000)
    mlp = fit_probe(x[:2000], y[:2000], x[2000:], y[2000:], hidden=8, seed=3)
    np.testing.assert_array_equal(mlp, fit_probe(x[:2000], y[:2000], x[2000:], y[2000:],
                                                 hidden=8, seed=3))


def test_gaussian_probe_learns_heteroscedastic_noise():
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    log_var = 0.8 * f[:, 1]
    y = 1.5 * f[:, 0] + (0.5 * log_var).exp() * torch.randn(4000, generator=gen,
                                                           dtype=torch.float64)
    bayes = -torch.distributions.Normal(1.5 * f[2000:, 0],
                                        (0.5 * log_var[2000:]).exp()).log_prob(y[2000:])
    nll = fit_probe(f[:2000], y[:2000], f[2000:], y[2000:], kind="gaussian")
    gap = nll - bayes.numpy()
    assert abs(gap.mean()) < 3 * gap.std() / math.sqrt(2000) + 6 / 2000


def test_probe_rejects_bad_input():
    f, y = torch.zeros(10, 3), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        fit_probe(torch.zeros(10), y, f, y)
    with pytest.raises(ValueError, match="columns"):
        fit_probe(f, y, torch.zeros(10, 4), y)
    with pytest.raises(ValueError, match="NaN"):
        fit_probe(torch.full((10, 3), float("nan")), y, f, y)
    with pytest.raises(ValueError, match=r"expected shape \(10,\)"):
        fit_probe(f, y[:9], f, y)
    with pytest.raises(ValueError, match="kind"):
        fit_probe(f, y, f, y, kind="poisson")
    with pytest.raises(ValueError, match="integer class ids"):
        fit_probe(f, y + 0.5, f, y)


# ----------------------------------------------------------------------------- study
def test_controls_bracket_the_gap_concept_mixture():
    m = models.get("concept-mixture", K=4, radius=1.0)
    n_train = 2000
    df = sufficiency_gap({}, m, num_train=n_train, num_test=2000, seq_len=4, seed=0)
    assert list(df.columns) == COLUMNS and len(df) == 6
    row = df.set_index(["representation", "metric"])
    exact = row.loc[("control: exact posterior", "excess_risk")]
    # Well-specified softmax probe on C = 4 log-probabilities: p = 4 x 5 = 20 parameters;
    # its expected test excess risk is about p / (2 N) = 0.005 nats. Allow 3 bootstrap se
    # of noise plus twice that estimation cost.
    assert -3 * exact.se < exact.value < 3 * exact.se + 2 * 20 / (2 * n_train)
    first = row.loc[("control: first token", "excess_risk")]
    assert first.ci_low > 0.1  # measured about 0.48
    np.testing.assert_allclose(
        row.loc[("control: first token", "probe_nll"), "value"]
        - row.loc[("control: first token", "bayes_risk"), "value"], first.value, atol=1e-12)


def test_controls_with_variable_lengths_and_a_gaussian_target():
    m = models.get("normal-mean", d=2)
    df = sufficiency_gap({}, m, num_train=1500, num_test=1500, seq_len=(1, 8), seed=1)
    row = df.set_index(["representation", "metric"])
    exact = row.loc[("control: exact posterior", "excess_risk")]
    # heteroscedastic Gaussian probe on (mean, log var): 2 x 3 = 6 parameters
    assert -3 * exact.se < exact.value < 3 * exact.se + 2 * 6 / (2 * 1500)
    assert row.loc[("control: first token", "excess_risk"), "ci_low"] > 0.05  # about 0.2
    assert (df.L_min == 1).all() and (df.L_max == 8).all()


def test_network_representation_and_bad_representations():
    m = models.get("dirichlet-categorical", K=3)
    net = AmortizedPosterior(m, encoder="deepsets", encoder_options={"dim": 8})
    rep = representation_of(net)

    def short(x, mask):
        return torch.zeros(x.shape[0] - 1, 2)

    def nan(x, mask):
        return torch.full((x.shape[0], 2), float("nan"))

    df = sufficiency_gap({"net": rep}, m, num_train=50, num_test=40, seq_len=(2, 6),
                         include_controls=False, num_resamples=50)
    assert set(df.representation) == {"net"} and np.isfinite(df.value).all()
    assert (df.n == 40).all()
    kw = dict(num_train=20, num_test=20, seq_len=4, include_controls=False)
    with pytest.raises(ValueError, match="B = 20"):
        sufficiency_gap({"short": short}, m, **kw)
    with pytest.raises(ValueError, match="NaN"):
        sufficiency_gap({"nan": nan}, m, **kw)
    with pytest.raises(ValueError, match="reserved"):
        sufficiency_gap({"control: first token": rep}, m, num_train=20, num_test=20, seq_len=4)
    with pytest.raises(ValueError, match="probe"):
        sufficiency_gap({"net": rep}, m, **kw, probe="forest")
    with pytest.raises(ValueError, match="seq_len"):
        sufficiency_gap({"net": rep}, m, num_train=20, num_test=20, seq_len=(5, 2))
    with pytest.raises(ValueError, match="num_train"):
        sufficiency_gap({"net": rep}, m, num_train=1, num_test=20, seq_len=4)
    with pytest.raises(ValueError, match="support"):  # count target: no probe family
        sufficiency_gap({}, models.get("gamma-poisson"), num_train=20, num_test=20, seq_len=4)


def test_predictive_features_of_every_token_law():
    """Categorical -> normalised log-probabilities; Bernoulli -> log(1-p), log p; Normal
    (scalar or vector event) -> mean and log variance flattened over the event."""
    from bayesattn.gaps._sufficiency import _predictive_features

    cat = torch.distributions.Categorical(logits=torch.randn(5, 4))
    torch.testing.assert_close(_predictive_features(cat).exp().sum(-1), torch.ones(5))
    vec = torch.distributions.Independent(
        torch.distributions.Normal(torch.ones(5, 2), torch.full((5, 2), 2.0)), 1)
    f = _predictive_features(vec)
    assert f.shape == (5, 4)
    torch.testing.assert_close(f, torch.tensor([1.0, 1.0, math.log(4.0), math.log(4.0)])
                               .expand(5, 4))
    scalar = torch.distributions.Normal(torch.zeros(5), torch.ones(5))
    assert _predictive_features(scalar).shape == (5, 2)
    p = torch.rand(5)
    bern = _predictive_features(torch.distributions.Bernoulli(probs=p))
    torch.testing.assert_close(bern, torch.stack([torch.log1p(-p), p.log()], -1))
