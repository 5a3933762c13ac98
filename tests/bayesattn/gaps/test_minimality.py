"""Equal-statistic pairs and the minimality study (P2)."""

from __future__ import annotations

import pytest
import torch

from bayesattn import models
from bayesattn.gaps._minimality import (
    EqualStatisticPairs,
    _check_posteriors,
    equal_statistic_pairs,
    minimality,
)

CASES = [("normal-mean", {"d": 2, "noise_cov": [[1.0, 0.4], [0.4, 0.8]]}, (3, 9)),
         ("normal-inverse-gamma", {}, 5),
         ("concept-mixture", {"K": 3}, (3, 6)),
         ("gamma-poisson", {"a": 4.0}, 6)]
COLUMNS = ["representation", "model", "L_min", "L_max", "metric", "value", "ci_low",
           "ci_high", "se", "n"]


pytestmark = pytest.mark.usefixtures("one_thread")


def moments(x, mask):
    """(L, mean x, mean x x') per set: sufficient for every model in CASES."""
    m = mask.to(torch.float64)
    flat = x.to(torch.float64).reshape(x.shape[0], x.shape[1], -1)  # (B, L, F)
    n = m.sum(-1, keepdim=True)
    mean = (flat * m[..., None]).sum(1) / n
    second = torch.einsum("bl,bli,blj->bij", m, flat, flat).flatten(1) / n
    return torch.cat([n, mean, second], -1)


def first_token(x, mask):
    return x[:, 0].to(torch.float64).reshape(x.shape[0], -1)


@pytest.mark.parametrize("name, kw, seq_len", CASES)
def test_equal_statistic_pairs_have_identical_exact_posteriors(name, kw, seq_len):
    m = models.get(name, **kw)
    pairs = equal_statistic_pairs(m, 40, seq_len, seed=2)
    p, q = m.exact_posterior(pairs.x, pairs.mask), m.exact_posterior(pairs.x_equal, pairs.mask)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        z = p.sample((5,))
    torch.testing.assert_close(q.log_prob(z), p.log_prob(z), atol=1e-10, rtol=0)
    # ... while the tokens differ by more than a permutation (sorted multisets differ)
    f = pairs.x.reshape(*pairs.mask.shape, -1)[..., 0].masked_fill(~pairs.mask, 1e9)
    g = pairs.x_equal.reshape(*pairs.mask.shape, -1)[..., 0].masked_fill(~pairs.mask, 1e9)
    diff = (f.sort(-1).values - g.sort(-1).values).abs().amax(-1)
    assert bool((diff > 1e-6).all())
    assert pairs.x_equal.dtype == pairs.x.dtype and pairs.x_other.shape == pairs.x.shape


@pytest.mark.parametrize("name, kw, seq_len", CASES)
def test_sufficient_statistic_has_distance_zero_and_first_token_does_not(name, kw, seq_len):
    m = models.get(name, **kw)
    reps = {"moments": moments, "first token": first_token}
    if name == "gamma-poisson":  # the Poisson statistic is (L, sum x): no second moment
        reps["moments"] = lambda x, mask: moments(x, mask)[:, :2]
    df = minimality(reps, m, num_pairs=150, seq_len=seq_len, seed=0, num_resamples=200)
    assert list(df.columns) == COLUMNS
    row = df.set_index(["representation", "metric"])
    assert row.loc[("moments", "distance_equal"), "value"] < 1e-10
    assert row.loc[("moments", "distance_ratio"), "value"] < 1e-10
    assert row.loc[("control: exact posterior", "distance_ratio"), "value"] < 1e-10
    for non_minimal in ("first token", "control: sorted tokens"):
        assert row.loc[(non_minimal, "distance_ratio"), "ci_low"] > 0.05
        assert row.loc[(non_minimal, "distance_equal"), "ci_low"] > 0


def test_a_construction_that_changes_the_posterior_is_refused():
    m = models.get("normal-mean", d=1)
    b = m.simulate(5, 4, seed=0)
    bad = EqualStatisticPairs(b.x, b.x + 0.1, b.x, b.mask)
    with pytest.raises(ValueError, match="changed the exact posterior"):
        _check_posteriors(m, bad, seed=0)


def test_bad_input():
    m = models.get("normal-mean", d=2)
    with pytest.raises(ValueError, match="permutations"):
        equal_statistic_pairs(models.get("dirichlet-categorical"), 10, 5)
    with pytest.raises(ValueError, match=">= 3 tokens"):
        equal_statistic_pairs(m, 10, (2, 5))
    with pytest.raises(ValueError, match="num_pairs"):
        minimality(moments, m, num_pairs=1, seq_len=4)
    with pytest.raises(ValueError, match="B = 10"):
        minimality(lambda x, mask: torch.zeros(3, 2), m, num_pairs=10, seq_len=4)
    with pytest.raises(ValueError, match="NaN"):
        minimality(lambda x, mask: torch.full((x.shape[0], 2), float("nan")), m,
                   num_pairs=10, seq_len=4)
    with pytest.raises(TypeError, match="callable"):
        minimality({"x": 3}, m, num_pairs=10, seq_len=4)
    df = minimality(moments, m, num_pairs=10, seq_len=4, include_controls=False,
                    num_resamples=20)
    assert set(df.representation) == {"representation"} and (df.n == 10).all()
