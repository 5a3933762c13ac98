"""Conjugate models: normal-mean, normal-inverse-gamma, gamma-poisson, dirichlet-categorical.

Every exact posterior is checked against an independent computation that only uses
the model's NumPyro log joint (numerical quadrature for 1-D and 2-D latents,
self-normalised importance sampling with a Monte Carlo standard-error tolerance for
the simplex and the 2-D Gaussian mean), plus the Bayes identity
``log p(z, x) - log p(z | x) = log p(x)`` (constant in z) at many points.
All randomness is seeded explicitly; no global RNG state is changed.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch
from scipy.special import logsumexp

from bayesattn.models import ModelInputError, get
from bayesattn.models.dirichlet_categorical import DirichletCategorical
from bayesattn.models.gamma_poisson import GammaPoisson
from bayesattn.models.normal_inverse_gamma import (
    NormalInverseGamma,
    NormalInvGammaJoint,
    NumPyroNormalInvGammaJoint,
)
from bayesattn.models.normal_mean import NormalMean

CASES = {
    "normal-mean": lambda: NormalMean(
        d=2, prior_mean=0.3, prior_scale=1.5, noise_cov=[[1.0, 0.4], [0.4, 0.5]]
    ),
    "normal-mean-d1": lambda: NormalMean(d=1, prior_mean=-0.2, prior_scale=2.0, noise_cov=[[0.7]]),
    "normal-inverse-gamma": lambda: NormalInverseGamma(m0=0.5, k0=2.0, a0=3.0, b0=2.0),
    "gamma-poisson": lambda: GammaPoisson(a=2.5, b=0.5),
    "dirichlet-categorical": lambda: DirichletCategorical(K=4, alpha=[0.5, 1.0, 2.0, 1.5]),
}
IDS = list(CASES)


@pytest.fixture(params=IDS)
def model(request):
    return CASES[request.param]()


# ----------------------------------------------------------------------------- helpers
def _post_params(post) -> dict[str, torch.Tensor]:
    """The parameters that pin down each posterior family."""
    if isinstance(post, torch.distributions.MultivariateNormal):
        return {"loc": post.loc, "cov": post.covariance_matrix}
    if isinstance(post, torch.distributions.Gamma):
        return {"concentration": post.concentration, "rate": post.rate}
    if isinstance(post, torch.distributions.Dirichlet):
        return {"concentration": post.concentration}
    if isinstance(post, NormalInvGammaJoint):
        return {k: getattr(post, k) for k in ("loc", "kappa", "concentration", "rate")}
    raise AssertionError(f"unexpected posterior type {type(post)}")


def _assert_same_posterior(p, q, rtol=1e-12, atol=1e-12):
    assert type(p) is type(q)
    pp, qq = _post_params(p), _post_params(q)
    for k in pp:
        torch.testing.assert_close(pp[k], qq[k], rtol=rtol, atol=atol, msg=k)


def _sample(dist, n: int, seed: int) -> torch.Tensor:
    """``dist.sample((n,))`` with a private seeded torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dist.sample((n,))


def _garbage(x: torch.Tensor):
    return float("nan") if x.is_floating_point() else 99


def _log_joint_np(model, z, x, mask=None) -> np.ndarray:
    """NumPyro log joint of one sequence ``x`` (L, *token) at many latents ``z`` (G, ...)."""
    g = z.shape[0]
    xr = x.unsqueeze(0).expand(g, *x.shape)
    mr = None if mask is None else mask.unsqueeze(0).expand(g, -1)
    return model.log_joint(z, xr, mask=mr, backend="numpyro").numpy()


def _trapz_moments(logf: np.ndarray, grid: np.ndarray, *fs: np.ndarray):
    """log of ∫exp(logf) and the normalised integrals of each f in ``fs`` (trapezoid)."""
    c = logf.max()
    w = np.exp(logf - c)
    assert w[0] < 1e-14 and w[-1] < 1e-14, "quadrature window too narrow"
    z = np.trapezoid(w, grid)
    return (math.log(z) + c, *(np.trapezoid(w * f, grid) / z for f in fs))


