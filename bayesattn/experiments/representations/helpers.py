"""Building blocks of the representations stages: the networks and their training, the
non-sufficient summary, token permutations and the spread of an output over them."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _encoder_options(encoder: str, params: dict) -> dict:
    if encoder == "deepsets":
        return {"dim": params["dim"]}
    return {"dim": params["dim"], "num_heads": params["num_heads"]}


def build_net(model, params: dict, seed: int, encoder: str = "set-transformer"):
    """A length-aware :class:`AmortizedPosterior` of the encoder family ``encoder``."""
    from bayesattn.inference import AmortizedPosterior

    return AmortizedPosterior(model, encoder=encoder, length_aware=True, seed=seed,
                              encoder_options=_encoder_options(encoder, params))


def fit_net(ctx, net, model, *, steps: int, objective: str, seed: int,
            train_size: int | None = None) -> dict:
    """Train ``net`` in place; return a results row with the final training loss."""

    p = ctx.params
    # seeds are derived per network, so objective + seed names it within the stage
    result = ctx.train(f"{objective}-{seed}", net, model, steps=steps,
                       batch_size=p["batch_size"], seq_len=tuple(p["seq_len"]),
                       objective=objective, seed=seed, device=ctx.device, lr=p["lr"],
                       train_size=train_size)
    tail = result.history.tail(max(1, len(result.history) // 10))
    row = {"metric": "final_train_loss", "value": float(tail["loss"].mean()),
           "ci_low": np.nan, "ci_high": np.nan, "se": float(tail["loss"].sem()),
           "n": len(tail)}  # no wall time here: results.csv must be reproducible
    return {**row, **plateau_numbers(result.history)}


def plateau_numbers(history: pd.DataFrame) -> dict:
    """``loss_plateau`` of the training loss (last 10% of the steps vs the 10% before) as
    ``plateau_*`` columns, NaN when the history is too short to tell."""
    from bayesattn.runner import loss_plateau

    try:
        stats = loss_plateau(history, "loss")
    except ValueError:
        stats = dict.fromkeys(("last", "drop", "se", "relative_drop"), np.nan)
    return {f"plateau_{k}": float(v) for k, v in stats.items()}


def mean_without_length(model):
    """Non-sufficient summary: the mean of the featurised tokens, without the count L."""
    import torch

    from bayesattn.inference import TokenFeaturizer

    featurize = TokenFeaturizer(model)

    def rep(x, mask):
        feats = featurize(x).to(torch.float64)  # (B, L, F)
        keep = mask[..., None].to(feats.dtype)  # (B, L, 1)
        return (feats * keep).sum(1) / keep.sum(1)  # (B, F)

    return rep


def paired_difference(per_seq: np.ndarray, first: int, last: int, *, seed: int,
                      num_resamples: int) -> dict:
    """Bootstrap row for ``mean(per_seq[:, first] - per_seq[:, last])`` (paired over rows)."""
    from bayesattn.metrics import bootstrap_ci

    diff = per_seq[:, first] - per_seq[:, last]
    return bootstrap_ci(diff, num_resamples=num_resamples, seed=seed).row()


def positional_control(net, amplitude: float = 1.0):
    """CONTROL ONLY: ``net`` with an additive sinusoidal positional encoding on its inputs.

    Returns ``(x, mask) -> q(z | x)`` that adds ``amplitude * sin(i * f_j + phase_j)`` to
    feature j of the token at position i before the (trained) encoder: the kind of
    absolute positional encoding that paper 1's exchangeable setting leaves out, so the
    output depends on the order of the tokens. ``posterior.represent`` is the pooled
    representation it feeds to the head.
    """
    import torch

    def represent(x, mask):
        x, mask = net.model.validate_tokens(x, mask)
        feats = net.featurize(x)  # (B, L, F)
        length, width = feats.shape[1], feats.shape[2]
        pos = torch.arange(length, dtype=feats.dtype)[:, None]  # (L, 1)
        freq = 1.0 / (1.0 + torch.arange(width, dtype=feats.dtype))[None, :]  # (1, F)
        phase = 0.5 * torch.arange(width, dtype=feats.dtype)[None, :]
        pooled = net.encoder(feats + amplitude * torch.sin(pos * freq + phase), mask)
        if net.length_aware:
            pooled = torch.cat([pooled, mask.sum(-1, keepdim=True).to(pooled.dtype).log()], -1)
        return pooled

    def posterior(x, mask):
        return net.head(represent(x, mask).float())

    posterior.represent = represent
    return posterior


def permute_sets(x, mask, num_permutations: int, seed: int):
    """``num_permutations`` random reorderings of every set (padding moves with its mask).

    Returns:
        ``(xs, masks)``, each a list of tensors shaped like ``x`` and ``mask``.
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    b, length = mask.shape
    rows = torch.arange(b)[:, None]
    xs, masks = [], []
    for _ in range(int(num_permutations)):
        order = torch.argsort(torch.rand(b, length, generator=gen), dim=-1)  # (B, L)
        xs.append(x[rows, order])
        masks.append(mask[rows, order])
    return xs, masks


def spread(base: np.ndarray, permuted: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sequence change of an output ``(B, J)`` over permutations.

    Returns per-sequence arrays ``(B,)``: ``max_abs`` (largest |change|), ``mean_abs``
    (mean |change|) and ``max_rel`` (largest |change| / (1 + |base|)).
    """
    base = np.asarray(base, dtype=np.float64)
    diffs = np.stack([np.abs(np.asarray(p, dtype=np.float64) - base) for p in permuted])
    rel = diffs / (1.0 + np.abs(base))[None]
    b = base.shape[0]
    return {"max_abs": diffs.reshape(len(permuted), b, -1).max(axis=(0, 2)),
            "mean_abs": diffs.reshape(len(permuted), b, -1).mean(axis=(0, 2)),
            "max_rel": rel.reshape(len(permuted), b, -1).max(axis=(0, 2))}
