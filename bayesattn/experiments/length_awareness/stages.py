"""The stages of length-awareness: train the nets with and without L on both models, score
their calibration against the exact posteriors, and measure their amortization gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput, plateau_rows

from .presets import HEADS, LEVELS, MODELS, NETS
from .presets import model as _model


# ----------------------------------------------------------------------------- helpers
def one_coordinate(draws: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick coordinate ``b mod C`` of sequence b: independent checks, one per sequence.

    Args:
        draws: Posterior draws, shape (S, B, C).
        truth: True latents, shape (B, C).

    Returns:
        ``(draws (S, B), truth (B,))``.
    """
    draws, truth = np.asarray(draws), np.asarray(truth)
    if draws.ndim != 3 or truth.shape != draws.shape[1:]:
        raise ValueError(f"expected draws (S, B, C) and truth (B, C); got {draws.shape} and "
                         f"{truth.shape}")
    b = np.arange(truth.shape[0])
    c = b % truth.shape[1]
    return draws[:, b, c], truth[b, c]


def randomized_pit(ranks: np.ndarray, num_draws: int, seed: int) -> np.ndarray:
    """PIT values ``(rank + U) / (S + 1)`` with U ~ Uniform(0, 1): exactly uniform on (0, 1)
    when the ranks are uniform on ``0..S`` (continuous, so ECDF bands apply).

    Args:
        ranks: Integer SBC ranks in ``0..num_draws``, any shape.
        num_draws: S, the number of draws behind each rank.
        seed: Seed of U.
    """
    ranks = np.asarray(ranks)
    if ranks.size and (ranks.min() < 0 or ranks.max() > num_draws):
        raise ValueError(f"ranks must lie in 0..{num_draws}; got [{ranks.min()}, {ranks.max()}]")
    u = np.random.default_rng(seed).uniform(size=ranks.shape)
    return (ranks + u) / (num_draws + 1)



def _net(model, params, length_aware: bool, seed: int):
    from bayesattn.inference import AmortizedPosterior

    return AmortizedPosterior(
        model, encoder="set-transformer", head=HEADS[model.name], length_aware=length_aware,
        seed=seed, encoder_options={"dim": params["dim"], "num_heads": params["num_heads"],
                                    "num_blocks": params["num_blocks"]},
    )


def _nets(ctx, name: str, model) -> dict:
    states = ctx.artifact("train", "state_dicts")
    out = {}
    for key, aware, label in NETS:
        net = _net(model, ctx.params, aware, 0)
        net.load_state_dict(states[f"{name}:{key}"])
        out[label] = net.to(ctx.device).eval()
    return out


def _batch(ctx, name: str, model, length: int, num: int):
    """Fresh sequences of one length: the same ones for both nets and for every stage."""
    return model.simulate(num, length, seed=ctx.seed_for("sequences", name, length))


def _net_outputs(net, x, num_draws: int, seed: int, chunk: int) -> dict[str, np.ndarray]:
    """Posterior mean, variance (B, C) and draws (S, B, C) of q, computed ``chunk`` at a time."""
    import torch

    parts: dict[str, list] = {"mean": [], "var": [], "draws": []}
    device = next(net.parameters()).device
    for i, start in enumerate(range(0, x.shape[0], chunk)):
        xb = x[start:start + chunk]
        xb = (xb.float() if xb.is_floating_point() else xb).to(device)
        with torch.no_grad():
            q = net.posterior(xb)
            with seeded(seed + i):
                z = q.sample((num_draws,)).double().cpu()
        parts["mean"].append(q.mean.double().cpu())
        parts["var"].append(q.variance.double().cpu())
        parts["draws"].append(z)
    return {k: torch.cat(v, dim=1 if k == "draws" else 0).numpy() for k, v in parts.items()}


def _row(name, label, length, metric, est, **extra) -> dict:
    return {"model": name, "candidate": label, "L": int(length), "metric": metric,
            **extra, **est.row()}