# ----------------------------------------------------------------------------- registry
def test_registered_with_documented_defaults():
    assert get("normal-mean").params == {
        "d": 2, "prior_mean": 0.0, "prior_scale": 1.0, "noise_cov": [[1.0, 0.0], [0.0, 1.0]],
    }
    assert get("normal-inverse-gamma").params == {"m0": 0.0, "k0": 1.0, "a0": 3.0, "b0": 2.0}
    assert get("gamma-poisson").params == {"a": 2.0, "b": 1.0}
    assert get("dirichlet-categorical").params == {"K": 4, "alpha": 1.0}


def test_params_json_round_trip(model):
    params = json.loads(json.dumps(model.params))
    assert params == model.params
    again = type(model)(**params)
    assert again.params == model.params
    assert again.latent_shape == model.latent_shape and again.token_shape == model.token_shape


# ----------------------------------------------------------------------------- simulate
def test_simulate_shapes_and_dtypes(model):
    b, length = 5, 7
    batch = model.simulate(b, length, seed=11)
    assert batch.z.shape == (b, *model.latent_shape)
    assert batch.x.shape == (b, length, *model.token_shape)
    assert batch.y.shape == (b, *model.target_shape)
    assert batch.mask.shape == (b, length) and batch.mask.all()
    assert batch.z.dtype == torch.float64
    want = torch.long if isinstance(model, DirichletCategorical) else torch.float64
    assert batch.x.dtype == want and batch.y.dtype == want
    model.validate_tokens(batch.x)  # simulated tokens pass the model's own checks
    model.validate_latent(batch.z, b)
    if model.target_shape == model.token_shape:  # y is the next token
        model.validate_tokens(batch.y.unsqueeze(1))
    again = model.simulate(b, length, seed=11)
    assert torch.equal(again.x, batch.x) and torch.equal(again.z, batch.z)
    assert not torch.equal(model.simulate(b, length, seed=12).z, batch.z)


# ----------------------------------------------------------------------------- log joint
@pytest.mark.parametrize("with_y", [False, True])
def test_log_joint_pyro_matches_numpyro(model, with_y):
    batch = model.simulate(6, 9, seed=3)
    gen = torch.Generator().manual_seed(4)
    mask = torch.rand(6, 9, generator=gen) > 0.4
    mask[0] = True
    mask[1] = False  # a sequence with no real token
    y = batch.y if with_y else None
    lp = model.log_joint(batch.z, batch.x, y, mask=mask, backend="pyro")
    ln = model.log_joint(batch.z, batch.x, y, mask=mask, backend="numpyro")
    assert lp.shape == (6,) and lp.dtype == torch.float64
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp, ln, rtol=1e-9, atol=1e-6)
    # the mask really drops tokens: garbage in padded slots changes nothing
    x_bad = batch.x.clone()
    x_bad[~mask] = _garbage(x_bad)
    torch.testing.assert_close(
        model.log_joint(batch.z, x_bad, y, mask=mask, backend="numpyro"), ln, rtol=0, atol=1e-12
    )


# ----------------------------------------------------------------------------- exact posterior
def test_exact_posterior_shapes(model):
    batch = model.simulate(3, 5, seed=0)
    post = model.exact_posterior(batch.x)
    assert post.batch_shape == (3,)
    assert tuple(post.event_shape) == tuple(model.latent_shape)
    assert post.mean.dtype == torch.float64
    # float32 input is accepted and still computed in float64
    if batch.x.is_floating_point():
        post32 = model.exact_posterior(batch.x.float())
        assert post32.mean.dtype == torch.float64


def test_bayes_identity(model):
    """log p(z, x) - log p(z | x) must not depend on z (it is log p(x))."""
    batch = model.simulate(6, 9, seed=21)  # same shape as the log-joint test: no recompiles
    mask = torch.ones(6, 9, dtype=torch.bool)
    mask[1, 5:] = False
    post = model.exact_posterior(batch.x, mask)
    prior = model.pyro_prior("cpu")
    from_prior = _sample(prior, 4, seed=2).unsqueeze(1).expand(4, 6, *model.latent_shape)
    zs = torch.cat([_sample(post, 6, seed=1), from_prior])
    diffs = torch.stack([
        model.log_joint(z, batch.x, mask=mask, backend="numpyro") - post.log_prob(z) for z in zs
    ])  # (10, B)
    assert torch.isfinite(diffs).all()
    spread = (diffs - diffs[0]).abs().max()
    assert spread < 1e-9, spread


