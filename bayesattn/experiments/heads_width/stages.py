"""The stages of heads-width: train every configuration of the grid, score each on the
same fresh sequences, and estimate the paired ratios between width groups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput, plateau_rows

from .network import build_net
from .presets import configs, make_model, model_spec, width_group


# ----------------------------------------------------------------------------- stages
def train(ctx) -> StageOutput:
    p = ctx.params
    rows, states, seconds = [], {}, {}
    for cfg in ctx.tqdm(configs(p), desc="configurations"):
        model = make_model(cfg["model"], p["radius"])
        net = build_net(model, cfg, p, ctx.seed_for("init", cfg["config"]))
        # the same training sequences for every configuration of a model
        result = ctx.train(cfg["config"], net, model, steps=p["steps"],
                           batch_size=p["batch_size"], seq_len=p["L"], objective="kl",
                           train_size=p["train_size"], seed=ctx.seed_for("data", cfg["model"]),
                           device=ctx.device, lr=p["lr"], progress=False)
        states[cfg["config"]] = net.cpu().state_dict()
        seconds[cfg["config"]] = float(result.seconds)  # not in the table: it must reproduce
        tail = result.history.tail(max(1, len(result.history) // 10))
        rows.append({**cfg, "metric": "final_train_kl", "value": float(tail["kl"].mean()),
                     "ci_low": np.nan, "ci_high": np.nan, "se": float(tail["kl"].sem()),
                     "n": len(tail)})
        rows += plateau_rows(result.history, "kl", **cfg)  # did the training KL flatten?
    return StageOutput(pd.DataFrame(rows),
                       artifacts={"state_dicts": states, "train_seconds": seconds})


def _trained(ctx, cfg: dict, model):
    net = build_net(model, cfg, ctx.params, 0)
    net.load_state_dict(ctx.artifact("train", "state_dicts")[cfg["config"]])
    return net.cpu().eval()


def gaussian_floor(exact, *, num_samples: int = 4000, seed: int = 0) -> np.ndarray:
    """KL(p || best diagonal Gaussian on (mu, log sigma2)) per dataset, for a NIG posterior.

    The forward-KL-optimal Gaussian matches the mean and variance of (mu, log sigma2)
    under p; its density on (mu, sigma2) carries the Jacobian 1 / sigma2. Moments and the
    KL use independent draws. Returns shape (B,), float64.
    """
    import torch

    with seeded(seed), torch.no_grad():
        fit = exact.sample((num_samples,)).double()  # (S, B, 2)
        draws = exact.sample((num_samples,)).double()  # (S, B, 2)
    u_fit = torch.stack([fit[..., 0], fit[..., 1].log()], -1)  # (S, B, 2)
    u = torch.stack([draws[..., 0], draws[..., 1].log()], -1)  # (S, B, 2)
    normal = torch.distributions.Normal(u_fit.mean(0), u_fit.std(0))  # batch (B, 2)
    log_q = normal.log_prob(u).sum(-1) - draws[..., 1].log()  # (S, B)
    log_p = exact.log_prob(draws).double()  # (S, B)
    return (log_p - log_q).mean(0).numpy()


def evaluate(ctx) -> StageOutput:
    import torch

    from bayesattn.gaps import per_dataset_gaps, summarise

    p = ctx.params
    per_frames = []
    for key in p["models"]:
        model = make_model(key, p["radius"])
        batch = model.simulate(p["num_sequences"], p["L"], seed=ctx.seed_for("test", key))
        exact = model.exact_posterior(batch.x)
        for cfg in (c for c in configs(p) if c["model"] == key):
            net = _trained(ctx, cfg, model)
            with torch.no_grad():
                q = net.posterior(batch.x.float())
            per = per_dataset_gaps(q, exact, seed=ctx.seed_for("metrics", key))
            per = per[per["metric"].isin(["kl_forward", "tv", "mean_error_sd"])]
            per_frames.append(per.assign(**{k: cfg[k] for k in
                                            ("model", "config", "heads", "value_width",
                                             "width", "stat_dim")}))
        if model_spec(key, p["radius"])["head"] == "gaussian-diag":
            floor = gaussian_floor(exact, seed=ctx.seed_for("floor", key))
            per_frames.append(pd.DataFrame({
                "dataset": np.arange(len(floor)), "metric": "kl_floor", "value": floor,
                "model": key, "config": f"{key}-floor", "heads": 0, "value_width": 0,
                "width": 0, "stat_dim": model_spec(key, p["radius"])["stat_dim"]}))
    per_all = pd.concat(per_frames, ignore_index=True)
    summary = summarise(per_all, by=("model", "config", "heads", "value_width", "width",
                                     "stat_dim"),
                        num_resamples=p["num_resamples"], seed=ctx.seed_for("bootstrap"))
    summary["group"] = [width_group(w, s) if w > 0 else "floor"
                        for w, s in zip(summary["width"], summary["stat_dim"], strict=True)]
    artifacts = {"per_sequence": per_all, **_posterior_draws(ctx)}
    return StageOutput(summary, artifacts=artifacts)


def _posterior_draws(ctx, num_datasets: int = 8, num_draws: int = 400) -> dict:
    """Exact and amortized posterior draws (narrowest and widest net) as InferenceData."""
    import arviz as az
    import torch

    p = ctx.params
    out = {}
    for key in p["models"]:
        model = make_model(key, p["radius"])
        grid = [c for c in configs(p) if c["model"] == key]
        chosen = {"narrowest": min(grid, key=lambda c: (c["width"], c["heads"])),
                  "widest": max(grid, key=lambda c: (c["width"], c["heads"]))}
        batch = model.simulate(num_datasets, p["L"], seed=ctx.seed_for("draws", key))
        dists = {"exact": model.exact_posterior(batch.x)}
        for label, cfg in chosen.items():
            with torch.no_grad():
                dists[label] = _trained(ctx, cfg, model).posterior(batch.x.float())
        x_dims = ["dataset", "token"] + [f"coord{i}" for i in range(batch.x.ndim - 2)]
        for label, dist in dists.items():
            with seeded(ctx.seed_for("draws", key, label)), torch.no_grad():
                z = dist.sample((num_draws,)).double().numpy()  # (draws, datasets, *latent)
            z_dims = ["dataset"] + (["param"] if z.ndim == 3 else [])
            cfg = chosen.get(label)
            out[f"posterior_{key}_{label}"] = az.from_dict(
                posterior={"z": z[None]},  # (chain, draw, dataset, *latent)
                observed_data={"x": batch.x.double().numpy()},
                dims={"z": z_dims, "x": x_dims},
                attrs={"model": model.name, "model_key": key, "L": int(p["L"]),
                       "posterior": label,
                       "config": cfg["config"] if cfg else "exact"},
            )
    return out


def paired_ratio(values: np.ndarray, num_cols: np.ndarray, den_cols: np.ndarray, *,
                 num_resamples: int, seed: int):
    """Ratio of mean error over two column groups, bootstrapped over sequences (rows).

    Args:
        values: Per-sequence errors, shape ``(n_sequences, n_configs)``; every config was
            scored on the same sequences, so rows are resampled together (paired).
        num_cols, den_cols: Boolean masks over configs (numerator, denominator groups).

    Returns:
        :class:`~bayesattn.metrics.Estimate` of ``mean(values[:, num]) /
        mean(values[:, den])``, or None when a group is empty.
    """
    from bayesattn.metrics import bootstrap_ci

    num_cols, den_cols = np.asarray(num_cols, bool), np.asarray(den_cols, bool)
    if not num_cols.any() or not den_cols.any():
        return None

    def ratio(arr: np.ndarray) -> float:
        return float(arr[:, num_cols].mean() / arr[:, den_cols].mean())

    return bootstrap_ci(np.asarray(values, float), ratio, num_resamples=num_resamples,
                        seed=seed)


def threshold(ctx) -> pd.DataFrame:
    p = ctx.params
    per = ctx.artifact("evaluate", "per_sequence")
    summary = ctx.results["evaluate"]
    rows = []
    for key in p["models"]:
        s = model_spec(key, p["radius"])["stat_dim"]
        kl = per[(per["model"] == key) & (per["metric"] == "kl_forward")]
        wide = kl.pivot_table(index="dataset", columns="config", values="value", sort=False)
        grid = {c["config"]: c["width"] for c in configs(p) if c["model"] == key}
        cols = [c for c in wide.columns if c in grid]
        groups = np.array([width_group(grid[c], s) for c in cols])
        values = wide[cols].to_numpy()
        for metric, num, den in (("drop_ratio", "below", "at"), ("above_ratio", "at", "above")):
            est = paired_ratio(values, groups == num, groups == den,
                               num_resamples=p["num_resamples"],
                               seed=ctx.seed_for("threshold", key, metric))
            if est is not None:
                rows.append({"model": key, "stat_dim": s, "metric": metric,
                             "numerator": num, "denominator": den, **est.row()})
        ev = summary[(summary["model"] == key) & (summary["metric"] == "kl_forward")]
        below, rest = ev[ev["group"] == "below"], ev[ev["group"].isin(["at", "above"])]
        if len(below) and len(rest):
            rows.append({"model": key, "stat_dim": s, "metric": "separation",
                         "numerator": "below", "denominator": "at+above",
                         "value": float(below["ci_low"].min() / rest["ci_high"].max()),
                         "ci_low": np.nan, "ci_high": np.nan, "se": np.nan,
                         "n": int(len(below) + len(rest))})
    return pd.DataFrame(rows)