# ----------------------------------------------------------------------------- stages
def train(ctx) -> StageOutput:
    p = ctx.params
    rows, states, seconds = [], {}, {}
    for name in MODELS:
        model = _model(name)
        for key, aware, label in NETS:
            seed = ctx.seed_for("train", name, key)
            net = _net(model, p, aware, seed)
            result = ctx.train(f"{name}-{key}", net, model, steps=p["steps"],
                               batch_size=p["batch_size"], seq_len=tuple(p["train_len"]),
                               objective="kl", seed=seed, device=ctx.device,
                               lr=p.get("lr", 2e-3))
            states[f"{name}:{key}"] = net.cpu().state_dict()
            tail = result.history.tail(max(1, len(result.history) // 10))
            rows.append({"model": name, "candidate": label, "metric": "final_train_kl",
                         "value": float(tail["kl"].mean()), "ci_low": np.nan,
                         "ci_high": np.nan, "se": float(tail["kl"].sem()), "n": len(tail)})
            # did the training KL flatten? (convergence table)
            rows += plateau_rows(result.history, "kl", model=name, candidate=label)
            seconds[f"{name}:{key}"] = float(result.seconds)
    # wall times vary between runs: kept out of the results table so that it is reproducible
    return StageOutput(pd.DataFrame(rows), artifacts={"state_dicts": states,
                                                      "train_seconds": seconds})


def calibrate(ctx) -> StageOutput:
    from bayesattn import metrics

    p = ctx.params
    s, boot = p["num_draws"], p["num_resamples"]
    rows, rank_frames, artifacts = [], [], {}
    for name in MODELS:
        model = _model(name)
        nets = _nets(ctx, name, model)
        for length in p["lengths"]:
            batch = _batch(ctx, name, model, length, p["num_sequences"])
            exact = model.exact_posterior(batch.x)
            ref_mean = exact.mean.numpy()
            ref_var = exact.variance.numpy()
            truth = batch.z.double().numpy().reshape(ref_mean.shape)
            seed = ctx.seed_for("calibrate", name, length)
            draws_by = {}
            for label, net in nets.items():
                out = _net_outputs(net, batch.x, s, seed, p["chunk"])
                draws_by[label] = out["draws"]
                d1, t1 = one_coordinate(out["draws"], truth)
                cov = metrics.coverage(d1, t1, levels=LEVELS)
                for r in cov.itertuples():
                    rows.append({"model": name, "candidate": label, "L": int(length),
                                 "metric": "coverage", "level": float(r.level),
                                 "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                                 "se": r.se, "n": int(r.n)})
                vr = metrics.variance_ratio(out["var"], ref_var, num_resamples=boot, seed=seed)
                sme = metrics.standardized_mean_error(out["mean"], ref_mean, np.sqrt(ref_var),
                                                      num_resamples=boot, seed=seed)
                rows += [_row(name, label, length, "variance_ratio", vr),
                         _row(name, label, length, "standardized_mean_error", sme)]
                ranks = metrics.sbc_ranks(d1, t1, seed=seed)
                uni = metrics.sbc_uniformity(ranks, s)
                rows.append(_row(name, label, length, "sbc_ecdf_max_dev", uni.statistic,
                                 p_value=uni.p_value, ecdf_band=uni.ecdf_band))
                rank_frames.append(pd.DataFrame({
                    "model": name, "candidate": label, "L": int(length),
                    "dataset": np.arange(ranks.size), "rank": ranks,
                    "pit": randomized_pit(ranks, s, seed)}))
            if length == min(p["lengths"]):
                artifacts[f"posterior_{name}_L{int(length)}"] = _idata(
                    model, batch, exact, draws_by, ctx.seed_for("draws", name, length))
    artifacts["sbc_ranks"] = pd.concat(rank_frames, ignore_index=True)
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)


def _idata(model, batch, exact, draws_by: dict, seed: int, max_datasets: int = 64):
    """InferenceData: draws of z from the exact posterior and both nets (one chain each)."""
    import arviz as az

    nb = min(max_datasets, batch.x.shape[0])
    num = next(iter(draws_by.values())).shape[0]
    with seeded(seed):
        z_exact = exact.sample((num,)).numpy()[:, :nb]  # (S, B, C)
    post = {"z_exact": z_exact[None]}
    for label, draws in draws_by.items():
        post["z_" + label.split("(")[1].rstrip(")").replace(" ", "_")] = draws[None, :, :nb]
    coord = list(post.values())[0].shape[-1]
    x = batch.x[:nb].numpy()
    return az.from_dict(
        posterior=post,
        observed_data={"x": x},
        constant_data={"z_true": batch.z[:nb].double().numpy().reshape(nb, coord)},
        dims={**{k: ["dataset", "component"] for k in post}, "z_true": ["dataset", "component"],
              "x": ["dataset", "token", *(["coordinate"] if x.ndim == 3 else [])]},
        attrs={"model": model.name, "L": int(batch.x.shape[1]),
               "posteriors": "exact; net given L; net without L"},
    )


def amortization(ctx) -> StageOutput:
    from bayesattn.gaps import amortization_gap, summarise
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    frames, per_frames = [], []
    for name in MODELS:
        model = _model(name)
        nets = _nets(ctx, name, model)
        for length in p["lengths"]:
            batch = _batch(ctx, name, model, length, p["num_sequences"])
            x = batch.x[:p["gap_sequences"]]
            seed = ctx.seed_for("amortization", name, length)
            per_net = {}
            for label, net in nets.items():
                pers = []
                for i, start in enumerate(range(0, x.shape[0], p["chunk"])):
                    _, per = amortization_gap(
                        net, model, x[start:start + p["chunk"]], fit_steps=p["fit_steps"],
                        num_samples=p["gap_samples"], seed=seed + i, num_resamples=0,
                        per_sequence=True)
                    per["dataset"] += start
                    pers.append(per)
                per = pd.concat(pers, ignore_index=True)
                per_net[label] = per
                per_frames.append(per.assign(model=name, candidate=label, L=int(length)))
                summary = summarise(per, num_resamples=p["num_resamples"], seed=seed)
                frames.append(summary.assign(model=name, candidate=label, L=int(length)))
            # paired over the same sequences: how much more the blind net loses to amortization
            gaps = {k: v[v["metric"] == "amortization_gap"].set_index("dataset")["value"]
                    for k, v in per_net.items()}
            diff = (gaps["net (no L)"] - gaps["net (given L)"]).dropna().to_numpy()
            est = bootstrap_ci(diff, num_resamples=p["num_resamples"], seed=seed)
            frames.append(pd.DataFrame([_row(name, "net (no L) - net (given L)", length,
                                             "amortization_gap_difference", est)]))
    per_all = pd.concat(per_frames, ignore_index=True)
    return StageOutput(pd.concat(frames, ignore_index=True),
                       artifacts={"per_sequence": per_all})