def test_masked_tokens_are_ignored(model):
    b, length = 4, 9
    batch = model.simulate(b, length, seed=5)
    lengths = [9, 5, 1, 3]
    mask = torch.arange(length).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    x = batch.x.clone()
    x[~mask] = _garbage(x)
    post = model.exact_posterior(x, mask)
    for i, n in enumerate(lengths):
        _assert_row_matches(post, i, model.exact_posterior(batch.x[i : i + 1, :n]))
    # a scattered (non-prefix) mask equals the compacted sequence
    gen = torch.Generator().manual_seed(6)
    scattered = torch.rand(b, length, generator=gen) > 0.5
    scattered[:, 0] = True
    x = batch.x.clone()
    x[~scattered] = _garbage(x)
    post = model.exact_posterior(x, scattered)
    for i in range(b):
        _assert_row_matches(post, i, model.exact_posterior(batch.x[i][scattered[i]].unsqueeze(0)))
    # no real token at all: the posterior is the prior
    empty = torch.zeros(b, length, dtype=torch.bool)
    post = model.exact_posterior(x, empty)
    prior = model.pyro_prior("cpu")
    torch.testing.assert_close(post.mean, prior.mean.expand_as(post.mean), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        post.variance, prior.variance.expand_as(post.variance), rtol=1e-12, atol=1e-12
    )


def _assert_row_matches(post, i, alone):
    """Row ``i`` of the batched posterior equals the single-sequence posterior ``alone``."""
    assert type(post) is type(alone)
    pp, qq = _post_params(post), _post_params(alone)
    for k in pp:
        torch.testing.assert_close(pp[k][i : i + 1], qq[k], rtol=1e-12, atol=1e-12, msg=k)


def test_permuting_tokens_leaves_posterior_unchanged(model):
    b, length = 3, 11
    batch = model.simulate(b, length, seed=8)
    gen = torch.Generator().manual_seed(9)
    mask = torch.rand(b, length, generator=gen) > 0.3
    post = model.exact_posterior(batch.x, mask)
    for seed in (1, 2):
        perm = torch.stack([
            torch.randperm(length, generator=torch.Generator().manual_seed(seed * 10 + i))
            for i in range(b)
        ])
        xp = torch.stack([batch.x[i, perm[i]] for i in range(b)])
        mp = torch.stack([mask[i, perm[i]] for i in range(b)])
        _assert_same_posterior(model.exact_posterior(xp, mp), post, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------- independent checks: quadrature
# Each sequence's log joint is evaluated in ONE call over the grid plus a few check
# points: JAX compiles every new array shape, so fewer shapes keep the file fast.
def test_gamma_poisson_matches_quadrature():
    model = CASES["gamma-poisson"]()
    batch = model.simulate(2, 12, seed=31)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    post = model.exact_posterior(batch.x, mask)
    t = np.linspace(-14.0, 6.0, 40001)  # t = log z: z in (8e-7, 403), trapezoid in t
    checks = np.array([0.3, 1.0, 2.5, 4.0])
    z = np.concatenate([np.exp(t), checks])
    for i in range(2):
        lj_all = _log_joint_np(model, torch.from_numpy(z), batch.x[i], mask[i])
        lj, lj_checks = lj_all[: t.size], lj_all[t.size :]
        log_evidence, mean = _trapz_moments(lj + t, t, np.exp(t))  # dz = z dt
        exact_mean = float(post.mean[i])
        assert abs(mean - exact_mean) <= 1e-6 * abs(exact_mean), (mean, exact_mean)
        exact = post.log_prob(torch.from_numpy(checks)[:, None].expand(-1, 2))[:, i].numpy()
        np.testing.assert_allclose(lj_checks - log_evidence, exact, rtol=0, atol=1e-7)


def test_normal_mean_1d_matches_quadrature():
    model = CASES["normal-mean-d1"]()
    batch = model.simulate(2, 10, seed=32)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 4:] = False
    post = model.exact_posterior(batch.x, mask)
    grid = np.linspace(-15.0, 15.0, 30001)
    checks = np.array([-1.0, -0.3, 0.2, 1.1])
    z = np.concatenate([grid, checks])[:, None]
    for i in range(2):
        lj_all = _log_joint_np(model, torch.from_numpy(z), batch.x[i], mask[i])
        lj, lj_checks = lj_all[: grid.size], lj_all[grid.size :]
        log_evidence, mean, second = _trapz_moments(lj, grid, grid, grid**2)
        exact_mean = float(post.mean[i, 0])
        assert abs(mean - exact_mean) <= 1e-6 * abs(exact_mean), (mean, exact_mean)
        exact_var = float(post.covariance_matrix[i, 0, 0])
        assert abs(second - mean**2 - exact_var) <= 1e-6 * exact_var
        exact = post.log_prob(torch.from_numpy(checks)[:, None, None].expand(-1, 2, 1))[:, i]
        np.testing.assert_allclose(lj_checks - log_evidence, exact.numpy(), rtol=0, atol=1e-7)


