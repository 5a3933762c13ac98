"""A model defined only in this file works with every engine once registered."""

from __future__ import annotations

import numpyro.distributions as ndist
import pyro.distributions as pdist
import pytest
import torch
from torch.distributions import constraints

from bayesattn import inference, models
from bayesattn.models import ExchangeableModel


class ExponentialRate(ExchangeableModel):
    """z ~ Gamma(a, b); x_i | z ~ Exponential(z); y | z ~ Exponential(z)."""

    name = "test-exponential-rate"
    token_support = constraints.positive

    def __init__(self, a: float = 3.0, b: float = 2.0):
        super().__init__(a=a, b=b)

    def pyro_prior(self, device=None):
        a, b = self.params["a"], self.params["b"]
        return pdist.Gamma(self.tensor(a, device), self.tensor(b, device))

    def pyro_likelihood(self, z):
        return pdist.Exponential(z)

    def pyro_target(self, z):
        return pdist.Exponential(z)

    def numpyro_prior(self):
        return ndist.Gamma(self.params["a"], self.params["b"])

    def numpyro_likelihood(self, z):
        return ndist.Exponential(z)

    def numpyro_target(self, z):
        return ndist.Exponential(z)

    def exact_posterior(self, x, mask=None):
        x, mask = self.validate_tokens(x, mask)
        m = mask.double()
        return torch.distributions.Gamma(
            self.params["a"] + m.sum(-1), self.params["b"] + (x * m).sum(-1)
        )


@pytest.fixture
def user_model():
    models.register(ExponentialRate)
    try:
        yield models.get("test-exponential-rate", a=3.0, b=2.0)
    finally:
        models.unregister("test-exponential-rate")


def test_registered_user_model_works_everywhere(user_model):
    assert "test-exponential-rate" in models.names()
    b = user_model.simulate(3, 12, seed=0)
    assert b.x.shape == (3, 12) and bool((b.x > 0).all())
    torch.testing.assert_close(
        user_model.log_joint(b.z, b.x, b.y), user_model.log_joint(b.z, b.x, b.y, backend="numpyro")
    )
    ref = inference.reference_posterior(user_model, b.x, method="nuts", num_samples=600,
                                        num_warmup=500, seed=1)
    assert ref.converged, ref.diagnostics
    exact = inference.reference_posterior(user_model, b.x)
    assert exact.method == "exact"
    # NUTS mean within 5 Monte Carlo standard errors of the exact mean.
    mcse = exact.stddev / torch.tensor(ref.diagnostics["ess_bulk"].to_numpy()) ** 0.5
    assert bool(((ref.mean - exact.mean).abs() < 5 * mcse).all())
    with pytest.raises(models.ModelInputError, match="support"):
        user_model.validate_tokens(-b.x)


def test_register_rejects_bad_classes():
    with pytest.raises(TypeError):
        models.register(int)

    class Nameless(ExponentialRate):
        name = ""

    with pytest.raises(ValueError, match="non-empty"):
        models.register(Nameless)

    class Clash(ExponentialRate):
        name = "beta-bernoulli"

    with pytest.raises(ValueError, match="already registered"):
        models.register(Clash)
