"""The claim denoising-2d decides (E2): the decision rule and verdict, the headline table
and the trained nets' convergence, all read from ``results.csv``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesattn.runner import (
    Decision,
    Rule,
    Verdict,
    ci_numbers,
    ci_text,
    convergence_row,
    pick,
    plateau_judgement,
    unknown_floor_basis,
)
from bayesattn.runner import stage_frame as _frame

from .presets import (
    BASELINE,
    BILATERAL,
    EXPRESSIVE,
    METRICS,
    NONINFERIORITY,
    REFERENCES,
    TOLERANCE_FRACTION,
    VARIANTS,
)

#: Decision rules (docs/rules.md). Version 1: the rules its quick verdicts were decided by
#: up to issue 20's review, as docs/claims.md states them; a run records their hashes.
RULES = (
    Rule(
        claim="E2", version=1, kind="test",
        measures=("the paired per-image difference MSE(best bilateral variant) − "
                  "MSE(SA+PE), with training seeds pooled."),
        decision=("The verdict is supported if the CI's upper end is below 0.02 × "
                  "MSE(SA+PE) (non-inferiority) and its lower end is ≤ 0. It is not "
                  "supported if the lower end is above 0."),
        multiplicity="none",
        replication=("two training seeds pooled by combine_replicates (normal quantile "
                     "1.96); intervals over test images and seeds"),
    ),
    Rule(
        claim="E2", version=2, kind="test", key="best_bilateral_rel_diff",
        measures=("the paired per-image difference MSE(best bilateral variant) − "
                  "MSE(SA+PE) to the clean image, relative to MSE(SA+PE); each run pools "
                  "its training seeds. Limits: the best bilateral variant is picked on the "
                  "test images (best of 2); the quick SA+PE net is still improving and "
                  "there is no relative-position softmax baseline yet (both controls "
                  "still to run)."),
        decision=(f"Non-inferiority: supported if the relative difference's interval lies "
                  f"below +{NONINFERIORITY:g} (bilateral at most {NONINFERIORITY:.0%} "
                  f"worse); not supported if it lies above +{NONINFERIORITY:g}; "
                  "inconclusive otherwise."),
        multiplicity="one estimate decides; no correction",
        replication=("at least 5 seeds (bayesattn sweep denoising-2d --preset quick --seeds "
                     "0-4), each pooling its own training seeds; the mean over seeds with a "
                     "Student-t 95% interval."),
        decisions=(Decision(("best_bilateral_rel_diff",), "below",
                            threshold=NONINFERIORITY),),
    ),
)


def _bandwidth_text(train: pd.DataFrame, variant: str) -> str:
    if "layer" not in train or variant not in BILATERAL:
        return "none"
    g = train[(train["variant"] == variant) & (train["metric"] == "bandwidth")
              & (train["replicate"] == 0)]
    by_layer = g.groupby("layer", sort=True)["value"]
    return "; ".join(f"layer {int(li)}: " + ", ".join(f"{v:.2g}" for v in vals)
                     for li, vals in by_layer)


def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Per variant: MSE to u, PSNR, MSE to E[u | x], paired diff vs SA+PE, bandwidths."""
    sm = _frame(results, "summarise")
    train = _frame(results, "train")
    out = []
    for name in (*VARIANTS, *REFERENCES):
        row = {"variant": name}
        for metric in METRICS:
            est = pick(sm, variant=name, metric=metric)
            row[metric] = "-" if est is None else ci_text(
                est, "{:.2f}" if metric == "psnr" else "{:.4f}")
        d = pick(sm, variant=name, against=BASELINE, metric="mse_clean_diff")
        row[f"mse_clean - {BASELINE}"] = "-" if d is None else ci_text(d, "{:+.4f}")
        row["learned sigma_h (seed 0)"] = _bandwidth_text(train, name)
        out.append(row)
    return pd.DataFrame(out)


def decide(diff, baseline_mse: float) -> str:
    """E2's rule on the paired CI of MSE(bilateral) - MSE(SA+PE) (see ``expected``)."""
    if diff is None or not np.isfinite([diff["ci_low"], diff["ci_high"]]).all():
        return "inconclusive"
    if diff["ci_low"] > 0:
        return "not supported"
    if diff["ci_high"] < NONINFERIORITY * baseline_mse:
        return "supported"
    return "inconclusive"