def test_normal_inverse_gamma_matches_2d_quadrature():
    model = CASES["normal-inverse-gamma"]()
    batch = model.simulate(2, 14, seed=33)
    mask = torch.ones(2, 14, dtype=torch.bool)
    mask[1, 9:] = False
    post = model.exact_posterior(batch.x, mask)
    mu = np.linspace(-12.0, 12.0, 601)  # mu is Student-t a posteriori: wide window
    t = np.linspace(-6.0, 7.5, 541)  # t = log sigma2, trapezoid in t; s2 tail ~ s2^-(a+1)
    mm, tt = np.meshgrid(mu, t, indexing="ij")
    checks = np.array([[-0.4, 0.7], [0.0, 1.3], [-0.8, 0.4], [0.3, 2.0]])
    z = np.concatenate([np.stack([mm.ravel(), np.exp(tt.ravel())], axis=-1), checks])
    for i in range(2):
        lj_all = _log_joint_np(model, torch.from_numpy(z), batch.x[i], mask[i])
        lj, lj_checks = lj_all[: mm.size].reshape(mm.shape), lj_all[mm.size :]
        logf = lj + tt  # d sigma2 = sigma2 dt
        c = logf.max()
        w = np.exp(logf - c)
        ws = w * np.exp(tt)
        sides = (0, -1, (slice(None), 0), (slice(None), -1))
        edge = max(v[k].max() for v in (w, ws) for k in sides)
        assert edge < 1e-12, ("quadrature window too narrow", edge)

        def integrate(f, w=w):
            return np.trapezoid(np.trapezoid(w * f, t, axis=1), mu)

        norm = integrate(1.0)
        log_evidence = math.log(norm) + c
        mean_mu, mean_s2 = integrate(mm) / norm, integrate(np.exp(tt)) / norm
        exact_mu, exact_s2 = (float(v) for v in post.mean[i])
        assert abs(mean_mu - exact_mu) <= 1e-4 * abs(exact_mu), (mean_mu, exact_mu)
        assert abs(mean_s2 - exact_s2) <= 1e-4 * exact_s2, (mean_s2, exact_s2)
        exact = post.log_prob(torch.from_numpy(checks)[:, None, :].expand(-1, 2, 2))[:, i]
        np.testing.assert_allclose(lj_checks - log_evidence, exact.numpy(), rtol=0, atol=1e-6)


