"""Sample-based comparisons of two distributions from draws ``x ~ P`` and ``y ~ Q``.

Inputs are arrays or tensors of shape (n, d) and (m, d) (1-D inputs are read as
d = 1). Used when only draws are available (an MCMC reference, a flow posterior):

- :func:`c2st`: classifier two-sample test accuracy (0.5 = indistinguishable, 1 = disjoint);
- :func:`mmd2`: unbiased squared MMD, Gaussian kernel, with a permutation p-value;
- :func:`energy_distance`: the energy distance (U- or V-statistic);
- :func:`wasserstein2`: the 2-Wasserstein distance (exact or sliced).

Pairwise-distance statistics (MMD, energy) hold (n + m)^2 floats in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist, pdist

from bayesattn._checks import check_int

from ._estimate import Estimate, as_numpy

__all__ = ["TwoSampleResult", "c2st", "mmd2", "energy_distance", "wasserstein2"]


@dataclass(frozen=True)
class TwoSampleResult:
    """A two-sample statistic with its permutation test.

    Attributes:
        statistic: The observed statistic as an :class:`Estimate` (``se`` is the standard
            deviation of the permutation null; no interval, ``ci_low = ci_high = nan``;
            ``n = n + m`` points).
        p_value: Permutation p-value ``(1 + #{null >= observed}) / (1 + num_permutations)``
            (``nan`` with no permutations).
        null: The statistic on each label permutation, shape (num_permutations,).
        bandwidth: Kernel bandwidth used (``nan`` when not a kernel statistic).
    """

    statistic: Estimate
    p_value: float
    null: np.ndarray = field(repr=False)
    bandwidth: float = float("nan")


def _samples(x, name: str) -> np.ndarray:
    arr = as_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected draws of shape (n, d) or (n,), got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least 2 draws of dimension >= 1, got shape "
                         f"{arr.shape}")
    return arr


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _samples(x, "x"), _samples(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(
            f"x and y: expected the same dimension d, got x of shape {xs.shape} and y of "
            f"shape {ys.shape}"
        )
    return xs, ys


def _positive_int(value, name: str, minimum: int) -> int:
    return check_int(value, name, low=minimum)


# ----------------------------------------------------------------------------- C2ST
def _fit_logistic(x: np.ndarray, t: np.ndarray, max_iter: int, ridge: float = 1e-3):
    """Ridge logistic regression by Newton's method; returns a predict-logit function."""
    xb = np.hstack([x, np.ones((x.shape[0], 1))])  # (n, d + 1)
    w = np.zeros(xb.shape[1])
    penalty = ridge * np.eye(xb.shape[1])
    penalty[-1, -1] = 0.0
    for _ in range(max_iter):
        prob = 0.5 * (1.0 + np.tanh(0.5 * (xb @ w)))  # overflow-free sigmoid
        grad = xb.T @ (prob - t) + penalty @ w
        hess = (xb * (prob * (1 - prob))[:, None]).T @ xb + penalty + 1e-9 * np.eye(w.size)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return lambda z: np.hstack([z, np.ones((z.shape[0], 1))]) @ w


def _fit_mlp(x: np.ndarray, t: np.ndarray, max_iter: int, hidden: int, seed: int):
    """Two-hidden-layer tanh MLP, full-batch Adam on the mean logistic loss; NumPy only.

    Written out by hand (forward, backward, Adam) so that it is deterministic, needs no
    global RNG and no thread pool: the network is tiny and the data fit in one batch.
    Stops early once the training loss fell by less than 1e-3 over the last 50 steps.
    Returns a function mapping features (k, d) to logits (k,).
    """
    rng = np.random.default_rng(seed)
    f32 = np.float32  # float32 throughout: twice as fast, ample for a classifier
    x, t = x.astype(f32), t.astype(f32)
    d = x.shape[1]
    sizes = [(d, hidden), (hidden, hidden), (hidden, 1)]
    params = []
    for fan_in, fan_out in sizes:
        w = rng.standard_normal((fan_in, fan_out)).astype(f32) / f32(np.sqrt(fan_in))
        params += [w, np.zeros(fan_out, dtype=f32)]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    lr, beta1, beta2, eps, decay = f32(1e-2), f32(0.9), f32(0.999), f32(1e-8), f32(1e-4)
    patience, tol = 50, 1e-3
    count = x.shape[0]
    losses = []
    for step in range(1, max_iter + 1):
        w1, b1, w2, b2, w3, b3 = params
        h1 = np.tanh(x @ w1 + b1)  # (k, h)
        h2 = np.tanh(h1 @ w2 + b2)  # (k, h)
        logit = (h2 @ w3 + b3)[:, 0]  # (k,)
        losses.append(float(np.mean(np.logaddexp(0.0, logit) - t * logit)))
        if step > patience and losses[-patience - 1] - losses[-1] < tol:
            break  # training loss no longer falls: stop (also limits overfitting)
        g_logit = (0.5 * (1.0 + np.tanh(0.5 * logit)) - t)[:, None] / count  # dloss/dlogit
        g_h2 = (g_logit @ w3.T) * (1.0 - h2 * h2)
        g_h1 = (g_h2 @ w2.T) * (1.0 - h1 * h1)
        grads = [x.T @ g_h1, g_h1.sum(0), h1.T @ g_h2, g_h2.sum(0), h2.T @ g_logit,
                 g_logit.sum(0)]
        for i, g in enumerate(grads):
            g = g + decay * params[i]
            m1[i] = beta1 * m1[i] + (1 - beta1) * g
            m2[i] = beta2 * m2[i] + (1 - beta2) * g * g
            hat1 = m1[i] / (1 - beta1**step)
            hat2 = m2[i] / (1 - beta2**step)
            params[i] = params[i] - lr * hat1 / (np.sqrt(hat2) + eps)

    def predict(z: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2, w3, b3 = params
        z = z.astype(f32)
        return (np.tanh(np.tanh(z @ w1 + b1) @ w2 + b2) @ w3 + b3)[:, 0].astype(np.float64)

    return predict


def c2st(
    x,
    y,
    *,
    folds: int = 5,
    seed: int = 0,
    classifier: str = "mlp",
    max_iter: int | None = None,
    hidden: int | None = None,
    level: float = 0.95,
) -> Estimate:
    """Classifier two-sample test: held-out accuracy of a classifier telling x from y.

    Both samples are subsampled (without replacement, seeded) to ``min(n, m)`` points so
    that chance accuracy is 0.5. Stratified ``folds``-fold cross-validation; features
    are z-scored with the training fold's mean and sd. Deterministic for a given seed.

    Args:
        x: Draws from P, shape (n, d) or (n,).
        y: Draws from Q, shape (m, d) or (m,).
        folds: Number of cross-validation folds (>= 2, <= min(n, m)).
        seed: Seeds subsampling, fold assignment and classifier initialisation.
        classifier: ``"mlp"`` (two tanh layers, full-batch Adam, NumPy; detects any
            difference in distribution) or ``"logistic"`` (ridge logistic regression; only sees
            differences in the means of the features).
        max_iter: Most Adam steps (mlp, default 500; stops earlier once the training
            loss plateaus) or Newton steps (logistic, default 50).
        hidden: Hidden width of the MLP (default ``max(32, 10 * d)``).
        level: Confidence level of the interval.

    Returns:
        :class:`Estimate` with ``value`` the mean held-out accuracy, ``se`` the sd of
        the fold accuracies / sqrt(folds), interval ``value +- t_{folds-1} * se``
        clipped to [0, 1], and ``n`` the number of points used (2 * min(n, m)). Fold
        accuracies share training data, so the interval is approximate.
    """
    xs, ys = _pair(x, y)
    folds = _positive_int(folds, "folds", 2)
    if classifier not in ("mlp", "logistic"):
        raise ValueError(f"classifier: expected 'mlp' or 'logistic', got {classifier!r}")
    n0 = min(xs.shape[0], ys.shape[0])
    if n0 < folds:
        raise ValueError(f"x and y: expected at least folds={folds} draws each, got {n0}")
    if max_iter is None:
        max_iter = 500 if classifier == "mlp" else 50
    max_iter = _positive_int(max_iter, "max_iter", 1)
    hidden = _positive_int(hidden or max(32, 10 * xs.shape[1]), "hidden", 1)
    rng = np.random.default_rng(seed)
    xs = xs[rng.permutation(xs.shape[0])[:n0]]
    ys = ys[rng.permutation(ys.shape[0])[:n0]]
    feats = np.vstack([xs, ys])  # (2 n0, d)
    labels = np.concatenate([np.zeros(n0), np.ones(n0)])
    # stratified folds: each class split into `folds` near-equal parts
    fold_of = np.empty(2 * n0, dtype=int)
    for offset in (0, n0):
        perm = rng.permutation(n0)
        for k, part in enumerate(np.array_split(perm, folds)):
            fold_of[offset + part] = k
    accs = np.empty(folds)
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        mu = feats[train].mean(0)
        sd = feats[train].std(0)
        sd[sd <= 1e-12 * np.maximum(1.0, np.abs(mu))] = 1.0
        ztr, zte = (feats[train] - mu) / sd, (feats[test] - mu) / sd
        if classifier == "logistic":
            predict = _fit_logistic(ztr, labels[train], max_iter)
        else:
            predict = _fit_mlp(ztr, labels[train], max_iter, hidden, seed + 1000 * k)
        accs[k] = np.mean((predict(zte) > 0).astype(float) == labels[test])
    value = float(accs.mean())
    se = float(accs.std(ddof=1) / np.sqrt(folds))
    half = float(stats.t.ppf(0.5 + level / 2, folds - 1)) * se
    return Estimate(value, max(0.0, value - half), min(1.0, value + half), se, 2 * n0, level)


# ------------------------------------------------------------------------------ MMD
def _median_bandwidth(z: np.ndarray) -> float:
    dist = pdist(z)
    med = float(np.median(dist))
    if med > 0:
        return med
    positive = dist[dist > 0]
    return float(positive.mean()) if positive.size else 1.0


def mmd2(
    x,
    y,
    *,
    bandwidth: str | float = "median",
    num_permutations: int = 200,
    seed: int = 0,
) -> TwoSampleResult:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel, and its p-value.

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``; the statistic is the U-statistic
    ``mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)``,
    which can be negative and has mean 0 when P = Q. The p-value comes from permuting
    the pooled sample's labels.

    Args:
        x: Draws from P, shape (n, d) or (n,), n >= 2.
        y: Draws from Q, shape (m, d) or (m,), m >= 2.
        bandwidth: ``"median"`` (median pairwise distance of the pooled sample) or a
            positive number h.
        num_permutations: Label permutations for the null (0 skips the test).
        seed: Seed of the permutations.

    Returns:
        :class:`TwoSampleResult` (statistic, p-value, null draws, bandwidth).
    """
    xs, ys = _pair(x, y)
    check_int(num_permutations, "num_permutations", low=0)
    z = np.vstack([xs, ys])  # (N, d), N = n + m
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"bandwidth: expected 'median' or a positive number, got "
                             f"{bandwidth!r}")
        h = _median_bandwidth(z)
    else:
        h = float(bandwidth)
        if not np.isfinite(h) or h <= 0:
            raise ValueError(f"bandwidth: expected 'median' or a positive number, got {bandwidth}")
    n, m = xs.shape[0], ys.shape[0]
    kern = np.exp(-cdist(z, z, "sqeuclidean") / (2.0 * h * h))  # (N, N), unit diagonal

    def stat(ind: np.ndarray) -> np.ndarray:
        """MMD^2 for label columns ``ind`` (N, P) in {0, 1}, 1 marking the x sample."""
        other = 1.0 - ind
        k_ind = kern @ ind  # (N, P)
        s_xx = (ind * k_ind).sum(0) - n  # remove the diagonal k(z, z) = 1
        s_xy = (other * k_ind).sum(0)
        s_yy = (other * (kern @ other)).sum(0) - m
        return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)

    base = np.zeros((n + m, 1))
    base[:n] = 1.0
    observed = float(stat(base)[0])
    rng = np.random.default_rng(seed)
    null = np.empty(num_permutations)
    chunk = 64
    for start in range(0, num_permutations, chunk):
        size = min(chunk, num_permutations - start)
        ind = np.zeros((n + m, size))
        for j in range(size):
            ind[rng.permutation(n + m)[:n], j] = 1.0
        null[start:start + size] = stat(ind)
    if num_permutations:
        p_value = float((1 + np.sum(null >= observed)) / (1 + num_permutations))
        se = float(null.std(ddof=1)) if num_permutations > 1 else float("nan")
    else:
        p_value, se = float("nan"), float("nan")
    return TwoSampleResult(Estimate(observed, se=se, n=n + m), p_value, null, h)


# --------------------------------------------------------------------------- energy
def energy_distance(
    x, y, *, unbiased: bool = True, level: float = 0.95
) -> Estimate:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (not its square root).

    With ``unbiased=True`` the within-sample means run over pairs ``i != j``
    (U-statistic: unbiased, mean 0 when P = Q, can be slightly negative); with
    ``unbiased=False`` over all pairs including ``i = j`` (V-statistic, >= 0; equals
    ``scipy.stats.energy_distance(x, y) ** 2`` in 1-D).

    Args:
        x: Draws from P, shape (n, d) or (n,), n >= 2.
        y: Draws from Q, shape (m, d) or (m,), m >= 2.
        unbiased: U-statistic (True) or V-statistic (False).
        level: Confidence level of the interval.

    Returns:
        :class:`Estimate` with a normal interval ``value +- z * se`` where ``se`` is the
        two-sample delete-one jackknife standard error (computed exactly in O((n+m)^2)),
        ``n = n + m``. Under P = Q the statistic is degenerate and the interval is only
        indicative; use :func:`mmd2` for a test.
    """
    xs, ys = _pair(x, y)
    n, m = xs.shape[0], ys.shape[0]
    dxy = cdist(xs, ys)  # (n, m)
    dxx = cdist(xs, xs)  # (n, n), zero diagonal
    dyy = cdist(ys, ys)  # (m, m)
    sxy, sxx, syy = dxy.sum(), dxx.sum(), dyy.sum()

    def value(nx, ny, s_xy, s_xx, s_yy):
        cx = nx * (nx - 1) if unbiased else nx * nx
        cy = ny * (ny - 1) if unbiased else ny * ny
        return 2.0 * s_xy / (nx * ny) - s_xx / cx - s_yy / cy

    est = float(value(n, m, sxy, sxx, syy))
    var = 0.0
    if n > 2:  # leave x_i out: its row sums drop out of every sum
        loo = value(n - 1, m, sxy - dxy.sum(1), sxx - 2 * dxx.sum(1), syy)  # (n,)
        var += (n - 1) / n * np.sum((loo - loo.mean()) ** 2)
    if m > 2:
        loo = value(n, m - 1, sxy - dxy.sum(0), sxx, syy - 2 * dyy.sum(1))  # (m,)
        var += (m - 1) / m * np.sum((loo - loo.mean()) ** 2)
    se = float(np.sqrt(var))
    half = float(stats.norm.ppf(0.5 + level / 2)) * se
    return Estimate(est, est - half, est + half, se, n + m, level)


# ---------------------------------------------------------------------- Wasserstein
def _w2sq_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Exact squared W2 between 1-D empirical measures (any sizes), by quantile matching.

    The quantile functions are step functions with jumps at i/n and j/m; on each piece
    of the merged grid both are constant. Breakpoints are kept as integers over n*m.
    """
    a, b = np.sort(a), np.sort(b)
    n, m = a.size, b.size
    if n == m:
        return float(np.mean((a - b) ** 2))
    grid = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)  # (k,) ints / (n m)
    widths = np.diff(np.concatenate([[0], grid])) / (n * m)
    ia = (grid - 1) // m  # piece (t_{k-1}, t_k] lies in quantile step ceil(t n) - 1
    ib = (grid - 1) // n
    return float(np.sum(widths * (a[ia] - b[ib]) ** 2))


def wasserstein2(
    x,
    y,
    *,
    method: str = "auto",
    num_projections: int = 200,
    seed: int = 0,
) -> Estimate:
    """2-Wasserstein distance W2 (not squared) between the empirical measures of x and y.

    Methods:
        - d = 1: always exact, by matching quantile functions (any n, m).
        - ``"exact"`` (d > 1): optimal assignment on squared Euclidean cost with
          :func:`scipy.optimize.linear_sum_assignment`; needs n == m, O(n^3) time.
        - ``"sliced"``: ``sqrt(mean_theta W2^2(theta.x, theta.y))`` over
          ``num_projections`` random unit directions (the sliced distance, <= W2).
        - ``"auto"``: exact when d = 1 or n == m <= 2000, else sliced.

    Args:
        x: Draws from P, shape (n, d) or (n,).
        y: Draws from Q, shape (m, d) or (m,).
        method: ``"auto"``, ``"exact"`` or ``"sliced"``.
        num_projections: Directions for the sliced distance.
        seed: Seed of the directions.

    Returns:
        :class:`Estimate` with ``n = n + m`` and no interval (``nan``): the distance
        between the two empirical measures is computed, not sampled. For the sliced
        method ``se`` is the Monte Carlo error over directions (delta method), else nan.
    """
    xs, ys = _pair(x, y)
    if method not in ("auto", "exact", "sliced"):
        raise ValueError(f"method: expected 'auto', 'exact' or 'sliced', got {method!r}")
    n, m, d = xs.shape[0], ys.shape[0], xs.shape[1]
    total = n + m
    if d == 1:
        return Estimate(float(np.sqrt(_w2sq_1d(xs[:, 0], ys[:, 0]))), n=total)
    if method == "auto":
        method = "exact" if n == m <= 2000 else "sliced"
    if method == "exact":
        if n != m:
            raise ValueError(
                f"x and y: method='exact' in d > 1 expects equal sample sizes, got n={n}, "
                f"m={m}; subsample to equal sizes or use method='sliced'"
            )
        cost = cdist(xs, ys, "sqeuclidean")  # (n, n)
        rows, cols = linear_sum_assignment(cost)
        return Estimate(float(np.sqrt(cost[rows, cols].mean())), n=total)
    num_projections = _positive_int(num_projections, "num_projections", 1)
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((num_projections, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)  # (P, d) unit directions
    px, py = xs @ dirs.T, ys @ dirs.T  # (n, P), (m, P)
    per = np.array([_w2sq_1d(px[:, k], py[:, k]) for k in range(num_projections)])
    value = float(np.sqrt(per.mean()))
    se = float("nan")
    if num_projections > 1 and value > 0:
        se = float(per.std(ddof=1) / np.sqrt(num_projections) / (2.0 * value))
    return Estimate(value, se=se, n=total)
