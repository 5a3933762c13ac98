"""The MTP condition number kappa_2 and the masked-token transfer study (P9, P10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from bayesattn import models
from bayesattn.gaps._transfer import (
    _hide,
    _pretext,
    condition_number,
    masked_token_transfer,
    model_condition_number,
    pretext_bayes_nll,
)

COLUMNS = ["model", "pretext", "steps", "batch_size", "num_train_probe", "L_min", "L_max",
           "encoder", "readout", "probe", "metric", "value", "ci_low", "ci_high", "se", "n"]
METRICS = ["pretext_nll", "pretext_bayes_risk", "pretext_excess_risk", "downstream_nll",
           "bayes_risk", "downstream_excess_risk", "kappa2"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _kappa_generalized_eig(ax, ay):
    """Independent kappa_2: a non-orthonormal basis B = [e_k - e_K] of the sum-zero space and
    generalized eigenvalues of (B'A A'B, B'B), i.e. extreme values of |A'Bv|^2 / |Bv|^2."""
    k = ax.shape[0]
    basis = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])  # (K, K-1)
    gram = basis.T @ basis
    lx = scipy.linalg.eigh(basis.T @ ax @ ax.T @ basis, gram, eigvals_only=True)
    ly = scipy.linalg.eigh(basis.T @ ay @ ay.T @ basis, gram, eigvals_only=True)
    return math.sqrt(ly.max() / lx.min())


def _random_rows(rng, k, v):
    return rng.dirichlet(np.ones(v), size=k)


def test_condition_number_does_not_depend_on_the_basis():
    rng = np.random.default_rng(0)
    for k, v, c in [(3, 5, 3), (4, 10, 2), (5, 6, 5)]:
        ax, ay = _random_rows(rng, k, v), _random_rows(rng, k, c)
        kappa = condition_number(ax, ay)
        assert kappa == pytest.approx(_kappa_generalized_eig(ax, ay), rel=1e-9)
        # and a random orthonormal basis of the same subspace (QR of random sum-zero vectors)
        raw = rng.standard_normal((k, k - 1))
        u, _ = np.linalg.qr(raw - raw.mean(0))
        sx = np.linalg.svd(ax.T @ u, compute_uv=False).min()
        sy = np.linalg.svd(ay.T @ u, compute_uv=False).max()
        assert kappa == pytest.approx(sy / sx, rel=1e-10)


def test_condition_number_blind_and_trivial_cases():
    rng = np.random.default_rng(1)
    ax, ay = _random_rows(rng, 3, 4), _random_rows(rng, 3, 3)
    ax[2] = ax[1]  # two classes with the same token law: a blind direction
    assert condition_number(ax, ay) == math.inf
    assert condition_number(_random_rows(rng, 4, 2), ay[:1].repeat(4, 0) + 0 * ay[0]) == 0.0
    assert condition_number(_random_rows(rng, 4, 2), _random_rows(rng, 4, 3)) == math.inf  # V<K-1
    for bad, match in [((np.ones(3), ay), "2-D"), ((ax, ay[:2]), "rows"),
                       ((ax * np.nan, ay), "finite"), ((ax[:1], ay[:1]), "K >= 2")]:
        with pytest.raises(ValueError, match=match):
            condition_number(*bad)


def test_condition_number_grows_as_two_components_approach():
    rng = np.random.default_rng(2)
    base, direction = _random_rows(rng, 1, 6)[0], rng.standard_normal(6)
    direction -= direction.mean()
    ay = np.array([[0.9, 0.1], [0.1, 0.9]])
    eps = [0.04, 0.02, 0.01, 0.005]
    kappas = [condition_number(np.stack([base + e * direction, base - e * direction]), ay)
              for e in eps]
    assert all(a < b for a, b in zip(kappas, kappas[1:], strict=False))
    # K = 2: A_x'U = sqrt(2) eps direction, so kappa is exactly proportional to 1 / eps
    np.testing.assert_allclose(np.array(kappas) * np.array(eps), kappas[0] * eps[0], rtol=1e-9)
    # Gaussian concepts moving together: kappa increases monotonically
    radii = [3.0, 2.0, 1.0, 0.5]
    ks = [model_condition_number(models.get("concept-mixture", K=3, radius=r)) for r in radii]
    assert all(a < b for a, b in zip(ks, ks[1:], strict=False))


def test_gaussian_l2_gram_matches_quadrature_and_coarse_pretext_is_blind():
    m = models.get("concept-mixture", K=3, d=2, scale=0.8)
    factor = _pretext(m, "full", None).table  # G = F F'
    grid = np.linspace(-9, 9, 721)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    pts = np.stack([xx, yy], -1)
    s = m.params["scale"]
    dens = [np.exp(-((pts - mu) ** 2).sum(-1) / (2 * s**2)) / (2 * math.pi * s**2)
            for mu in np.asarray(m.params["means"])]
    h = (grid[1] - grid[0]) ** 2
    gram = np.array([[(a * b).sum() * h for b in dens] for a in dens])
    np.testing.assert_allclose(factor @ factor.T, gram, rtol=1e-8, atol=1e-12)
    assert model_condition_number(m, pretext="coarse") == math.inf  # P(x_0 > 0 | z) ties
    # ... and the blind direction is the one that separates concepts 1 and 2
    table = _pretext(m, "coarse", None).table  # (K, 2)
    np.testing.assert_allclose(table.T @ np.array([0.0, 1.0, -1.0]), 0.0, atol=1e-15)
    # any binary token shows at most V - 1 = 1 of the K - 1 = 2 posterior directions
    assert model_condition_number(m, pretext="coarse", coarsen=1) == math.inf
    two = models.get("concept-mixture", K=2, d=2)
    assert math.isfinite(model_condition_number(two, pretext="coarse"))
    um = models.get("unigram-mixture", K=3, V=8)
    channel = np.asarray(um.pyro_target(torch.arange(3)[:, None]).probs.reshape(3, 3))
    wp = np.asarray(um.params["word_probs"])
    assert model_condition_number(um) == pytest.approx(condition_number(wp, channel), rel=1e-12)
    merged = wp.reshape(3, 4, 2).sum(-1)  # default coarsening: word ids x // 2
    assert model_condition_number(um, pretext="coarse") == pytest.approx(
        condition_number(merged, channel), rel=1e-12)


@pytest.mark.parametrize("name, kw, pretext", [("unigram-mixture", {"K": 3, "V": 6}, "full"),
                                               ("unigram-mixture", {"K": 3, "V": 6}, "coarse"),
                                               ("concept-mixture", {"K": 3}, "coarse")])
def test_pretext_bayes_risk_equals_enumeration(name, kw, pretext):
    """-log P(c(x_j) | X_visible) by brute-force enumeration over z with log_joint."""
    m = models.get(name, **kw)
    b = m.simulate(6, 5, seed=7)
    mask = torch.ones(6, 5, dtype=torch.bool)
    hidden = _hide(mask, 0.4, seed=3)
    visible = mask & ~hidden
    spec = _pretext(m, pretext, None)
    got = pretext_bayes_nll(m, spec, b.x, visible, hidden)
    k = m.params["K"]
    log_vis = torch.stack([m.log_joint(torch.full((6,), c), b.x, mask=visible)
                           for c in range(k)])  # (K, B)
    log_tok = spec.loglik(b.x).permute(2, 0, 1)  # (K, B, L): log P(c(x_j) | z)
    lp = torch.logsumexp(log_vis[..., None] + log_tok, 0) - torch.logsumexp(log_vis, 0)[:, None]
    if pretext == "full":  # cross-check the token law itself against the Pyro likelihood
        direct = torch.stack([m.log_joint(torch.full((6,), c), b.x[:, :1]) for c in range(k)])
        prior = torch.tensor(m.params["weights"], dtype=torch.float64).log()[:, None]
        torch.testing.assert_close(direct - prior, log_tok[:, :, 0], atol=1e-12, rtol=0)
    expected = -(lp * hidden).sum(-1) / hidden.sum(-1)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name, kw", [("concept-mixture", {"K": 3, "d": 2}),
                                      ("unigram-mixture", {"K": 3, "V": 6})])
@pytest.mark.parametrize("pretext", ["full", "coarse"])
def test_masked_token_transfer_smoke(name, kw, pretext):
    m = models.get(name, **kw)
    df = masked_token_transfer(m, pretext=pretext, steps=30, batch_size=16, seq_len=(4, 8),
                               num_train_probe=60, num_test=50, seed=0,
                               encoder_options={"dim": 16, "num_heads": 2}, num_resamples=50)
    assert list(df.columns) == COLUMNS and list(df.metric) == METRICS
    rows = df.set_index("metric")
    assert np.isfinite(rows.drop("kappa2").value).all()
    assert (rows.drop("kappa2").n == 50).all() and rows.loc["kappa2", "n"] == 0
    np.testing.assert_allclose(rows.loc["pretext_excess_risk", "value"],
                               rows.loc["pretext_nll", "value"]
                               - rows.loc["pretext_bayes_risk", "value"], atol=1e-10)
    if name == "concept-mixture" and pretext == "coarse":
        assert rows.loc["kappa2", "value"] == math.inf
    else:
        assert math.isfinite(rows.loc["kappa2", "value"])


def test_masked_token_transfer_rejects_bad_input():
    cm = models.get("concept-mixture", K=3)
    kw = dict(steps=1, batch_size=4, seq_len=4, num_train_probe=4, num_test=4)
    with pytest.raises(ValueError, match="finite mixture"):
        masked_token_transfer(models.get("normal-mean"), **kw)
    with pytest.raises(ValueError, match="pretext"):
        masked_token_transfer(cm, pretext="half", **kw)
    with pytest.raises(ValueError, match=">= 2 tokens"):
        masked_token_transfer(cm, **{**kw, "seq_len": (1, 4)})
    with pytest.raises(ValueError, match="coordinate index"):
        masked_token_transfer(cm, pretext="coarse", coarsen=5, **kw)
    with pytest.raises(ValueError, match="group ids"):
        model_condition_number(models.get("unigram-mixture", V=6), pretext="coarse",
                               coarsen=[0, 1])
    with pytest.raises(ValueError, match="num_test"):
        masked_token_transfer(cm, **{**kw, "num_test": 1})
    with pytest.raises(ValueError, match="readouts"):
        masked_token_transfer(cm, readouts=("tokens",), **kw)
    with pytest.raises(ValueError, match="readouts"):
        masked_token_transfer(cm, readouts={"predictive": "forest"}, **kw)


@pytest.mark.parametrize("pretext", ["full", "coarse"])
def test_readouts_share_one_network_and_the_representation_rows_do_not_change(pretext):
    """Adding the predictive readout leaves every other row as it was (same pretrained
    network, probe and test sets); the predictive features match the token head's law."""
    m = models.get("concept-mixture", K=3, d=2)
    kw = dict(pretext=pretext, steps=20, batch_size=16, seq_len=(4, 8), num_train_probe=60,
              num_test=40, seed=1, encoder_options={"dim": 16, "num_heads": 2},
              num_resamples=50)
    one = masked_token_transfer(m, **kw)
    both = masked_token_transfer(m, readouts={"representation": "linear",
                                              "predictive": "mlp"}, probe_hidden=8, **kw)
    pd.testing.assert_frame_equal(
        both[both.readout != "predictive"].reset_index(drop=True), one)
    pred = both[both.readout == "predictive"].set_index("metric")
    assert list(pred.index) == ["downstream_nll", "bayes_risk", "downstream_excess_risk"]
    assert (pred.probe == "mlp").all() and np.isfinite(pred.value).all()