# ---------------------------------------------------- independent checks: importance sampling
def _importance_check(model, x, mask, z_prop: np.ndarray, log_q: np.ndarray):
    """Self-normalised IS of the posterior mean and the evidence; 5 standard errors."""
    n = z_prop.shape[0]
    lj = _log_joint_np(model, torch.from_numpy(z_prop), x, mask)
    lw = lj - log_q
    w = np.exp(lw - lw.max())
    wn = w / w.sum()
    assert 1.0 / np.sum(wn**2) > 500, "effective sample size too small for the check"
    mean = wn @ z_prop
    se = np.sqrt(np.sum(wn[:, None] ** 2 * (z_prop - mean) ** 2, axis=0))
    log_evidence = logsumexp(lw) - math.log(n)
    se_log_evidence = np.std(w) / (np.sqrt(n) * np.mean(w))
    post = model.exact_posterior(x.unsqueeze(0), mask.unsqueeze(0))
    exact_mean = post.mean[0].numpy()
    assert np.all(np.abs(mean - exact_mean) < 5 * se), (mean, exact_mean, se)
    # Bayes: log p(x) = log p(z, x) - log p(z | x) at any z, here the first proposal
    exact_log_evidence = lj[0] - float(post.log_prob(torch.from_numpy(z_prop[:1]))[0])
    assert abs(log_evidence - exact_log_evidence) < 5 * se_log_evidence


def test_dirichlet_categorical_matches_importance_sampling():
    model = CASES["dirichlet-categorical"]()
    alpha = np.array([0.5, 1.0, 2.0, 1.5])
    batch = model.simulate(2, 10, seed=34)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    rng = np.random.default_rng(35)
    z = rng.dirichlet(alpha, size=50_000)
    z = z / z.sum(-1, keepdims=True)
    log_q = scipy.stats.dirichlet.logpdf(z.T, alpha)
    for i in range(2):
        _importance_check(model, batch.x[i], mask[i], z, log_q)


def test_normal_mean_2d_matches_importance_sampling():
    model = CASES["normal-mean"]()
    batch = model.simulate(2, 6, seed=36)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 2:] = False
    rng = np.random.default_rng(37)
    z = 0.3 + 1.5 * rng.standard_normal((50_000, 2))
    log_q = scipy.stats.norm.logpdf(z, 0.3, 1.5).sum(-1)
    for i in range(2):
        _importance_check(model, batch.x[i], mask[i], z, log_q)


# ----------------------------------------------------------------------------- bad input
BAD_PARAMS = [
    (NormalMean, {"d": 0}),
    (NormalMean, {"d": 1.5}),
    (NormalMean, {"d": True}),
    (NormalMean, {"prior_scale": 0.0}),
    (NormalMean, {"prior_scale": -1.0}),
    (NormalMean, {"prior_scale": float("nan")}),
    (NormalMean, {"prior_mean": float("inf")}),
    (NormalMean, {"prior_mean": "zero"}),
    (NormalMean, {"noise_cov": [[1.0]]}),
    (NormalMean, {"noise_cov": [[1.0, 0.5], [0.2, 1.0]]}),
    (NormalMean, {"noise_cov": [[1.0, 2.0], [2.0, 1.0]]}),
    (NormalMean, {"noise_cov": [[1.0, 0.0], [0.0, 0.0]]}),
    (NormalMean, {"noise_cov": [[1.0, float("nan")], [float("nan"), 1.0]]}),
    (NormalMean, {"noise_cov": [[1.0, 0.0], [0.0]]}),
    (NormalMean, {"d": 3, "noise_cov": [[1.0, 0.0], [0.0, 1.0]]}),
    (NormalInverseGamma, {"k0": 0.0}),
    (NormalInverseGamma, {"a0": -1.0}),
    (NormalInverseGamma, {"b0": float("nan")}),
    (NormalInverseGamma, {"m0": float("inf")}),
    (NormalInverseGamma, {"b0": "two"}),
    (GammaPoisson, {"a": 0.0}),
    (GammaPoisson, {"b": -2.0}),
    (GammaPoisson, {"a": float("nan")}),
    (GammaPoisson, {"b": float("inf")}),
    (GammaPoisson, {"a": None}),
    (DirichletCategorical, {"K": 1}),
    (DirichletCategorical, {"K": 2.5}),
    (DirichletCategorical, {"K": True}),
    (DirichletCategorical, {"alpha": 0.0}),
    (DirichletCategorical, {"alpha": -1.0}),
    (DirichletCategorical, {"alpha": float("nan")}),
    (DirichletCategorical, {"alpha": [1.0, 1.0, 1.0]}),
    (DirichletCategorical, {"alpha": [1.0, 1.0, 0.0, 1.0]}),
    (DirichletCategorical, {"alpha": [[1.0, 1.0], [1.0, 1.0]]}),
    (DirichletCategorical, {"alpha": [1.0, [1.0], 1.0, 1.0]}),
]


