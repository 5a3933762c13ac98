"""The stages of robust-encoders: train the four encoders, score them on contaminated and
longer test sequences, and draw their posteriors next to the exact ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesattn.runner import StageOutput, combine_replicates

from .._posteriors import exact_vs_net_draws
from .presets import (
    BASELINE,
    KINDS,
    POOLED,
    TARGETS,
    VARIANTS,
    base_model,
    regime_name,
    test_lengths,
    training_model,
)


def build_net(model, params: dict, variant: str, seed: int):
    """An untrained ``AmortizedPosterior`` with the variant's attention."""
    from bayesattn.inference import AmortizedPosterior

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}; got {variant!r}")
    kernel, residual = VARIANTS[variant]
    return AmortizedPosterior(
        model, encoder="transformer", head="categorical", length_aware=True, seed=seed,
        encoder_options={"dim": params["dim"], "num_heads": params["num_heads"],
                         "num_layers": params["num_layers"], "kernel": kernel,
                         "residual": residual, "pooling": "mean"},
    )


def paired_difference(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per-sequence ``after - before`` of two arrays of the same sequences, shape (n,)."""
    after, before = np.asarray(after, float), np.asarray(before, float)
    if after.ndim != 1 or after.shape != before.shape:
        raise ValueError(f"paired values must be two (n,) arrays over the same sequences; got "
                         f"{after.shape} and {before.shape}")
    return after - before


def contrast(variant: tuple[np.ndarray, np.ndarray],
             standard: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per-sequence (degradation of the variant) - (degradation of the standard encoder).

    Each argument is ``(kl_after, kl_before)`` over the same n sequences. Negative: the
    variant degrades less.
    """
    return paired_difference(paired_difference(*variant), paired_difference(*standard))


def _row(est, **keys) -> dict:
    return {**keys, **est.row()}


# ----------------------------------------------------------------------------- stages
def train(ctx) -> StageOutput:
    p = ctx.params
    rows, states = [], {}
    for train_eps in p["train_eps"]:
        regime = regime_name(train_eps)
        model = training_model(p, train_eps)
        for rep in range(int(p["replicates"])):
            # the same seed (initialisation and data) for every variant of a replicate
            seed = ctx.seed_for("train", regime, rep)
            for variant in VARIANTS:
                net = build_net(model, p, variant, seed)
                result = ctx.train(f"{regime}-{variant}-{rep}", net, model, steps=p["steps"],
                                   batch_size=p["batch_size"], seq_len=(2, int(p["train_len"])),
                                   objective="kl", seed=seed, device=ctx.device, lr=p["lr"])
                states[f"{regime}:{variant}:{rep}"] = net.cpu().state_dict()
                tail = result.history.tail(max(1, len(result.history) // 10))
                rows.append({"regime": regime, "variant": variant, "replicate": rep,
                             "metric": "final_train_kl", "value": float(tail["kl"].mean()),
                             "ci_low": np.nan, "ci_high": np.nan,
                             "se": float(tail["kl"].sem()) if len(tail) > 1 else np.nan,
                             "n": len(tail)})
                if VARIANTS[variant][1] == "boosting":  # the learned lambda of each layer
                    for i, layer in enumerate(net.encoder.layers):
                        rows.append({"regime": regime, "variant": variant, "replicate": rep,
                                     "metric": "boost_lambda", "layer": i,
                                     "value": float(layer.mab.boost.detach())})
    return StageOutput(pd.DataFrame(rows), artifacts={"state_dicts": states})


def _load_nets(ctx, regime: str, train_eps: float, rep: int) -> dict:
    states = ctx.artifact("train", "state_dicts")
    model = training_model(ctx.params, train_eps)
    nets = {}
    for variant in VARIANTS:
        net = build_net(model, ctx.params, variant, 0)
        net.load_state_dict(states[f"{regime}:{variant}:{rep}"])
        nets[variant] = net.to(ctx.device).eval()
    return nets


def _per_sequence_kl(ctx, rep: int, nets: dict) -> tuple[dict, dict]:
    """Per-sequence KLs ``kl[(variant, target, kind, eps, L)] -> (n,)`` and the prior's."""
    import torch

    from bayesattn import metrics, models

    p = ctx.params
    base = base_model(p)
    lengths = test_lengths(p)
    n = int(p["test_sequences"])
    seed = ctx.seed_for("test", rep)  # shared by every kind and eps: nested, paired sets
    kl, prior_kl = {}, {}
    for kind in KINDS:
        for eps in p["eps"]:
            cm = models.contaminate(base, float(eps), kind)
            x_full = cm.simulate_contaminated(n, max(lengths), seed=seed).batch.x
            for length in lengths:
                x = x_full[:, :length]  # (n, L, d): a prefix of the same sequences
                refs = {"eps_model": cm.exact_posterior(x), "clean_model": cm.clean_posterior(x)}
                prior = torch.distributions.Categorical(
                    probs=torch.as_tensor(base.params["weights"], dtype=torch.float64)
                    .expand(n, -1))
                for target, ref in refs.items():
                    prior_kl[(target, kind, float(eps), length)] = metrics.kl_per_dataset(
                        ref, prior)
                for variant, net in nets.items():
                    with torch.no_grad():
                        q = net.posterior(x.float().to(next(net.parameters()).device))
                    q = torch.distributions.Categorical(logits=q.logits.double().cpu())
                    for target, ref in refs.items():
                        kl[(variant, target, kind, float(eps), length)] = (
                            metrics.kl_per_dataset(ref, q))
    return kl, prior_kl


def evaluate(ctx) -> StageOutput:
    from bayesattn.metrics import bootstrap_ci

    p = ctx.params
    boot = int(p["num_resamples"])
    lengths = test_lengths(p)
    eps0, eps_max = 0.0, float(max(p["eps"]))
    if eps0 not in [float(e) for e in p["eps"]]:
        raise ValueError(f"eps must include 0 (the clean reference); got {p['eps']}")
    rows = []
    for train_eps in p["train_eps"]:
        regime = regime_name(train_eps)
        for rep in range(int(p["replicates"])):
            nets = _load_nets(ctx, regime, train_eps, rep)
            kl, prior_kl = _per_sequence_kl(ctx, rep, nets)
            seed = ctx.seed_for("evaluate", regime, rep)
            keys = {"regime": regime, "replicate": rep}
            for (variant, target, kind, eps, length), v in kl.items():
                rows.append(_row(bootstrap_ci(v, num_resamples=boot, seed=seed), **keys,
                                 variant=variant, target=target, kind=kind, eps=eps, L=length,
                                 metric="kl"))
            if regime == regime_name(p["train_eps"][0]):  # the prior does not depend on it
                for (target, kind, eps, length), v in prior_kl.items():
                    rows.append(_row(bootstrap_ci(v, num_resamples=boot, seed=seed), **keys,
                                     variant="prior", target=target, kind=kind, eps=eps,
                                     L=length, metric="kl"))
            for variant in VARIANTS:
                for target in TARGETS:
                    for kind in KINDS:
                        for length in lengths:
                            pair = (kl[(variant, target, kind, eps_max, length)],
                                    kl[(variant, target, kind, eps0, length)])
                            cell = dict(**keys, variant=variant, target=target, kind=kind,
                                        eps=eps_max, L=length)
                            rows.append(_row(bootstrap_ci(paired_difference(*pair),
                                                          num_resamples=boot, seed=seed),
                                             **cell, metric="degradation"))
                            if variant != BASELINE:
                                std = (kl[(BASELINE, target, kind, eps_max, length)],
                                       kl[(BASELINE, target, kind, eps0, length)])
                                rows.append(_row(bootstrap_ci(contrast(pair, std),
                                                              num_resamples=boot, seed=seed),
                                                 **cell, metric="degradation_vs_standard"))
                    # length: eps = 0 data are the same for both kinds; use the first
                    big, small = max(lengths), min(lengths)
                    pair = (kl[(variant, target, KINDS[0], eps0, big)],
                            kl[(variant, target, KINDS[0], eps0, small)])
                    cell = dict(**keys, variant=variant, target=target, kind="none", eps=eps0,
                                L=big)
                    rows.append(_row(bootstrap_ci(paired_difference(*pair), num_resamples=boot,
                                                  seed=seed), **cell, metric="length_degradation"))
                    if variant != BASELINE:
                        std = (kl[(BASELINE, target, KINDS[0], eps0, big)],
                               kl[(BASELINE, target, KINDS[0], eps0, small)])
                        rows.append(_row(bootstrap_ci(contrast(pair, std), num_resamples=boot,
                                                      seed=seed),
                                         **cell, metric="length_degradation_vs_standard"))
    frame = pd.DataFrame(rows)
    by = ["regime", "variant", "target", "kind", "eps", "L", "metric"]
    pooled = combine_replicates(frame, by).assign(replicate=POOLED)
    return StageOutput(pd.concat([frame, pooled], ignore_index=True))


def draws(ctx) -> StageOutput:
    p = ctx.params
    regime = regime_name(p["train_eps"][0])
    nets = _load_nets(ctx, regime, p["train_eps"][0], 0)
    artifacts, rows = {}, []
    for variant, net in nets.items():
        artifacts.update(exact_vs_net_draws(
            ctx, base_model(p), net, test_lengths(p), num_datasets=int(p["draw_datasets"]),
            num_draws=int(p["num_draws"]), label=f"_{variant}"))
        rows.append({"regime": regime, "variant": variant, "replicate": 0,
                     "metric": "posterior_draws", "value": float(p["num_draws"]),
                     "n": int(p["draw_datasets"])})
    return StageOutput(pd.DataFrame(rows), artifacts=artifacts)