def e2_verdict(results: pd.DataFrame, params: dict) -> Verdict:
    sm = _frame(results, "summarise")
    mse = {v: pick(sm, variant=v, metric="mse_clean") for v in (*VARIANTS, *REFERENCES)}
    post = {v: pick(sm, variant=v, metric="mse_posterior") for v in VARIANTS}
    bil = [b for b in BILATERAL if mse[b] is not None]
    best = min(bil, key=lambda b: float(mse[b]["value"])) if bil else None
    diffs = {v: pick(sm, variant=v, against=BASELINE, metric="mse_clean_diff")
             for v in VARIANTS if v != BASELINE}
    base = mse[BASELINE]
    verdict = ("inconclusive" if best is None or base is None
               else decide(diffs[best], float(base["value"])))
    numbers = {}
    for v, e in mse.items():
        numbers.update({f"{v}_mse{'' if k == 'value' else '_' + k}": x
                        for k, x in ci_numbers(e).items()})
    for v, e in diffs.items():
        numbers.update({f"diff_{v}{'' if k == 'value' else '_' + k}": x
                        for k, x in ci_numbers(e).items()})
    if best is not None and base is not None and diffs[best] is not None:
        scale = float(base["value"])
        numbers.update({f"best_bilateral_rel_diff{suffix}": float(diffs[best][k]) / scale
                        for suffix, k in (("", "value"), ("_ci_low", "ci_low"),
                                          ("_ci_high", "ci_high"))})
    strict = (best is not None and diffs[best] is not None
              and float(diffs[best]["ci_high"]) < 0)
    mse_txt = "; ".join(f"{v} {ci_text(e, '{:.4f}')}" for v, e in mse.items())
    post_txt = "; ".join(f"{v} {ci_text(e, '{:.4f}')}" for v, e in post.items())
    diff_txt = "; ".join(f"{v} {ci_text(d, '{:+.4f}')}" for v, d in diffs.items())
    w = int(params["grid_width"])
    seeds = int(params["train_seeds"])
    return Verdict(
        claim="E2",
        statement=("In 2-D patch denoising with a tiny trained transformer, bilateral "
                   "self-attention (separable spatial x range kernel, optionally with "
                   "twicing) denoises at least as well as softmax attention with absolute "
                   "positional encoding (SA+PE)."),
        expected=("with the same training budget, let b be the bilateral variant (bilateral "
                  "or bilateral+twicing) with the lower mean test MSE to the clean image and "
                  "d the paired per-image difference MSE(b) - MSE(sa+pe) with its 95% "
                  "bootstrap CI (training seeds combined by combine_replicates): supported "
                  f"if the CI's upper end < {NONINFERIORITY:g} x MSE(sa+pe) (non-inferiority"
                  "; it includes d significantly < 0) and its lower end <= 0; not supported "
                  "if the lower end > 0 (SA+PE significantly better); else inconclusive"),
        measured=(f"{w}x{w} GP patches (L = {w * w}, rbf lengthscale "
                  f"{params['gp']['lengthscale']}, noise sd {params['gp']['noise_scale']}), "
                  f"{params['steps']} steps x batch {params['batch_size']}, width "
                  f"{params['dim']}, {params['num_layers']} layer(s), {seeds} training "
                  f"seed(s), {params['test_images']} test images, 95% bootstrap CIs"
                  + (" over test images only (one training seed)" if seeds == 1 else "")
                  + f": MSE to clean {mse_txt} | MSE to exact posterior mean {post_txt} | "
                  f"paired MSE(variant) - MSE(sa+pe): {diff_txt} | best bilateral variant "
                  f"{best}" + (", significantly better than sa+pe" if strict else "") + "."),
        verdict=verdict, numbers=numbers,
    )


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    return [e2_verdict(results, params)]


def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row per trained net (variant, training seed): its test MSE to the clean image
    against the exact posterior mean's MSE on the same test images (the Bayes floor of
    the training loss, reached only by a net that can express E[u | x]); the
    position-blind ``sa`` net is judged by the plateau of its training loss."""
    ev, train = _frame(results, "evaluate"), _frame(results, "train")
    ref = pick(ev, variant="posterior-mean", metric="mse_clean")
    floor = float(ref["value"]) if ref is not None else math.nan
    tol = TOLERANCE_FRACTION * floor
    rows = []
    for r in range(int(params["train_seeds"])):
        for variant in VARIANTS:
            est = pick(ev, variant=variant, replicate=r, metric="mse_clean")
            if est is None:
                continue
            name, measure = f"{variant} (seed {r})", "mean MSE to the clean image, test images"
            if variant in EXPRESSIVE:
                rows.append(convergence_row(
                    name, measure=measure, value=est["value"], se=est["se"], floor=floor,
                    floor_basis="exact posterior mean's MSE on the same test images (the "
                                "Bayes-optimal denoiser, expressible by this net)",
                    tolerance=tol))
                continue
            ok, how = plateau_judgement(train, variant=variant, replicate=r)
            rows.append(convergence_row(
                name, measure=measure, value=est["value"], se=est["se"], floor=math.nan,
                floor_basis=unknown_floor_basis("without positions the net cannot express "
                                                "E[u | x]", how),
                tolerance=tol, converged=ok))
    return pd.DataFrame(rows)
