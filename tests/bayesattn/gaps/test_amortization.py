"""Amortization gap: the best member of the head's family is at least as good."""

from __future__ import annotations

import numpy as np
import pytest

from bayesattn import models
from bayesattn.gaps import amortization_gap
from bayesattn.inference import AmortizedPosterior


def test_untrained_net_has_a_large_amortization_gap():
    model = models.get("concept-mixture", K=3, d=2)
    net = AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 16}, seed=0)
    x = model.simulate(24, 10, seed=0).x
    summary, per = amortization_gap(net, model, x, fit_steps=300, per_sequence=True)
    out = summary.set_index("metric")["value"]
    wide = per.pivot(index="dataset", columns="metric", values="value")
    np.testing.assert_allclose(wide["amortization_gap"],
                               wide["kl_amortized"] - wide["kl_best_in_family"], rtol=1e-12)
    # the head can express every categorical posterior: fitting h per dataset gets close
    assert out["kl_best_in_family"] < 0.05 * out["kl_amortized"]
    assert 0.9 < out["amortization_fraction"] <= 1.0
    assert (wide["kl_best_in_family"] <= wide["kl_amortized"] + 1e-6).all()


def test_continuous_latent_runs_on_fresh_draws():
    model = models.get("normal-mean", d=2)
    net = AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 16}, seed=0)
    x = model.simulate(8, 10, seed=1).x
    out = amortization_gap(net, model, x, fit_steps=200, num_samples=256)
    vals = out.set_index("metric")["value"]
    assert np.isfinite(vals.to_numpy()).all()
    assert vals["kl_best_in_family"] < vals["kl_amortized"]


def test_needs_an_exact_posterior():
    model = models.get("logistic-regression")
    net = AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 8}, seed=0)
    x = model.simulate(2, 5, seed=0).x
    with pytest.raises(ValueError, match="exact posterior"):
        amortization_gap(net, model, x)
    with pytest.raises(ValueError, match="fit_steps"):
        m = models.get("concept-mixture", K=2, d=2)
        amortization_gap(AmortizedPosterior(m, encoder="deepsets"), m,
                         m.simulate(2, 3, seed=0).x, fit_steps=0)


@pytest.mark.parametrize("name, kw, head", [("normal-mean", {"d": 1}, "gaussian-diag"),
                                            ("dirichlet-categorical", {"K": 3}, None)])
def test_best_in_family_is_exact_when_the_family_holds_the_posterior(name, kw, head):
    """With a closed-form KL the fit is exact: KL(p || q*) ~ 0 (float32 head), no MC floor."""
    m = models.get(name, **kw)
    net = AmortizedPosterior(m, encoder="deepsets", seed=0, **({"head": head} if head else {}))
    batch = m.simulate(16, 4, seed=1)
    out = amortization_gap(net, m, batch.x, num_resamples=50).set_index("metric")
    assert abs(out.loc["kl_best_in_family", "value"]) < 1e-5
    assert out.loc["kl_amortized", "value"] > 0.1
