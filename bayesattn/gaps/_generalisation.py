"""The generalisation gap: test minus training loss on fixed training sets.

Paper 1 (docs/claims.md#p7 and #p8) says the generalisation error of attention trained by
empirical risk minimisation does not depend on the sequence length L and falls with
the number of training sequences N (about N^-1/2 or faster). :func:`generalisation_gap`
trains one network per (N, L) on a fixed training set of N sequences of L tokens and
measures the loss on those same sequences and on fresh ones. :func:`fit_slope` fits
the gap's trend in L or N from the summary rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from bayesattn._progress import progress_bar
from bayesattn.metrics import Estimate, bootstrap_ci, kl_per_dataset

if TYPE_CHECKING:  # pragma: no cover
    from bayesattn.inference import TrainConfig

__all__ = ["generalisation_gap", "fit_slope", "sequence_losses"]


def sequence_losses(
    net: Any, model: Any, batch: Any, *, chunk: int = 1024
) -> dict[str, np.ndarray]:
    """Per-sequence losses of a network on a batch.

    Args:
        net: An :class:`~bayesattn.inference.AmortizedPosterior`.
        model: Its model.
        batch: A :class:`~bayesattn.models.SetBatch` of B sequences.
        chunk: Sequences per forward pass.

    Returns:
        ``{"nll": -log q(z | x) (B,)}``, plus ``"kl": KL(p || q) (B,)`` when the model has
        an exact posterior.
    """
    device = next(net.parameters()).device
    nll, kl = [], []
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for start in range(0, batch.num_sequences, chunk):
                part = batch[torch.arange(start, min(start + chunk, batch.num_sequences))]
                x = part.x.to(device)
                q = net.posterior(x.float() if x.is_floating_point() else x, part.mask.to(device))
                z = part.z.to(device)
                nll.append(-q.log_prob(z.float() if z.is_floating_point() else z).double().cpu())
                if model.has_exact_posterior:
                    p = model.exact_posterior(part.x.cpu(), part.mask.cpu())
                    kl.append(torch.as_tensor(kl_per_dataset(p, _cpu(q))))
    finally:
        net.train(was_training)
    out = {"nll": torch.cat(nll).numpy()}
    if kl:
        out["kl"] = torch.cat(kl).numpy()
    return out


def _cpu(q):
    if isinstance(q, torch.distributions.Categorical):
        return torch.distributions.Categorical(logits=q.logits.double().cpu())
    return q


def _difference(test: np.ndarray, train: np.ndarray, *, num_resamples: int, seed: int) -> Estimate:
    """Mean(test) - mean(train) with a bootstrap CI resampling both sets independently."""
    value = float(test.mean() - train.mean())
    rng = np.random.default_rng(seed)
    boots = np.array([
        test[rng.integers(0, test.size, test.size)].mean()
        - train[rng.integers(0, train.size, train.size)].mean()
        for _ in range(int(num_resamples))
    ])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Estimate(value, float(lo), float(hi), float(boots.std(ddof=1)),
                    int(min(test.size, train.size)))


def generalisation_gap(
    model: Any,
    *,
    train_sizes: Sequence[int],
    lengths: Sequence[int],
    training: TrainConfig | None = None,
    encoder: str = "set-transformer",
    encoder_options: dict | None = None,
    num_test: int = 512,
    seed: int = 0,
    net_factory: Callable[[], Any] | None = None,
    num_resamples: int = 1000,
    progress: bool = False,
    return_networks: bool = False,
    return_histories: bool = False,
    checkpoint_root: str | os.PathLike[str] | None = None,
    **train_settings: Any,
) -> pd.DataFrame | tuple[Any, ...]:
    """Train on fixed sets of N sequences of L tokens; measure test minus training loss.

    Every (N, L) pair gets a fresh network (same initialisation seed), trained for
    ``steps`` steps on minibatches drawn from its fixed training set
    (:func:`~bayesattn.inference.fixed_training_set`), then scored on that set and on
    ``num_test`` fresh sequences of the same length.

    Args:
        model: The model to simulate from.
        train_sizes: The N values (integers >= 1).
        lengths: The L values (integers >= 1; every sequence has exactly L tokens).
        training: How each network is trained, a
            :class:`~bayesattn.inference.TrainConfig` (``steps`` is required, here or in
            ``train_settings``; ``batch_size``, ``objective``, ``lr``, ``device``, ... take
            TrainConfig's defaults). The study sets ``seq_len`` (L), ``train_size`` (N),
            ``seed``, the checkpoint and ``progress`` of each network itself.
        encoder, encoder_options: Passed to :class:`~bayesattn.inference.AmortizedPosterior`.
        num_test: Fresh test sequences per (N, L).
        seed: Seeds the networks, the training sets and the test sets.
        net_factory: Optional zero-argument function returning a fresh network (overrides
            ``encoder``/``encoder_options``).
        num_resamples: Bootstrap resamples for the CIs.
        progress: Show a progress bar over the (N, L) grid (``bayesattn._progress``).
        return_networks: Also return the trained networks, ``{(N, L): net}``.
        return_histories: Also return their training histories, ``{(N, L): DataFrame}``
            (``TrainResult.history``: one row per step), e.g. to check convergence.
        checkpoint_root: Checkpoint each network into ``checkpoint_root/N<N>-L<L>/`` and
            resume from there (a killed grid continues where it stopped; same numbers
            on a CPU).
        **train_settings: Fields of ``TrainConfig`` applied on top of ``training``, e.g.
            ``steps=500, batch_size=64, objective="kl", lr=1e-3``.

    Returns:
        Tidy frame with columns ``N, L, metric, value, ci_low, ci_high, se, n`` and the
        metrics ``train_nll``, ``test_nll``, ``gap_nll`` (= test - train, in nats per
        sequence) and, for models with an exact posterior, ``train_kl``, ``test_kl``,
        ``gap_kl``. With ``return_networks`` and/or ``return_histories``, the tuple
        ``(frame, networks)``, ``(frame, histories)`` or ``(frame, networks, histories)``.
    """
    from bayesattn.inference import AmortizedPosterior, TrainConfig, fixed_training_set, train

    base = TrainConfig.make(training, **train_settings)

    sizes = [int(n) for n in train_sizes]
    lens = [int(v) for v in lengths]
    if not sizes or min(sizes) < 1 or not lens or min(lens) < 1:
        raise ValueError(
            f"train_sizes and lengths: expected non-empty lists of integers >= 1; got "
            f"{list(train_sizes)!r} and {list(lengths)!r}."
        )
    grid = [(n, length) for length in lens for n in sizes]
    grid = progress_bar(grid, desc=f"generalisation ({model.name})", leave=False,
                        disable=not progress)
    rows, nets, histories = [], {}, {}
    for n, length in grid:
        if net_factory is not None:
            net = net_factory()
        else:
            net = AmortizedPosterior(model, encoder=encoder, encoder_options=encoder_options,
                                     seed=seed)
        run_seed = int(np.random.SeedSequence([seed, n, length]).generate_state(1)[0] % 2**31)
        ckpt = (Path(checkpoint_root) / f"N{n}-L{length}" if checkpoint_root is not None
                else None)
        result = train(net, model, base, seq_len=length, seed=run_seed, train_size=n,
                       progress=False, checkpoint_dir=ckpt, resume=ckpt is not None)
        train_set = fixed_training_set(model, n, length, seed=run_seed)
        test_set = model.simulate(num_test, length, seed=run_seed + 1)
        tr = sequence_losses(net, model, train_set)
        te = sequence_losses(net, model, test_set)
        for key in tr:
            for name, values in ((f"train_{key}", tr[key]), (f"test_{key}", te[key])):
                est = bootstrap_ci(values, num_resamples=num_resamples, seed=seed)
                rows.append({"N": n, "L": length, "metric": name, **est.row()})
            est = _difference(te[key], tr[key], num_resamples=num_resamples, seed=seed)
            rows.append({"N": n, "L": length, "metric": f"gap_{key}", **est.row()})
        if return_networks:
            nets[(n, length)] = net
        if return_histories:
            histories[(n, length)] = result.history
    frame = pd.DataFrame(rows)
    extra = (nets,) * return_networks + (histories,) * return_histories
    return (frame, *extra) if extra else frame


def fit_slope(
    summary: pd.DataFrame,
    metric: str,
    *,
    x: str,
    log_x: bool = True,
    log_y: bool = False,
    where: dict[str, Any] | None = None,
    num_resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Least-squares slope of a summarised metric against ``x``, with a bootstrap CI.

    Each point is redrawn from a normal with its own mean (``value``) and standard
    error (``se``) (a parametric bootstrap over the summary rows); the slope of each
    redraw gives the CI. With ``log_y`` the slope is a log-log rate (e.g. -0.5 for
    N^-1/2) and each point is redrawn on the log scale, from a normal with mean
    ``log(value)`` and standard error ``se / value`` (delta method), so no redraw is
    lost; the estimate is refused when a mean itself is <= 0. The delta method is poor
    for points whose mean lies within about 2 se of 0: leave those out of the fit.

    Args:
        summary: A tidy frame with columns ``metric, value, se`` and the ``x`` column.
        metric: Which metric to fit.
        x: The column to regress on (e.g. ``"N"`` or ``"L"``).
        log_x, log_y: Take logs of x and of the metric.
        where: Optional filters, e.g. ``{"L": 32}``.
        num_resamples, seed: Bootstrap settings.

    Returns:
        :class:`~bayesattn.metrics.Estimate` of the slope, ``n`` = number of points.
    """
    data = summary[summary["metric"] == metric]
    for key, val in (where or {}).items():
        data = data[data[key] == val]
    if data[x].nunique() < 2:
        raise ValueError(
            f"fit_slope: need >= 2 distinct {x} values for {metric!r}; got {data[x].nunique()}."
        )
    data = data.sort_values(x)
    xs = data[x].to_numpy(float)
    xs = np.log(xs) if log_x else xs
    mean, se = data["value"].to_numpy(float), np.nan_to_num(data["se"].to_numpy(float))
    if log_y and (mean <= 0).any():
        raise ValueError(
            f"fit_slope: {metric} has a mean <= 0 at some {x}, so a log-log slope is "
            "undefined; fit it with log_y=False."
        )

    if log_y:
        mean, se = np.log(mean), se / mean

    def slope(ys: np.ndarray) -> float:
        return float(np.polyfit(xs, ys, 1)[0])

    value = slope(mean)
    rng = np.random.default_rng(seed)
    boots = np.array([slope(rng.normal(mean, se)) for _ in range(int(num_resamples))])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Estimate(value, float(lo), float(hi),
                    float(boots.std(ddof=1)) if boots.size > 1 else float("nan"), len(xs))
