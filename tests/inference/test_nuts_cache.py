"""Compiled NUTS programs are shared by models of the same class and parameters."""

from __future__ import annotations

import numpy as np

from bayesattn import inference, models
from bayesattn.inference import _numpyro_nuts


def _reference(model, seed: int):
    batch = models.get("normal-inverse-gamma").simulate(2, 6, seed=seed)
    return inference.reference_posterior(model, batch.x, method="nuts", num_samples=60,
                                         num_warmup=60, num_chains=2, seed=seed,
                                         allow_unconverged=True)


def test_cache_key_is_class_and_parameters():
    a, b = models.get("normal-inverse-gamma"), models.get("normal-inverse-gamma")
    assert a is not b and a.cache_key() == b.cache_key()
    other = models.get("normal-inverse-gamma", m0=1.0)
    assert other.cache_key() != a.cache_key()
    assert models.get("gamma-poisson").cache_key() != a.cache_key()
    # parameters JSON cannot hold: a key of the instance alone
    a.params = {**a.params, "weird": object()}
    assert a.cache_key() == ("instance", id(a))


def test_a_rebuilt_model_reuses_the_compiled_sampler_and_gives_the_same_draws():
    model = models.get("normal-inverse-gamma")
    first = _reference(model, seed=4)
    mine = {k for k in _numpyro_nuts._CACHE if k[0] == model.cache_key()}
    assert {k[1] for k in mine} >= {"nuts", "modes", "potential", "energies"}
    before = set(_numpyro_nuts._CACHE)
    again = _reference(models.get("normal-inverse-gamma"), seed=4)  # a new instance
    assert set(_numpyro_nuts._CACHE) == before  # nothing compiled anew
    np.testing.assert_array_equal(first.draws().numpy(), again.draws().numpy())


def test_instance_keys_are_never_shared_between_objects():
    model = models.get("normal-inverse-gamma")
    key = (("instance", 12345), "nuts")
    _numpyro_nuts._CACHE.pop(key, None)
    assert _numpyro_nuts._cached(key, model, lambda: "built for model") == "built for model"
    stranger = models.get("normal-inverse-gamma")
    # same key (an address reused), another object: built again, never handed over
    assert _numpyro_nuts._cached(key, stranger, lambda: "built again") == "built again"
    _numpyro_nuts._CACHE.pop(key, None)
