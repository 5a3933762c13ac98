"""The exact posterior predictive of the target y, and the Bayes risk it gives.

For every model with an exact posterior ``pi(X) = P(z | X)`` the Bayes predictor of
``y`` is ``P(y | X) = int P(y | z) pi(X)(dz)`` (docs/claims.md#p1: pi is sufficient).
Its expected log loss, the *Bayes risk*, is the floor against which the sufficiency
gap of a representation is measured.

Closed forms (float64):

============================  =======================================================
model                          P(y | X)
============================  =======================================================
finite latent (mixtures)       sum_k pi_k P(y | z=k)   (enumeration over the K classes)
dirichlet-categorical          Categorical(alpha_N / sum alpha_N)
beta-bernoulli                 Bernoulli(a_N / (a_N + b_N))
gamma-poisson                  NegativeBinomial(a_N, probs = 1 / (b_N + 1))
normal-mean                    Normal(1' mu_N, 1' Sigma_N 1 + 1)
linear-regression              Normal(q' mu_N, q' Sigma_N q + sigma^2)
normal-inverse-gamma           StudentT(2 a_N, m_N, b_N (k_N + 1) / (a_N k_N))
============================  =======================================================

A user model may supply its own ``target_predictive(x, mask)`` method (returning a
distribution over y with batch_shape ``(B,)``), which takes precedence. Otherwise, for
a model with an exact posterior but none of the forms above, :func:`bayes_risk`
accepts ``mc_samples=S``: ``-log (1/S) sum_s P(y | z_s)`` with ``z_s ~ pi(X)``, whose
expectation exceeds the true value by ``O(1/S)`` (Jensen); without it, it raises.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import distributions as td

from bayesattn._random import seeded
from bayesattn.models import ExchangeableModel, NoExactPosterior
from bayesattn.models.beta_bernoulli import BetaBernoulli
from bayesattn.models.dirichlet_categorical import DirichletCategorical
from bayesattn.models.gamma_poisson import GammaPoisson
from bayesattn.models.linear_regression import LinearRegression
from bayesattn.models.normal_inverse_gamma import NormalInverseGamma
from bayesattn.models.normal_mean import NormalMean

__all__ = ["NoExactPredictive", "bayes_risk", "exact_target_predictive"]


class NoExactPredictive(NoExactPosterior):
    """The model has no closed-form posterior predictive of y (see ``mc_samples``)."""


def _check_model(model: Any) -> ExchangeableModel:
    if not isinstance(model, ExchangeableModel):
        raise TypeError(
            f"model: expected a bayesattn.models.ExchangeableModel, got {type(model).__name__}."
        )
    return model


def _finite_predictive(model: ExchangeableModel, post: td.Categorical) -> td.Distribution:
    """Mix the target distributions of the K classes with the posterior weights."""
    log_pi = post.logits  # (B, K), normalised
    k = log_pi.shape[-1]
    classes = torch.arange(k, device=log_pi.device)
    comp = model.pyro_target(classes.unsqueeze(-1))  # batch (K, 1)
    if isinstance(comp, td.Categorical):  # log sum_k pi_k A[k, c], in log space
        log_table = comp.logits.reshape(k, -1).to(torch.float64)  # (K, C), normalised
        return td.Categorical(logits=torch.logsumexp(log_pi[:, :, None] + log_table, 1))
    if isinstance(comp, td.Bernoulli):
        return td.Bernoulli(probs=post.probs @ comp.probs.reshape(k).to(torch.float64))
    raise NoExactPredictive(
        f"{model.name}: the target of a finite-latent model must be Categorical or "
        f"Bernoulli for the exact predictive; got {type(comp).__name__}. "
        "Pass mc_samples to bayes_risk for a Monte Carlo estimate."
    )


def exact_target_predictive(model: ExchangeableModel, x: Any, mask: Any = None) -> td.Distribution:
    """The exact posterior predictive ``P(y | X)`` as a float64 distribution.

    Args:
        model: The model (needs an exact posterior).
        x: Tokens, shape ``(B, L, *token_shape)``.
        mask: Bool ``(B, L)``, True = real token; None = all real.

    Returns:
        A ``torch.distributions.Distribution`` with batch_shape ``(B,)`` over y.

    Raises:
        NoExactPredictive: no closed form is known for this model.
    """
    model = _check_model(model)
    hook = getattr(model, "target_predictive", None)
    if callable(hook):
        return hook(x, mask)
    if not model.has_exact_posterior:
        raise NoExactPredictive(
            f"{model.name} has no exact posterior, so P(y | X) has no exact form; the Bayes "
            "risk needs a model with an exact posterior."
        )
    post = model.exact_posterior(x, mask)
    if isinstance(model, DirichletCategorical):
        return td.Categorical(probs=post.mean)
    if isinstance(model, BetaBernoulli):
        return td.Bernoulli(probs=post.mean)
    if isinstance(model, GammaPoisson):
        return td.NegativeBinomial(post.concentration, probs=1.0 / (post.rate + 1.0))
    if isinstance(model, NormalMean):
        var = post.covariance_matrix.sum((-1, -2)) + 1.0
        return td.Normal(post.mean.sum(-1), var.sqrt())
    if isinstance(model, LinearRegression):
        q = model.tensor(model.params["query"], post.mean.device)
        var = (q @ post.covariance_matrix @ q) + model.params["noise_scale"] ** 2
        return td.Normal(post.mean @ q, var.sqrt())
    if isinstance(model, NormalInverseGamma):
        a, b, k = post.concentration, post.rate, post.kappa
        return td.StudentT(2.0 * a, post.loc, (b * (k + 1.0) / (a * k)).sqrt())
    if model.latent_is_discrete and isinstance(post, td.Categorical):
        return _finite_predictive(model, post)
    raise NoExactPredictive(
        f"{model.name}: no closed-form P(y | X) is known here; give the model a "
        "target_predictive(x, mask) method, or pass mc_samples to bayes_risk."
    )


def _as_target(model: ExchangeableModel, y: Any, b: int, device) -> torch.Tensor:
    if hasattr(y, "detach"):
        y = y.detach()
    y = torch.as_tensor(y, device=device)
    want = (b, *model.target_shape)
    if tuple(y.shape) != want:
        raise ValueError(f"y: expected shape (B, *target_shape) = {want}, got {tuple(y.shape)}.")
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError("y: expected finite targets, got NaN/inf.")
    return y


def bayes_risk(
    model: ExchangeableModel,
    x: Any,
    y: Any,
    mask: Any = None,
    *,
    mc_samples: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Per-sequence Bayes log loss ``-log P(y | X)`` under the exact posterior.

    Args:
        model: The model (needs an exact posterior).
        x: Tokens, shape ``(B, L, *token_shape)``.
        y: Targets, shape ``(B, *target_shape)``.
        mask: Bool ``(B, L)``, True = real token; None = all real.
        mc_samples: Only used when no closed form exists: number S of exact-posterior
            draws for ``-log mean_s P(y | z_s)`` (biased up by O(1/S)).
        seed: Seed of the Monte Carlo draws (local generator state; global RNG untouched).

    Returns:
        float64 tensor of shape ``(B,)`` (nats; a density for real y, so it may be < 0).

    Raises:
        NoExactPredictive: no closed form and ``mc_samples`` is None.
        ValueError: ``y`` of the wrong shape or non-finite.
    """
    model = _check_model(model)
    xv, _ = model.validate_tokens(x, mask)
    y = _as_target(model, y, xv.shape[0], xv.device)
    try:
        pred = exact_target_predictive(model, x, mask)
    except NoExactPredictive:
        if mc_samples is None or not model.has_exact_posterior:
            raise
        return _mc_bayes_risk(model, x, y, mask, int(mc_samples), seed)
    value = y.long() if isinstance(pred, td.Categorical) else y.to(torch.float64)
    return -pred.log_prob(value).to(torch.float64)


def _mc_bayes_risk(model, x, y, mask, num: int, seed: int) -> torch.Tensor:
    if num < 1:
        raise ValueError(f"mc_samples: expected an integer >= 1, got {num}.")
    post = model.exact_posterior(x, mask)
    with seeded(seed):
        z = post.sample((num,))  # (S, B, *latent)
    s, b = z.shape[:2]
    flat = z.reshape(s * b, 1, *z.shape[2:])
    yy = y.unsqueeze(0).expand(s, *y.shape).reshape(s * b, 1, *y.shape[1:])
    lp = model.pyro_target(flat).log_prob(yy.to(flat.dtype) if yy.is_floating_point() else yy)
    lp = lp.reshape(s, b).to(torch.float64)
    return -(torch.logsumexp(lp, 0) - math.log(s))
