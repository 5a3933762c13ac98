"""ε-contamination of the finite mixtures: simulation, clean and ε-model posteriors."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from bayesattn import models
from bayesattn.models import ContaminatedMixture, ModelInputError, contaminate

BASES = {
    "concept": lambda: models.get("concept-mixture", K=3, d=2, weights=[0.5, 0.3, 0.2]),
    "unigram": lambda: models.get("unigram-mixture", K=3, V=6),
}
PAIRS = [(b, k) for b in BASES for k in ("outlier", "swap")]


def _component_logpdf(cm: ContaminatedMixture, x: np.ndarray) -> np.ndarray:
    """log p_c(x_i), (L, K + 1), written out from the base model's parameters."""
    bp = cm.base.params
    if cm.continuous:
        mu = np.asarray(bp["means"])
        locs = np.vstack([mu, cm.params.get("outlier_loc", np.zeros(bp["d"]))])
        scales = np.append(np.full(bp["K"], bp["scale"]), cm.params.get("outlier_scale", 1.0))
        d = mu.shape[1]
        sq = ((x[:, None, :] - locs) ** 2).sum(-1)
        return -0.5 * sq / scales**2 - d * np.log(scales) - 0.5 * d * math.log(2 * math.pi)
    probs = np.vstack([np.asarray(bp["word_probs"]), np.full(bp["V"], 1 / bp["V"])])
    return np.log(probs.T[x])


def brute_force(cm: ContaminatedMixture, x: np.ndarray) -> np.ndarray:
    """p(z | x) summing over every per-token source assignment (no mixture algebra)."""
    K, eps, kind = cm.params["K"], cm.params["epsilon"], cm.params["kind"]
    comp = _component_logpdf(cm, x)
    length = len(x)
    log_post = np.empty(K)
    for z in range(K):
        srcs = [z, K] if kind == "outlier" else list(range(K))
        terms = []
        for assign in itertools.product(srcs, repeat=length):
            lp = 0.0
            for i, c in enumerate(assign):
                p = (1 - eps) if c == z else (eps if kind == "outlier" else eps / (K - 1))
                lp += math.log(p) + comp[i, c]
            terms.append(lp)
        terms = np.array(terms)
        log_post[z] = math.log(cm.params["weights"][z]) + np.log(np.exp(terms - terms.max())
                                                                  .sum()) + terms.max()
    return np.exp(log_post - np.logaddexp.reduce(log_post))


@pytest.mark.parametrize("base,kind", PAIRS)
def test_epsilon_model_posterior_equals_brute_force(base, kind):
    cm = contaminate(BASES[base](), 0.25, kind)
    data = cm.simulate_contaminated(3, 5, seed=0)
    post = cm.exact_posterior(data.batch.x)
    for i in range(3):
        want = brute_force(cm, data.batch.x[i].numpy())
        np.testing.assert_allclose(post.probs[i].numpy(), want, atol=1e-10)
    # the same posterior through either program's log joint (enumeration over z)
    x = data.batch.x
    for backend in ("pyro", "numpyro"):
        lj = torch.stack([cm.log_joint(torch.full((3,), k), x, backend=backend)
                          for k in range(3)], -1)
        torch.testing.assert_close(torch.softmax(lj, -1), post.probs, atol=1e-10, rtol=0)


@pytest.mark.parametrize("base,kind", PAIRS)
def test_epsilon_zero_is_the_clean_posterior(base, kind):
    clean = BASES[base]()
    cm = contaminate(clean, 0.0, kind)
    data = cm.simulate_contaminated(4, 9, seed=1)
    assert not data.contaminated.any() and torch.equal(data.batch.x, data.clean_x)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[0, 5:] = False
    x = data.batch.x
    assert torch.equal(cm.exact_posterior(x, mask).logits, clean.exact_posterior(x, mask).logits)
    torch.testing.assert_close(cm.enumerated_posterior(x, mask).probs,
                               clean.exact_posterior(x, mask).probs, atol=1e-10, rtol=0)
    assert torch.equal(cm.clean_posterior(x, mask).logits, clean.exact_posterior(x, mask).logits)


