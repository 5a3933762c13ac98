"""The stages of denoising-2d: train one denoiser per attention variant and training seed,
score them and the references on fresh test images, and combine the training seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn._random import seeded
from bayesattn.runner import StageOutput, combine_replicates, plateau_rows

from .nets import bandwidths, build_net, denoise, grid_positions, predict, train_denoiser
from .presets import BASELINE, VARIANTS, gp_model


def image_metrics(uh: np.ndarray, u: np.ndarray, pm: np.ndarray, peak: float) -> dict:
    """Per-image MSE to u, PSNR (dB, peak ``peak``) and MSE to the posterior mean, ``(n,)``."""
    uh, u, pm = (np.asarray(a, dtype=np.float64) for a in (uh, u, pm))
    if not uh.shape == u.shape == pm.shape or uh.ndim != 2:
        raise ValueError(f"expected three (n, L) arrays of one shape; got {uh.shape}, "
                         f"{u.shape}, {pm.shape}.")
    mse = ((uh - u) ** 2).mean(1)
    return {"mse_clean": mse, "psnr": 10.0 * np.log10(peak**2 / np.maximum(mse, 1e-300)),
            "mse_posterior": ((uh - pm) ** 2).mean(1)}


def train(ctx) -> StageOutput:
    p = ctx.params
    model = gp_model(p)
    rows, states, hist = [], {}, []
    for r in range(int(p["train_seeds"])):
        for variant in VARIANTS:
            net = build_net(variant, p, ctx.seed_for("init", r))
            h = train_denoiser(net, model, steps=int(p["steps"]),
                               batch_size=int(p["batch_size"]), lr=float(p["lr"]),
                               weight_decay=float(p["weight_decay"]), clip=float(p["clip"]),
                               data_seed=ctx.seed_for("train-data", r),
                               chunk_steps=int(p["chunk_steps"]), device=ctx.device,
                               progress=lambda it, v=variant: ctx.tqdm(it, desc=f"E2 {v}"),
                               checkpoint_dir=ctx.checkpoint_dir(f"{variant}-{r}"))
            states[f"{variant}:{r}"] = net.cpu().state_dict()
            hist.append(h.assign(variant=variant, replicate=r))
            tail = h["loss"].tail(max(1, len(h) // 10))
            rows.append({"variant": variant, "replicate": r, "metric": "final_train_mse",
                         "value": float(tail.mean()), "ci_low": np.nan, "ci_high": np.nan,
                         "se": float(tail.sem()) if len(tail) > 1 else np.nan,
                         "n": len(tail)})
            rows += plateau_rows(h, variant=variant, replicate=r)  # convergence table
            rows += [{"variant": variant, "replicate": r, "metric": "bandwidth",
                      "layer": li, "head": hd, "value": s, "n": 1}
                     for li, hd, s in bandwidths(net)]
    return StageOutput(pd.DataFrame(rows), artifacts={
        "state_dicts": states, "history": pd.concat(hist, ignore_index=True)})


def load_nets(ctx, replicate: int) -> dict:
    """The trained nets of one training seed, ``variant -> ModuleDict`` (eval mode)."""
    p, states = ctx.params, ctx.artifact("train", "state_dicts")
    nets = {}
    for variant in VARIANTS:
        net = build_net(variant, p, 0)
        net.load_state_dict(states[f"{variant}:{replicate}"])
        nets[variant] = net.to(ctx.device).eval()
    return nets


def _boot(values, p, ctx, *keys) -> dict:
    from bayesattn.metrics import bootstrap_ci

    return bootstrap_ci(values, num_resamples=int(p["num_resamples"]),
                        seed=ctx.seed_for("bootstrap", *keys)).row()


def evaluate(ctx) -> StageOutput:
    from ..denoising_1d.presets import dynamic_range

    p = ctx.params
    model = gp_model(p)
    w = int(p["grid_width"])
    batch = model.simulate(int(p["test_images"]), w * w, seed=ctx.seed_for("test"))
    post = model.exact_posterior(batch.x)
    u, x, pm = (t.double().numpy() for t in (batch.y, batch.x, post.mean))
    peak = dynamic_range("gp-signal", model)
    rows = []
    for name, uh in (("posterior-mean", pm), ("noisy", x)):
        for metric, values in image_metrics(uh, u, pm, peak).items():
            rows.append({"variant": name, "replicate": 0, "metric": metric,
                         **_boot(values, p, ctx, name, metric)})
    first = {}
    for r in range(int(p["train_seeds"])):
        nets = load_nets(ctx, r)
        per = {}
        for variant, net in nets.items():
            uh = predict(net, model, batch.x, ctx.device, int(p["eval_chunk"]))
            per[variant] = image_metrics(uh, u, pm, peak)
            if r == 0:
                first[variant] = uh
            for metric, values in per[variant].items():
                rows.append({"variant": variant, "replicate": r, "metric": metric,
                             **_boot(values, p, ctx, variant, metric, r)})
        for variant in VARIANTS:
            if variant != BASELINE:
                d = per[variant]["mse_clean"] - per[BASELINE]["mse_clean"]
                rows.append({"variant": variant, "against": BASELINE, "replicate": r,
                             "metric": "mse_clean_diff",
                             **_boot(d, p, ctx, "paired", variant, r)})
        if r == 0:
            attention = _attention_maps(ctx, model, nets, batch.x[:1], post)
    k = min(int(p["examples"]), u.shape[0])
    panels = {"clean": u, "noisy": x, "posterior-mean": pm, **first}
    examples = pd.DataFrame([
        {"image": i, "panel": name, "row": j // w, "col": j % w, "value": float(img[i, j])}
        for name, img in panels.items() for i in range(k) for j in range(w * w)])
    artifacts = {"examples": examples, "attention": attention,
                 "exact_posterior": _posterior_idata(ctx, model, batch, post, first)}
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)


def _attention_maps(ctx, model, nets: dict, x, post) -> pd.DataFrame:
    """Head-averaged attention row of the centre pixel, first and last layer, per variant,
    and the row of the exact smoother W_post (image ``x (1, L)``)."""
    import torch

    w = int(model.params["grid_width"])
    L = w * w
    centre = (w // 2) * w + w // 2
    maps = {("exact smoother", 0): model.smoother(L)[centre].numpy()}
    with torch.no_grad():
        for variant, net in nets.items():
            _, weights = denoise(net, x.float().to(ctx.device),
                                 grid_positions(model, 1, ctx.device), return_weights=True)
            for li in sorted({0, len(weights) - 1}):
                maps[(variant, li)] = weights[li][0, :, centre].mean(0).double().cpu().numpy()
    return pd.DataFrame([{"panel": name, "layer": li, "row": j // w, "col": j % w,
                          "value": float(v[j])} for (name, li), v in maps.items()
                         for j in range(L)])


def _posterior_idata(ctx, model, batch, post, nets_mean: dict):
    """Exact posterior draws of u for the first test images (``(chain, draw, image, row,
    col)``), with the noisy and clean images and each net's estimate (training seed 0)."""
    import arviz as az
    import torch

    p = ctx.params
    w = int(p["grid_width"])
    k = min(int(p["posterior_images"]), int(p["test_images"]))
    dist = torch.distributions.MultivariateNormal(post.mean[:k], scale_tril=post.scale_tril[:k])
    with seeded(ctx.seed_for("posterior-draws")):
        z = dist.sample((int(p["posterior_draws"]),)).double().numpy()  # (S, k, L)
    img = ["image", "row", "col"]
    const = {"u_true": batch.y[:k].double().numpy().reshape(k, w, w),
             **{"net_mean_" + v.replace("+", "_"): m[:k].reshape(k, w, w)
                for v, m in nets_mean.items()}}
    return az.from_dict(
        posterior={"u": z.reshape(1, z.shape[0], k, w, w)},
        observed_data={"x": batch.x[:k].double().numpy().reshape(k, w, w)},
        constant_data=const,
        dims={"u": img, "x": img, **{c: img for c in const}},
        attrs={"model": model.name, "grid_width": w, "posterior": "exact",
               "networks": "point estimates in constant_data (training seed 0)",
               **{k_: str(v) for k_, v in model.params.items()}},
    )


def summarise(ctx) -> pd.DataFrame:
    """Per variant (and paired difference): the training seeds combined."""
    ev = ctx.results["evaluate"]
    plain = combine_replicates(ev[ev["metric"] != "mse_clean_diff"], ["variant", "metric"])
    diffs = combine_replicates(ev[ev["metric"] == "mse_clean_diff"],
                               ["variant", "against", "metric"])
    return pd.concat([plain, diffs], ignore_index=True)
