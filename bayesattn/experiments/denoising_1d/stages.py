"""The stages of denoising-1d: tune each filter's bandwidths on a tuning set, then score
the tuned filters and the exact posterior mean on fresh test sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput

from .filters import apply_filter, grid, positional_encoding
from .presets import (
    BILATERAL,
    FAMILIES,
    FILTERS,
    OTHERS,
    REFERENCE,
    chosen_params,
    dynamic_range,
    family_model,
)


def _simulate(family: str, model, n: int, L: int, seed: int):
    """Clean ``u``, noisy ``y`` and exact posterior mean, each ``(n, L)`` float64, + batch."""
    batch = model.simulate(n, L, seed=seed)
    post = model.exact_posterior(batch.x)
    pm = post.signal_mean if family == "change-point" else post.mean
    return (batch.y.double().numpy(), batch.x.double().numpy(), pm.double().numpy(),
            batch, post)


def tune(ctx) -> pd.DataFrame:
    p = ctx.params
    L = int(p["L"])
    pe = positional_encoding(L, int(p["pe_dim"]), float(p["pe_base"]))
    rows = []
    for family in FAMILIES:
        model = family_model(family, p["families"][family])
        u, y, _, _, _ = _simulate(family, model, int(p["tune_sequences"]), L,
                                  ctx.seed_for("tune", family))
        for name in FILTERS:
            cand = grid(name, p)
            mse = [float(((apply_filter(name, y, th, pe) - u) ** 2).mean()) for th in cand]
            best = int(np.argmin(mse))
            for k, (th, m) in enumerate(zip(cand, mse, strict=True)):
                rows.append({"family": family, "filter": name, **th, "metric": "mse_tune",
                             "value": m, "n": len(u), "chosen": k == best})
    return pd.DataFrame(rows)


def evaluate(ctx) -> StageOutput:
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    L = int(p["L"])
    pe = positional_encoding(L, int(p["pe_dim"]), float(p["pe_base"]))
    tune = ctx.results["tune"]
    rows, examples, artifacts = [], [], {}
    for family in FAMILIES:
        model = family_model(family, p["families"][family])
        u, y, pm, batch, post = _simulate(family, model, int(p["test_sequences"]), L,
                                          ctx.seed_for("test", family))
        peak = dynamic_range(family, model)
        est = {REFERENCE: pm}
        for name in FILTERS:
            est[name] = apply_filter(name, y, chosen_params(tune, family, name), pe)
        mse = {}
        for name, uh in est.items():
            mse[name] = ((uh - u) ** 2).mean(1)
            per = {"mse_clean": mse[name],
                   "psnr": 10.0 * np.log10(peak**2 / np.maximum(mse[name], 1e-300)),
                   "mse_posterior": ((uh - pm) ** 2).mean(1)}
            for metric, values in per.items():
                e = bootstrap_ci(values, num_resamples=int(p["num_resamples"]),
                                 seed=ctx.seed_for("bootstrap", family, name, metric))
                rows.append({"family": family, "filter": name, "metric": metric, **e.row()})
        for b in BILATERAL:
            for f in OTHERS:
                e = bootstrap_ci(mse[b] - mse[f], num_resamples=int(p["num_resamples"]),
                                 seed=ctx.seed_for("paired", family, b, f))
                rows.append({"family": family, "filter": b, "against": f,
                             "metric": "mse_clean_diff", **e.row()})
        curves = {"clean": u[0], "noisy": y[0], **{k: v[0] for k, v in est.items()}}
        for curve, values in curves.items():
            examples += [{"family": family, "curve": curve, "position": i, "value": float(v)}
                         for i, v in enumerate(values)]
        artifacts[f"exact_posterior_{family}"] = _posterior_idata(ctx, family, model, batch,
                                                                  post)
    artifacts["examples"] = pd.DataFrame(examples)
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)


def _posterior_idata(ctx, family, model, batch, post):
    """Exact posterior draws of u for the first test sequences, as InferenceData."""
    import arviz as az
    import torch

    p = ctx.params
    k = min(int(p["posterior_sequences"]), int(p["test_sequences"]))
    draws = int(p["posterior_draws"])
    seed = ctx.seed_for("posterior-draws", family)
    if family == "change-point":
        z = model.sample_posterior(batch.x[:k], draws, seed=seed).numpy()
    else:
        dist = torch.distributions.MultivariateNormal(post.mean[:k],
                                                      scale_tril=post.scale_tril[:k])
        with seeded(seed):
            z = dist.sample((draws,)).double().numpy()  # (draws, k, L)
    attrs = {"model": model.name, "L": int(p["L"]), "posterior": "exact",
             **{k_: str(v) for k_, v in model.params.items()}}
    return az.from_dict(
        posterior={"u": z[None]},  # (chain, draw, sequence, token)
        observed_data={"x": batch.x[:k].double().numpy(),
                       "u_true": batch.y[:k].double().numpy()},
        dims={"u": ["sequence", "token"], "x": ["sequence", "token"],
              "u_true": ["sequence", "token"]},
        attrs=attrs,
    )
