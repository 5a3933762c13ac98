"""Tests for the finite-mixture models ``concept-mixture`` and ``unigram-mixture``.

The exact posterior (enumeration in closed form) is checked against three
independent routes: brute-force enumeration through ``log_joint`` (both programs),
Pyro's ``TraceEnum_ELBO.compute_marginals`` and, when funsor is installed,
NumPyro's enumerated ``log_density`` for the evidence.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate

from bayesattn.models import ModelInputError, get
from bayesattn.models.concept_mixture import ConceptMixture
from bayesattn.models.unigram_mixture import UnigramMixture

MODELS = {
    "concept": lambda: ConceptMixture(),
    "concept-3d-unequal": lambda: ConceptMixture(
        K=3, d=3, weights=[0.5, 0.3, 0.2], scale=1.5, label_noise=0.3
    ),
    "unigram": lambda: UnigramMixture(),
    "unigram-small": lambda: UnigramMixture(
        word_probs=[[0.5, 0.25, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4]], weights=[0.7, 0.3]
    ),
}


@pytest.fixture(params=sorted(MODELS), scope="module")
def model(request):
    return MODELS[request.param]()


def random_mask(b: int, length: int, seed: int) -> torch.Tensor:
    """A random bool mask with at least one real token per row (the first)."""
    mask = torch.rand(b, length, generator=torch.Generator().manual_seed(seed)) > 0.4
    mask[:, 0] = True
    return mask


def brute_force_probs(model, x, mask, backend: str) -> torch.Tensor:
    """p(z=k | x) from log p(z=k, x) evaluated by the model's own program, for each k."""
    b, k = x.shape[0], model.params["K"]
    cols = [
        model.log_joint(torch.full((b,), j, dtype=torch.long), x, mask=mask, backend=backend)
        for j in range(k)
    ]
    return torch.stack(cols, -1).softmax(-1)


# ---------------------------------------------------------------------- simulate
def test_simulate_shapes_and_dtypes(model):
    b, length = 6, 9
    batch = model.simulate(b, length, seed=3)
    k = model.params["K"]
    assert batch.z.shape == (b,) and batch.z.dtype == torch.long
    assert batch.y.shape == (b,) and batch.y.dtype == torch.long
    assert ((batch.z >= 0) & (batch.z < k)).all() and ((batch.y >= 0) & (batch.y < k)).all()
    assert batch.x.shape == (b, length, *model.token_shape)
    if isinstance(model, UnigramMixture):
        assert batch.x.dtype == torch.long
        assert ((batch.x >= 0) & (batch.x < model.params["V"])).all()
    else:
        assert batch.x.dtype == torch.float64
    assert batch.mask.all()
    again = model.simulate(b, length, seed=3)
    assert torch.equal(batch.x, again.x) and torch.equal(batch.z, again.z)
    assert not torch.equal(batch.x, model.simulate(b, length, seed=4).x)


def test_params_are_json_and_rebuild_the_model(model):
    params = json.loads(json.dumps(model.params))
    twin = get(model.name, **params)
    assert twin.params == model.params
    batch = model.simulate(3, 5, seed=0)
    assert torch.equal(twin.simulate(3, 5, seed=0).x, batch.x)


