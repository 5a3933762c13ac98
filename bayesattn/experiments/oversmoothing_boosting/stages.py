"""The stages of oversmoothing-boosting: stack a fixed attention matrix to every depth and
measure the collapse (E3), and sweep the shrinkage and SNR gain of linear filters and of
attention over kernels, lengthscales and noise levels (E4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput

from .maths import (
    _token_scale,
    attention_matrix,
    effective_rank,
    layer,
    mean_pairwise_cosine,
    shrinkage,
    smoother_matrix,
)
from .presets import VARIANTS, _model


def _simulate_tokens(model, num_sequences: int, L: int, channels: int, seed: int,
                     posterior: bool = True):
    """Clean ``u``, noisy ``x`` and exact posterior mean, each ``(n, L, d)`` float64.

    With ``posterior=False`` the exact posterior (a Cholesky solve per sequence, O(L^3),
    the dominant cost at large L) is skipped and the mean and posterior come back None.
    """
    batch = model.simulate(num_sequences * channels, L, seed=seed)

    def shape(t):  # (n * d, L) -> (n, d, L) -> (n, L, d)
        return t.double().numpy().reshape(num_sequences, channels, L).transpose(0, 2, 1)

    if not posterior:
        return shape(batch.y), shape(batch.x), None, batch, None
    post = model.exact_posterior(batch.x)
    return shape(batch.y), shape(batch.x), shape(post.mean), batch, post


def depth(ctx) -> StageOutput:
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    model = _model(p["kernel"], p["lengthscale"], p["noise_scale"])
    u, x0, pm, batch, post = _simulate_tokens(model, p["num_sequences"], p["L"],
                                              p["channels"], ctx.seed_for("depth", "data"))
    A = attention_matrix(x0, p["bandwidth"] * _token_scale(model), p["spatial_bandwidth"])
    depths = sorted({int(t) for t in p["depths"]})
    per = {}  # (variant, depth, metric) -> per-sequence values (n,)

    def measure(variant, depth, x):
        per[(variant, depth, "mse_clean")] = ((x - u) ** 2).mean((1, 2))
        per[(variant, depth, "mse_posterior")] = ((x - pm) ** 2).mean((1, 2))
        per[(variant, depth, "cosine")] = mean_pairwise_cosine(x)
        per[(variant, depth, "effective_rank")] = effective_rank(x)

    for variant in VARIANTS:
        x = x0.copy()
        for t in range(max(depths) + 1):
            if t > 0:
                x = layer(variant, A, x, x0, p["boost_lambda"])
            if t in depths:
                measure(variant, t, x)
    measure("posterior-mean", 0, pm)
    rows = []
    for (variant, depth, metric), values in per.items():
        est = bootstrap_ci(values, num_resamples=p["num_resamples"],
                           seed=ctx.seed_for("bootstrap", variant, depth, metric))
        rows.append({"variant": variant, "depth": depth, "metric": metric, **est.row()})
    artifacts = {"exact_posterior": _posterior_idata(ctx, model, batch, post)}
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)


def _posterior_idata(ctx, model, batch, post):
    """Exact posterior draws of u (channel 0 of the first sequences) as InferenceData."""
    import arviz as az
    import torch

    p = ctx.params
    k = min(int(p["posterior_sequences"]), int(p["num_sequences"]))
    rows = np.arange(k) * int(p["channels"])  # channel 0 of sequences 0 .. k-1
    dist = torch.distributions.MultivariateNormal(
        post.mean[rows], scale_tril=post.scale_tril[rows])
    with seeded(ctx.seed_for("posterior-draws")):
        z = dist.sample((int(p["posterior_draws"]),)).double().numpy()  # (draws, k, L)
    return az.from_dict(
        posterior={"u": z[None]},  # (chain, draw, sequence, token)
        observed_data={"x": batch.x[rows].double().numpy(), "u_true": batch.y[rows].numpy()},
        dims={"u": ["sequence", "token"], "x": ["sequence", "token"],
              "u_true": ["sequence", "token"]},
        attrs={"model": model.name, "kernel": p["kernel"], "L": int(p["L"]),
               "lengthscale": float(p["lengthscale"]), "noise_scale": float(p["noise_scale"]),
               "posterior": "exact"},
    )


def snr(ctx) -> pd.DataFrame:
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    L = int(p["L"])
    rows = []
    for kernel in p["sweep_kernels"]:
        for ell in p["sweep_lengthscales"]:
            for s in p["sweep_noise_scales"]:
                model = _model(kernel, ell, s)
                S = model.covariance(L)
                W = smoother_matrix(S, s)
                case = {"kernel": kernel, "lengthscale": float(ell), "noise_scale": float(s)}
                filters = {
                    "exact": W,
                    "mismatch-x4": smoother_matrix(_model(kernel, 4 * ell, s).covariance(L), s),
                    "mismatch-/4": smoother_matrix(_model(kernel, ell / 4, s).covariance(L), s),
                    "high-pass": np.eye(L) - W,
                    "negated": -W,
                }
                for name, F in filters.items():
                    for metric, value in shrinkage(F, S, s).items():
                        rows.append({**case, "filter": name, "metric": metric,
                                     "value": value, "n": 1})
                rows += _attention_case(ctx, model, case, p, bootstrap_ci)
                # Bayesian reading: residual and twicing are posterior means of other priors
                s2 = s**2
                res_prior = 2 * S + s2 * np.eye(L)
                twi_prior = S @ (S + 2 * s2 * np.eye(L)) / s2
                err_res = np.abs(0.5 * (np.eye(L) + W) - smoother_matrix(res_prior, s)).max()
                err_twi = np.abs(2 * W - W @ W - smoother_matrix(twi_prior, s)).max()
                rows.append({**case, "filter": "residual", "metric": "identity_error",
                             "value": float(err_res), "n": 1})
                rows.append({**case, "filter": "twicing", "metric": "identity_error",
                             "value": float(err_twi), "n": 1})
    return pd.DataFrame(rows)


def _attention_case(ctx, model, case, p, bootstrap_ci) -> list[dict]:
    """Empirical alpha, beta and SNR gain of the attention filter A(y), with bootstrap CIs."""
    n, L = int(p["sweep_sequences"]), int(p["L"])
    seed = ctx.seed_for("snr", case["kernel"], case["lengthscale"], case["noise_scale"])
    u, x, _, _, _ = _simulate_tokens(model, n, L, int(p["channels"]), seed, posterior=False)
    # bandwidth in units of the token spread, so that it is comparable across settings
    A = attention_matrix(x, p["bandwidth"] * _token_scale(model), p["spatial_bandwidth"])
    eta = x - u
    au, ae = A @ u, A @ eta
    norm = lambda z: (z**2).sum((1, 2))  # noqa: E731
    per = {"alpha": np.sqrt(norm(au) / norm(u)), "beta": np.sqrt(norm(ae) / norm(eta)),
           "snr_gain": (norm(u + au) / norm(eta + ae)) / (norm(u) / norm(eta))}
    rows = []
    for metric, values in per.items():
        est = bootstrap_ci(values, num_resamples=p["num_resamples"],
                           seed=ctx.seed_for("snr-bootstrap", *case.values(), metric))
        rows.append({**case, "filter": "attention", "metric": metric, **est.row()})
    return rows
