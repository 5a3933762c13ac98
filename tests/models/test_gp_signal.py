"""``gp-signal``: the exact Gaussian posterior against independent conditioning routes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg, stats

from bayesattn import models
from bayesattn.models import GPSignal, ModelInputError

CASES = {
    "rbf-1d": dict(),
    "matern12-1d": dict(kernel="matern12", lengthscale=3.0, noise_scale=0.3),
    "matern32-grid": dict(kernel="matern32", lengthscale=1.5, grid_width=4, amplitude=2.0),
    "matern52-grid": dict(kernel="matern52", grid_width=3, noise_scale=1.2),
}


def _mask(b: int, length: int) -> torch.Tensor:
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, length // 2:] = False  # right padding
    mask[2, [1, 4]] = False  # missing pixels
    return mask


@pytest.mark.parametrize("case", list(CASES))
def test_posterior_equals_joint_gaussian_conditioning(case):
    m = GPSignal(**CASES[case])
    length = 12
    batch = m.simulate(3, length, seed=0)
    mask = _mask(3, length)
    post = m.exact_posterior(batch.x, mask)
    s, s2 = m.covariance(length), m.params["noise_scale"] ** 2
    for i in range(3):
        o = mask[i].numpy()
        x = batch.x[i].numpy()[o]
        # joint of (u, x_O): [[S, S_:O], [S_O:, S_OO + s^2 I]]; condition on x_O
        cross, obs = s[:, o], s[np.ix_(o, o)] + s2 * np.eye(o.sum())
        mean = cross @ linalg.solve(obs, x, assume_a="pos")
        cov = s - cross @ linalg.solve(obs, cross.T, assume_a="pos")
        np.testing.assert_allclose(post.mean[i].numpy(), mean, atol=1e-9)
        np.testing.assert_allclose(post.covariance_matrix[i].numpy(), cov, atol=1e-9)


def test_information_form_agrees():
    m = GPSignal(kernel="matern12", lengthscale=2.0)
    batch = m.simulate(3, 10, seed=4)
    mask = _mask(3, 10)
    post = m.exact_posterior(batch.x, mask)
    s, s2 = m.covariance(10), m.params["noise_scale"] ** 2
    for i in range(3):
        o = mask[i].numpy().astype(float)
        prec = np.linalg.inv(s) + np.diag(o / s2)
        cov = np.linalg.inv(prec)
        np.testing.assert_allclose(post.covariance_matrix[i].numpy(), cov, atol=1e-10)
        np.testing.assert_allclose(post.mean[i].numpy(), cov @ (o * batch.x[i].numpy()) / s2,
                                   atol=1e-10)


def test_padding_is_ignored():
    m = GPSignal()
    batch = m.simulate(2, 9, seed=1)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 6:] = False
    x2 = batch.x.clone()
    x2[0, 6:] = 1e6
    p1, p2 = m.exact_posterior(batch.x, mask), m.exact_posterior(x2, mask)
    assert torch.equal(p1.mean, p2.mean)
    short = m.exact_posterior(batch.x[:1, :6])
    torch.testing.assert_close(p1.mean[0, :6], short.mean[0], atol=1e-10, rtol=0)


def test_smoother_and_the_bayesian_reading_of_twicing():
    m = GPSignal(kernel="matern32", lengthscale=3.0, noise_scale=0.7)
    length = 16
    batch = m.simulate(4, length, seed=2)
    w = m.smoother(length)
    torch.testing.assert_close(batch.x @ w.T, m.exact_posterior(batch.x).mean,
                               atol=1e-10, rtol=0)
    s, s2 = m.covariance(length), m.params["noise_scale"] ** 2
    eye = np.eye(length)

    def smoother(prior):
        return prior @ np.linalg.inv(prior + s2 * eye)

    wn = w.numpy()
    # twicing 2W - W^2 = the smoother under the broader prior S (S + 2 s^2 I) / s^2
    np.testing.assert_allclose(2 * wn - wn @ wn, smoother(s @ (s + 2 * s2 * eye) / s2),
                               atol=1e-8)
    # normalised residual (I + W) / 2 = the smoother under 2 S + s^2 I
    np.testing.assert_allclose((eye + wn) / 2, smoother(2 * s + s2 * eye), atol=1e-8)


@pytest.mark.parametrize("case", ["rbf-1d", "matern32-grid"])
def test_log_joint_twins_agree_with_scipy(case):
    m = GPSignal(**CASES[case])
    batch = m.simulate(3, 8, seed=3)
    mask = _mask(3, 8)
    lp = m.log_joint(batch.z, batch.x, mask=mask)
    ln = m.log_joint(batch.z, batch.x, mask=mask, backend="numpyro")
    torch.testing.assert_close(lp, ln, atol=1e-8, rtol=0)
    s = m.covariance(8)
    for i in range(3):
        u, x, o = batch.z[i].numpy(), batch.x[i].numpy(), mask[i].numpy()
        want = stats.multivariate_normal(np.zeros(8), s).logpdf(u)
        want += stats.norm(u[o], m.params["noise_scale"]).logpdf(x[o]).sum()
        assert abs(lp[i].item() - want) < 1e-7


def test_simulate_shapes_and_prior_covariance():
    m = GPSignal(kernel="matern52", lengthscale=2.0, grid_width=2)
    state = torch.random.get_rng_state()
    b = m.simulate(4000, 4, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())
    assert b.z.shape == b.x.shape == b.y.shape == (4000, 4)
    assert torch.equal(b.y, b.z)
    np.testing.assert_allclose(np.cov(b.z.numpy().T), m.covariance(4), atol=0.1)
    resid = (b.x - b.z).numpy().ravel()
    assert abs(resid.std() - m.params["noise_scale"]) < 0.02
    assert torch.equal(m.simulate(2, 5, seed=7).x, m.simulate(2, 5, seed=7).x)
    np.testing.assert_array_equal(m.positions(5), [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]])


def test_registry_and_bad_input():
    assert "gp-signal" not in models.names()
    assert "gp-signal" in models.sequence_names()
    m = models.get_sequence("gp-signal", kernel="matern12")
    assert models.get_sequence("gp-signal", **m.params).params == m.params
    with pytest.raises(ModelInputError, match="kernel"):
        GPSignal(kernel="cosine")
    with pytest.raises(ModelInputError, match="lengthscale"):
        GPSignal(lengthscale=0.0)
    with pytest.raises(ModelInputError, match="shape"):
        m.log_joint(torch.zeros(2, 3), torch.zeros(2, 4))