def test_target_is_noisy_copy_of_z(model):
    k, eps = model.params["K"], model.params["label_noise"]
    z = torch.arange(k).reshape(k, 1)
    probs = model.pyro_target(z).probs.squeeze(1)
    expected = (1 - eps) * torch.eye(k, dtype=torch.float64) + eps / k
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------- the twins
@pytest.mark.parametrize("with_y", [False, True])
def test_pyro_and_numpyro_log_joint_agree(model, with_y):
    batch = model.simulate(5, 11, seed=1)
    mask = random_mask(5, 11, seed=2)
    y = batch.y if with_y else None
    lp_pyro = model.log_joint(batch.z, batch.x, y, mask=mask, backend="pyro")
    lp_numpyro = model.log_joint(batch.z, batch.x, y, mask=mask, backend="numpyro")
    assert lp_pyro.shape == (5,) and lp_pyro.dtype == torch.float64
    torch.testing.assert_close(lp_pyro, lp_numpyro, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- exact posterior
def test_exact_posterior_equals_brute_force_enumeration(model):
    batch = model.simulate(4, 10, seed=5)
    mask = random_mask(4, 10, seed=6)
    post = model.exact_posterior(batch.x, mask)
    assert isinstance(post, torch.distributions.Categorical)
    assert post.batch_shape == (4,) and post.probs.dtype == torch.float64
    for backend in ("numpyro", "pyro"):
        brute = brute_force_probs(model, batch.x, mask, backend)
        torch.testing.assert_close(post.probs, brute, rtol=0, atol=1e-10)


def test_exact_posterior_equals_pyro_enumeration(model):
    b, length = 4, 10
    batch = model.simulate(b, length, seed=7)
    mask = random_mask(b, length, seed=8)
    enumerated = config_enumerate(model.pyro_model, default="parallel")

    def guide(*args, **kwargs):
        pass

    marginals = TraceEnum_ELBO(max_plate_nesting=2).compute_marginals(
        enumerated, guide, batch.x, num_sequences=b, seq_len=length, mask=mask,
        sample_target=False,
    )
    probs = marginals["z"].probs.reshape(b, model.params["K"])
    post = model.exact_posterior(batch.x, mask)
    torch.testing.assert_close(post.probs, probs.to(torch.float64), rtol=0, atol=1e-8)


def test_exact_posterior_equals_numpyro_enumeration(model):
    pytest.importorskip("funsor")
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.contrib.funsor import config_enumerate as n_config_enumerate
    from numpyro.contrib.funsor import enum, log_density

    length = 10
    batch = model.simulate(3, length, seed=9)
    mask = random_mask(3, length, seed=10)
    post = model.exact_posterior(batch.x, mask)
    enumerated = enum(n_config_enumerate(model.numpyro_model), first_available_dim=-3)
    for i in range(3):
        x, m = batch.x[i : i + 1], mask[i : i + 1]
        with jax.enable_x64(True):
            log_evidence, _ = log_density(
                handlers.seed(enumerated, 0), (jnp.asarray(x.numpy()),),
                dict(num_sequences=1, seq_len=length, mask=jnp.asarray(m.numpy()),
                     sample_target=False), {},
            )
            log_evidence = float(log_evidence)
        joint = torch.stack([
            model.log_joint(torch.tensor([k]), x, mask=m, backend="numpyro")[0]
            for k in range(model.params["K"])
        ])
        torch.testing.assert_close(post.probs[i], (joint - log_evidence).exp(), rtol=0, atol=1e-8)


def test_padding_is_ignored(model):
    length, lengths = 12, [1, 5, 12, 8]
    batch = model.simulate(len(lengths), length, seed=11)
    mask = torch.arange(length) < torch.tensor(lengths)[:, None]
    x = batch.x.clone()
    if x.is_floating_point():
        x[~mask] = float("nan")  # garbage in padding must not matter
    else:
        x[~mask] = model.params["V"] + 7
    post = model.exact_posterior(x, mask).probs
    lj = model.log_joint(batch.z, x, mask=mask)
    for i, n in enumerate(lengths):
        alone = model.exact_posterior(batch.x[i : i + 1, :n]).probs[0]
        torch.testing.assert_close(post[i], alone, rtol=0, atol=1e-12)
        lj_alone = model.log_joint(batch.z[i : i + 1], batch.x[i : i + 1, :n])[0]
        torch.testing.assert_close(lj[i], lj_alone, rtol=0, atol=1e-10)


def test_permuting_tokens_leaves_posterior_unchanged(model):
    batch = model.simulate(5, 16, seed=12)
    mask = random_mask(5, 16, seed=13)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(14))
    post = model.exact_posterior(batch.x, mask).probs
    permuted = model.exact_posterior(batch.x[:, perm], mask[:, perm]).probs
    torch.testing.assert_close(post, permuted, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [ConceptMixture, UnigramMixture])
def test_posterior_concentrates_on_true_z(cls):
    model = cls()
    batch = model.simulate(64, 256, seed=15)
    probs = model.exact_posterior(batch.x).probs
    p_true = probs.gather(1, batch.z[:, None]).squeeze(1)
    assert p_true.mean() > 0.99
    short = model.exact_posterior(batch.x[:, :2]).probs.gather(1, batch.z[:, None]).mean()
    assert short < p_true.mean()


def test_unigram_posterior_is_a_function_of_word_counts():
    model = UnigramMixture()
    batch = model.simulate(4, 30, seed=16)
    mask = random_mask(4, 30, seed=17)
    counts = model.word_counts(batch.x, mask)
    assert counts.shape == (4, 20) and torch.equal(counts.sum(1), mask.sum(1).double())
    log_w = torch.tensor(model.params["weights"], dtype=torch.float64).log()
    logits = log_w + counts @ torch.tensor(model.params["word_probs"], dtype=torch.float64).log().T
    post = model.exact_posterior(batch.x, mask).probs
    torch.testing.assert_close(post, logits.softmax(-1), rtol=0, atol=1e-12)


