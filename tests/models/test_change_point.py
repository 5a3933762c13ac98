"""``change-point`` (sticky HMM): forward–backward against brute force over all K^L paths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate

from bayesattn import models
from bayesattn.models import ChangePoint, ModelInputError

CASES = {
    "K2": dict(K=2, stay=0.7, noise_scale=0.8),
    "K3-uneven": dict(level_means=[-1.0, 0.3, 2.0], stay=0.6, noise_scale=0.9,
                      initial=[0.5, 0.3, 0.2]),
    "K3-sticky": dict(K=3, stay=0.95, noise_scale=0.5),
}


def brute_force(m: ChangePoint, x: np.ndarray, mask: np.ndarray):
    """Marginals, signal mean/var, evidence and co-segmentation by enumerating all paths."""
    K, length = m.params["K"], len(x)
    a, init = m.transition, np.asarray(m.params["initial"])
    mu, s = np.asarray(m.params["level_means"]), m.params["noise_scale"]
    paths = np.array(list(itertools.product(range(K), repeat=length)))  # (K^L, L)
    with np.errstate(divide="ignore"):
        lp = np.log(init[paths[:, 0]]) + np.log(a[paths[:, :-1], paths[:, 1:]]).sum(1)
    emis = -0.5 * ((x - mu[paths]) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    lp = lp + (emis * mask).sum(1)
    top = lp.max()
    w = np.exp(lp - top)
    evidence = math.log(w.sum()) + top
    w = w / w.sum()
    marg = np.stack([[w[paths[:, t] == k].sum() for k in range(K)] for t in range(length)])
    mean = marg @ mu
    var = marg @ mu**2 - mean**2
    co = np.array([[w[paths[:, i] == paths[:, j]].sum() for j in range(length)]
                   for i in range(length)])
    return marg, mean, var, evidence, co


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("length", [1, 2, 5, 6])
def test_forward_backward_equals_brute_force(case, length):
    m = ChangePoint(**CASES[case])
    batch = m.simulate(3, length, seed=length)
    mask = torch.ones(3, length, dtype=torch.bool)
    if length > 2:
        mask[1, -2:] = False  # right padding
        mask[2, 1] = False  # a missing observation inside the sequence
    post = m.exact_posterior(batch.x, mask)
    co = m.co_segmentation(batch.x, mask)
    for i in range(3):
        marg, mean, var, ev, cob = brute_force(m, batch.x[i].numpy(), mask[i].numpy())
        np.testing.assert_allclose(post.marginals[i].numpy(), marg, atol=1e-10)
        np.testing.assert_allclose(post.signal_mean[i].numpy(), mean, atol=1e-10)
        np.testing.assert_allclose(post.signal_var[i].numpy(), var, atol=1e-10)
        assert abs(post.log_evidence[i].item() - ev) < 1e-10
        np.testing.assert_allclose(co[i].numpy(), cob, atol=1e-10)


def test_padding_is_ignored_and_equals_truncation():
    m = ChangePoint(**CASES["K3-uneven"])
    batch = m.simulate(2, 6, seed=3)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 4:] = False
    x = batch.x.clone()
    x2 = x.clone()
    x2[0, 4:] = 1e6  # junk in padded positions
    p1, p2 = m.exact_posterior(x, mask), m.exact_posterior(x2, mask)
    assert torch.equal(p1.marginals, p2.marginals)
    assert torch.equal(m.co_segmentation(x, mask), m.co_segmentation(x2, mask))
    short = m.exact_posterior(x[:1, :4])
    torch.testing.assert_close(p1.marginals[0, :4], short.marginals[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(p1.log_evidence[:1], short.log_evidence, atol=1e-12, rtol=0)
    torch.testing.assert_close(m.co_segmentation(x, mask)[0, :4, :4],
                               m.co_segmentation(x[:1, :4])[0], atol=1e-12, rtol=0)


def test_pyro_enumeration_gives_the_same_evidence():
    m = ChangePoint(**CASES["K3-uneven"])
    batch = m.simulate(2, 7, seed=0)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    post = m.exact_posterior(batch.x, mask)
    model = config_enumerate(m.pyro_model, "parallel")
    for i in range(2):
        elbo = TraceEnum_ELBO(max_plate_nesting=1)
        loss = elbo.loss(model, lambda *a, **k: None, batch.x[i:i + 1], num_sequences=1,
                         seq_len=7, mask=mask[i:i + 1])
        assert abs(-loss - post.log_evidence[i].item()) < 1e-8


def test_log_joint_twins_agree_with_closed_form():
    m = ChangePoint(**CASES["K3-uneven"])
    batch = m.simulate(4, 6, seed=2)
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) > 0.3
    lp = m.log_joint(batch.z, batch.x, mask=mask)
    ln = m.log_joint(batch.z, batch.x, mask=mask, backend="numpyro")
    torch.testing.assert_close(lp, ln, atol=1e-10, rtol=0)
    a, init = np.log(m.transition), np.log(m.params["initial"])
    mu, s = np.asarray(m.params["level_means"]), m.params["noise_scale"]
    z, x, mk = batch.z.numpy(), batch.x.numpy(), mask.numpy()
    want = init[z[:, 0]] + a[z[:, :-1], z[:, 1:]].sum(1) + (mk * (
        -0.5 * ((x - mu[z]) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi))).sum(1)
    np.testing.assert_allclose(lp.numpy(), want, atol=1e-10)


def test_simulate_shapes_determinism_and_rng():
    m = ChangePoint()
    state = torch.random.get_rng_state()
    b = m.simulate(3, 40, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert b.z.shape == b.x.shape == b.y.shape == b.mask.shape == (3, 40)
    assert b.z.dtype == torch.long and b.x.dtype == torch.float64 and bool(b.mask.all())
    torch.testing.assert_close(b.y, m.tensor(m.params["level_means"])[b.z])
    again = m.simulate(3, 40, seed=1)
    assert torch.equal(b.x, again.x) and torch.equal(b.z, again.z)
    assert not torch.equal(b.x, m.simulate(3, 40, seed=2).x)
    # sticky: few changes
    changes = (b.z[:, 1:] != b.z[:, :-1]).float().mean().item()
    assert changes < 0.2


def test_long_sequence_coseg_properties():
    m = ChangePoint(K=3, stay=0.97, noise_scale=0.6)
    b = m.simulate(2, 256, seed=5)
    post = m.exact_posterior(b.x)
    co = m.co_segmentation(b.x)
    assert co.shape == (2, 256, 256)
    torch.testing.assert_close(co, co.transpose(1, 2))
    assert torch.equal(co.diagonal(dim1=1, dim2=2), torch.ones(2, 256, dtype=torch.float64))
    assert bool(((co >= -1e-12) & (co <= 1 + 1e-12)).all())
    # the posterior mean tracks the clean signal better than the raw observations
    assert ((post.signal_mean - b.y) ** 2).mean() < 0.5 * ((b.x - b.y) ** 2).mean()
    # far-apart positions are (nearly) independent: P(same) -> sum_k P(s_i=k) P(s_j=k)
    g = post.marginals
    indep = (g[:, 0] * g[:, -1]).sum(-1)
    torch.testing.assert_close(co[:, 0, -1], indep, atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", ["K2", "K3-uneven"])
def test_ffbs_draws_match_enumerated_joint_posterior(case):
    """FFBS path frequencies against the exact posterior over all K^L paths (chi-square)."""
    m = ChangePoint(**CASES[case])
    length, n = 4, 20000
    b = m.simulate(1, length, seed=3)
    u, s = m.sample_posterior(b.x, n, seed=7, return_states=True)
    assert u.shape == s.shape == (n, 1, length) and u.dtype == torch.float64
    torch.testing.assert_close(u, torch.tensor(m.params["level_means"],
                                               dtype=torch.float64)[s])
    K = m.params["K"]
    paths = np.array(list(itertools.product(range(K), repeat=length)))
    x = b.x[0].numpy()
    marg, mean, _, _, _ = brute_force(m, x, np.ones(length))
    codes = (s[:, 0].numpy() * K ** np.arange(length - 1, -1, -1)).sum(1)
    counts = np.bincount(codes, minlength=K**length)
    # exact path probabilities by enumeration (the same ordering as itertools.product)
    emis = -0.5 * ((x - np.asarray(m.params["level_means"])[paths]) / m.params["noise_scale"]) ** 2
    with np.errstate(divide="ignore"):
        logp = (np.log(np.asarray(m.params["initial"])[paths[:, 0]])
                + np.log(m.transition[paths[:, :-1], paths[:, 1:]]).sum(1) + emis.sum(1))
    p = np.exp(logp - logp.max())
    p /= p.sum()
    keep = p * n >= 5  # chi-square validity; the rest pooled
    expected = np.append(p[keep] * n, p[~keep].sum() * n)
    observed = np.append(counts[keep], counts[~keep].sum())
    stat = ((observed - expected) ** 2 / np.maximum(expected, 1e-300)).sum()
    from scipy.stats import chi2

    assert chi2.sf(stat, df=len(expected) - 1) > 1e-3, stat
    # marginal means within 5 Monte Carlo standard errors
    sd = np.sqrt(np.maximum(marg @ np.asarray(m.params["level_means"]) ** 2 - mean**2, 0))
    assert np.all(np.abs(u[:, 0].numpy().mean(0) - mean) <= 5 * sd / math.sqrt(n) + 1e-12)
    again = m.sample_posterior(b.x, 5, seed=7)
    torch.testing.assert_close(again, m.sample_posterior(b.x, 5, seed=7))
    with pytest.raises(ModelInputError, match="num_draws"):
        m.sample_posterior(b.x, 0, seed=0)


def test_kept_out_of_the_exchangeable_registry():
    assert "change-point" not in models.names()
    assert "change-point" in models.sequence_names()
    m = models.get_sequence("change-point", K=2)
    assert isinstance(m, ChangePoint) and m.exchangeable is False
    assert models.get_sequence("change-point", **m.params).params == m.params
    with pytest.raises(models.UnknownModelError, match="change-point"):
        models.get_sequence("change-pont")


def test_bad_input():
    with pytest.raises(ModelInputError, match="stay"):
        ChangePoint(stay=1.5)
    with pytest.raises(ModelInputError, match="level_means"):
        ChangePoint(K=2, level_means=[0.0, 1.0, 2.0])
    m = ChangePoint(K=2)
    with pytest.raises(ModelInputError, match="states"):
        m.log_joint(torch.full((1, 3), 5), torch.zeros(1, 3))
    with pytest.raises(ModelInputError, match="finite"):
        m.exact_posterior(torch.tensor([[0.0, float("nan")]]))