@pytest.mark.parametrize(("cls", "kwargs"), BAD_PARAMS, ids=lambda v: repr(v)[:40])
def test_bad_parameters_raise(cls, kwargs):
    with pytest.raises(ModelInputError):
        cls(**kwargs)


def _bad_tokens():
    f64 = torch.float64
    nan_real = torch.zeros(2, 3, dtype=f64)
    nan_real[1, 2] = float("nan")
    nan_vec = torch.zeros(2, 3, 2, dtype=f64)
    nan_vec[0, 1, 1] = float("nan")
    return [
        ("normal-mean", torch.zeros(2, 3, dtype=f64)),  # missing token dim
        ("normal-mean", torch.zeros(2, 3, 3, dtype=f64)),  # wrong d
        ("normal-mean", nan_vec),
        ("normal-mean", torch.zeros(2, 3, 2, dtype=torch.long)),  # int dtype for reals
        ("normal-inverse-gamma", torch.zeros(2, 3, 1, dtype=f64)),  # extra dim
        ("normal-inverse-gamma", torch.zeros(3, dtype=f64)),  # no batch dim
        ("normal-inverse-gamma", nan_real),
        ("normal-inverse-gamma", torch.zeros(2, 3, dtype=torch.long)),
        ("normal-inverse-gamma", torch.zeros(2, 0, dtype=f64)),  # L = 0
        ("gamma-poisson", torch.tensor([[0.0, -1.0, 2.0]])),
        ("gamma-poisson", torch.tensor([[0.0, 1.5, 2.0]])),
        ("gamma-poisson", torch.tensor([[0, -1, 2]])),
        ("gamma-poisson", nan_real),
        ("gamma-poisson", torch.zeros(2, 3, 1)),
        ("dirichlet-categorical", torch.tensor([[0, 1, 4]])),  # id >= K
        ("dirichlet-categorical", torch.tensor([[0, -1, 2]])),
        ("dirichlet-categorical", torch.tensor([[0.0, 1.0, 2.0]])),  # float ids
        ("dirichlet-categorical", torch.tensor([[True, False, True]])),
        ("dirichlet-categorical", torch.zeros(2, 3, 4, dtype=torch.long)),  # one-hot is wrong
    ]


@pytest.mark.parametrize(("name", "x"), _bad_tokens(), ids=lambda v: str(v)[:30])
def test_bad_tokens_raise(name, x):
    model = CASES[name]()
    with pytest.raises(ModelInputError):
        model.exact_posterior(x)
    if x.ndim >= 2 and x.shape[1] > 0:
        z = model.simulate(x.shape[0], 1, seed=0).z
        with pytest.raises(ModelInputError):
            model.log_joint(z, x)


def test_bad_padding_is_fine_but_bad_mask_is_not():
    model = CASES["gamma-poisson"]()
    x = torch.tensor([[1.0, -1.0, 1.5]])
    mask = torch.tensor([[True, False, False]])
    assert float(model.exact_posterior(x, mask).concentration[0]) == 3.5
    with pytest.raises(ModelInputError):
        model.exact_posterior(x, mask.long())
    with pytest.raises(ModelInputError):
        model.exact_posterior(x, mask[:, :2])


def test_latent_outside_support_raises():
    nig = CASES["normal-inverse-gamma"]()
    x = torch.zeros(1, 3, dtype=torch.float64)
    with pytest.raises(ModelInputError):
        nig.log_joint(torch.tensor([[0.0, -1.0]], dtype=torch.float64), x)
    dc = CASES["dirichlet-categorical"]()
    with pytest.raises(ModelInputError):
        dc.log_joint(
            torch.tensor([[0.5, 0.5, 0.5, 0.5]], dtype=torch.float64),
            torch.zeros(1, 3, dtype=torch.long),
        )


