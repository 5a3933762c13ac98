"""Probes: how much of a target ``y`` can be read off frozen features.

A probe is a small predictor fitted on top of a frozen representation; its test
negative log-likelihood, compared with the Bayes risk, is the *sufficiency gap* of
the representation (docs/claims.md#p1). Two families:

- ``"categorical"``: multinomial logistic regression (``hidden=0``) or a one-hidden-
  layer MLP with a softmax output;
- ``"gaussian"``: a heteroscedastic Gaussian, ``y ~ N(m(f), exp(s(f)))`` with ``m`` and
  ``s`` linear in the features (``hidden=0``) or the two outputs of an MLP. The linear
  fit starts from the closed-form ridge solution of the mean with a constant variance,
  so a homoscedastic target is solved in closed form and never worse than ridge.

Features are standardised with the training mean and standard deviation (constant
columns are left unscaled). The fit is full-batch L-BFGS in float64 with a strong-Wolfe
line search, so it is deterministic: linear probes start from zero (``seed`` is unused),
MLP probes from weights drawn with a local generator seeded by ``seed``. The fit runs
on one torch thread and one BLAS thread: for problems this small, thread hand-offs
cost far more than they save (on a busy 2-core machine, up to a hundredfold).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from bayesattn._checks import check_int

__all__ = ["fit_probe", "PROBE_KINDS"]

PROBE_KINDS = ("categorical", "gaussian")


def _features(value: Any, name: str) -> torch.Tensor:
    """A finite float64 ``(N, d)`` tensor on the CPU."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    arr = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"{name}: expected a 2-D array of shape (N, d) with N, d >= 1; "
            f"got shape {tuple(arr.shape)}."
        )
    if not bool(torch.isfinite(arr).all()):
        bad = int((~torch.isfinite(arr)).sum())
        raise ValueError(
            f"{name}: expected finite features, got {bad} NaN/inf of {arr.numel()}; "
            "check the representation for overflow or empty sequences."
        )
    return arr


def _targets(value: Any, n: int, name: str, kind: str) -> torch.Tensor:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    arr = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) to match the features; "
                         f"got {tuple(arr.shape)}.")
    if not bool(torch.isfinite(arr).all()):
        raise ValueError(f"{name}: expected finite targets, got NaN/inf.")
    if kind == "categorical":
        if not bool((arr == arr.round()).all()) or bool((arr < 0).any()):
            raise ValueError(f"{name}: categorical targets must be integer class ids >= 0.")
        return arr.long()
    return arr