def test_zero_probability_sequence_raises():
    model = UnigramMixture(word_probs=[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    with pytest.raises(ModelInputError, match="probability zero"):
        model.exact_posterior(torch.tensor([[0, 2]]))


# ---------------------------------------------------------------------- parameters
def test_default_parameters():
    cm = ConceptMixture(d=3)
    means = np.asarray(cm.params["means"])
    assert means.shape == (4, 3) and np.allclose(np.linalg.norm(means, axis=1), 2.0)
    assert np.all(means[:, 2] == 0) and np.allclose(cm.params["weights"], 0.25)
    assert np.allclose(ConceptMixture(K=3, d=1, radius=1.5).params["means"], [[-1.5], [0], [1.5]])
    um = UnigramMixture()
    wp = np.asarray(um.params["word_probs"])
    assert wp.shape == (3, 20) and np.allclose(wp.sum(1), 1.0) and (wp >= 0).all()
    assert um.params == UnigramMixture(param_seed=0).params
    assert um.params["word_probs"] != UnigramMixture(param_seed=1).params["word_probs"]
    assert um.token_support.upper_bound == 19
    assert UnigramMixture(V=7).token_support.upper_bound == 6


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (ConceptMixture, dict(weights=[0.5, 0.3, 0.1, 0.05]), "sum to 1"),
        (ConceptMixture, dict(weights=[0.5, 0.5]), "shape"),
        (ConceptMixture, dict(weights=[1.0, 0.0, 0.0, 0.0]), "positive"),
        (ConceptMixture, dict(K=4, means=[[0.0, 0.0]] * 3), "means must have shape"),
        (ConceptMixture, dict(d=3, means=[[0.0, 0.0]] * 4), "means must have shape"),
        (ConceptMixture, dict(means=[[0.0, 0.0], [1.0]]), "rectangular"),
        (ConceptMixture, dict(means=[[0.0, math.nan]] * 4), "finite"),
        (ConceptMixture, dict(scale=0.0), "scale"),
        (ConceptMixture, dict(K=0), "K must be"),
        (ConceptMixture, dict(label_noise=1.5), "label_noise"),
        (ConceptMixture, dict(label_noise=-0.1), "label_noise"),
        (UnigramMixture, dict(word_probs=[[0.5, 0.6], [0.5, 0.5]]), "sum to 1"),
        (UnigramMixture, dict(word_probs=[[1.5, -0.5], [0.5, 0.5]]), "non-negative"),
        (UnigramMixture, dict(K=3, V=4, word_probs=[[0.25] * 4] * 2), "shape"),
        (UnigramMixture, dict(weights=[0.2, 0.2, 0.2]), "sum to 1"),
        (UnigramMixture, dict(V=1.5), "V must be"),
        (UnigramMixture, dict(label_noise=2.0), "label_noise"),
        (UnigramMixture, dict(label_noise=math.nan), "label_noise"),
    ],
)
def test_bad_parameters_raise(cls, kwargs, match):
    with pytest.raises(ModelInputError, match=match):
        cls(**kwargs)


# ---------------------------------------------------------------------- tokens
@pytest.mark.parametrize(
    "cls, x, match",
    [
        (ConceptMixture, torch.zeros(2, 5, 3, dtype=torch.float64), "shape"),
        (ConceptMixture, torch.zeros(2, 5, dtype=torch.float64), "shape"),
        (ConceptMixture, torch.tensor([[[0.0, math.nan]]]), "finite"),
        (ConceptMixture, torch.zeros(2, 5, 2, dtype=torch.long), "floating dtype"),
        (UnigramMixture, torch.tensor([[0, 20]]), "outside the token support"),
        (UnigramMixture, torch.tensor([[-1, 3]]), "outside the token support"),
        (UnigramMixture, torch.tensor([[0.0, 3.0]]), "integer dtype"),
        (UnigramMixture, torch.zeros(2, 5, 1, dtype=torch.long), "shape"),
    ],
)
def test_bad_tokens_raise(cls, x, match):
    model = cls()
    with pytest.raises(ModelInputError, match=match):
        model.exact_posterior(x)
    with pytest.raises(ModelInputError, match=match):
        model.log_joint(torch.zeros(x.shape[0], dtype=torch.long), x)
