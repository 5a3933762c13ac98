"""The ground-truth gate refuses NUTS references whose chains are all trapped in one peak.

Two posteriors with two well-separated peaks that no chain crosses:

- mirror images (x ~ N(z^2, 0.2), z ~ N(0, 3); peaks at +-2): before antithetic starts,
  2 of 8 datasets passed the gate with all 4 chains on one side (R-hat 1.002);
- a far peak (x ~ N((z - 3)^2, 0.2); peaks at 1 and 5): every chain starts in (-2, 2)
  and falls into the peak at 1, so R-hat sees nothing; only the mode search, whose
  starts include prior draws, finds the peak at 5.
"""

from __future__ import annotations

import numpyro.distributions as ndist
import pyro.distributions as pdist
import pytest
import torch
from torch.distributions import constraints

from bayesattn import inference, models
from bayesattn.inference import UnconvergedReferenceError
from bayesattn.models import ExchangeableModel


class SquareMean(ExchangeableModel):
    """z ~ N(0, 3); x_i | z ~ N((z - shift)^2, 0.2)."""

    name = "test-square-mean"
    token_support = constraints.real

    def __init__(self, shift: float = 0.0):
        super().__init__(shift=shift)

    def _mean(self, z):
        return (z - self.params["shift"]) ** 2

    def pyro_prior(self, device=None):
        return pdist.Normal(self.tensor(0.0, device), self.tensor(3.0, device))

    def pyro_likelihood(self, z):
        return pdist.Normal(self._mean(z), 0.2)

    pyro_target = pyro_likelihood

    def numpyro_prior(self):
        return ndist.Normal(0.0, 3.0)

    def numpyro_likelihood(self, z):
        return ndist.Normal(self._mean(z), 0.2)

    numpyro_target = numpyro_likelihood


@pytest.fixture(scope="module")
def square():
    models.register(SquareMean)
    try:
        yield
    finally:
        models.unregister("test-square-mean")


def _reference(shift, datasets):
    m = models.get("test-square-mean", shift=shift)
    x = torch.full((datasets, 16), 4.0, dtype=torch.float64)
    return inference.reference_posterior(m, x, method="nuts", num_samples=300, num_warmup=300,
                                        seed=0)


def test_mirror_image_peaks_split_the_chains_and_fail_the_gate(square):
    ref = _reference(0.0, 8)
    z = ref.idata.posterior["z"].values  # (chain, draw, dataset)
    sides = (z.mean(axis=1) > 0).sum(axis=0)
    assert (sides == 2).all(), "antithetic starts put two chains on each side"
    assert (ref.diagnostics["r_hat"] > 1.1).all() and not ref.diagnostics["converged"].any()
    with pytest.raises(UnconvergedReferenceError):
        _ = ref.mean


def test_mode_search_finds_the_peak_every_chain_missed(square):
    ref = _reference(3.0, 4)
    diag = ref.diagnostics
    z = ref.idata.posterior["z"].values
    trapped = (abs(z - 1.0) < 0.5).all(axis=(0, 1))  # every draw of every chain near 1
    assert trapped.any(), "the scenario: some datasets with all chains in the peak at 1"
    assert (diag.loc[trapped, "missed_modes"] == 1).all()
    assert (diag.loc[trapped, "r_hat"] < 1.05).all()  # R-hat alone would have passed them
    assert not diag["converged"].any()
    with pytest.raises(UnconvergedReferenceError, match="missed_modes=1.*every chain missed"):
        _ = ref.mean


def test_unimodal_reference_finds_no_missed_mode(square):
    m = models.get("normal-mean")
    x = m.simulate(3, 20, seed=0).x
    ref = inference.reference_posterior(m, x, method="nuts", num_samples=500, num_warmup=500,
                                        seed=1)
    assert (ref.diagnostics["missed_modes"] == 0).all() and ref.converged