@pytest.mark.parametrize("base,kind", PAIRS)
def test_simulate_contaminated(base, kind):
    clean = BASES[base]()
    cm = contaminate(clean, 0.3, kind)
    state = torch.random.get_rng_state()
    data = cm.simulate_contaminated(200, 50, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    ref = clean.simulate(200, 50, seed=4)
    assert torch.equal(data.clean_x, ref.x) and torch.equal(data.batch.z, ref.z)
    assert abs(data.contaminated.double().mean().item() - 0.3) < 0.02
    keep = ~data.contaminated
    assert torch.equal(data.batch.x[keep], data.clean_x[keep])
    z = data.batch.z[:, None].expand(200, 50)
    assert torch.equal(data.source[keep], z[keep])
    if kind == "outlier":
        assert bool((data.source[data.contaminated] == 3).all())
    else:
        assert bool((data.source[data.contaminated] != z[data.contaminated]).all())
    cm.validate_tokens(data.batch.x)
    again = cm.simulate_contaminated(200, 50, seed=4)
    assert torch.equal(again.batch.x, data.batch.x)
    assert data.batch.x.shape == (200, 50, *clean.token_shape)


def test_outliers_move_the_clean_posterior_far_more_than_the_epsilon_model():
    clean = models.get("concept-mixture", K=4, d=2, radius=2.0, scale=1.0)
    cm = contaminate(clean, 0.1, "outlier", outlier_scale=10.0)
    mu = torch.tensor(clean.params["means"], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x = mu[0] + 0.5 * torch.randn(1, 10, 2, generator=gen, dtype=torch.float64)
    far = 20.0 * mu[1] / mu[1].norm()  # a far-away token in the direction of concept 1
    x_out = torch.cat([x, far.reshape(1, 1, 2)], 1)

    def tv(p, q):
        return 0.5 * (p.probs - q.probs).abs().sum().item()

    moved_clean = tv(clean.exact_posterior(x), clean.exact_posterior(x_out))
    moved_eps = tv(cm.exact_posterior(x), cm.exact_posterior(x_out))
    assert moved_clean > 0.9
    assert moved_eps < 0.05


def test_the_mixture_program_simulates_the_epsilon_model():
    cm = contaminate(BASES["unigram"](), 0.4, "outlier")
    b = cm.simulate(3000, 1, seed=0)
    wp = np.asarray(cm.base.params["word_probs"])
    want = (0.6 * wp + 0.4 / 6)[b.z.numpy()].mean(0)
    got = np.bincount(b.x.numpy().ravel(), minlength=6) / 3000
    np.testing.assert_allclose(got, want, atol=0.03)


def test_bad_input():
    with pytest.raises(ModelInputError, match="epsilon"):
        contaminate("concept-mixture", 1.0)
    with pytest.raises(ModelInputError, match="kind"):
        contaminate("concept-mixture", 0.1, "flip")
    with pytest.raises(ModelInputError, match="K >= 2"):
        contaminate(models.get("concept-mixture", K=1), 0.1, "swap")
    with pytest.raises(ModelInputError, match="supports"):
        contaminate(models.get("normal-mean"), 0.1)
    with pytest.raises(ModelInputError, match="outlier_loc"):
        contaminate("unigram-mixture", 0.1, outlier_loc=[0.0])
    cm = contaminate("concept-mixture", 0.1, outlier_loc=[30.0, 0.0])
    assert cm.params["outlier_loc"] == [30.0, 0.0] and cm.name == "concept-mixture+outlier"
    assert "concept-mixture+outlier" not in models.names()
    again = ContaminatedMixture.from_params(json.loads(json.dumps(cm.params)))
    assert again.params == cm.params
    b1, b2 = cm.simulate_contaminated(2, 5, seed=3), again.simulate_contaminated(2, 5, seed=3)
    assert torch.equal(b1.batch.x, b2.batch.x)
