"""The stages of gap-vs-length: train two networks, score every candidate, fit slopes, and
draw the fresh posteriors the figures show."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn.runner import StageOutput, plateau_rows

from .._posteriors import exact_vs_net_draws
from .presets import figure_lengths, model

NETS = (("given_L", True), ("no_L", False))


def _net(m, params, length_aware: bool, seed: int):
    from bayesattn.inference import AmortizedPosterior

    return AmortizedPosterior(
        m, encoder="set-transformer", length_aware=length_aware, seed=seed,
        encoder_options={"dim": params["dim"], "num_heads": params["num_heads"]},
    )


def _label(aware: bool) -> str:
    return f"net ({'given L' if aware else 'no L'})"


def train(ctx) -> StageOutput:
    """Train the Set Transformer told L and the one without L (exact-KL objective)."""
    m, p = model(), ctx.params
    rows, states = [], {}
    for key, aware in NETS:
        seed = ctx.seed_for(f"train-{key}")
        net = _net(m, p, aware, seed)
        result = ctx.train(key, net, m, steps=p["steps"], batch_size=p["batch_size"],
                           seq_len=tuple(p["train_len"]), objective="kl", seed=seed,
                           device=ctx.device, lr=p.get("lr", 2e-3))
        states[key] = net.cpu().state_dict()
        hist = result.history
        tail = hist.tail(max(1, len(hist) // 10))
        label = _label(aware)
        rows.append({"candidate": label,
                     "metric": "final_train_kl", "value": float(tail["kl"].mean()),
                     "ci_low": np.nan, "ci_high": np.nan, "se": float(tail["kl"].sem()),
                     "n": len(tail)})
        rows += plateau_rows(hist, "kl", candidate=label)
    return StageOutput(pd.DataFrame(rows), artifacts={"state_dicts": states})


def _trained_nets(ctx, m) -> dict:
    """The two trained networks, rebuilt from the train stage's state dicts."""
    states = ctx.artifact("train", "state_dicts")
    out = {}
    for key, aware in NETS:
        net = _net(m, ctx.params, aware, 0)
        net.load_state_dict(states[key])
        out[_label(aware)] = net.to(ctx.device).eval()
    return out


def _candidates(ctx, m) -> dict:
    from bayesattn.inference.oracle import ConceptMixtureOracle

    out = _trained_nets(ctx, m)
    out["oracle: exact"] = ConceptMixtureOracle(m, mode="exact")
    out["oracle: fixed L0=16"] = ConceptMixtureOracle(m, mode="fixed-length", L0=16)
    out["oracle: hard"] = ConceptMixtureOracle(m, mode="hard")
    return out


def evaluate(ctx) -> StageOutput:
    """KL, TV and entropies of every candidate on fresh sequences at every L of the grid."""
    from bayesattn.gaps import gap_vs_length, summarise

    m, p = model(), ctx.params
    frames, per_frames = [], []
    candidates = _candidates(ctx, m)
    for name, cand in candidates.items():
        device = ctx.device if name.startswith("net") else "cpu"
        _, per = gap_vs_length(cand, m, p["lengths"], num_sequences=p["num_sequences"],
                               seed=ctx.seed_for("evaluate"), device=device,
                               per_sequence=True, progress=ctx.progress)
        per.insert(0, "candidate", name)
        per_frames.append(per)
        summary = summarise(per, by=("candidate", "L"), num_resamples=p["num_resamples"],
                            seed=ctx.seed_for("evaluate"))
        frames.append(summary)
    per_all = pd.concat(per_frames, ignore_index=True)
    lo, hi = p["train_len"]
    net = candidates["net (given L)"]
    draws = exact_vs_net_draws(ctx, m, net, {lo, hi, max(p["lengths"])})
    artifacts = {"per_sequence": per_all, **draws}
    return StageOutput(pd.concat(frames, ignore_index=True), artifacts=artifacts)


def slopes(ctx) -> pd.DataFrame:
    """Log-log slopes of KL and TV in L inside and beyond the training range (P4, P13), and
    the paired KL difference between the two nets at each L (P12)."""
    from bayesattn.gaps import loglog_slope
    from bayesattn.metrics import bootstrap_ci

    per = ctx.artifact("evaluate", "per_sequence")
    lo, hi = ctx.params["train_len"]
    lengths = sorted(per["L"].unique())
    rows = []
    for name, group in per.groupby("candidate", sort=False):
        for metric in ("kl_forward", "tv"):
            for label, rng in (("inside", (lo, hi)), ("beyond", (hi, max(lengths)))):
                inside = [v for v in lengths if rng[0] <= v <= rng[1]]
                sel = group[(group["metric"] == metric) & group["L"].isin(inside)]
                means = sel.groupby("L")["value"].mean()
                # the exact oracle's gap is 0 and the hard oracle's KL is infinite: no slope
                if len(inside) < 2 or not np.isfinite(means).all() or (means <= 1e-12).any():
                    continue
                est = loglog_slope(group, metric, lengths=rng,
                                   num_resamples=ctx.params["num_resamples"],
                                   seed=ctx.seed_for("slopes"))
                rows.append({"candidate": name, "metric": f"slope_{metric}", "range": label,
                             "L_low": rng[0], "L_high": rng[1], **est.row()})
    # P12: the same sequences are scored by both nets, so the difference is paired
    kl = per[per["metric"] == "kl_forward"]
    given = kl[kl["candidate"] == "net (given L)"].set_index(["L", "dataset"])["value"]
    blind = kl[kl["candidate"] == "net (no L)"].set_index(["L", "dataset"])["value"]
    diff = (blind - given).dropna()
    for length, values in diff.groupby(level="L"):
        est = bootstrap_ci(values.to_numpy(), num_resamples=ctx.params["num_resamples"],
                           seed=ctx.seed_for("slopes"))
        rows.append({"candidate": "net (no L) - net (given L)", "metric": "kl_difference",
                     "range": "inside" if lo <= length <= hi else "outside", "L": int(length),
                     **est.row()})
    return pd.DataFrame(rows)


def figure_data(ctx) -> StageOutput:
    """The net told L against the exact posterior on 1000 fresh sequences at each of the
    figure lengths: the first 3 sets' posteriors (``overlay``) and every set's top
    probability and whether it is the true concept (``calibration``).

    No measurement is added to ``results.csv`` (the table is empty): the figures read
    these artifacts, so drawing never runs a network.
    """
    import torch

    m = model()
    net = _trained_nets(ctx, m)["net (given L)"]
    rows, calib = [], []
    for length in figure_lengths(ctx.params["lengths"]):
        batch = m.simulate(1000, length, seed=ctx.seed_for(f"figures-{length}"))
        with torch.no_grad():
            q = net.posterior(batch.x.float().to(ctx.device)).probs.double().cpu()
        p = m.exact_posterior(batch.x).probs
        for b in range(3):
            for k in range(p.shape[1]):
                rows += [{"L": length, "dataset": b, "concept": k,
                          "probability": float(p[b, k]), "posterior": "exact"},
                         {"L": length, "dataset": b, "concept": k,
                          "probability": float(q[b, k]), "posterior": "net (given L)"}]
        conf, pred = q.max(-1)
        calib.append(pd.DataFrame({"L": length, "confidence": conf.numpy(),
                                   "correct": (pred == batch.z.reshape(-1)).numpy()}))
    return StageOutput(pd.DataFrame(), artifacts={
        "overlay": pd.DataFrame(rows), "calibration": pd.concat(calib, ignore_index=True)})