# ------------------------------------------------------------ normal-inverse-gamma internals
def test_nig_joint_log_prob_matches_pyro_factorisation():
    import pyro.distributions as pdist

    d = NormalInvGammaJoint(
        torch.tensor([0.3, -1.0], dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64),
        torch.tensor(3.5, dtype=torch.float64), torch.tensor([1.2, 0.4], dtype=torch.float64),
    )
    assert d.batch_shape == (2,) and d.event_shape == (2,)
    v = torch.tensor([[[0.1, 0.7]], [[-2.0, 2.5]]], dtype=torch.float64)  # (2, 1, 2) -> (2, 2)
    ref = pdist.InverseGamma(d.concentration, d.rate).log_prob(v[..., 1]) + pdist.Normal(
        d.loc, (v[..., 1] / d.kappa).sqrt()
    ).log_prob(v[..., 0])
    torch.testing.assert_close(d.log_prob(v), ref, rtol=1e-12, atol=1e-12)
    with jax.enable_x64(True):
        nd = NumPyroNormalInvGammaJoint(
            jnp.array([0.3, -1.0]), 2.0, 3.5, jnp.array([1.2, 0.4])
        )
        assert nd.batch_shape == (2,) and nd.event_shape == (2,)
        lp = np.asarray(nd.log_prob(jnp.asarray(v.numpy())))
        np.testing.assert_allclose(lp, ref.numpy(), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(nd.mean), d.mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(nd.variance), d.variance.numpy(), rtol=1e-12)
    e = d.expand((4, 2))
    assert isinstance(e, NormalInvGammaJoint) and e.batch_shape == (4, 2)
    assert e.log_prob(torch.zeros(4, 2, 2, dtype=torch.float64) + 0.5).shape == (4, 2)


