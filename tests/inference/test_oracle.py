"""The hand-set "desired parameter" oracles of paper 1 (bayesattn.inference.oracle).

Exact identities are checked to floating-point precision; the statistical claims (the
"hard" relative's error shrinks with L, the length-unaware relative's gap grows with L)
are checked with standard errors of the mean over simulated sequences: the difference of
two means must exceed Z_SE combined standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.distance import cdist

from bayesattn import models
from bayesattn.inference.oracle import (
    ConceptMixtureOracle,
    LinearRegressionOracle,
    OracleInputError,
    OracleTypeError,
    cme_attention,
    gp_posterior_mean,
)
from bayesattn.models import ModelInputError

Z_SE = 5.0
LENGTHS = [1, 2, 3, 8, 32, 128, 512]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _random_mask(b: int, length: int, seed: int) -> torch.Tensor:
    """Each row keeps a random number (>= 1) of real tokens at random positions."""
    g = _gen(seed)
    keep = torch.randint(1, length + 1, (b,), generator=g)
    order = torch.rand(b, length, generator=g).argsort(-1)
    return order < keep[:, None]


def _pad_with_garbage(x: torch.Tensor, extra: int, seed: int):
    """Append ``extra`` padded tokens holding large random junk; return (x_padded, mask)."""
    b, length = x.shape[:2]
    junk = 1e3 * torch.randn(b, extra, *x.shape[2:], generator=_gen(seed), dtype=x.dtype)
    mask = torch.cat([torch.ones(b, length, dtype=torch.bool),
                      torch.zeros(b, extra, dtype=torch.bool)], 1)
    return torch.cat([x, junk], 1), mask


# ---------------------------------------------------------------------- CME = Bayes LR
@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("length", LENGTHS)
def test_cme_equals_linear_regression_predictive_mean(p, length):
    m = models.get("linear-regression", p=p, prior_scale=0.7, noise_scale=0.4)
    x = m.simulate(3, length, seed=10 * length + p).x
    queries = torch.randn(3, 5, p, generator=_gen(length), dtype=torch.float64)
    exact = m.predictive_mean(x, queries)
    got = LinearRegressionOracle(m).predict(x, queries)
    assert got.shape == (3, 5) and got.dtype == torch.float64
    assert _rel_err(got, exact) <= 1e-8
    # the public cme_attention with lambda_b = sigma^2 / (tau^2 n_b) gives the same
    lam = 0.4**2 / (0.7**2 * length)
    direct = cme_attention(x[..., :p], x[..., p:], queries, kernel="linear", ridge=lam)
    assert _rel_err(direct[..., 0], exact) <= 1e-8


@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("length", [2, 8, 128, 512])
def test_cme_linear_regression_with_padding(p, length):
    m = models.get("linear-regression", p=p)
    x = m.simulate(4, length, seed=length + 7 * p).x
    mask = _random_mask(4, length, seed=length)
    x = torch.where(mask[..., None], x, 1e3 * torch.randn(x.shape, generator=_gen(1),
                                                          dtype=torch.float64))
    queries = torch.randn(4, 6, p, generator=_gen(2), dtype=torch.float64)
    exact = m.predictive_mean(x, queries, mask)
    got = LinearRegressionOracle(m).predict(x, queries, mask)
    assert _rel_err(got, exact) <= 1e-8
    n = mask.sum(-1).double()
    lam = m.params["noise_scale"] ** 2 / (m.params["prior_scale"] ** 2 * n)  # (B,)
    direct = cme_attention(x[..., :p], x[..., p:], queries, ridge=lam, mask=mask)
    assert _rel_err(direct[..., 0], exact) <= 1e-8


def test_linear_regression_oracle_rejects_other_models():
    with pytest.raises(OracleTypeError, match="linear-regression"):
        LinearRegressionOracle(models.get("concept-mixture"))
    m = models.get("linear-regression", p=2)
    x = m.simulate(2, 4, seed=0).x
    with pytest.raises(OracleInputError, match=r"\(B, Q, dk\)"):
        LinearRegressionOracle(m).predict(x, torch.zeros(2, 3, 5, dtype=torch.float64))


# ---------------------------------------------------------------------- CME = GP mean
def _gp_mean_scipy(keys, values, queries, sigma, bandwidth):
    """k_*^T (K + sigma^2 I)^-1 v for one sequence, with numpy/scipy only."""
    gram = np.exp(-cdist(keys, keys, "sqeuclidean") / (2 * bandwidth**2))
    cross = np.exp(-cdist(queries, keys, "sqeuclidean") / (2 * bandwidth**2))
    factor = cho_factor(gram + sigma**2 * np.eye(len(keys)), lower=True)
    return cross @ cho_solve(factor, values)


@pytest.mark.parametrize("length", [1, 3, 16, 200])
def test_cme_gaussian_equals_gp_posterior_mean(length):
    g = _gen(length)
    b, dk, dv, sigma, h = 3, 2, 2, 0.3, 0.8
    keys = torch.randn(b, length, dk, generator=g, dtype=torch.float64)
    values = torch.sin(keys.sum(-1, keepdim=True)) + 0.1 * torch.randn(b, length, dv,
                                                                         generator=g,
                                                                         dtype=torch.float64)
    queries = torch.randn(b, 7, dk, generator=g, dtype=torch.float64)
    mask = _random_mask(b, length, seed=length)
    n = mask.sum(-1).double()
    cme = cme_attention(keys, values, queries, kernel="gaussian", bandwidth=h,
                        ridge=sigma**2 / n, mask=mask)
    gp = gp_posterior_mean(keys, values, queries, noise_scale=sigma, bandwidth=h, mask=mask)
    for i in range(b):
        real = mask[i].numpy()
        ref = _gp_mean_scipy(keys[i].numpy()[real], values[i].numpy()[real],
                             queries[i].numpy(), sigma, h)
        assert np.abs(cme[i].numpy() - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max())
        assert np.abs(gp[i].numpy() - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max())


# ---------------------------------------------------------------------- cme_attention API
def _inputs(b=3, length=10, dk=2, dv=3, q=4, seed=0):
    g = _gen(seed)
    return (torch.randn(b, length, dk, generator=g, dtype=torch.float64),
            torch.randn(b, length, dv, generator=g, dtype=torch.float64),
            torch.randn(b, q, dk, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_cme_padding_and_permutation_invariance(kernel):
    keys, values, queries = _inputs(length=12)
    base = cme_attention(keys, values, queries, kernel=kernel, ridge=0.05)
    assert base.shape == (3, 4, 3) and base.dtype == torch.float64
    perm = torch.randperm(12, generator=_gen(3))
    permuted = cme_attention(keys[:, perm], values[:, perm], queries, kernel=kernel, ridge=0.05)
    torch.testing.assert_close(permuted, base, rtol=1e-10, atol=1e-12)
    kp, mask = _pad_with_garbage(keys, 5, seed=4)
    vp, _ = _pad_with_garbage(values, 5, seed=5)
    padded = cme_attention(kp, vp, queries, kernel=kernel, ridge=0.05, mask=mask)
    torch.testing.assert_close(padded, base, rtol=1e-10, atol=1e-12)


def test_cme_callable_kernel_and_per_sequence_ridge():
    keys, values, queries = _inputs(length=9, seed=1)
    ridge = torch.tensor([0.01, 0.1, 1.0], dtype=torch.float64)
    got = cme_attention(keys, values, queries, kernel=lambda a, b: a @ b.mT, ridge=ridge)
    for i in range(3):
        one = cme_attention(keys[i:i + 1], values[i:i + 1], queries[i:i + 1],
                            ridge=float(ridge[i]))
        torch.testing.assert_close(got[i:i + 1], one, rtol=1e-12, atol=1e-12)
    # float32 and numpy inputs are accepted and computed in float64
    f32 = cme_attention(keys.float().numpy(), values.float(), queries.float(), ridge=0.1)
    assert f32.dtype == torch.float64


def test_cme_empty_sequence_gives_zero():
    keys, values, queries = _inputs(b=2, length=4)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    out = cme_attention(keys, values, queries, ridge=0.1, mask=mask)
    assert torch.equal(out[1], torch.zeros_like(out[1]))


@pytest.mark.parametrize(
    "change, error, pattern",
    [
        (dict(ridge=0.0), OracleInputError, "ridge"),
        (dict(ridge=-1.0), OracleInputError, "ridge"),
        (dict(ridge=torch.ones(2, dtype=torch.float64)), OracleInputError, r"\(B,\)"),
        (dict(ridge="big"), OracleTypeError, "ridge"),
        (dict(kernel="cosine"), OracleInputError, "kernel"),
        (dict(kernel="gaussian", bandwidth=0.0), OracleInputError, "bandwidth"),
        (dict(kernel=lambda a, b: a @ a.mT), OracleInputError, r"\(B, n, m\)"),
        (dict(kernel=lambda a, b: -(a @ b.mT) - 10.0), OracleInputError, "positive definite"),
        (dict(mask=torch.ones(3, 10)), ModelInputError, "bool"),
        (dict(mask=torch.ones(3, 9, dtype=torch.bool)), ModelInputError, r"\(B, L\)"),
        (dict(queries=torch.zeros(3, 4, 5)), OracleInputError, "queries"),
        (dict(values=torch.zeros(3, 11, 2)), OracleInputError, "values"),
        (dict(keys=torch.zeros(3, 10)), OracleInputError, "dimensions"),
        (dict(keys=[[0.0]]), OracleTypeError, "keys"),
        (dict(keys=torch.full((3, 10, 2), math.nan)), OracleInputError, "finite"),
    ],
)
def test_cme_validation(change, error, pattern):
    keys, values, queries = _inputs()
    kwargs = dict(keys=keys, values=values, queries=queries, ridge=0.1) | change
    k, v, q = kwargs.pop("keys"), kwargs.pop("values"), kwargs.pop("queries")
    with pytest.raises(error, match=pattern):
        cme_attention(k, v, q, **kwargs)


# ---------------------------------------------------------------------- concept mixture
@pytest.fixture(scope="module")
def mixture():
    return models.get("concept-mixture")


@pytest.fixture(scope="module")
def hard_mixture():
    """Close concepts: posteriors stay spread for tens of tokens."""
    return models.get("concept-mixture", K=3, d=2, radius=0.5, weights=[0.5, 0.3, 0.2])


@pytest.mark.parametrize("length", [1, 2, 5, 16, 100, 1000])
def test_mixture_oracle_is_exact(mixture, length):
    x = mixture.simulate(6, length, seed=length).x
    mask = _random_mask(6, length, seed=length + 1)
    oracle = ConceptMixtureOracle(mixture)
    for msk in (None, mask):
        got, exact = oracle.posterior(x, msk), mixture.exact_posterior(x, msk)
        assert isinstance(got, torch.distributions.Categorical)
        assert got.batch_shape == (6,) and got.logits.dtype == torch.float64
        torch.testing.assert_close(got.probs, exact.probs, rtol=0, atol=1e-10)
        torch.testing.assert_close(got.logits, exact.logits, rtol=1e-11, atol=1e-10)


def test_mixture_oracle_ignores_padding_and_order(mixture):
    x = mixture.simulate(5, 20, seed=3).x
    oracle = ConceptMixtureOracle(mixture)
    base = oracle(x)
    xp, mask = _pad_with_garbage(x, 7, seed=8)
    torch.testing.assert_close(oracle(xp, mask), base, rtol=1e-12, atol=1e-12)
    perm = torch.randperm(20, generator=_gen(9))
    torch.testing.assert_close(oracle(x[:, perm]), base, rtol=1e-12, atol=1e-12)
    rep = oracle.represent(xp, mask)
    assert rep.shape == (5, mixture.params["K"] + 1)
    torch.testing.assert_close(rep, oracle.represent(x[:, perm]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rep[:, -1], torch.full((5,), math.log(20), dtype=torch.float64))
    mean_ll = mixture.token_loglik(x).mean(1)
    torch.testing.assert_close(rep[:, :-1], mean_ll, rtol=1e-12, atol=1e-12)


def test_mixture_oracle_works_for_unigram_mixture():
    m = models.get("unigram-mixture")
    x = m.simulate(4, 30, seed=2).x
    got = ConceptMixtureOracle(m).posterior(x)
    torch.testing.assert_close(got.probs, m.exact_posterior(x).probs, rtol=0, atol=1e-10)


def test_fixed_length_is_exact_only_at_L0(hard_mixture):
    oracle = ConceptMixtureOracle(hard_mixture, "fixed-length", L0=16)
    x = hard_mixture.simulate(8, 16, seed=1).x
    torch.testing.assert_close(oracle.posterior(x).probs,
                               hard_mixture.exact_posterior(x).probs, rtol=0, atol=1e-10)
    # 16 real tokens inside a longer padded sequence: still L = L0
    xp, mask = _pad_with_garbage(x, 10, seed=2)
    torch.testing.assert_close(oracle.posterior(xp, mask).probs,
                               hard_mixture.exact_posterior(x).probs, rtol=0, atol=1e-10)
    for length in (4, 64):
        x = hard_mixture.simulate(8, length, seed=length).x
        gap = (oracle.posterior(x).probs - hard_mixture.exact_posterior(x).probs).abs().max()
        assert gap > 1e-3


def test_hard_mode_is_one_hot_argmax(hard_mixture):
    x = hard_mixture.simulate(10, 7, seed=4).x
    q = ConceptMixtureOracle(hard_mixture, "hard").posterior(x)
    assert q.batch_shape == (10,)
    expected = hard_mixture.token_loglik(x).mean(1).argmax(-1)
    assert torch.equal(q.probs.argmax(-1), expected)
    assert torch.equal(q.probs.sum(-1), torch.ones(10, dtype=torch.float64))
    assert set(q.probs.unique().tolist()) == {0.0, 1.0}


def test_mixture_oracle_validation(mixture):
    with pytest.raises(OracleTypeError, match="finite mixture"):
        ConceptMixtureOracle(models.get("normal-mean"))
    with pytest.raises(OracleInputError, match="mode"):
        ConceptMixtureOracle(mixture, "soft")
    with pytest.raises(OracleInputError, match="L0"):
        ConceptMixtureOracle(mixture, "fixed-length")
    with pytest.raises(OracleInputError, match="L0"):
        ConceptMixtureOracle(mixture, "fixed-length", L0=0)
    with pytest.raises(OracleInputError, match="L0"):
        ConceptMixtureOracle(mixture, "exact", L0=16)
    x = mixture.simulate(2, 3, seed=0).x
    with pytest.raises(OracleInputError, match="no real token"):
        ConceptMixtureOracle(mixture)(x, torch.tensor([[True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match="shape"):
        ConceptMixtureOracle(mixture).posterior(x[..., :1])
    assert list(ConceptMixtureOracle(mixture).parameters()) == []


# ---------------------------------------------------------------------- statistics
def _mean_se(values: torch.Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


def test_hard_relative_error_shrinks_with_length(hard_mixture):
    """Mean TV(exact, hard) over 2000 sequences: L=64 below L=4 by > Z_SE combined SEs."""
    oracle = ConceptMixtureOracle(hard_mixture, "hard")
    stats = {}
    for length in (4, 64):
        x = hard_mixture.simulate(2000, length, seed=100 + length).x
        tv = 0.5 * (oracle.posterior(x).probs - hard_mixture.exact_posterior(x).probs).abs()
        stats[length] = _mean_se(tv.sum(-1))
    (m4, se4), (m64, se64) = stats[4], stats[64]
    assert m4 - m64 > Z_SE * math.hypot(se4, se64), stats


def test_length_unaware_gap_grows_with_length(hard_mixture):
    """Mean KL(exact || fixed-length L0=16): larger at L=256 than at L=16 by > Z_SE SEs."""
    oracle = ConceptMixtureOracle(hard_mixture, "fixed-length", L0=16)
    stats = {}
    for length in (16, 256):
        x = hard_mixture.simulate(2000, length, seed=200 + length).x
        exact = hard_mixture.exact_posterior(x)
        kl = torch.distributions.kl_divergence(exact, oracle.posterior(x))
        stats[length] = _mean_se(kl)
    (m16, se16), (m256, se256) = stats[16], stats[256]
    assert m256 - m16 > Z_SE * math.hypot(se16, se256), stats
