"""Tests for ``linear-regression``, ``logistic-regression`` and ``topic-admixture``.

Everything is seeded explicitly; NumPyro runs under ``jax.enable_x64(True)`` as in
the engines; torch's global RNG is only touched inside ``torch.random.fork_rng``.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch
from numpyro import handlers
from numpyro.infer.util import initialize_model

from bayesattn.models import ModelInputError, NoExactPosterior, get
from bayesattn.models.linear_regression import LinearRegression
from bayesattn.models.logistic_regression import (
    LogisticRegression,
    NumPyroLogisticPair,
    PyroLogisticPair,
    numpyro_pair_support,
    pair_support,
)
from bayesattn.models.topic_admixture import TopicAdmixture

MODELS = {
    "linear-regression": lambda: LinearRegression(),
    "logistic-regression": lambda: LogisticRegression(),
    "topic-admixture": lambda: TopicAdmixture(),
}
ALL = pytest.mark.parametrize("name", sorted(MODELS))


def _random_mask(b: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, length, generator=g) > 0.35
    mask[:, 0] = True  # at least one real token per sequence
    return mask


# ----------------------------------------------------------------------------- basics
@ALL
def test_registered_and_params_json_roundtrip(name):
    model = MODELS[name]()
    assert model.name == name
    rebuilt = get(name, **json.loads(json.dumps(model.params)))
    assert type(rebuilt) is type(model)
    assert rebuilt.params == model.params


@ALL
def test_simulate_shapes_dtypes_and_determinism(name):
    model = MODELS[name]()
    b, length = 5, 6
    batch = model.simulate(b, length, seed=3)
    assert batch.z.shape == (b, *model.latent_shape)
    assert batch.x.shape == (b, length, *model.token_shape)
    assert batch.y.shape == (b, *model.target_shape)
    assert batch.mask.shape == (b, length) and bool(batch.mask.all())
    again = model.simulate(b, length, seed=3)
    assert torch.equal(batch.x, again.x) and torch.equal(batch.z, again.z)
    assert torch.equal(batch.y, again.y)
    if name == "topic-admixture":
        k, v = model.params["K"], model.params["V"]
        assert batch.x.dtype == torch.long and batch.y.dtype == torch.long
        assert int(batch.x.min()) >= 0 and int(batch.x.max()) < v
        assert int(batch.y.min()) >= 0 and int(batch.y.max()) < k
        assert torch.allclose(batch.z.sum(-1), torch.ones(b, dtype=torch.float64))
    else:
        assert batch.x.dtype == torch.float64 and batch.z.dtype == torch.float64
        assert batch.x.shape[-1] == model.params["p"] + 1
        assert bool(torch.isfinite(batch.x).all())
    if name == "logistic-regression":
        labels = batch.x[..., -1]
        assert bool(((labels == 0) | (labels == 1)).all())
        assert bool(((batch.y == 0) | (batch.y == 1)).all())


@ALL
def test_numpyro_program_samples_fit_the_shapes(name):
    model = MODELS[name]()
    b, length = 3, 4
    with jax.enable_x64(True):
        tr = handlers.trace(handlers.seed(model.numpyro_model, 7)).get_trace(
            num_sequences=b, seq_len=length
        )
        x = np.array(tr["x"]["value"])
        z = np.array(tr["z"]["value"])
        y = np.array(tr["y"]["value"])
    assert z.shape == (b, 1, *model.latent_shape)
    assert x.shape == (b, length, *model.token_shape)
    assert y.shape == (b, 1, *model.target_shape)
    model.validate_tokens(x)  # simulated tokens lie in the token support
    if name == "logistic-regression":
        assert set(np.unique(x[..., -1])) <= {0.0, 1.0}


@ALL
@pytest.mark.parametrize("with_y", [False, True])
def test_log_joint_pyro_and_numpyro_agree(name, with_y):
    model = MODELS[name]()
    batch = model.simulate(4, 9, seed=11)
    mask = _random_mask(4, 9, seed=5)
    y = batch.y if with_y else None
    for m in (None, mask):
        lp_pyro = model.log_joint(batch.z, batch.x, y, mask=m, backend="pyro")
        lp_np = model.log_joint(batch.z, batch.x, y, mask=m, backend="numpyro")
        assert lp_pyro.shape == (4,) and lp_pyro.dtype == torch.float64
        assert bool(torch.isfinite(lp_pyro).all())
        torch.testing.assert_close(lp_pyro, lp_np, rtol=1e-6, atol=1e-6)
    full = model.log_joint(batch.z, batch.x, y)
    assert not torch.allclose(full, model.log_joint(batch.z, batch.x, y, mask=mask))


# ----------------------------------------------------------------------------- linear regression
def test_linear_log_joint_matches_hand_computation():
    model = LinearRegression(p=2, prior_scale=1.3, noise_scale=0.4, query=[0.5, -2.0])
    batch = model.simulate(3, 5, seed=2)
    z, x, y = batch.z, batch.x, batch.y

    def normal(loc, scale):
        return torch.distributions.Normal(torch.as_tensor(loc, dtype=torch.float64), scale)

    tau, sigma = torch.tensor(1.3, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    k, v = x[..., :2], x[..., 2]
    expected = (
        normal(0.0, tau).log_prob(z).sum(-1)
        + normal(0.0, 1.0).log_prob(k).sum((-1, -2))
        + normal((k * z[:, None, :]).sum(-1), sigma).log_prob(v).sum(-1)
        + normal(z @ torch.tensor([0.5, -2.0], dtype=torch.float64), sigma).log_prob(y)
    )
    for backend in ("pyro", "numpyro"):
        got = model.log_joint(z, x, y, backend=backend)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_linear_posterior_p1_matches_quadrature_of_numpyro_log_joint():
    model = LinearRegression(p=1, prior_scale=1.0, noise_scale=0.5)
    batch = model.simulate(1, 8, seed=4)
    post = model.exact_posterior(batch.x)
    mu = float(post.mean[0, 0])
    sd = math.sqrt(float(post.covariance_matrix[0, 0, 0]))
    grid = np.linspace(-8.0, 8.0, 16001)
    points = np.array([mu, mu + sd, mu - 0.5 * sd, mu + 2 * sd])
    zs = torch.from_numpy(np.concatenate([grid, points]))[:, None]  # one numpyro call
    logp = model.log_joint(zs, batch.x.expand(zs.shape[0], -1, -1), backend="numpyro").numpy()
    shift = logp.max()
    dens = np.exp(logp[: grid.size] - shift)
    norm = np.trapezoid(dens, grid)
    mean = np.trapezoid(grid * dens, grid) / norm
    var = np.trapezoid((grid - mean) ** 2 * dens, grid) / norm
    assert mean == pytest.approx(mu, rel=1e-6)
    assert var == pytest.approx(sd**2, rel=1e-6)
    quad_density = np.exp(logp[grid.size :] - shift) / norm
    exact_density = post.log_prob(torch.from_numpy(points)[:, None, None]).exp()[:, 0].numpy()
    np.testing.assert_allclose(quad_density, exact_density, rtol=1e-6)


def _sequential_update(keys, values, tau, sigma):
    """Bayesian updating one (k, v) at a time (Kalman filter for a static state)."""
    p = keys.shape[1]
    mean, cov = np.zeros(p), tau**2 * np.eye(p)
    for k, v in zip(keys, values, strict=True):
        s = k @ cov @ k + sigma**2
        gain = cov @ k / s
        mean = mean + gain * (v - k @ mean)
        cov = cov - np.outer(gain, k @ cov)
    return mean, cov


@pytest.mark.parametrize("tau,sigma", [(1.0, 0.5), (2.0, 0.3)])
def test_linear_posterior_p2_matches_sequential_updating_and_ridge(tau, sigma):
    model = LinearRegression(p=2, prior_scale=tau, noise_scale=sigma)
    batch = model.simulate(3, 12, seed=9)
    post = model.exact_posterior(batch.x)
    assert post.batch_shape == (3,) and post.event_shape == (2,)
    for i in range(3):
        keys, values = batch.x[i, :, :2].numpy(), batch.x[i, :, 2].numpy()
        mean, cov = _sequential_update(keys, values, tau, sigma)
        np.testing.assert_allclose(post.mean[i].numpy(), mean, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(post.covariance_matrix[i].numpy(), cov, rtol=1e-9, atol=1e-11)
        # Ridge identity: mu = argmin |v - K w|^2 + (sigma / tau)^2 |w|^2.
        design = np.vstack([keys, (sigma / tau) * np.eye(2)])
        target = np.concatenate([values, np.zeros(2)])
        ridge = np.linalg.lstsq(design, target, rcond=None)[0]
        np.testing.assert_allclose(post.mean[i].numpy(), ridge, rtol=1e-9, atol=1e-11)


def test_linear_predictive_mean_is_query_dot_posterior_mean():
    model = LinearRegression(p=3)
    batch = model.simulate(4, 10, seed=1)
    mask = _random_mask(4, 10, seed=2)
    queries = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = model.predictive_mean(batch.x, queries, mask=mask)
    mean = model.exact_posterior(batch.x, mask).mean
    assert got.shape == (4, 6) and got.dtype == torch.float64
    torch.testing.assert_close(got, torch.einsum("bqp,bp->bq", queries, mean), rtol=0, atol=1e-13)
    with pytest.raises(ModelInputError, match=r"\(B, Q, p\)"):
        model.predictive_mean(batch.x, queries[..., :2])
    with pytest.raises(ModelInputError, match=r"\(B, Q, p\)"):
        model.predictive_mean(batch.x, queries[0])


def test_linear_posterior_ignores_masked_tokens():
    model = LinearRegression(p=2)
    batch = model.simulate(3, 10, seed=6)
    lengths = [10, 4, 1]
    x = batch.x.clone()
    mask = torch.zeros(3, 10, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
        x[i, n:] = float("nan")  # padding may hold anything
    post = model.exact_posterior(x, mask)
    for i, n in enumerate(lengths):
        alone = model.exact_posterior(batch.x[i : i + 1, :n])
        torch.testing.assert_close(post.mean[i], alone.mean[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            post.precision_matrix[i], alone.precision_matrix[0], rtol=1e-12, atol=1e-12
        )
    # Holes in the middle: same as the compacted sequence.
    holes = _random_mask(1, 10, seed=8)
    compact = batch.x[0][holes[0]].unsqueeze(0)
    torch.testing.assert_close(
        model.exact_posterior(batch.x[:1], holes).mean,
        model.exact_posterior(compact).mean,
        rtol=1e-12,
        atol=1e-12,
    )


def test_linear_posterior_is_permutation_invariant():
    model = LinearRegression(p=2)
    batch = model.simulate(2, 15, seed=12)
    mask = _random_mask(2, 15, seed=13)
    perm = torch.randperm(15, generator=torch.Generator().manual_seed(14))
    a = model.exact_posterior(batch.x, mask)
    b = model.exact_posterior(batch.x[:, perm], mask[:, perm])
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.covariance_matrix, b.covariance_matrix, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- no closed form
@pytest.mark.parametrize("name", ["logistic-regression", "topic-admixture"])
def test_no_exact_posterior(name):
    model = MODELS[name]()
    batch = model.simulate(2, 3, seed=0)
    assert not model.has_exact_posterior
    with pytest.raises(NoExactPosterior):
        model.exact_posterior(batch.x)


def test_linear_regression_has_exact_posterior():
    assert LinearRegression().has_exact_posterior


# ----------------------------------------------------------------------------- pair distribution
def _hand_pair_log_prob(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    k, v = value[..., :-1], value[..., -1]
    logits = (weights * k).sum(-1)
    return torch.distributions.Normal(0.0, 1.0).log_prob(k).sum(-1) + torch.distributions.Bernoulli(
        logits=logits
    ).log_prob(v)


def test_pair_log_prob_matches_hand_computation_in_both_backends():
    g = torch.Generator().manual_seed(21)
    weights = torch.randn(3, 1, 2, generator=g, dtype=torch.float64) * 2
    k = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    v = torch.randint(0, 2, (3, 4), generator=g).to(torch.float64)
    value = torch.cat([k, v.unsqueeze(-1)], -1)
    expected = _hand_pair_log_prob(weights, value)
    pyro_lp = PyroLogisticPair(weights).log_prob(value)
    torch.testing.assert_close(pyro_lp, expected, rtol=1e-12, atol=1e-12)
    pyro_lp_expanded = PyroLogisticPair(weights).expand((3, 4)).log_prob(value)
    torch.testing.assert_close(pyro_lp_expanded, expected, rtol=1e-12, atol=1e-12)
    with jax.enable_x64(True):
        np_lp = NumPyroLogisticPair(jnp.asarray(weights.numpy())).log_prob(
            jnp.asarray(value.numpy())
        )
        np_lp = np.asarray(np_lp)
    np.testing.assert_allclose(np_lp, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_pair_support_accepts_real_keys_and_binary_labels():
    value = torch.tensor(
        [[0.3, -1.0, 0.0], [5.0, 2.0, 1.0], [0.0, 0.0, 2.0], [1.0, 1.0, 0.5]], dtype=torch.float64
    )
    expected = [True, True, False, False]
    assert pair_support.check(value).tolist() == expected
    assert not pair_support.is_discrete and pair_support.event_dim == 1
    with jax.enable_x64(True):
        assert np.asarray(numpyro_pair_support(jnp.asarray(value.numpy()))).tolist() == expected
    assert not numpyro_pair_support.is_discrete and numpyro_pair_support.event_dim == 1


def _check_pair_samples(samples: np.ndarray, weights: np.ndarray) -> None:
    """v has the right marginal and the right dependence on s = <z, k>."""
    n = samples.shape[0]
    k, v = samples[:, :-1], samples[:, -1]
    assert set(np.unique(v)) <= {0.0, 1.0}
    s = k @ weights
    # E[v] = E[sigmoid(s)], s ~ N(0, |z|^2): Gauss-Hermite (probabilists').
    nodes, w = np.polynomial.hermite_e.hermegauss(120)
    r = np.linalg.norm(weights)
    sig = 1.0 / (1.0 + np.exp(-r * nodes))
    e_v = np.sum(w * sig) / math.sqrt(2 * math.pi)
    e_vs = np.sum(w * r * nodes * sig) / math.sqrt(2 * math.pi)
    assert abs(v.mean() - e_v) < 5 * v.std() / math.sqrt(n)
    assert abs((v * s).mean() - e_vs) < 5 * (v * s).std() / math.sqrt(n)
    resid = v - 1.0 / (1.0 + np.exp(-s))
    assert abs(resid.mean()) < 5 * resid.std() / math.sqrt(n)
    # k ~ N(0, I)
    assert np.all(np.abs(k.mean(0)) < 5 / math.sqrt(n))
    assert np.all(np.abs(k.var(0) - 1) < 5 * math.sqrt(2 / n))


def test_pair_samples_have_the_right_law_in_both_backends():
    weights = np.array([1.5, -0.7])
    n = 40000
    with torch.random.fork_rng():
        torch.manual_seed(0)
        pyro_samples = PyroLogisticPair(torch.tensor(weights)).sample((n,))
    assert pyro_samples.shape == (n, 3) and pyro_samples.dtype == torch.float64
    _check_pair_samples(pyro_samples.numpy(), weights)
    with jax.enable_x64(True):
        np_samples = NumPyroLogisticPair(jnp.asarray(weights)).sample(jax.random.PRNGKey(0), (n,))
        np_samples = np.asarray(np_samples)
    assert np_samples.shape == (n, 3) and np_samples.dtype == np.float64
    _check_pair_samples(np_samples, weights)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: LinearRegression(prior_scale=0.0), "prior_scale"),
        (lambda: LinearRegression(noise_scale=-1.0), "noise_scale"),
        (lambda: LinearRegression(noise_scale=float("nan")), "noise_scale"),
        (lambda: LinearRegression(p=2, query=[1.0]), r"length p = 2"),
        (lambda: LinearRegression(p=3, query=[1.0, float("inf"), 0.0]), "finite"),
        (lambda: LinearRegression(p=0), "p must be"),
        (lambda: LinearRegression(p=1.5), "p must be"),
        (lambda: LogisticRegression(prior_scale=-0.5), "prior_scale"),
        (lambda: LogisticRegression(prior_scale=0.0), "prior_scale"),
        (lambda: LogisticRegression(p=2, query=[1.0, 2.0, 3.0]), r"length p = 2"),
        (lambda: LogisticRegression(p=True), "p must be"),
        (lambda: TopicAdmixture(K=2, V=3, topics=[[0.5, 0.5, 0.5], [1, 0, 0]]), "sum to 1"),
        (lambda: TopicAdmixture(K=2, V=3, topics=[[1.5, -0.5, 0.0], [1, 0, 0]]), "non-negative"),
        (lambda: TopicAdmixture(K=2, V=3, topics=[[1.0, 0.0, 0.0]]), r"\(K, V\) = \(2, 3\)"),
        (lambda: TopicAdmixture(alpha=0.0), "alpha"),
        (lambda: TopicAdmixture(K=3, alpha=[1.0, 2.0]), "length K = 3"),
        (lambda: TopicAdmixture(K=3, alpha=[1.0, 2.0, -1.0]), "alpha"),
        (lambda: TopicAdmixture(K=1), "K must be"),
        (lambda: TopicAdmixture(V=0), "V must be"),
    ],
)
def test_bad_parameters_raise(factory, match):
    with pytest.raises(ModelInputError, match=match):
        factory()


def test_topic_params_define_the_model():
    a, b = TopicAdmixture(param_seed=3), TopicAdmixture(param_seed=3)
    assert a.params == b.params
    assert a.params["topics"] != TopicAdmixture(param_seed=4).params["topics"]
    topics = np.asarray(a.params["topics"])
    assert topics.shape == (3, 20) and np.all(topics >= 0)
    np.testing.assert_allclose(topics.sum(1), 1.0, atol=1e-12)
    assert np.array_equal(topics, np.random.default_rng(3).dirichlet(np.full(20, 0.3), 3))
    explicit = TopicAdmixture(K=2, V=3, topics=[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], alpha=[1, 2])
    assert explicit.params["alpha"] == [1.0, 2.0]
    assert explicit.token_support.upper_bound == 2


def test_bad_tokens_raise():
    lin, logi, topic = LinearRegression(p=2), LogisticRegression(p=2), TopicAdmixture(V=20)
    good = lin.simulate(2, 4, seed=0).x
    with pytest.raises(ModelInputError, match=r"token_shape \(3,\)"):
        lin.exact_posterior(good[..., :2])  # wrong p
    with pytest.raises(ModelInputError, match=r"token_shape \(3,\)"):
        logi.log_joint(torch.zeros(2, 2), torch.zeros(2, 4, 4, dtype=torch.float64))
    nan = good.clone()
    nan[1, 2, 0] = float("nan")
    with pytest.raises(ModelInputError, match="finite"):
        lin.exact_posterior(nan)
    with pytest.raises(ModelInputError, match="finite"):
        logi.log_joint(torch.zeros(2, 2), nan)
    for bad_label in (2.0, 0.5, -1.0):
        x = logi.simulate(2, 4, seed=1).x.clone()
        x[0, 3, 2] = bad_label
        with pytest.raises(ModelInputError, match="outside the token support"):
            logi.log_joint(torch.zeros(2, 2), x)
    words = topic.simulate(2, 5, seed=0)
    for bad_word in (20, 25, -1):
        x = words.x.clone()
        x[1, 0] = bad_word
        with pytest.raises(ModelInputError, match="outside the token support"):
            topic.log_joint(words.z, x)
    with pytest.raises(ModelInputError, match="integer dtype"):
        topic.log_joint(words.z, words.x.double())
    # A bad value under the mask is padding and is ignored.
    x = words.x.clone()
    x[1, 0] = 99
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 0] = False
    assert bool(torch.isfinite(topic.log_joint(words.z, x, mask=mask)).all())


# ----------------------------------------------------------------------------- MCMC plumbing
@pytest.mark.parametrize("name", ["logistic-regression", "topic-admixture"])
def test_pyro_nuts_runs_on_pyro_program(name):
    model = MODELS[name]()
    batch = model.simulate(2, 10, seed=17)
    kernel = pyro.infer.NUTS(model.pyro_model)
    mcmc = pyro.infer.MCMC(
        kernel, num_samples=30, warmup_steps=30, num_chains=1, disable_progbar=True
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add overhead (restored below)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            mcmc.run(batch.x, num_sequences=2, seq_len=10, sample_target=False)
    finally:
        torch.set_num_threads(threads)
    z = mcmc.get_samples()["z"]
    assert z.shape == (30, 2, 1, *model.latent_shape)
    assert z.dtype == torch.float64 and bool(torch.isfinite(z).all())
    assert bool(model.latent_support.check(z).all())
    assert z.std(0).min() > 0  # the chain moved


@pytest.mark.parametrize("name", ["logistic-regression", "topic-admixture"])
def test_numpyro_initialize_model_works(name):
    model = MODELS[name]()
    batch = model.simulate(2, 10, seed=19)
    mask = _random_mask(2, 10, seed=20)
    with jax.enable_x64(True):
        info = initialize_model(
            jax.random.PRNGKey(0),
            model.numpyro_model,
            model_args=(jnp.asarray(batch.x.numpy()),),
            model_kwargs=dict(
                num_sequences=2, seq_len=10, mask=jnp.asarray(mask.numpy()), sample_target=False
            ),
        )
        params = info.param_info.z
        energy = float(info.potential_fn(params))
        grad = jax.grad(info.potential_fn)(params)
        assert params["z"].dtype == jnp.float64
        assert np.all(np.isfinite(np.asarray(grad["z"])))
    assert math.isfinite(energy)