def test_nig_joint_sampling_moments():
    d = NormalInvGammaJoint(*(torch.tensor(v, dtype=torch.float64) for v in (0.3, 2.0, 5.0, 3.0)))
    s = _sample(d, 50_000, seed=40)
    assert s.shape == (50_000, 2) and (s[:, 1] > 0).all()
    se = (d.variance / s.shape[0]).sqrt()
    assert ((s.mean(0) - d.mean).abs() < 5 * se).all(), (s.mean(0), d.mean)
    # rsample is differentiable in the parameters
    f64 = torch.float64
    loc = torch.tensor(0.3, dtype=f64, requires_grad=True)
    rate = torch.tensor(3.0, dtype=f64, requires_grad=True)
    kappa, conc = torch.tensor(2.0, dtype=f64), torch.tensor(5.0, dtype=f64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(41)
        r = NormalInvGammaJoint(loc, kappa, conc, rate).rsample((10,))
    r.sum().backward()
    assert loc.grad is not None and rate.grad is not None
    with jax.enable_x64(True):
        nd = NumPyroNormalInvGammaJoint(0.3, 2.0, 5.0, 3.0)
        ns = np.asarray(nd.sample(jax.random.PRNGKey(42), (50_000,)))
        assert ns.shape == (50_000, 2) and (ns[:, 1] > 0).all()
        assert np.all(np.abs(ns.mean(0) - d.mean.numpy()) < 5 * se.numpy())


def test_nig_bijections():
    from numpyro.distributions.transforms import biject_to as nbiject_to
    from torch.distributions import biject_to as tbiject_to

    model = CASES["normal-inverse-gamma"]()
    with jax.enable_x64(True):
        support = model.numpyro_prior().support
        tr = nbiject_to(support)
        u = jnp.array([[0.3, -0.7], [-2.0, 1.3]])
        y = tr(u)
        assert bool(support(y).all())
        np.testing.assert_allclose(np.asarray(tr.inv(y)), np.asarray(u), rtol=1e-12)
        for k in range(2):
            jac = jax.jacobian(tr)(u[k])
            np.testing.assert_allclose(
                float(tr.log_abs_det_jacobian(u[k], y[k])),
                float(jnp.log(jnp.abs(jnp.linalg.det(jac)))), rtol=1e-12,
            )
        proto = jnp.zeros((3, 2))
        assert bool(support(support.feasible_like(proto)).all())
    ttr = tbiject_to(model.latent_support)
    u = torch.tensor([0.3, -0.7], dtype=torch.float64)
    y = ttr(u)
    assert bool(model.latent_support.check(y))
    torch.testing.assert_close(ttr.inv(y), u)
    jac = torch.autograd.functional.jacobian(ttr, u)
    torch.testing.assert_close(ttr.log_abs_det_jacobian(u, y), torch.linalg.det(jac).abs().log())


def test_nig_runs_under_pyro_and_numpyro_nuts():
    from numpyro.infer import MCMC as NMCMC
    from numpyro.infer import NUTS as NNUTS
    from pyro.infer import MCMC, NUTS

    model = CASES["normal-inverse-gamma"]()
    batch = model.simulate(1, 20, seed=50)
    exact = model.exact_posterior(batch.x)
    sd = exact.variance[0].sqrt()

    def program(x):
        return model.pyro_model(x, num_sequences=1, seq_len=20, sample_target=False)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(51)
        mcmc = MCMC(NUTS(program), num_samples=40, warmup_steps=40, disable_progbar=True)
        mcmc.run(batch.x)
    s = mcmc.get_samples()["z"].reshape(-1, 2)
    assert s.shape == (40, 2) and torch.isfinite(s).all() and (s[:, 1] > 0).all()
    assert ((s.mean(0) - exact.mean[0]).abs() < sd).all()

    with jax.enable_x64(True):
        nm = NMCMC(NNUTS(model.numpyro_model), num_warmup=50, num_samples=50, progress_bar=False)
        nm.run(
            jax.random.PRNGKey(52), jnp.asarray(batch.x.numpy()), num_sequences=1, seq_len=20,
            sample_target=False,
        )
        ns = np.asarray(nm.get_samples()["z"]).reshape(-1, 2)
    assert ns.shape == (50, 2) and np.isfinite(ns).all() and (ns[:, 1] > 0).all()
    assert np.all(np.abs(ns.mean(0) - exact.mean[0].numpy()) < sd.numpy())


@pytest.mark.parametrize("magnitude", [1e-150, 1.0, 1e100, 1e150])
def test_normal_inverse_gamma_posterior_is_exact_over_the_float64_range(magnitude):
    """b_N against exact rational arithmetic on the same float64 tokens."""
    from fractions import Fraction

    m = get("normal-inverse-gamma")
    x = torch.tensor([[1.5, -2.25, 0.75, 3.0, -0.5]], dtype=torch.float64) * magnitude
    post = m.exact_posterior(x)
    p = {k: Fraction(v) for k, v in m.params.items()}
    xs = [Fraction(float(v)) for v in x[0]]
    n = len(xs)
    xbar = sum(xs) / n
    k_n = p["k0"] + n
    b_n = (p["b0"] + sum((v - xbar) ** 2 for v in xs) / 2
           + p["k0"] * n * (xbar - p["m0"]) ** 2 / (2 * k_n))
    assert float(post.rate[0]) == pytest.approx(float(b_n), rel=1e-13)
    assert float(post.loc[0]) == pytest.approx(float((p["k0"] * p["m0"] + n * xbar) / k_n),
                                               rel=1e-13, abs=1e-300)


def test_normal_inverse_gamma_refuses_what_float64_cannot_hold():
    m = get("normal-inverse-gamma")
    with pytest.raises(ModelInputError, match=r"b_N of sequence 1 exceeds float64.*1e\+160"):
        m.exact_posterior(torch.tensor([[1.0, 2.0], [1e160, -1e160]], dtype=torch.float64))
    post = m.exact_posterior(torch.tensor([[1e100, -1e100]], dtype=torch.float64))
    assert torch.isfinite(post.mean).all()  # E[sigma^2] ~ 1e200 is representable
    with pytest.raises(OverflowError, match="rescale the data"):
        post.variance  # noqa: B018 - Var[sigma^2] ~ 1e400 is not
