"""Heads x value width threshold (P11): the pooled summary must be as wide as the statistic.

Paper 1 reads multi-head attention as a set of conditional moments: each head returns a
weighted mean of its d_v-dimensional values, so one attention-pooling layer hands the
posterior head H * d_v numbers (plus L). The exact posterior is a function of L and a
minimal sufficient statistic of dimension s, so the error should drop sharply once
H * d_v reaches s and change little beyond it.

The library's attention layers tie the per-head value width to the model width
(d_v = dim / H, so H * d_v = dim always, and a LayerNorm follows the pooling). This
experiment therefore uses its own encoder, built from the library's softmax kernel: a
per-token MLP (width ``hidden``, no mixing across tokens), then ONE multi-head attention
pooling layer with a learned query per head, key width ``key_width`` and value width
d_v per head; the H * d_v pooled numbers, with log L appended, go straight to the
posterior head (no output projection, no norm), so H * d_v is exactly the width of the
bottleneck.

Models (exact posteriors, trained with the exact-KL objective at a fixed L):

- ``nig``: normal-inverse-gamma, z = (mu, sigma2); s = 2 (mean x, mean x^2). The head is
  a diagonal Gaussian on (mu, log sigma2); the best such Gaussian (moment matched) is
  reported as the family floor.
- ``mixture-K<K>``: concept-mixture with K Gaussian concepts at the vertices of a regular
  simplex in d = K - 1 dimensions (unit token noise), so the K - 1 log-likelihood ratios
  are K - 1 independent linear functions of mean x: s = K - 1.

Every configuration is scored on the same fresh sequences (KL(exact || q) per sequence);
ratios between width groups are paired bootstrap estimates over those sequences.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from bayesattn.runner import (
    Experiment,
    Stage,
    StageOutput,
    Verdict,
    ci_numbers,
    ci_text,
    convergence_row,
    pick,
    plateau_judgement,
    plateau_rows,
    register,
    unknown_floor_basis,
)
from bayesattn.runner import stage_frame as _frame

#: drop factor the claim needs between widths below s and widths in [s, 2s)
DROP_FACTOR = 3.0
#: Largest excess of held-out KL(exact || q) over the family floor (nats) at which a
#: network with H * d_v >= s counts as converged: well below the errors the threshold
#: separates (the narrowest below-s networks sit at 0.1-2 nats, and the drop needs them
#: DROP_FACTOR times above the at-s ones).
CONVERGENCE_TOLERANCE = 0.02
NIG = {"name": "normal-inverse-gamma", "params": {}, "stat_dim": 2, "head": "gaussian-diag"}

PRESETS = {
    "smoke": {"models": ["nig", "mixture-K4"], "heads": [1, 2], "value_widths": [1],
              "L": 16, "radius": 0.5, "steps": 10, "batch_size": 32, "train_size": 128,
              "lr": 3e-3, "hidden": 16, "key_width": 4, "num_sequences": 16,
              "num_resamples": 100},
    # 1000 steps of 128 at lr 1e-2 on 8192 sequences (was 500 of 64 at 3e-3 on 4096): NIG's
    # networks at H*d_v >= s were 0.01-0.11 nats above their family floor (issue 12); with
    # 800 steps the single-head ones were still 0.021-0.023 above it
    "quick": {"models": ["nig", "mixture-K4"], "heads": [1, 2, 4], "value_widths": [1, 2, 3],
              "L": 32, "radius": 0.5, "steps": 1000, "batch_size": 128, "train_size": 8192,
              "lr": 1e-2, "hidden": 32, "key_width": 8, "num_sequences": 256,
              "num_resamples": 1000},
    "full": {"models": ["nig", "mixture-K4", "mixture-K6"], "heads": [1, 2, 3, 4, 8],
             "value_widths": [1, 2, 3, 4, 6], "L": 32, "radius": 0.5, "steps": 4000,
             "batch_size": 256, "train_size": 65536, "lr": 2e-3, "hidden": 64,
             "key_width": 16, "num_sequences": 1024, "num_resamples": 2000},
}


# ----------------------------------------------------------------------------- models
def simplex_means(K: int, radius: float) -> np.ndarray:
    """Vertices of a regular simplex: K points in K - 1 dimensions, centred, norm ``radius``.

    Returns:
        Array of shape ``(K, K - 1)``; the K - 1 differences to the first vertex are
        linearly independent, so a Gaussian mixture with these means has a sufficient
        statistic of dimension exactly K - 1.
    """
    if not isinstance(K, int | np.integer) or K < 2:
        raise ValueError(f"K must be an integer >= 2; got {K!r}.")
    if not radius > 0:
        raise ValueError(f"radius must be > 0; got {radius!r}.")
    centred = np.eye(K) - 1.0 / K  # (K, K): rows sum to 0, rank K - 1
    basis = np.linalg.svd(centred)[2][: K - 1]  # (K - 1, K): orthonormal rows spanning them
    points = centred @ basis.T  # (K, K - 1)
    return radius * points / np.linalg.norm(points, axis=1, keepdims=True)


def model_spec(key: str, radius: float) -> dict:
    """Name, parameters, sufficient-statistic dimension and head kind of a model key."""
    if key == "nig":
        return dict(NIG)
    if key.startswith("mixture-K") and key[len("mixture-K"):].isdigit():
        K = int(key[len("mixture-K"):])
        means = simplex_means(K, radius)
        return {"name": "concept-mixture", "params": {"means": means.tolist(), "scale": 1.0},
                "stat_dim": K - 1, "head": "auto"}
    raise ValueError(f"unknown model key {key!r}; expected 'nig' or 'mixture-K<K>' (K >= 2).")


def _model(key: str, radius: float):
    from bayesattn import models

    spec = model_spec(key, radius)
    return models.get(spec["name"], **spec["params"])


def configs(params: dict) -> list[dict]:
    """Every (model, heads, value width) of the grid, with its total width and s."""
    out = []
    for key in params["models"]:
        s = model_spec(key, params["radius"])["stat_dim"]
        for h in params["heads"]:
            for dv in params["value_widths"]:
                out.append({"model": key, "heads": int(h), "value_width": int(dv),
                            "width": int(h) * int(dv), "stat_dim": s,
                            "config": f"{key}-H{h}-dv{dv}"})
    return out


def width_group(width: int, stat_dim: int) -> str:
    """``below`` (w < s), ``at`` (s <= w < 2s) or ``above`` (w >= 2s)."""
    if width < stat_dim:
        return "below"
    return "at" if width < 2 * stat_dim else "above"


# ----------------------------------------------------------------------------- network
@functools.lru_cache(maxsize=1)
def net_classes():
    """``(AttentionPool, HeadsWidthPosterior)``, built on first use (torch stays lazy)."""
    import torch
    from torch import nn

    from bayesattn.inference import AmortizedPosterior, SetEncoder, make_kernel

    class AttentionPool(SetEncoder):
        """Per-token MLP, then one multi-head attention pooling with H * d_v outputs.

        x ``(B, L, in_dim)``, mask ``(B, L)`` -> ``(B, heads * value_width)``: head h
        returns ``sum_i softmax_i(q_h . k_h(x_i) / sqrt(key_width)) v_h(x_i)``.
        """

        def __init__(self, in_dim: int, heads: int, value_width: int, hidden: int = 32,
                     key_width: int = 8) -> None:
            super().__init__()
            self.in_dim, self.heads, self.value_width = int(in_dim), int(heads), int(value_width)
            self.key_width = int(key_width)
            self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, hidden), nn.GELU())
            self.query = nn.Parameter(torch.randn(heads, key_width) / math.sqrt(key_width))
            self.k_proj = nn.Linear(hidden, heads * key_width)
            self.v_proj = nn.Linear(hidden, heads * value_width)
            self.kernel = make_kernel("softmax")
            self.out_dim = self.heads * self.value_width

        def encode(self, x, mask):
            B, L, _ = x.shape
            h = self.phi(x)  # (B, L, hidden)
            H, dk, dv = self.heads, self.key_width, self.value_width
            k = self.k_proj(h).view(B, L, H, dk).transpose(1, 2)  # (B, L, H*dk) -> (B, H, L, dk)
            v = self.v_proj(h).view(B, L, H, dv).transpose(1, 2)  # (B, L, H*dv) -> (B, H, L, dv)
            q = self.query[None, :, None, :].expand(B, H, 1, dk)  # (H, dk) -> (B, H, 1, dk)
            out = self.kernel.attend(q.to(k.dtype), k, v, mask)  # (B, H, 1, dv)
            return out.reshape(B, H * dv)  # (B, H, 1, dv) -> (B, H * dv)

    class HeadsWidthPosterior(AmortizedPosterior):
        """An :class:`AmortizedPosterior` whose encoder is :class:`AttentionPool`.

        Built as a length-aware AmortizedPosterior (so ``train`` and every gap function
        accept it) whose placeholder encoder is then replaced; ``save``/``load`` of the
        library do not rebuild it (rebuild with the same arguments and load the state
        dict).
        """

        def __init__(self, model, heads: int, value_width: int, *, hidden: int = 32,
                     key_width: int = 8, head: str = "auto", seed: int = 0) -> None:
            width = int(heads) * int(value_width)
            super().__init__(model, encoder="deepsets", head=head, length_aware=True,
                             seed=seed, encoder_options={"dim": width, "num_layers": 1})
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) + 1)
                self.encoder = AttentionPool(self.featurize.in_dim, heads, value_width,
                                             hidden, key_width)
            self.config["encoder"] = "attention-pool"
            self.config["encoder_options"] = {"heads": int(heads),
                                              "value_width": int(value_width),
                                              "hidden": int(hidden), "key_width": int(key_width)}

    return AttentionPool, HeadsWidthPosterior


def build_net(model, cfg: dict, params: dict, seed: int):
    """The network of one grid configuration (``cfg`` a row of :func:`configs`)."""
    _, cls = net_classes()
    return cls(model, cfg["heads"], cfg["value_width"], hidden=params["hidden"],
               key_width=params["key_width"],
               head=model_spec(cfg["model"], params["radius"])["head"], seed=seed)


# ----------------------------------------------------------------------------- stages
def _train(ctx) -> StageOutput:
    p = ctx.params
    rows, states, seconds = [], {}, {}
    for cfg in ctx.tqdm(configs(p), desc="configurations"):
        model = _model(cfg["model"], p["radius"])
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

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(seed))
        fit = exact.sample((num_samples,)).double()  # (S, B, 2)
        draws = exact.sample((num_samples,)).double()  # (S, B, 2)
    u_fit = torch.stack([fit[..., 0], fit[..., 1].log()], -1)  # (S, B, 2)
    u = torch.stack([draws[..., 0], draws[..., 1].log()], -1)  # (S, B, 2)
    normal = torch.distributions.Normal(u_fit.mean(0), u_fit.std(0))  # batch (B, 2)
    log_q = normal.log_prob(u).sum(-1) - draws[..., 1].log()  # (S, B)
    log_p = exact.log_prob(draws).double()  # (S, B)
    return (log_p - log_q).mean(0).numpy()


def _evaluate(ctx) -> StageOutput:
    import torch

    from bayesattn.gaps import per_dataset_gaps, summarise

    p = ctx.params
    per_frames = []
    for key in p["models"]:
        model = _model(key, p["radius"])
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
        model = _model(key, p["radius"])
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
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(ctx.seed_for("draws", key, label))
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


def _threshold(ctx) -> pd.DataFrame:
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


# ----------------------------------------------------------------------------- report
def headline(results: pd.DataFrame) -> pd.DataFrame:
    """KL(exact || q) [95% CI] in nats per model and heads (rows) and value width (columns)."""
    ev = _frame(results, "evaluate")
    ev = ev[ev["metric"].isin(["kl_forward", "kl_floor"])].copy()
    ev["cell"] = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]"
                  for v, lo, hi in zip(ev["value"], ev["ci_low"], ev["ci_high"], strict=True)]
    ev["model"] = [f"{m} (s={int(s)})" for m, s in zip(ev["model"], ev["stat_dim"], strict=True)]
    table = ev.pivot_table(index=["model", "heads"], columns="value_width", values="cell",
                           aggfunc="first", sort=False)
    table.columns = [f"d_v={int(c)}" if c > 0 else "family floor" for c in table.columns]
    table = table.fillna("").reset_index()
    table["heads"] = [int(h) if h > 0 else "-" for h in table["heads"]]
    return table


def model_verdict(drop, above, separation) -> str:
    """Verdict of one model from its drop ratio, above-threshold ratio and CI separation.

    supported: drop ratio CI low >= DROP_FACTOR, every below-threshold config's CI above
    every config's CI at or above s (separation > 1), and the above ratio's CI high below
    the drop ratio's CI low. not supported: drop ratio CI high < DROP_FACTOR, or the above
    ratio's CI low above the drop ratio's CI high. inconclusive otherwise.
    """
    if drop is None:
        return "inconclusive"
    if drop["ci_high"] < DROP_FACTOR or (above is not None
                                          and above["ci_low"] > drop["ci_high"]):
        return "not supported"
    if (drop["ci_low"] >= DROP_FACTOR and separation is not None
            and separation["value"] > 1 and above is not None
            and above["ci_high"] < drop["ci_low"]):
        return "supported"
    return "inconclusive"


def verdicts(results: pd.DataFrame, params: dict) -> list[Verdict]:
    th = _frame(results, "threshold")
    parts, per_model, numbers = [], [], {}
    for key in params["models"]:
        s = model_spec(key, params["radius"])["stat_dim"]
        drop = pick(th, model=key, metric="drop_ratio") if len(th) else None
        above = pick(th, model=key, metric="above_ratio") if len(th) else None
        sep = pick(th, model=key, metric="separation") if len(th) else None
        v = model_verdict(drop, above, sep)
        per_model.append(v)
        sep_text = "n/a" if sep is None else f"{sep['value']:.2f}"
        parts.append(f"{key} (s={s}): drop KL(w<s)/KL(s<=w<2s) = {ci_text(drop, '{:.2f}')}, "
                     f"beyond KL(s<=w<2s)/KL(w>=2s) = {ci_text(above, '{:.2f}')}, "
                     f"CI separation {sep_text} -> {v}")
        numbers.update({f"{key}_{k}": val for k, val in ci_numbers(drop, "drop").items()})
        numbers.update({f"{key}_above_{k}": val
                        for k, val in ci_numbers(above, "ratio").items()})
    if per_model and all(v == "supported" for v in per_model):
        overall = "supported"
    elif "not supported" in per_model:
        overall = "not supported"
    else:
        overall = "inconclusive"
    return [Verdict(
        claim="P11",
        statement=("Heads x value width must reach the dimension s of the minimal sufficient "
                   "statistic: the error drops sharply there and changes little beyond."),
        expected=(f"for every model, mean KL(exact || q) over configs with H*d_v < s is >= "
                  f"{DROP_FACTOR:g}x that over s <= H*d_v < 2s (95% CI low >= {DROP_FACTOR:g}), "
                  "every below-s config's CI lies above every config's CI at H*d_v >= s, and "
                  "the further ratio KL(s <= H*d_v < 2s) / KL(H*d_v >= 2s) stays below the "
                  f"drop (CI high < drop CI low); not supported if the drop's CI high < "
                  f"{DROP_FACTOR:g} or the further ratio clearly exceeds the drop"),
        measured=(f"at L = {params['L']} (paired 95% bootstrap CIs over test sequences): "
                  + "; ".join(parts) + "."),
        verdict=overall, numbers=numbers,
    )]


def convergence(results: pd.DataFrame, params: dict) -> pd.DataFrame:
    """One row per trained configuration: its held-out KL(exact || q) against its floor.

    With H * d_v >= s the bottleneck can carry the sufficient statistic (and log L is
    appended), so the floor is that of the head family: 0 for the categorical head of a
    mixture, the best diagonal Gaussian (the ``kl_floor`` rows) for NIG; converged means
    within :data:`CONVERGENCE_TOLERANCE` of it. Below s the best a width-w summary can do
    is not known: those configurations are judged by a plateau test of the training KL
    (last 10% of the steps against the 10% before: a drop within 3 SE or below 1%).
    """
    ev, tr = _frame(results, "evaluate"), _frame(results, "train")
    measure = f"mean KL(exact || q), nats, held-out sets at L = {params['L']}"
    rows = []
    for cfg in configs(params):
        est = pick(ev, config=cfg["config"], metric="kl_forward")
        value = float(est["value"]) if est is not None else float("nan")
        se = float(est["se"]) if est is not None else float("nan")
        if cfg["width"] >= cfg["stat_dim"]:
            floor_row = pick(ev, model=cfg["model"], metric="kl_floor")
            if floor_row is not None:
                floor = float(floor_row["value"])
                basis = (f"best diagonal Gaussian on (mu, log sigma2) (H*d_v = {cfg['width']} "
                         f">= s = {cfg['stat_dim']}: the summary can carry the statistic)")
            else:
                floor = 0.0
                basis = (f"0: H*d_v = {cfg['width']} >= s = {cfg['stat_dim']}, so the summary "
                         "can carry the statistic and the head can express the exact posterior")
            rows.append(convergence_row(cfg["config"], measure=measure, value=value, se=se,
                                        floor=floor, floor_basis=basis,
                                        tolerance=CONVERGENCE_TOLERANCE))
            continue
        flat, how = plateau_judgement(tr, "training KL", config=cfg["config"])
        rows.append(convergence_row(
            cfg["config"], measure=measure, value=value, se=se, floor=float("nan"),
            floor_basis=unknown_floor_basis(
                f"H*d_v = {cfg['width']} < s = {cfg['stat_dim']}, the best summary of that "
                "width is not known", how, "training KL"),
            tolerance=CONVERGENCE_TOLERANCE, converged=flat))
    return pd.DataFrame(rows)


def work(params: dict) -> float:
    """Compute of a preset, in millions of token-multiply-adds (roughly).

    Per token, the per-token MLP costs ``in_dim * hidden + hidden^2`` and the key and value
    projections ``hidden * H * (key_width + d_v)``; a training step is about 3 forward
    passes over ``batch_size * L`` tokens, plus a fixed optimizer/launch overhead counted
    as 2e5 multiply-adds per parameter-free step. Evaluation scores ``num_sequences * L``
    tokens per configuration (one forward pass) and bootstraps each configuration
    ``num_resamples`` times over ``num_sequences``; NIG's family floor draws 2 x 4000
    samples per test sequence.
    """
    hidden, kw, L = float(params["hidden"]), float(params["key_width"]), float(params["L"])
    total = 0.0
    for cfg in configs(params):
        in_dim = 1.0 if cfg["model"] == "nig" else float(cfg["stat_dim"])
        per_token = (in_dim * hidden + hidden ** 2
                     + hidden * cfg["heads"] * (kw + cfg["value_width"]))
        total += params["steps"] * (3 * params["batch_size"] * L * per_token + 2e5)
        total += params["num_sequences"] * (L * per_token + params["num_resamples"] * 20)
    if "nig" in params["models"]:
        total += params["num_sequences"] * 8000 * 50
    return total / 1e6


def figures(ctx, results: pd.DataFrame):
    from . import _figures_heads

    return _figures_heads.make(ctx, results)


EXPERIMENT = register(Experiment(
    name="heads-width",
    title="Heads x value width threshold at the sufficient-statistic dimension",
    claims=("P11",),
    description=__doc__.split("\n\n", 1)[1].strip(),
    presets=PRESETS,
    stages=(Stage("train", _train), Stage("evaluate", _evaluate),
            Stage("threshold", _threshold)),
    figures=figures,
    verdicts=verdicts,
    headline=headline,
    convergence=convergence,
    work=work,
))
