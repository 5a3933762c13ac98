"""The model contract (docs/architecture.md#public-api), checked for every registered model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import constraints

from bayesattn import models
from bayesattn.models import ExchangeableModel, ModelInputError, NoExactPosterior

ALL = models.names()
EXACT = [n for n in ALL if models.get(n).has_exact_posterior]


def test_zoo_has_the_required_models():
    required = {
        "concept-mixture", "unigram-mixture", "beta-bernoulli", "dirichlet-categorical",
        "normal-mean", "normal-inverse-gamma", "gamma-poisson", "linear-regression",
        "topic-admixture", "logistic-regression",
    }
    assert required <= set(ALL)


def test_unknown_model_suggests_close_names():
    with pytest.raises(models.UnknownModelError, match="beta-bernoulli"):
        models.get("beta-bernouli")


@pytest.mark.parametrize("name", ALL)
def test_contract_attributes(name):
    m = models.get(name)
    assert isinstance(m, ExchangeableModel)
    assert m.name == name
    assert isinstance(m.params, dict)
    assert isinstance(m.latent_shape, tuple) and isinstance(m.token_shape, tuple)
    # params fully define the model: rebuilding from them gives the same program.
    again = models.get(name, **m.params)
    b1 = m.simulate(3, 5, seed=11)
    b2 = again.simulate(3, 5, seed=11)
    assert torch.equal(b1.x, b2.x) and torch.equal(b1.z, b2.z)


@pytest.mark.parametrize("name", ALL)
def test_simulate_shapes_support_and_determinism(name):
    m = models.get(name)
    b = m.simulate(3, 7, seed=1)
    assert b.z.shape == (3, *m.latent_shape)
    assert b.x.shape == (3, 7, *m.token_shape)
    assert b.y.shape == (3, *m.target_shape)
    assert b.mask.dtype == torch.bool and bool(b.mask.all())
    assert bool(torch.as_tensor(m.latent_support.check(b.z)).all())
    m.validate_tokens(b.x)  # simulated tokens are valid input
    again = m.simulate(3, 7, seed=1)
    for f in ("z", "x", "y"):
        assert torch.equal(getattr(b, f), getattr(again, f))
    other = m.simulate(3, 7, seed=2)
    assert not torch.equal(b.x, other.x)


@pytest.mark.parametrize("name", ALL)
def test_simulate_leaves_global_rng_alone(name):
    m = models.get(name)
    state = torch.random.get_rng_state()
    m.simulate(2, 4, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("with_y", [True, False])
def test_pyro_and_numpyro_log_joint_agree(name, with_y):
    m = models.get(name)
    b = m.simulate(4, 9, seed=3)
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(4, 9, generator=gen) > 0.3
    y = b.y if with_y else None
    lp = m.log_joint(b.z, b.x, y, mask=mask, backend="pyro")
    ln = m.log_joint(b.z, b.x, y, mask=mask, backend="numpyro")
    assert lp.shape == (4,) and lp.dtype == torch.float64
    torch.testing.assert_close(lp, ln, rtol=1e-6, atol=1e-6)
    assert torch.isfinite(lp).all()


@pytest.mark.parametrize("name", ALL)
def test_log_joint_ignores_padding(name):
    m = models.get(name)
    b = m.simulate(2, 6, seed=4)
    padded = m.simulate(2, 10, seed=5).x
    padded[:, :6] = b.x
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, :6] = True
    torch.testing.assert_close(
        m.log_joint(b.z, padded, b.y, mask=mask), m.log_joint(b.z, b.x, b.y), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", EXACT)
def test_exact_posterior_contract(name):
    m = models.get(name)
    b = m.simulate(5, 8, seed=6)
    post = m.exact_posterior(b.x)
    assert post.batch_shape == (5,)
    if m.latent_is_discrete:
        assert post.probs.dtype == torch.float64
        torch.testing.assert_close(post.probs.sum(-1), torch.ones(5, dtype=torch.float64))
    else:
        assert post.event_shape == m.latent_shape
        assert post.mean.dtype == torch.float64
    lp = post.log_prob(b.z)
    assert lp.shape == (5,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("name", EXACT)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_exact_posterior_is_permutation_invariant(name, seed):
    m = models.get(name)
    b = m.simulate(3, 6, seed=seed)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(seed))
    p1 = m.exact_posterior(b.x)
    p2 = m.exact_posterior(b.x[:, perm])
    torch.testing.assert_close(p1.log_prob(b.z), p2.log_prob(b.z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", [n for n in ALL if n not in EXACT])
def test_models_without_closed_form_say_so(name):
    m = models.get(name)
    b = m.simulate(2, 4, seed=0)
    with pytest.raises(NoExactPosterior, match="nuts"):
        m.exact_posterior(b.x)


# ---------------------------------------------------------------- bad input
def _bad_support_token(m: ExchangeableModel, x: torch.Tensor) -> torch.Tensor | None:
    """A copy of x with one token outside the support, or None if there is none to make."""
    s = m.token_support
    x = x.clone()
    if isinstance(s, constraints.integer_interval):
        x[0, 0] = s.upper_bound + 1
    elif s is constraints.boolean:
        x[0, 0] = 2.0
    elif s is constraints.nonnegative_integer:
        x[0, 0] = -1.0
    elif s is constraints.positive:
        x[0, 0] = -1.0
    else:
        return None
    return x


@pytest.mark.parametrize("name", ALL)
def test_bad_tokens_raise_clear_errors(name):
    m = models.get(name)
    x = m.simulate(2, 5, seed=0).x
    with pytest.raises(ModelInputError, match="shape"):
        m.validate_tokens(x[..., None])
    with pytest.raises(ModelInputError, match="L = 0"):
        m.validate_tokens(x[:, :0])
    with pytest.raises(ModelInputError, match="B = 0"):
        m.validate_tokens(x[:0])
    with pytest.raises(ModelInputError, match="mask"):
        m.validate_tokens(x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ModelInputError, match="bool"):
        m.validate_tokens(x, torch.ones(2, 5))
    with pytest.raises(ModelInputError):
        m.validate_tokens(x.tolist())
    if x.is_floating_point():
        bad = x.clone()
        bad.view(-1)[0] = float("nan")
        with pytest.raises(ModelInputError, match="finite"):
            m.validate_tokens(bad)
    bad = _bad_support_token(m, x)
    if bad is not None:
        with pytest.raises(ModelInputError, match="support"):
            m.validate_tokens(bad)


@pytest.mark.parametrize("name", ALL)
def test_wrong_dtype_is_rejected(name):
    m = models.get(name)
    x = m.simulate(2, 5, seed=0).x
    if isinstance(m.token_support, constraints.integer_interval):
        wrong = x.double()
    elif m.token_support.is_discrete:
        wrong = torch.complex(x.double(), x.double())
    else:
        wrong = x.round().long()
    with pytest.raises(ModelInputError, match="dtype"):
        m.validate_tokens(wrong)


@pytest.mark.parametrize("name", ALL)
def test_bad_simulate_arguments(name):
    m = models.get(name)
    for kwargs in ({"num_sequences": 0, "seq_len": 3}, {"num_sequences": 2, "seq_len": 0},
                   {"num_sequences": 2.5, "seq_len": 3}):
        with pytest.raises(ModelInputError):
            m.simulate(**kwargs, seed=0)
    with pytest.raises(ModelInputError, match="seed"):
        m.simulate(2, 3, seed="0")


@pytest.mark.parametrize("name", ALL)
def test_log_joint_rejects_bad_latent_and_target(name):
    m = models.get(name)
    b = m.simulate(2, 4, seed=0)
    with pytest.raises(ModelInputError, match="z must have shape"):
        m.log_joint(b.z[:1], b.x)
    with pytest.raises(ModelInputError, match="y must have shape"):
        m.log_joint(b.z, b.x, b.y[:1])
    with pytest.raises(ModelInputError, match="backend"):
        m.log_joint(b.z, b.x, backend="stan")


def test_setbatch_validates_and_slices():
    m = models.get("beta-bernoulli")
    b = m.simulate(4, 3, seed=0)
    assert len(b[1:3]) == 2 and b[0].x.shape == (1, 3)
    with pytest.raises(ModelInputError, match="sequences"):
        models.SetBatch(z=b.z[:2], x=b.x, y=b.y, mask=b.mask)
    np.testing.assert_array_equal(b.lengths.numpy(), [3, 3, 3, 3])


@pytest.mark.parametrize("name", ALL)
def test_log_joint_rejects_targets_outside_support(name):
    m = models.get(name)
    b = m.simulate(2, 4, seed=0)
    support = m.pyro_target(b.z.unsqueeze(1)).support
    if isinstance(support, constraints.integer_interval):
        bad = torch.full_like(b.y, support.upper_bound + 1)
    elif support in (constraints.boolean, constraints.nonnegative_integer):
        bad = torch.full_like(b.y, -1.0)
    else:
        bad = torch.full_like(b.y, float("nan"))
        with pytest.raises(ModelInputError):
            m.log_joint(b.z, b.x, bad)
        return
    with pytest.raises(ModelInputError, match="target support"):
        m.log_joint(b.z, b.x, bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), "abc"])
def test_beta_bernoulli_rejects_bad_hyperparameters(bad):
    with pytest.raises(ModelInputError, match="beta-bernoulli"):
        models.get("beta-bernoulli", a=bad)
