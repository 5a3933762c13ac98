"""The stages of representations: train the P1 nets on N fixed sets, score probes on
every representation (P1), compare equal-statistic pairs (P2) and permute tokens (P3)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput

from .helpers import (
    build_net,
    fit_net,
    mean_without_length,
    paired_difference,
    permute_sets,
    positional_control,
    spread,
)
from .presets import ENCODER_FAMILIES, make_model, net_label


def _net_key(model_name: str, n: int) -> str:
    return f"{model_name}__N{int(n)}"


# ----------------------------------------------------------------------------- P1
def train(ctx) -> StageOutput:
    p = ctx.params
    rows, states = [], {}
    for name in p["sufficiency_models"]:
        model = make_model(name)
        for n in p["train_sizes"]:
            seed = ctx.seed_for("train", name, n)
            net = build_net(model, p, seed)
            row = fit_net(ctx, net, model, steps=p["steps"], objective="kl", seed=seed,
                          train_size=int(n))
            states[_net_key(name, n)] = net.cpu().state_dict()
            rows.append({"model": name, "representation": net_label(n), "N": int(n),
                         "objective": "kl", **row})
    return StageOutput(pd.DataFrame(rows), artifacts={"state_dicts": states})


def _trained_nets(ctx, name: str) -> dict:
    model, p = make_model(name), ctx.params
    states = ctx.artifact("train", "state_dicts")
    nets = {}
    for n in p["train_sizes"]:
        net = build_net(model, p, 0)
        net.load_state_dict(states[_net_key(name, n)])
        nets[int(n)] = net.eval()
    return nets


def _per_sequence_excess(reps: dict, model, p: dict, seed: int, probe: str) -> np.ndarray:
    """Per-test-sequence excess risk ``(num_test, len(reps))``, exactly as sufficiency_gap."""
    from bayesattn.gaps import (
        bayes_risk,
        evaluate_representation,
        fit_probe,
        probe_family,
        simulate_sets,
    )

    seq_len = tuple(p["seq_len"])
    kind, num_classes = probe_family(model)
    train = simulate_sets(model, p["num_probe_train"], seq_len, seed=seed)
    test = simulate_sets(model, p["num_probe_test"], seq_len, seed=seed + 1)
    bayes = bayes_risk(model, test.x, test.y, test.mask).numpy()
    cols = []
    for name, fn in reps.items():
        f_tr = evaluate_representation(fn, train.x, train.mask, name)
        f_te = evaluate_representation(fn, test.x, test.mask, name)
        nll = fit_probe(f_tr, train.y, f_te, test.y, kind=kind, seed=seed, num_classes=num_classes,
                        hidden=0 if probe == "linear" else 32)
        cols.append(nll - bayes)
    return np.stack(cols, -1)


def sufficiency(ctx) -> pd.DataFrame:
    from bayesattn.gaps import representation_of, sufficiency_gap

    p = ctx.params
    sizes = [int(n) for n in p["train_sizes"]]
    frames = []
    for name in p["sufficiency_models"]:
        model = make_model(name)
        nets = _trained_nets(ctx, name)
        reps = {net_label(n): representation_of(nets[n]) for n in sizes}
        reps["summary: token mean (no L)"] = mean_without_length(model)
        seed = ctx.seed_for("sufficiency", name)
        for probe in p["probes"]:
            frame = sufficiency_gap(reps, model, num_train=p["num_probe_train"],
                                    num_test=p["num_probe_test"], seq_len=tuple(p["seq_len"]),
                                    seed=seed, probe=probe, num_resamples=p["num_resamples"])
            frame["N"] = frame["representation"].map(
                {net_label(n): n for n in sizes}).astype(float)
            frames.append(frame)
            if len(sizes) < 2:
                continue
            # "-> 0 as N grows": paired over the same test sequences and probe data
            net_reps = {net_label(n): reps[net_label(n)] for n in (sizes[0], sizes[-1])}
            per = _per_sequence_excess(net_reps, model, p, seed, probe)
            row = paired_difference(per, 0, 1, seed=seed, num_resamples=p["num_resamples"])
            ours = frame[(frame["metric"] == "excess_risk")
                         & frame["representation"].isin(net_reps)]["value"].to_numpy()
            frames.append(pd.DataFrame([{
                "representation": f"net N={sizes[0]} - net N={sizes[-1]}", "model": name,
                "probe": probe, "metric": "excess_risk_difference", **row,
                "N": np.nan, "N_low": sizes[0], "N_high": sizes[-1],
                # recomputation check: |our per-sequence mean - sufficiency_gap's value|
                "recompute_error": float(np.max(np.abs(per.mean(0) - ours))),
            }]))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- P2
def minimality(ctx) -> StageOutput:
    from bayesattn.gaps import minimality, representation_of

    p = ctx.params
    frames, states = [], {}
    for name in p["minimality_models"]:
        model = make_model(name)
        reps = {}
        init_net = build_net(model, p, ctx.seed_for("minimality-init", name))
        reps["net at initialisation"] = representation_of(init_net.eval())
        train_rows = []
        for objective in p["objectives"]:
            seed = ctx.seed_for("minimality", name, objective)
            net = build_net(model, p, seed)
            row = fit_net(ctx, net, model, steps=p["minimality_steps"], objective=objective,
                          seed=seed)
            net = net.cpu().eval()
            states[f"{name}__{objective}"] = net.state_dict()
            label = f"net ({objective})"
            reps[label] = representation_of(net)
            train_rows.append({"model": name, "representation": label,
                               "objective": objective, **row})
        seq = tuple(p["seq_len"])
        seq = (max(3, seq[0]), seq[1])  # equal-statistic real-token pairs need >= 3 tokens
        frame = minimality(reps, model, num_pairs=p["num_pairs"], seq_len=seq,
                           seed=ctx.seed_for("minimality-pairs", name),
                           num_resamples=p["num_resamples"])
        frames += [frame, pd.DataFrame(train_rows)]
    return StageOutput(pd.concat(frames, ignore_index=True), artifacts={"state_dicts": states})


# ----------------------------------------------------------------------------- P3
def _evaluation_points(model, x, mask, num_points: int, seed: int):
    """Fixed points z at which log q(z | X) is compared: all K classes for a categorical
    latent, else ``num_points`` draws from the exact posterior of each set."""

    post = model.exact_posterior(x, mask)
    if model.latent_is_discrete:
        return None
    with seeded(seed):
        return post.sample((int(num_points),)).float()  # (J, B, *latent)


def _log_q(dist, points):
    """log q at the points ``(J, B, *latent)``, or the normalised logits: ``(B, J)``."""
    import torch

    if points is None:
        return (dist.logits - dist.logits.logsumexp(-1, keepdim=True)).double().numpy()
    with torch.no_grad():
        return dist.log_prob(points).T.double().numpy()


def _spread_rows(keys: dict, base, permuted, seed: int, num_resamples: int,
                 output: str) -> list[dict]:
    from bayesattn.metrics import bootstrap_ci

    s = spread(base, permuted)
    rows = []
    for metric, stat in (("max_abs", np.max), ("mean_abs", np.mean), ("max_rel", np.max)):
        est = bootstrap_ci(s[metric], stat, num_resamples=num_resamples, seed=seed)
        rows.append({**keys, "output": output, "metric": f"{metric}_change", **est.row()})
    return rows


def invariance(ctx) -> StageOutput:
    import torch

    from bayesattn.gaps import first_token_features, simulate_sets

    p = ctx.params
    rows, draws = [], {}
    for name in p["invariance_models"]:
        model = make_model(name)
        seed = ctx.seed_for("invariance", name)
        batch = simulate_sets(model, p["num_sequences"], tuple(p["seq_len"]), seed=seed)
        xs, masks = permute_sets(batch.x, batch.mask, p["num_permutations"], seed + 1)
        points = _evaluation_points(model, batch.x, batch.mask, p["num_points"], seed + 2)
        candidates = {}
        for encoder in ENCODER_FAMILIES:
            s = ctx.seed_for("invariance", name, encoder)
            net = build_net(model, p, s, encoder)
            if p["invariance_steps"] > 0:
                fit = fit_net(ctx, net, model, steps=p["invariance_steps"], objective="kl",
                              seed=s)
                rows.append({"model": name, "candidate": encoder, "kind": "training", **fit})
            net = net.cpu().eval()
            candidates[encoder] = ("encoder", _with_represent(net))
            if encoder == "set-transformer":
                pe = positional_control(net)
        candidates["control: set-transformer + positional encoding"] = ("control", pe)
        for label, (kind, fn) in candidates.items():
            keys = {"model": name, "candidate": label, "kind": kind}
            with torch.no_grad():
                base = _log_q(fn(batch.x, batch.mask), points)
                permuted = [_log_q(fn(xp, mp), points) for xp, mp in zip(xs, masks, strict=True)]
                rows += _spread_rows(keys, base, permuted, seed, p["num_resamples"],
                                     "log q(z | X)")
                base = fn.represent(batch.x, batch.mask).double().numpy()
                permuted = [fn.represent(xp, mp).double().numpy()
                            for xp, mp in zip(xs, masks, strict=True)]
                rows += _spread_rows(keys, base, permuted, seed, p["num_resamples"],
                                     "representation r(X)")
        exact = model.exact_posterior
        base = _log_q_exact(exact(batch.x, batch.mask), points)
        permuted = [_log_q_exact(exact(xp, mp), points) for xp, mp in zip(xs, masks, strict=True)]
        rows += _spread_rows({"model": name, "candidate": "reference: exact posterior (float64)",
                              "kind": "reference"}, base, permuted, seed, p["num_resamples"],
                             "log p(z | X)")
        first = first_token_features(model)
        base = first(batch.x, batch.mask).numpy()
        permuted = [first(xp, mp).numpy() for xp, mp in zip(xs, masks, strict=True)]
        rows += _spread_rows({"model": name, "candidate": "control: first token",
                              "kind": "control"}, base, permuted, seed, p["num_resamples"],
                             "representation")
        draws[f"posterior_{name.replace('-', '_')}"] = _posterior_idata(
            model, batch, xs[0], masks[0], candidates, ctx.seed_for("draws", name))
    return StageOutput(pd.DataFrame(rows), artifacts=draws)


def _with_represent(net):
    """``net.posterior`` as a plain function carrying ``net.represent`` as an attribute."""
    def posterior(x, mask):
        return net.posterior(x, mask)

    posterior.represent = net.represent
    return posterior


def _log_q_exact(dist, points):
    if points is None:
        return (dist.logits - dist.logits.logsumexp(-1, keepdim=True)).double().numpy()
    return dist.log_prob(points.double()).T.double().numpy()


def _posterior_idata(model, batch, x_perm, mask_perm, candidates: dict, seed: int,
                     num_draws: int = 200, num_datasets: int = 8):
    """Draws of z from the exact posterior and from each encoder, in the original and in a
    permuted token order (identical up to float32 rounding when the encoder is invariant)."""
    import arviz as az
    import torch

    b = min(num_datasets, batch.x.shape[0])
    x, mask = batch.x[:b], batch.mask[:b]
    dists = {"exact": model.exact_posterior(x, mask)}
    for label, (kind, fn) in candidates.items():
        if kind != "encoder":
            continue
        key = label.replace("-", "_")
        with torch.no_grad():
            dists[key] = fn(x, mask)
            dists[f"{key}_permuted"] = fn(x_perm[:b], mask_perm[:b])
    posterior = {}
    for key, dist in dists.items():
        with seeded(seed):
            z = dist.sample((num_draws,)).double().numpy()  # (draws, datasets, *latent)
        posterior[f"z_{key}"] = z[None]  # (chain, draw, dataset, *latent)
    latent_dims = [f"latent_dim_{i}" for i in range(len(model.latent_shape))]
    return az.from_dict(posterior=posterior,
                        dims={k: ["dataset", *latent_dims] for k in posterior},
                        attrs={"model": model.name, "note": "z_<encoder>_permuted: the same "
                               "sets with their tokens permuted"})

