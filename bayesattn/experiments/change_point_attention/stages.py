"""The stages of change-point-attention: train the positional variants, test them at longer
L (E7), and compare their attention rows with the exact co-segmentation (E8)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput, plateau_rows

from .presets import (
    CLAIMED,
    REFERENCE,
    RELATIVE,
    VARIANTS,
    _model,
    normalise_rows,
    row_kl,
    row_spearman,
    spatial_rows,
)


def _net(variant: str, net: dict, seed: int):
    """The per-token denoiser of ``variant``, initialised from ``seed`` (global RNG kept)."""
    from torch import nn

    from bayesattn.inference import TransformerEncoder

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {list(VARIANTS)}.")
    positional, kernel, kw = VARIANTS[variant]

    class Denoiser(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = TransformerEncoder(
                1, net["dim"], net["num_heads"], net["num_layers"], kernel=kernel,
                positional=positional, kernel_kwargs=dict(kw), ff_mult=net["ff_mult"])
            self.norm = nn.LayerNorm(net["dim"])
            self.readout = nn.Linear(net["dim"], 1)

        def forward(self, x, return_weights: bool = False):
            h, w = self.encoder.tokens(x[..., None], return_weights=True)  # (B, L, dim)
            out = self.readout(self.norm(h))[..., 0]  # (B, L, 1) -> (B, L)
            return (out, w) if return_weights else out

    with seeded(seed):
        return Denoiser()


def learned_bandwidths(model) -> list[list[float]]:
    """Per layer, the learned sigma_h of each head (empty lists for non-relative kernels)."""
    return model.encoder.spatial_bandwidths()


def _data(model, n: int, L: int, seed: int):
    """Noisy x, clean u, posterior mean and variance, ``(n, L)`` float64, and the batch."""
    batch = model.simulate(n, L, seed=seed)
    post = model.exact_posterior(batch.x)
    return (batch.x.double().numpy(), batch.y.double().numpy(),
            post.signal_mean.double().numpy(), post.signal_var.double().numpy(), batch)


def _predict(net, x: np.ndarray, chunk: int, weights: bool = False):
    """Network outputs ``(n, L)`` (and each layer's weights ``(n, H, L, L)``), in chunks."""
    import torch

    outs, ws = [], []
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            o, w = net(torch.as_tensor(x[s:s + chunk], dtype=torch.float32), True)
            outs.append(o.double().numpy())
            if weights:
                ws.append([wi.double().numpy() for wi in w])
    out = np.concatenate(outs)
    if not weights:
        return out
    return out, [np.concatenate([w[k] for w in ws]) for k in range(len(ws[0]))]


def posterior_idata(model, batch, k: int, draws: int, seed: int, point: dict | None = None):
    """Exact joint posterior draws of the signal u (FFBS) for the first ``k`` sequences as
    InferenceData (``posterior.u`` (chain, draw, sequence, token)); the networks' point
    estimates of E[u | x], if given, go to ``constant_data`` as ``net_<variant>``."""
    import arviz as az

    z = model.sample_posterior(batch.x[:k], draws, seed=seed).numpy()  # (draws, k, L)
    dims = ["sequence", "token"]
    const = {f"net_{v.replace('-', '_')}": np.asarray(a[:k]) for v, a in (point or {}).items()}
    return az.from_dict(
        posterior={"u": z[None]},
        observed_data={"x": batch.x[:k].double().numpy(), "u_true": batch.y[:k].double().numpy()},
        constant_data=const, dims={"u": dims, "x": dims, "u_true": dims,
                                   **{c: dims for c in const}},
        attrs={"model": model.name, "L": int(batch.x.shape[1]), "posterior": "exact (FFBS)",
               **{key: str(val) for key, val in model.params.items()}})


def _nets(ctx) -> dict:
    states = ctx.artifact("train", "state_dicts")
    out = {}
    for v in ctx.params["variants"]:
        net = _net(v, ctx.params["net"], 0)
        net.load_state_dict(states[v])
        out[v] = net.eval()
    return out


def _ests(values, key: tuple, ctx, **statistic):
    from bayesattn.metrics import bootstrap_ci

    return bootstrap_ci(values, num_resamples=int(ctx.params["num_resamples"]),
                        seed=ctx.seed_for("bootstrap", *key), **statistic).row()


# ----------------------------------------------------------------------------- stages
CHECKPOINT_EVERY = 100  # training steps between loop checkpoints (resume after a kill)


def train(ctx) -> StageOutput:
    import torch

    p = ctx.params
    model = _model(p)
    x, _, pm, _, _ = _data(model, int(p["train_sequences"]), int(p["train_len"]),
                           ctx.seed_for("train-data"))
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(pm, dtype=torch.float32)
    rows, states, history = [], {}, []
    steps = int(p["steps"])
    for v in p["variants"]:
        seed = ctx.seed_for("train", v)
        net = _net(v, p["net"], seed)
        opt = torch.optim.AdamW(net.parameters(), lr=float(p["lr"]),
                                weight_decay=float(p["weight_decay"]))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        gen = torch.Generator().manual_seed(seed)
        # a run killed mid-training continues from the last checkpoint on --resume
        ckpt = ctx.loop_checkpoint(v, net=net, opt=opt, sched=sched, gen=gen)
        losses = list(ckpt.extra.get("losses", []))
        history += [{"variant": v, "step": i, "mse_posterior": loss}
                    for i, loss in enumerate(losses)]
        for step in ctx.tqdm(range(ckpt.start, steps), desc=f"train {v}"):
            idx = torch.randint(0, len(xt), (int(p["batch_size"]),), generator=gen)
            loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            history.append({"variant": v, "step": step, "mse_posterior": losses[-1]})
            if (step + 1) % CHECKPOINT_EVERY == 0:
                ckpt.save(step + 1, losses=losses)
        rows += plateau_rows(pd.DataFrame({"loss": losses}), variant=v)  # convergence table
        tail = np.asarray(losses[-max(1, steps // 10):])
        rows.append({"variant": v, "metric": "final_train_mse", "value": float(tail.mean()),
                     "ci_low": np.nan, "ci_high": np.nan,
                     "se": float(tail.std(ddof=1) / math.sqrt(len(tail))) if len(tail) > 1
                     else np.nan, "n": len(tail)})
        for layer, bws in enumerate(learned_bandwidths(net)):
            for h, bw in enumerate(bws):
                rows.append({"variant": v, "metric": "bandwidth", "layer": layer,
                             "head": f"h{h}", "value": bw, "n": 1})
        states[v] = net.state_dict()
    return StageOutput(pd.DataFrame(rows), artifacts={"state_dicts": states,
                                                      "history": pd.DataFrame(history)})


def evaluate(ctx) -> StageOutput:
    p = ctx.params
    model, nets = _model(p), _nets(ctx)
    lengths = [int(v) for v in p["test_lengths"]]
    rows, per = [], {}
    artifacts = {}
    for L in lengths:
        x, u, pm, pv, batch = _data(model, int(p["test_sequences"][str(L)]), L,
                                    ctx.seed_for("test", L))
        preds = {v: _predict(net, x, int(p["chunk"])) for v, net in nets.items()}
        rows.append({"variant": REFERENCE, "L": L, "metric": "mse_clean",
                     **_ests(((pm - u) ** 2).mean(1), ("ref", L), ctx)})
        for v, pred in preds.items():
            err = ((pred - pm) ** 2).mean(1)
            per[(v, L)] = err
            rows.append({"variant": v, "L": L, "metric": "mse_posterior",
                         **_ests(err, (v, L, "mse"), ctx)})
            rows.append({"variant": v, "L": L, "metric": "mse_posterior_norm",
                         **_ests(np.stack([err, pv.mean(1)], 1), (v, L, "norm"), ctx,
                                 statistic=lambda a: a[:, 0].mean() / a[:, 1].mean())})
            rows.append({"variant": v, "L": L, "metric": "mse_clean",
                         **_ests(((pred - u) ** 2).mean(1), (v, L, "clean"), ctx)})
        if L == lengths[0]:
            artifacts["exact_posterior"] = posterior_idata(
                model, batch, min(int(p["posterior_sequences"]), len(x)),
                int(p["posterior_draws"]), ctx.seed_for("posterior-draws", L),
                {v: pr[: int(p["posterior_sequences"])] for v, pr in preds.items()})
            artifacts["examples"] = pd.DataFrame(
                [{"curve": c, "position": i, "value": float(val)}
                 for c, arr in {"noisy": x[0], "clean": u[0], REFERENCE: pm[0],
                                **{v: preds[v][0] for v in preds}}.items()
                 for i, val in enumerate(arr)])
    L0 = lengths[0]
    if CLAIMED in nets:
        for L in lengths:
            for o in nets:
                if o == CLAIMED:
                    continue
                d = _ests(per[(CLAIMED, L)] - per[(o, L)], ("paired", o, L), ctx)
                rows.append({"variant": CLAIMED, "against": o, "L": L,
                             "metric": "mse_posterior_diff", **d})
                if L == L0:
                    continue
                d0 = _ests(per[(CLAIMED, L0)] - per[(o, L0)], ("paired", o, L0), ctx)
                rows.append({"variant": CLAIMED, "against": o, "L": L,
                             "metric": "increase_diff", **_combine(d, d0)})
    for v in nets:
        for L in lengths[1:]:
            a, b = (_ests(per[(v, k)], (v, k, "mse"), ctx) for k in (L, L0))
            rows.append({"variant": v, "L": L, "metric": "mse_increase", **_combine(a, b)})
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)


def _combine(a: dict, b: dict) -> dict:
    """Estimate of a - b from two independent estimates (SEs in quadrature, normal CI)."""
    se = math.sqrt(a["se"] ** 2 + b["se"] ** 2)
    value = a["value"] - b["value"]
    return {"value": value, "ci_low": value - 1.96 * se, "ci_high": value + 1.96 * se,
            "se": se, "n": int(a["n"] + b["n"])}


def _tune_spatial(ctx, model) -> float:
    p = ctx.params
    L = int(p["attention_lengths"][0])
    batch = model.simulate(int(p["tune_sequences"]), L, seed=ctx.seed_for("tune", L))
    target = normalise_rows(model.co_segmentation(batch.x).numpy())
    kls = [float(row_kl(target, spatial_rows(L, s)).mean()) for s in p["spatial_grid"]]
    return float(p["spatial_grid"][int(np.argmin(kls))])


def attention(ctx) -> StageOutput:
    p = ctx.params
    model, nets = _model(p), _nets(ctx)
    sigma = _tune_spatial(ctx, model)
    rows = [{"variant": "spatial-tuned", "metric": "bandwidth", "value": sigma, "n": 1}]
    artifacts = {}
    for L in [int(v) for v in p["attention_lengths"]]:
        x, _, _, _, batch = _data(model, int(p["attention_sequences"][str(L)]), L,
                                  ctx.seed_for("attention", L))
        target = normalise_rows(model.co_segmentation(batch.x).numpy())  # (n, L, L)
        per = {}

        def add(name, layer, head, rows_a, key, spearman=True, target=target, L=L, per=per):
            kl = row_kl(target, rows_a).mean(-1)
            per[(key, "kl")] = kl
            rows.append({"variant": name, "L": L, "layer": layer, "head": head,
                         "metric": "kl", **_ests(kl, ("kl", L, *key), ctx)})
            if spearman:
                rho = row_spearman(target, rows_a).mean(-1)
                per[(key, "spearman")] = rho
                rows.append({"variant": name, "L": L, "layer": layer, "head": head,
                             "metric": "spearman", **_ests(rho, ("rho", L, *key), ctx)})

        add("uniform", "-", "-", np.full(target.shape, 1.0 / L), ("uniform",), spearman=False)
        add("spatial-tuned", "-", "-", spatial_rows(L, sigma), ("tuned",))
        add("oracle", "-", "-", target, ("oracle",))
        for v, net in nets.items():
            _, ws = _predict(net, x, int(p["chunk"]), weights=True)
            bws = learned_bandwidths(net)
            form = "laplacian" if VARIANTS[v][0] == "alibi" else "gaussian"
            for layer, idx in (("first", 0), ("last", len(ws) - 1)):
                heads = {f"h{h}": ws[idx][:, h] for h in range(ws[idx].shape[1])}
                heads["mean"] = ws[idx].mean(1)
                for head, a in heads.items():
                    add(v, layer, head, a, (v, layer, head))
                    if v in RELATIVE:
                        bw = bws[idx] if head == "mean" else [bws[idx][int(head[1:])]]
                        add(f"spatial@{v}", layer, head, spatial_rows(L, bw, form),
                            (f"spatial@{v}", layer, head))
                for metric in ("kl", "spearman"):
                    against = [("tuned",), *([(f"spatial@{v}", layer, "mean")]
                                             if v in RELATIVE else [])]
                    if metric == "kl":
                        against.append(("uniform",))
                    for ref in against:
                        d = per[((v, layer, "mean"), metric)] - per[(ref, metric)]
                        rows.append({"variant": v, "L": L, "layer": layer, "head": "mean",
                                     "against": ref[0], "metric": f"{metric}_diff",
                                     **_ests(d, ("diff", L, v, layer, metric, ref[0]), ctx)})
                if L == int(p["attention_lengths"][0]) and layer == "last":
                    artifacts[f"attention_{v}"] = heads["mean"][0]
        if L == int(p["attention_lengths"][0]):
            artifacts["coseg"] = model.co_segmentation(batch.x[:1]).numpy()[0]
            artifacts["coseg_signals"] = pd.DataFrame(
                {"position": np.arange(L), "noisy": x[0], "clean": batch.y[0].double().numpy(),
                 REFERENCE: model.exact_posterior(batch.x[:1]).signal_mean[0].numpy()})
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)
