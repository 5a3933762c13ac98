"""The ``token_transform`` hook of ``train(objective="mtp")`` (coarsened pretexts)."""

from __future__ import annotations

import pytest
from torch.distributions import constraints

from bayesattn import models
from bayesattn.inference import AmortizedPosterior, train
from bayesattn.inference._predictive import PredictiveHead

KW = dict(steps=4, batch_size=8, seq_len=(3, 6), objective="mtp", seed=0, device="cpu",
          progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _net(model):
    return AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 8}, seed=0)


def test_identity_transform_changes_nothing():
    m = models.get("concept-mixture", K=3)
    plain = train(_net(m), m, **KW).history.loss.to_numpy()
    same = train(_net(m), m, token_transform=lambda x: x, **KW).history.loss.to_numpy()
    assert (plain == same).all()


def test_coarse_targets_are_what_the_token_head_scores():
    m = models.get("concept-mixture", K=3)
    seen = []

    def sign(x):
        seen.append(tuple(x.shape))
        return (x[..., 0] > 0).to(x.dtype)  # (B, L) in {0, 1}

    net = _net(m)
    net.token_head = PredictiveHead(constraints.boolean, (), net.rep_dim)
    hist = train(net, m, token_transform=sign, **KW).history
    assert len(seen) == KW["steps"] and all(s[0] == 8 for s in seen)
    # a Bernoulli log loss per hidden token lies in (0, inf) and starts near log 2
    assert (hist.loss > 0).all() and abs(hist.loss.iloc[0] - 0.69) < 0.3
    plain = train(_net(m), m, **KW).history.loss
    assert not (hist.loss.to_numpy() == plain.to_numpy()).all()


def test_bad_transforms_are_refused():
    m = models.get("concept-mixture", K=3)
    with pytest.raises(ValueError, match="objective='mtp'"):
        train(_net(m), m, **{**KW, "objective": "npe"}, token_transform=lambda x: x)
    with pytest.raises(ValueError, match="callable"):
        train(_net(m), m, token_transform=3, **KW)
    with pytest.raises(ValueError, match="leading shape"):
        train(_net(m), m, token_transform=lambda x: x[:, :1].flatten(0, 1), **KW)
