"""Posterior heads: shapes, supports, log densities, gradients, fitting and errors."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import constraints

from bayesattn import models
from bayesattn.inference._heads import (
    KINDS,
    HeadError,
    PosteriorHead,
    fitting_kinds,
    make_head,
    unconstrained_dim,
    unconstrained_shape,
)

B, F = 4, 6
PAIRS = [(n, k) for n in models.names() for k in ("auto", *fitting_kinds(models.get(n)))]


@functools.cache
def _model_and_batch(name: str):
    model = models.get(name)
    return model, model.simulate(B, 5, seed=1)


class _FakeModel:
    """Duck-typed model with a chosen latent shape and support."""

    def __init__(self, shape, support, name="fake"):
        self.latent_shape, self.latent_support, self.name = shape, support, name


def _h(b=B, scale=1.0, seed=0):
    return scale * torch.randn(b, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("name", "kind"), PAIRS, ids=[f"{n}-{k}" for n, k in PAIRS])
def test_head_contract(name, kind):
    model, batch = _model_and_batch(name)
    head = make_head(model, F, kind, seed=0)
    assert isinstance(head, PosteriorHead) and head.kind in KINDS
    assert all(p.dtype == torch.float32 for p in head.parameters())
    q = head(_h())
    assert q.batch_shape == (B,)
    assert q.event_shape == model.latent_shape
    s = q.sample((7,))
    assert s.shape == (7, B, *model.latent_shape)
    assert s.dtype == (torch.int64 if model.latent_is_discrete else torch.float32)
    assert bool(torch.as_tensor(model.latent_support.check(s)).all())
    lp = q.log_prob(batch.z)  # float64 ground truth is cast to float32
    assert lp.shape == (B,) and lp.dtype == torch.float32
    assert bool(torch.isfinite(lp).all())
    assert q.log_prob(s).shape == (7, B)
    (-lp.mean()).backward()
    grads = [p.grad for p in head.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [("concept-mixture", "categorical"), ("unigram-mixture", "categorical"),
     ("dirichlet-categorical", "dirichlet"), ("topic-admixture", "dirichlet"),
     ("beta-bernoulli", "beta"), ("gamma-poisson", "gamma"), ("normal-mean", "gaussian-full"),
     ("linear-regression", "gaussian-full"), ("normal-inverse-gamma", "gaussian-full")],
)
def test_auto_kind(name, expected):
    assert make_head(models.get(name), F).kind == expected


def test_auto_on_constrained_support_goes_through_biject_to():
    q = make_head(models.get("normal-inverse-gamma"), F)(_h())
    assert isinstance(q, torch.distributions.TransformedDistribution)
    assert bool((q.sample((200,))[..., 1] > 0).all())


def test_unconstrained_dim():
    assert unconstrained_dim(models.get("dirichlet-categorical")) == 3
    assert unconstrained_shape(models.get("topic-admixture")) == (2,)
    assert unconstrained_dim(models.get("normal-inverse-gamma")) == 2
    assert unconstrained_shape(models.get("beta-bernoulli")) == ()
    assert unconstrained_dim(models.get("beta-bernoulli")) == 1
    with pytest.raises(HeadError):
        unconstrained_dim(models.get("concept-mixture"))


@pytest.mark.parametrize("kind", ["gaussian-diag", "gaussian-full", "gaussian-mixture", "flow"])
def test_pushed_density_integrates_to_one_on_unit_interval(kind):
    """log_prob includes the Jacobian of biject_to: the density on (0, 1) integrates to 1."""
    head = make_head(models.get("beta-bernoulli"), F, kind, seed=0)
    grid = torch.linspace(1e-5, 1 - 1e-5, 20001)
    with torch.no_grad():
        dens = head(_h(1)).log_prob(grid.unsqueeze(-1)).exp().squeeze(-1)
    assert float(torch.trapezoid(dens, grid)) == pytest.approx(1.0, abs=2e-3)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-3, 1e4), seed=st.integers(0, 2**16))
def test_beta_head_never_leaves_open_unit_interval(scale, seed):
    head = make_head(models.get("beta-bernoulli"), F, "beta", seed=seed)
    with torch.no_grad():
        q = head(_h(scale=scale, seed=seed))
        s = q.sample((500,))
        assert bool(((s > 0) & (s < 1)).all())
        assert bool(torch.isfinite(q.log_prob(s)).all())


@pytest.mark.parametrize(
    ("shape", "support"),
    [((), constraints.real), ((), constraints.positive), ((2,), constraints.real_vector),
     ((2, 3), constraints.independent(constraints.real, 2))],
    ids=["scalar-real", "scalar-positive", "vector-2", "matrix-2x3"],
)
def test_flow_scalar_and_multidim_latents(shape, support):
    head = make_head(_FakeModel(shape, support), F, "flow", seed=0)
    q = head(_h())
    assert q.batch_shape == (B,) and q.event_shape == shape
    s = q.rsample((3,))
    assert s.shape == (3, B, *shape)
    assert bool(torch.as_tensor(support.check(s)).all())
    lp = q.log_prob(s.detach())
    assert lp.shape == (3, B) and bool(torch.isfinite(lp).all())
    (s.sum() - lp.sum()).backward()
    assert all(p.grad is not None for p in head.parameters())


def _fit(head, data, steps=300, lr=2e-2):
    """Maximum likelihood with a constant input; returns q for that input."""
    h = torch.ones(1, F)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = -head(h).log_prob(data.unsqueeze(1)).mean()  # data (N, 1, *latent)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return head(h)


def test_gaussian_full_fit_recovers_mean_and_sd():
    n = 4000
    g = torch.Generator().manual_seed(0)
    mu, sd = torch.tensor([1.5, -2.0]), torch.tensor([0.5, 2.0])
    data = mu + sd * torch.randn(n, 2, generator=g)
    q = _fit(make_head(models.get("normal-mean"), F, "gaussian-full", seed=0), data)
    # MLE error ~ sd / sqrt(n) for the mean and sd / sqrt(2 n) for the sd; 5 standard errors.
    assert bool(((q.mean[0] - mu).abs() < 5 * sd / math.sqrt(n)).all())
    assert bool(((q.stddev[0] - sd).abs() < 5 * sd / math.sqrt(2 * n)).all())


@pytest.mark.parametrize("kind", ["gamma", "flow"])
def test_gamma_fit_recovers_mean_and_sd(kind):
    n, a, b = 4000, 3.0, 2.0
    g = torch.Generator().manual_seed(1)
    data = torch._standard_gamma(torch.full((n,), a), generator=g) / b
    mean, sd = a / b, math.sqrt(a) / b
    q = _fit(make_head(models.get("gamma-poisson"), F, kind, seed=0), data)
    if kind == "gamma":
        got_mean, got_sd, extra = q.mean[0], q.stddev[0], 0.0
    else:  # no closed-form moments: Monte Carlo, whose error adds to the tolerance
        m = 20000
        with torch.no_grad():
            s = q.sample((m,))
        got_mean, got_sd, extra = s.mean(), s.std(), 5 * sd / math.sqrt(m)
    # se of the sample mean: sd/sqrt(n); of the sample sd: sd*sqrt((kurt-1)/4n) <= 2sd/sqrt(n)
    assert abs(float(got_mean) - mean) < 5 * sd / math.sqrt(n) + extra
    assert abs(float(got_sd) - sd) < 10 * sd / math.sqrt(n) + 2 * extra


@pytest.mark.parametrize(
    ("name", "kind", "fits"),
    [("normal-mean", "dirichlet", "gaussian-full"), ("normal-mean", "categorical", "flow"),
     ("beta-bernoulli", "gamma", "beta"), ("concept-mixture", "gaussian-full", "categorical"),
     ("dirichlet-categorical", "beta", "dirichlet"), ("normal-mean", "nonsense", "auto")],
)
def test_bad_kind_lists_fitting_kinds(name, kind, fits):
    with pytest.raises(ValueError, match="kinds that fit") as info:
        make_head(models.get(name), F, kind)
    assert repr(fits) in str(info.value) and repr(kind) in str(info.value)


def test_bad_inputs():
    model = models.get("normal-mean")
    with pytest.raises(HeadError, match="in_dim"):
        make_head(model, 0)
    with pytest.raises(TypeError, match="unknown option"):
        make_head(model, F, "flow", components=2)
    with pytest.raises(HeadError, match="covariance"):
        make_head(model, F, "gaussian-mixture", covariance="banana")
    with pytest.raises(TypeError, match="latent_support"):
        make_head(object(), F)
    with pytest.raises(HeadError, match="no head kind fits"):
        make_head(_FakeModel((2,), constraints.independent(constraints.boolean, 1)), F)
    head = make_head(model, F)
    with pytest.raises(HeadError, match=r"shape \(B, 6\)"):
        head(torch.zeros(B, F + 1))
    with pytest.raises(TypeError, match="floating"):
        head([[0.0] * F])


def test_float64_input_seed_and_global_rng():
    model = models.get("topic-admixture")
    state = torch.random.get_rng_state()
    a, b = make_head(model, F, "gaussian-mixture", seed=3), make_head(model, F, "flow", seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # seeded init: global RNG untouched
    a2 = make_head(model, F, "gaussian-mixture", seed=3)
    for p, p2 in zip(a.parameters(), a2.parameters(), strict=True):
        assert torch.equal(p, p2)
    for head in (a, b):
        q = head(_h().double())
        assert q.sample().dtype == torch.float32
