"""Exact and amortized posterior draws as ArviZ InferenceData, for a run's posteriors/."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bayesattn._random import seeded


def exact_vs_net_draws(ctx: Any, model: Any, net: Any, lengths: Iterable[int], *,
                       num_datasets: int = 16, num_draws: int = 500,
                       label: str = "") -> dict[str, Any]:
    """Draws of z from the exact posterior and from ``net`` on the same fresh sequences.

    For each L, ``num_datasets`` sequences are simulated (seed ``ctx.seed_for("draws",
    L)``) and ``num_draws`` draws taken from each posterior (seeds ``ctx.seed_for("draws",
    name, L)``; the global RNG is left alone). Each becomes an InferenceData with one
    chain, the posterior group ``z`` (draw, dataset, *event) and the tokens as
    ``observed_data``.

    Returns:
        ``{f"posterior_exact{label}_L{L}": idata, f"posterior_net{label}_L{L}": idata, ...}``
        (``label`` tells several networks apart, e.g. ``"_N64"``).
    """
    import arviz as az
    import torch

    device = next(net.parameters()).device
    out = {}
    for length in sorted({int(v) for v in lengths}):
        batch = model.simulate(num_datasets, length, seed=ctx.seed_for("draws", length))
        x = batch.x.float() if batch.x.is_floating_point() else batch.x
        with torch.no_grad():
            q = net.posterior(x.to(device))
        exact = model.exact_posterior(batch.x)
        for name, dist in (("exact", exact), ("net", q)):
            with seeded(ctx.seed_for("draws", name, length)):
                z = dist.sample((num_draws,)).cpu().numpy()  # (draws, datasets, *event)
            out[f"posterior_{name}{label}_L{length}"] = az.from_dict(
                posterior={"z": z[None]},
                observed_data={"x": batch.x.numpy()},
                dims={"z": ["dataset", *(f"z_dim_{i}" for i in range(z.ndim - 2))],
                      "x": ["dataset", "token", *(f"x_dim_{i}" for i in range(batch.x.ndim - 2))]},
                attrs={"model": model.name, "L": length, "posterior": name,
                       "network": label.lstrip("_") or "net"},
            )
    return out
