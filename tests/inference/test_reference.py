"""``Reference`` (inference/_reference.py): torch-style properties, ``sample`` and ``repr``.

Cheap: exact references and MCMC-like references built directly from stored draws (no
NUTS run). The statistical agreement of NUTS with the exact posterior is in
``test_ground_truth.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesattn import inference, models
from bayesattn.inference import DEFAULT_GATE, Reference, UnconvergedReferenceError
from bayesattn.inference._diagnostics import iid_diagnostics
from bayesattn.inference._reference import build_idata

B, CHAINS, DRAWS = 3, 4, 25


def _exact(name="normal-mean"):
    m = models.get(name)
    batch = m.simulate(B, 10, seed=0)
    return m, batch, inference.reference_posterior(m, batch.x, num_samples=20, seed=3)


def _draws_reference(converged=True):
    """A NUTS-like Reference holding stored draws ``z`` of shape (chains, draws, B, 2)."""
    m = models.get("normal-mean")
    batch = m.simulate(B, 10, seed=0)
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(CHAINS, DRAWS, B, *m.latent_shape, generator=gen, dtype=torch.float64)
    idata = build_idata(z.numpy(), batch.x, batch.mask, tuple(m.latent_shape))
    diagnostics = iid_diagnostics(B, CHAINS * DRAWS)
    if not converged:
        diagnostics["r_hat"] = 1.5
        diagnostics["converged"] = False
    ref = Reference(model=m, x=batch.x, mask=batch.mask, method="nuts", distribution=None,
                    idata=idata, diagnostics=diagnostics, gate=DEFAULT_GATE, seed=0,
                    wall_time_s=0.5)
    return ref, z.reshape(CHAINS * DRAWS, B, *m.latent_shape)


# ---------------------------------------------------------------------- properties
def test_exact_properties_are_the_distributions():
    m, batch, ref = _exact()
    post = m.exact_posterior(batch.x)
    for got, want in ((ref.mean, post.mean), (ref.stddev, post.stddev),
                      (ref.variance, post.variance)):
        assert isinstance(got, torch.Tensor) and got.shape == (B, *m.latent_shape)
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(ref.stddev**2, ref.variance)


def test_mcmc_properties_are_the_stored_draws_moments():
    ref, pooled = _draws_reference()
    flat = pooled.numpy()
    np.testing.assert_allclose(ref.mean.numpy(), flat.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ref.stddev.numpy(), flat.std(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(ref.variance.numpy(), flat.var(0, ddof=1), rtol=1e-12)
    torch.testing.assert_close(ref.draws(), pooled)


def test_discrete_latent_mean_is_probabilities_and_spread_is_a_type_error():
    m, batch, ref = _exact("concept-mixture")
    torch.testing.assert_close(ref.mean, m.exact_posterior(batch.x).probs)
    for name in ("stddev", "variance"):
        with pytest.raises(TypeError, match=f"discrete latent, so {name}.*\\.mean"):
            getattr(ref, name)


@pytest.mark.parametrize("name", ["mean", "stddev", "variance"])
def test_reading_a_property_of_an_unconverged_reference_raises(name):
    ref, _ = _draws_reference(converged=False)
    with pytest.raises(UnconvergedReferenceError, match="r_hat=1.500"):
        getattr(ref, name)
    ref.allow_unconverged = True
    assert getattr(ref, name).shape == (B, 2)


def test_methods_became_properties():
    _, _, ref = _exact()
    with pytest.raises(AttributeError, match=r"property \.stddev"):
        ref.std()
    assert not hasattr(ref, "std")
    with pytest.raises(TypeError, match="not callable"):  # as with a torch Distribution
        ref.mean()


# ---------------------------------------------------------------------- sample
@pytest.mark.parametrize("kind", ["exact", "mcmc"])
@pytest.mark.parametrize(("shape", "lead"), [((), ()), (5, (5,)), ((5,), (5,)),
                                             ((2, 3), (2, 3)), (torch.Size([4, 1]), (4, 1))])
def test_sample_shapes(kind, shape, lead):
    ref = _exact()[2] if kind == "exact" else _draws_reference()[0]
    assert ref.sample(shape).shape == (*lead, B, 2)
    assert ref.sample(shape, seed=1).shape == (*lead, B, 2)
    if shape == ():
        assert ref.sample().shape == (B, 2)


@pytest.mark.parametrize("bad", [0, -1, (2, 0), 1.5, True, (2, "3"), "5", None])
def test_sample_rejects_bad_shapes_and_seeds(bad):
    _, _, ref = _exact()
    with pytest.raises(ValueError, match="sample_shape"):
        ref.sample(bad)
    with pytest.raises(ValueError, match="seed"):
        ref.sample(2, seed=1.0)


def test_mcmc_sample_is_a_subset_without_replacement():
    ref, pooled = _draws_reference()
    total = CHAINS * DRAWS
    got = ref.sample((4, total // 4), seed=2).reshape(total, B, 2)
    rows = {tuple(r.reshape(-1).tolist()) for r in got}
    assert rows == {tuple(r.reshape(-1).tolist()) for r in pooled}  # each draw exactly once
    with pytest.raises(ValueError, match=f"stores {total}"):
        ref.sample((2, total // 2 + 1))


@pytest.mark.parametrize("kind", ["exact", "mcmc"])
def test_sample_without_seed_follows_torch_manual_seed(kind):
    ref = _exact()[2] if kind == "exact" else _draws_reference()[0]
    torch.manual_seed(123)
    a = ref.sample(6)
    b = ref.sample(6)
    torch.manual_seed(123)
    assert torch.equal(ref.sample(6), a)
    assert not torch.equal(a, b)  # two calls, two different sets of draws
    torch.manual_seed(124)
    assert not torch.equal(ref.sample(6), a)


def test_exact_sample_without_seed_is_the_distributions_draw():
    m, batch, ref = _exact()
    post = m.exact_posterior(batch.x)
    torch.manual_seed(7)
    want = post.sample((2, 3))
    torch.manual_seed(7)
    assert torch.equal(ref.sample((2, 3)), want)


@pytest.mark.parametrize("kind", ["exact", "mcmc"])
def test_sample_with_seed_is_reproducible_and_leaves_the_global_rng_alone(kind):
    ref, pooled = _draws_reference() if kind == "mcmc" else (_exact()[2], None)
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    a = ref.sample(8, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(ref.sample(8, seed=5), a)
    assert torch.equal(ref.sample(np.int64(8), seed=np.int64(5)), a)
    assert not torch.equal(ref.sample(8, seed=6), a)
    assert torch.equal(ref.sample((2, 4), seed=5).reshape(8, B, 2), a)
    # The draws of earlier versions' sample(n, seed=s) (kept for reproducibility).
    if kind == "mcmc":
        idx = torch.randperm(CHAINS * DRAWS, generator=torch.Generator().manual_seed(5))[:8]
        want = pooled[idx]
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            want = ref.distribution.sample((8,))
    assert torch.equal(a, want)


# ---------------------------------------------------------------------- repr
def test_repr_is_one_short_line():
    for ref in (_exact()[2], _draws_reference()[0], _draws_reference(converged=False)[0]):
        text = repr(ref)
        assert "\n" not in text and len(text) < 200, text
        assert text.startswith("Reference(model='normal-mean'")
        assert f"method={ref.method!r}" in text and f"datasets={B}" in text
        assert ("NOT converged" in text) == (not ref.converged)
