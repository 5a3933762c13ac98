"""KL and total variation against independent closed forms and Monte Carlo error bars."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import digamma, gammaln
from torch.distributions import (
    Beta,
    Categorical,
    Dirichlet,
    Gamma,
    Independent,
    MultivariateNormal,
    Normal,
    StudentT,
)

from bayesattn.metrics import (
    Estimate,
    kl_divergence,
    kl_per_dataset,
    total_variation,
    tv_per_dataset,
)


def _random_mvn(rng, batch, dim):
    loc = rng.normal(size=(batch, dim))
    a = rng.normal(size=(batch, dim, dim))
    cov = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(dim)
    return loc, cov


def _mvn_kl_formula(m0, s0, m1, s1):
    """KL(N(m0, s0) || N(m1, s1)) = 1/2 [tr(s1^-1 s0) + d^T s1^-1 d - k + log|s1|/|s0|]."""
    out = []
    for a, b, c, e in zip(m0, s0, m1, s1, strict=True):
        inv = np.linalg.inv(e)
        diff = c - a
        k = a.size
        logdet = np.linalg.slogdet(e)[1] - np.linalg.slogdet(b)[1]
        out.append(0.5 * (np.trace(inv @ b) + diff @ inv @ diff - k + logdet))
    return np.array(out)


def _mvn(loc, cov):
    return MultivariateNormal(torch.as_tensor(loc), covariance_matrix=torch.as_tensor(cov))


def test_mvn_closed_form_matches_independent_formula():
    rng = np.random.default_rng(0)
    m0, s0 = _random_mvn(rng, 6, 3)
    m1, s1 = _random_mvn(rng, 6, 3)
    got = kl_per_dataset(_mvn(m0, s0), _mvn(m1, s1))
    assert got.shape == (6,) and got.dtype == np.float64
    np.testing.assert_allclose(got, _mvn_kl_formula(m0, s0, m1, s1), rtol=1e-10, atol=1e-12)


def test_float32_inputs_are_evaluated_in_float64():
    rng = np.random.default_rng(1)
    m0, s0 = _random_mvn(rng, 4, 2)
    m1, s1 = _random_mvn(rng, 4, 2)
    p = MultivariateNormal(torch.tensor(m0, dtype=torch.float32),
                           covariance_matrix=torch.tensor(s0, dtype=torch.float32))
    q = MultivariateNormal(torch.tensor(m1, dtype=torch.float32),
                           covariance_matrix=torch.tensor(s1, dtype=torch.float32))
    # the reference formula on the float32-rounded parameters, in float64
    want = _mvn_kl_formula(*(np.float32(a).astype(float) for a in (m0, s0, m1, s1)))
    np.testing.assert_allclose(kl_per_dataset(p, q), want, rtol=1e-9)


def test_monte_carlo_kl_within_four_standard_errors():
    rng = np.random.default_rng(2)
    m0, s0 = _random_mvn(rng, 5, 2)
    m1, s1 = _random_mvn(rng, 5, 2)
    exact = _mvn_kl_formula(m0, s0, m1, s1)
    state = torch.random.get_rng_state()
    mc, se = kl_per_dataset(_mvn(m0, s0), _mvn(m1, s1), num_samples=4000, seed=3,
                            return_se=True)
    assert torch.equal(state, torch.random.get_rng_state()), "global RNG was advanced"
    assert (se > 0).all()
    assert np.all(np.abs(mc - exact) < 4 * se), (mc, exact, se)
    again = kl_per_dataset(_mvn(m0, s0), _mvn(m1, s1), num_samples=4000, seed=3)
    np.testing.assert_array_equal(mc, again)


def test_monte_carlo_fallback_when_no_closed_form():
    # StudentT has no registered KL; with df large it is close to Normal, but we only
    # check the Monte Carlo path against its own error bars (KL >= 0 up to noise).
    p = StudentT(torch.full((3,), 5.0), torch.zeros(3), torch.ones(3))
    q = StudentT(torch.full((3,), 5.0), torch.ones(3), torch.ones(3))
    kl, se = kl_per_dataset(p, q, return_se=True)
    assert (se > 0).all() and np.all(kl > -4 * se)
    assert np.all(kl > 0.1)  # a unit shift of a t_5 is clearly distinguishable


def test_dirichlet_closed_form_matches_digamma_formula():
    rng = np.random.default_rng(4)
    a = rng.uniform(0.3, 5.0, size=(5, 4))
    b = rng.uniform(0.3, 5.0, size=(5, 4))
    a0, b0 = a.sum(1), b.sum(1)
    want = (gammaln(a0) - gammaln(a).sum(1) - gammaln(b0) + gammaln(b).sum(1)
            + ((a - b) * (digamma(a) - digamma(a0)[:, None])).sum(1))
    got = kl_per_dataset(Dirichlet(torch.tensor(a)), Dirichlet(torch.tensor(b)))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_categorical_closed_form_matches_direct_sum():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(6), size=7)
    q = rng.dirichlet(np.ones(6), size=7)
    want = (p * np.log(p / q)).sum(1)
    got = kl_per_dataset(Categorical(probs=torch.tensor(p)), Categorical(probs=torch.tensor(q)))
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("make", [
    lambda: Normal(torch.randn(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + .1),
    lambda: Beta(torch.rand(4) + .5, torch.rand(4) + .5),
    lambda: Gamma(torch.rand(4) + .5, torch.rand(4) + .5),
    lambda: Independent(Normal(torch.randn(4, 3), torch.ones(4, 3)), 1),
    lambda: Categorical(logits=torch.randn(4, 5)),
])
def test_kl_of_a_distribution_with_itself_is_zero(make):
    d = make()
    np.testing.assert_allclose(kl_per_dataset(d, d), 0.0, atol=1e-12)


def test_reverse_direction_swaps_arguments_and_ci_contains_value():
    rng = np.random.default_rng(6)
    p = Categorical(probs=torch.tensor(rng.dirichlet(np.ones(4), size=30)))
    q = Categorical(probs=torch.tensor(rng.dirichlet(np.ones(4), size=30)))
    fwd = kl_divergence(p, q)
    rev = kl_divergence(p, q, direction="reverse")
    assert isinstance(fwd, Estimate) and fwd.n == 30
    assert fwd.value == pytest.approx(kl_per_dataset(p, q).mean(), rel=1e-12)
    assert rev.value == pytest.approx(kl_per_dataset(q, p).mean(), rel=1e-12)
    assert rev.value != pytest.approx(fwd.value)
    for est in (fwd, rev):
        assert est.ci_low <= est.value <= est.ci_high and est.se > 0
    with pytest.raises(ValueError, match="direction"):
        kl_divergence(p, q, direction="both")


def test_infinite_kl_gives_infinite_estimate():
    p = Categorical(probs=torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64))
    q = Categorical(probs=torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64))
    est = kl_divergence(p, q)
    assert est.value == np.inf and np.isnan(est.ci_low)


def test_kl_input_validation():
    p = Normal(torch.zeros(3), torch.ones(3))
    with pytest.raises(TypeError, match="Distribution"):
        kl_per_dataset(np.zeros(3), p)
    with pytest.raises(ValueError, match=r"batch shapes.*\(3,\).*\(4,\)"):
        kl_per_dataset(p, Normal(torch.zeros(4), torch.ones(4)))
    with pytest.raises(ValueError, match=r"batch_shape \(B,\)"):
        kl_per_dataset(Normal(torch.zeros(2, 3), torch.ones(2, 3)),
                       Normal(torch.zeros(2, 3), torch.ones(2, 3)))
    with pytest.raises(ValueError, match="event shapes"):
        kl_per_dataset(Independent(Normal(torch.zeros(3, 2), torch.ones(3, 2)), 1),
                       Independent(Normal(torch.zeros(3, 4), torch.ones(3, 4)), 1))
    with pytest.raises(ValueError, match="num_samples"):
        kl_per_dataset(p, p, num_samples=1)


def test_tv_hand_computed_and_zero_for_equal():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(tv_per_dataset(p, q), [0.5, 1.0])
    est = total_variation(p, q)
    assert est.value == pytest.approx(0.75) and est.n == 2
    assert total_variation(p, p).value == 0.0
    cat = Categorical(probs=torch.tensor(q))
    assert total_variation(Categorical(probs=torch.tensor(p)), cat).value == pytest.approx(0.75)


def test_tv_rejects_bad_rows():
    good = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="summing to 1.*1.1"):
        total_variation(np.array([[0.6, 0.5]]), good)
    with pytest.raises(ValueError, match=r"shape \(B, K\)"):
        total_variation(np.array([0.5, 0.5]), good)
    with pytest.raises(ValueError, match="non-negative"):
        total_variation(np.array([[1.5, -0.5]]), good)
    with pytest.raises(ValueError, match="NaN"):
        total_variation(np.array([[np.nan, 0.5]]), good)
    with pytest.raises(ValueError, match="equal shapes"):
        total_variation(good, np.array([[0.2, 0.3, 0.5]]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(2, 8))
def test_kl_and_tv_invariant_to_dataset_order(seed, batch):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), size=batch)
    q = rng.dirichlet(np.ones(3), size=batch)
    perm = rng.permutation(batch)

    def cat(a):
        return Categorical(probs=torch.tensor(a))

    kl = kl_divergence(cat(p), cat(q)).value
    assert kl_divergence(cat(p[perm]), cat(q[perm])).value == pytest.approx(kl, rel=1e-12)
    tv = total_variation(p, q).value
    assert total_variation(p[perm], q[perm]).value == pytest.approx(tv, rel=1e-12)


def test_gaussian_closed_form_matches_torch_mvn_kl():
    """Our KL for (MVN or Independent Normal) pairs against torch's MVN-MVN formula."""
    from bayesattn.metrics._divergence import closed_form_kl

    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, 3, generator=g, dtype=torch.float64)
    cov = a @ a.mT + 0.5 * torch.eye(3, dtype=torch.float64)
    p = torch.distributions.MultivariateNormal(torch.randn(5, 3, generator=g).double(), cov)
    loc, scale = torch.randn(5, 3, generator=g), torch.rand(5, 3, generator=g) + 0.5
    q = torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)
    q_mvn = torch.distributions.MultivariateNormal(loc.double(),
                                                   torch.diag_embed(scale.double() ** 2))
    expected = torch.distributions.kl_divergence(p, q_mvn)
    torch.testing.assert_close(closed_form_kl(p, q), expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(closed_form_kl(q_mvn, q_mvn), torch.zeros(5, dtype=torch.float64))
    # kl_per_dataset takes the closed form for the mixed pair (no Monte Carlo error)
    kl, se = kl_per_dataset(p, q, return_se=True)
    np.testing.assert_allclose(kl, expected.numpy(), rtol=1e-6)
    assert (se == 0).all()
