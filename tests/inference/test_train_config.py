"""TrainConfig (every training setting, validated once) and objectives as objects."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesattn import models
from bayesattn.inference import (
    NPE,
    OBJECTIVES,
    AmortizedPosterior,
    ExactKL,
    MaskedTokens,
    Objective,
    TrainConfig,
    train,
)

SMALL = {"dim": 8, "num_heads": 2}


def _net(model, seed=0):
    return AmortizedPosterior(model, encoder="set-transformer", encoder_options=SMALL, seed=seed)


def _history(model, *args, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("threads", 1)
    out = train(_net(model), model, *args, **kw).history
    return out.drop(columns=["seconds"])


def test_keywords_and_a_config_train_the_same_network():
    m = models.get("normal-mean")
    by_keywords = _history(m, steps=6, batch_size=8, seq_len=(3, 9), seed=2, lr=1e-2)
    config = TrainConfig(steps=6, batch_size=8, seq_len=(3, 9), seed=2, lr=1e-2,
                         progress=False, threads=1)
    pd.testing.assert_frame_equal(by_keywords, _history(m, config))
    # a field given as a keyword changes the config; the config itself is left as it was
    changed = _history(m, config, lr=3e-3)
    assert not changed["loss"].equals(by_keywords["loss"]) and config.lr == 1e-2


def test_objective_objects_equal_their_names():
    m = models.get("concept-mixture", K=3, d=2)
    kw = {"steps": 5, "batch_size": 8, "seq_len": (4, 8), "seed": 1}
    pd.testing.assert_frame_equal(_history(m, objective="kl", **kw),
                                  _history(m, objective=ExactKL(samples=32), **kw))
    pd.testing.assert_frame_equal(_history(m, objective="mtp", mask_fraction=0.5, **kw),
                                  _history(m, objective=MaskedTokens(fraction=0.5), **kw))
    pd.testing.assert_frame_equal(_history(m, **kw), _history(m, objective=NPE(), **kw))
    with pytest.raises(ValueError, match="set them on the objective"):
        train(_net(m), m, objective=NPE(), kl_samples=8, **kw)


def test_a_new_objective_is_one_registered_class():
    class MeanSquared(Objective):
        """Squared error of the posterior mean (a toy objective, for this test)."""
        output = "posterior"

        def loss(self, net, q, batch, hidden):
            return ((q.mean - batch.z.float()) ** 2).mean(), math.nan

    OBJECTIVES.register("toy-mse", MeanSquared)
    try:
        assert "toy-mse" in OBJECTIVES.names()
        m = models.get("normal-mean")
        hist = _history(m, steps=4, batch_size=8, seq_len=5, objective="toy-mse")
        assert len(hist) == 4 and hist["loss"].map(math.isfinite).all()
        with pytest.raises(ValueError, match="already registered"):
            OBJECTIVES.register("toy-mse", NPE)
    finally:
        OBJECTIVES.unregister("toy-mse")
    with pytest.raises(ValueError, match="did you mean 'kl'"):
        train(_net(m), m, steps=1, seq_len=4, objective="kll")
    with pytest.raises(TypeError, match="Objective subclass"):
        OBJECTIVES.register("not-one", object)


@pytest.mark.parametrize("field, value, match", [
    ("seq_len", (64, 8), "1 <= low <= high"),
    ("seq_len", "long", "int or a \\(low, high\\) pair"),
    ("lr", -1e-3, "lr must be a finite number > 0"),
    ("lr", math.nan, "lr must be a finite number > 0"),
    ("steps", 0, "steps must be an integer >= 1"),
    ("batch_size", 2.5, "batch_size must be an integer >= 1"),
    ("weight_decay", -1.0, "weight_decay must be a finite number >= 0"),
    ("lengths", "gaussian", "lengths must be one of"),
    ("mask_fraction", 1.0, "mask_fraction must lie in"),
    ("seed", -3, "seed must be an integer >= 0"),
    ("warmup_steps", -1, "warmup_steps must be an integer >= 0"),
])
def test_bad_settings_are_refused_when_the_config_is_made(field, value, match):
    base = {"steps": 10, "seq_len": 8}
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**base, field: value})
    with pytest.raises(ValueError, match=match):  # and by train, before any work
        m = models.get("normal-mean")
        train(_net(m), m, **{**base, field: value})


def test_unknown_settings_name_the_close_field():
    with pytest.raises(TypeError, match="did you mean 'batch_size'"):
        TrainConfig.make(steps=3, batchsize=8)
    with pytest.raises(TypeError, match="unknown training setting"):
        m = models.get("normal-mean")
        train(_net(m), m, steps=3, seq_len=4, learning_rate=1e-3)
    with pytest.raises(ValueError, match="seq_len is not set"):
        m = models.get("normal-mean")
        train(_net(m), m, steps=3)


@settings(max_examples=40, deadline=None)
@given(low=st.integers(1, 50), span=st.integers(0, 50), steps=st.integers(1, 10**6),
       lr=st.floats(1e-6, 1.0))
def test_valid_settings_round_trip_through_replace(low, span, steps, lr):
    config = TrainConfig(steps=steps, seq_len=(low, low + span), lr=lr)
    again = config.replace(lr=lr)
    assert again == config and config.length_range() == (low, low + span)
    assert TrainConfig.make(dict(steps=steps, seq_len=(low, low + span), lr=lr)) == config


def test_the_gap_studies_take_the_same_config():
    from bayesattn.gaps import generalisation_gap

    m = models.get("normal-mean")
    kw = dict(train_sizes=[4], lengths=[5], num_test=16, seed=0, num_resamples=20,
              encoder_options=SMALL)
    config = TrainConfig(steps=4, batch_size=4, lr=1e-2, threads=1)
    a = generalisation_gap(m, training=config, **kw)
    b = generalisation_gap(m, steps=4, batch_size=4, lr=1e-2, threads=1, **kw)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(TypeError, match="unknown training setting"):
        generalisation_gap(m, steps=4, learningrate=1e-2, **kw)


def test_training_config_fields_are_the_one_parameter_list():
    """train() has no parameter list of its own: its keywords are TrainConfig's fields."""
    import inspect

    params = inspect.signature(train).parameters
    assert list(params) == ["net", "model", "config", "settings"]
    assert {"steps", "seq_len", "lr", "objective"} <= set(TrainConfig.fields())
    assert TrainConfig(steps=1).lr == 3e-3  # one default, used by train and the studies