def _init_mlp(d: int, hidden: int, out: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(int(seed))
    w1 = torch.randn(d, hidden, generator=gen, dtype=torch.float64) / math.sqrt(d)
    w2 = torch.randn(hidden, out, generator=gen, dtype=torch.float64) / math.sqrt(hidden)
    return [w1, torch.zeros(hidden, dtype=torch.float64), w2,
            torch.zeros(out, dtype=torch.float64)]


def _forward(params: list[torch.Tensor], f: torch.Tensor) -> torch.Tensor:
    if len(params) == 2:
        return f @ params[0] + params[1]
    w1, b1, w2, b2 = params
    return torch.tanh(f @ w1 + b1) @ w2 + b2


def _nll(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-row negative log-likelihood ``(N,)`` of standardised targets."""
    if kind == "categorical":
        return -torch.log_softmax(out, -1).gather(-1, y[:, None]).squeeze(-1)
    mean, log_var = out[:, 0], out[:, 1].clamp(-30.0, 30.0)
    return 0.5 * (math.log(2 * math.pi) + log_var + (y - mean) ** 2 / log_var.exp())


def _lbfgs(params, f, y, kind, l2, max_iter) -> None:
    """Minimise the penalised mean NLL in place with SciPy's L-BFGS-B (float64).

    SciPy rather than ``torch.optim.LBFGS``: same algorithm, deterministic, and no
    one-off import of torch's compiler stack (seconds) on the first call.
    """
    from scipy.optimize import minimize

    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def unpack(theta: np.ndarray) -> list[torch.Tensor]:
        parts = torch.from_numpy(theta).split(sizes)
        return [t.reshape(sh).requires_grad_(True) for t, sh in zip(parts, shapes, strict=True)]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ps = unpack(theta)
        loss = _nll(_forward(ps, f), y, kind).mean()
        loss = loss + l2 * sum((w**2).sum() for w in ps[0::2])  # weights, not biases
        grads = torch.autograd.grad(loss, ps)
        return float(loss.detach()), torch.cat([g.reshape(-1) for g in grads]).numpy()

    theta0 = torch.cat([p.reshape(-1) for p in params]).numpy()
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter), "gtol": 1e-10, "ftol": 1e-14,
                            "maxcor": 20})
    for p, t in zip(params, unpack(res.x), strict=True):
        p.copy_(t.detach())


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch and the BLAS/OpenMP pools of NumPy/SciPy on one thread; restored on exit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


def fit_probe(
    features_train: Any,
    y_train: Any,
    features_test: Any,
    y_test: Any,
    *,
    kind: str = "categorical",
    seed: int = 0,
    l2: float | None = None,
    hidden: int = 0,
    num_classes: int | None = None,
    max_iter: int = 500,
) -> np.ndarray:
    """Fit a probe for ``y`` on frozen training features; return the per-row test NLL.

    Args:
        features_train: Training features, shape ``(N, d)`` (tensor or array).
        y_train: Training targets, shape ``(N,)``: class ids for ``"categorical"``, reals
            for ``"gaussian"``.
        features_test: Test features, shape ``(N_test, d)``.
        y_test: Test targets, shape ``(N_test,)``.
        kind: ``"categorical"`` (softmax over classes) or ``"gaussian"``
            (heteroscedastic Normal).
        seed: Seed of the MLP initialisation (linear probes start from zero).
        l2: Ridge penalty on the weights (not the biases), added to the mean NLL;
            None = 1e-4 for a linear probe, 1e-2 for an MLP (whose weights otherwise grow
            until it overfits a few thousand sequences).
        hidden: Width of the hidden layer; 0 gives a linear probe.
        num_classes: Number of classes C for ``"categorical"``; None = 1 + the largest
            class id seen in train or test.
        max_iter: L-BFGS iterations.

    Returns:
        float64 array of shape ``(N_test,)``: ``-log p_probe(y_test[i] | features_test[i])``
        in the units of ``y`` (nats).

    Raises:
        ValueError: wrong shapes, non-finite values, bad ``kind``/``hidden``/``l2``.
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind: expected one of {PROBE_KINDS}, got {kind!r}.")
    check_int(hidden, "hidden (0 = linear)", low=0)
    if l2 is None:
        l2 = 1e-4 if hidden == 0 else 1e-2
    if not (isinstance(l2, (int, float)) and l2 >= 0 and math.isfinite(l2)):
        raise ValueError(f"l2: expected a finite number >= 0, got {l2!r}.")
    f_tr = _features(features_train, "features_train")
    f_te = _features(features_test, "features_test")
    if f_tr.shape[1] != f_te.shape[1]:
        raise ValueError(f"features_test: expected {f_tr.shape[1]} columns like "
                         f"features_train, got {f_te.shape[1]}.")
    y_tr = _targets(y_train, f_tr.shape[0], "y_train", kind)
    y_te = _targets(y_test, f_te.shape[0], "y_test", kind)

    loc = f_tr.mean(0)
    scale = f_tr.std(0, correction=0)
    scale = torch.where(scale > 1e-12 * (1.0 + loc.abs()), scale, torch.ones_like(scale))
    f_tr, f_te = (f_tr - loc) / scale, (f_te - loc) / scale
    d = f_tr.shape[1]

    if kind == "categorical":
        seen = int(max(y_tr.max(), y_te.max())) + 1
        c = seen if num_classes is None else int(num_classes)
        if c < seen:
            raise ValueError(f"num_classes: expected >= {seen} (largest class id + 1), got {c}.")
        y_shift, y_scale, out = 0.0, 1.0, c
    else:
        y_shift, y_scale = float(y_tr.mean()), float(y_tr.std(correction=0))
        y_scale = y_scale if y_scale > 0 else 1.0
        y_tr = (y_tr - y_shift) / y_scale
        out = 2

    if hidden == 0:
        w = torch.zeros(d, out, dtype=torch.float64)
        b = torch.zeros(out, dtype=torch.float64)
        if kind == "categorical":
            counts = torch.bincount(y_tr, minlength=out).to(torch.float64) + 1.0
            b = counts.log() - counts.log().mean()  # start from the class frequencies
        else:  # closed-form ridge for the mean, constant variance
            gram = f_tr.T @ f_tr / f_tr.shape[0] + l2 * torch.eye(d, dtype=torch.float64)
            w[:, 0] = torch.linalg.solve(gram, f_tr.T @ y_tr / f_tr.shape[0])
            resid = y_tr - f_tr @ w[:, 0]
            b[0] = resid.mean()
            b[1] = math.log(max(float(resid.var(correction=0)), 1e-12))
        params = [w, b]
    else:
        params = _init_mlp(d, hidden, out, seed)
    with _one_thread():
        _lbfgs(params, f_tr, y_tr, kind, float(l2), int(max_iter))

    with torch.no_grad():
        y_eval = y_te if kind == "categorical" else (y_te - y_shift) / y_scale
        nll = _nll(_forward(params, f_te), y_eval, kind) + math.log(y_scale)
    return nll.numpy()
