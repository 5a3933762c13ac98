"""The model registries are bayesattn's one extension idiom (``bayesattn._registry.Registry``)."""

from __future__ import annotations

import pytest

from bayesattn import models
from bayesattn._registry import Registry

BetaBernoulli = type(models.get("beta-bernoulli"))


def test_models_and_sequence_models_are_registries_behind_the_functions():
    assert isinstance(models.MODELS, Registry) and isinstance(models.SEQUENCE_MODELS, Registry)
    assert models.MODELS.names() == models.names()
    assert models.SEQUENCE_MODELS.names() == models.sequence_names()
    assert not set(models.names()) & set(models.sequence_names())
    assert models.MODELS.get("beta-bernoulli") is BetaBernoulli
    assert type(models.get_sequence("gp-signal")) is models.GPSignal


@pytest.mark.parametrize(("get", "misspelt", "close", "known"), [
    (models.get, "beta-bernouli", "beta-bernoulli", "normal-mean"),
    (models.get_sequence, "gp-sigal", "gp-signal", "change-point"),
])
def test_misspelt_names_get_close_matches(get, misspelt, close, known):
    with pytest.raises(models.UnknownModelError) as info:
        get(misspelt)
    text = str(info.value)
    assert f"did you mean '{close}'" in text and known in text


def test_a_new_model_class_in_one_file_is_built_by_get():
    @models.register
    class Coin(BetaBernoulli):
        name = "test-registry-coin"

    try:
        m = models.get("test-registry-coin", a=2.0, b=3.0)
        assert type(m) is Coin and m.params == {"a": 2.0, "b": 3.0}
        assert "test-registry-coin" in models.names() and "test-registry-coin" in models.MODELS
        assert models.register(Coin) is Coin  # registering the same class again is harmless
    finally:
        models.unregister("test-registry-coin")
    assert "test-registry-coin" not in models.names()
    models.unregister("test-registry-coin")  # an unknown name is ignored


def test_taken_names_are_refused():
    class Clash(BetaBernoulli):
        name = "beta-bernoulli"

    with pytest.raises(ValueError, match="already registered"):
        models.register(Clash)

    class SignalClash(models.GPSignal):
        name = "gp-signal"

    with pytest.raises(ValueError, match="already registered"):
        models.register_sequence(SignalClash)
    with pytest.raises(TypeError, match="SequenceModel"):
        models.register_sequence(BetaBernoulli)
    with pytest.raises(ValueError, match="own name"):
        models.MODELS.register("another-name", BetaBernoulli)
    assert models.get_sequence("gp-signal").__class__ is models.GPSignal
