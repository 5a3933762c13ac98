"""The hand-set attention readouts of P5 and P6, the GP simulator and the error measures
(torch imported inside the functions). Public: the attention_is_bayes notebook and users
reproducing P5/P6 call them."""

from __future__ import annotations

import numpy as np

from .presets import (
    CME,
    GP,
    NET,
    P5_L0,
    P6_L0,
    SOFTMAX_FIXED,
    SOFTMAX_SHRINK,
    shrinking_bandwidth,
    silverman_bandwidth,
)


def softmax_attention(keys, values, queries, *, bandwidth: float, mask=None):
    """Softmax attention with logits ``-||q - k||^2 / (2 h^2)`` (Gaussian Nadaraya-Watson).

    Equal to ``softmax(<q, k> / h^2 - ||k||^2 / (2 h^2))``: dot-product softmax attention
    with a key-norm bias. Computed in float64 with a stable softmax.

    Args:
        keys: ``(B, L, dk)`` tensor.
        values: ``(B, L, dv)`` tensor.
        queries: ``(B, Q, dk)`` tensor.
        bandwidth: h > 0.
        mask: Optional bool ``(B, L)``, True = real token.

    Returns:
        float64 tensor ``(B, Q, dv)``.
    """
    import torch

    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth!r}.")
    keys, values, queries = (t.to(torch.float64) for t in (keys, values, queries))
    sq = torch.cdist(queries, keys).square()  # (B, Q, L)
    logits = -sq / (2.0 * bandwidth**2)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1) @ values  # (B, Q, dv)


def rbf_kernel(a, b, lengthscale: float):
    """``exp(-||a - b||^2 / (2 l^2))`` between ``(B, n, d)`` and ``(B, m, d)`` -> ``(B, n, m)``."""
    import torch

    return torch.exp(-torch.cdist(a, b).square() / (2.0 * lengthscale**2))


def simulate_gp(num: int, length: int, num_queries: int, *, lengthscale: float,
                noise_scale: float, seed: int) -> dict:
    """GP regression data on [0, 1]: keys, values and queries, float64.

    ``f ~ GP(0, rbf(lengthscale))`` drawn jointly at the L keys and Q queries (uniform on
    [0, 1]); ``v = f(k) + noise_scale * eps``.

    Returns:
        dict with ``keys (B, L, 1)``, ``values (B, L, 1)``, ``queries (B, Q, 1)``,
        ``f_queries (B, Q)``.
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    n = length + num_queries
    points = torch.rand(num, n, 1, generator=gen, dtype=torch.float64)
    gram = rbf_kernel(points, points, lengthscale)
    gram = gram + 1e-8 * torch.eye(n, dtype=torch.float64)
    f = (torch.linalg.cholesky(gram) @ torch.randn(num, n, 1, generator=gen,
                                                   dtype=torch.float64))[..., 0]  # (B, n)
    noise = noise_scale * torch.randn(num, length, generator=gen, dtype=torch.float64)
    return {"keys": points[:, :length], "values": (f[:, :length] + noise)[..., None],
            "queries": points[:, length:], "f_queries": f[:, length:]}


def gp_mean_direct(keys, values, queries, *, lengthscale: float, noise_scale: float):
    """GP posterior mean ``K_*^T (K + sigma^2 I)^-1 v`` by a plain linear solve, ``(B, Q)``."""
    import torch

    gram = rbf_kernel(keys, keys, lengthscale)
    eye = torch.eye(keys.shape[1], dtype=torch.float64)
    alpha = torch.linalg.solve(gram + noise_scale**2 * eye, values)  # (B, L, 1)
    return (rbf_kernel(queries, keys, lengthscale) @ alpha)[..., 0]


def error_metrics(pred, exact, pred_sd, post_sd) -> dict[str, np.ndarray]:
    """Per-sequence errors of ``pred`` against ``exact`` (all ``(B, Q)``), each ``(B,)``.

    ``err_pred_sd``: RMS over queries of the error in units of the predictive sd;
    ``err_post_sd``: the same in units of the posterior sd of the regression function;
    ``abs_err``: RMS error; ``max_err_pred_sd``: the largest error in predictive-sd units.
    """
    e = np.asarray(pred, float) - np.asarray(exact, float)
    z = e / np.asarray(pred_sd, float)
    return {"err_pred_sd": np.sqrt((z**2).mean(1)),
            "err_post_sd": np.sqrt(((e / np.asarray(post_sd, float)) ** 2).mean(1)),
            "abs_err": np.sqrt((e**2).mean(1)),
            "max_err_pred_sd": np.abs(z).max(1)}


def ratio_ci(numerator, denominator, *, num_resamples: int = 1000, seed: int = 0,
             level: float = 0.95) -> dict[str, float]:
    """Ratio of two independent sample means with a percentile-bootstrap CI.

    Each sample is resampled on its own. Returns the ``value, ci_low, ci_high, se, n``
    columns of a tidy row (``n`` = the smaller sample size).
    """
    a, b = np.asarray(numerator, float), np.asarray(denominator, float)
    if a.size < 1 or b.size < 1 or b.mean() == 0:
        raise ValueError("ratio_ci needs non-empty samples and a non-zero denominator mean.")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (int(num_resamples), a.size))
    ib = rng.integers(0, b.size, (int(num_resamples), b.size))
    boots = a[ia].mean(1) / b[ib].mean(1)
    boots = boots[np.isfinite(boots)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha]) if boots.size else (np.nan, np.nan)
    return {"value": float(a.mean() / b.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "se": float(boots.std(ddof=1)) if boots.size > 1 else float("nan"),
            "n": int(min(a.size, b.size))}


def regression_predictions(model, net, x, queries, device: str = "cpu",
                           chunk: int = 32) -> dict:
    """Exact predictive mean and sds, and each method's prediction, all ``(B, Q)`` NumPy."""
    import torch

    from bayesattn.inference.oracle import LinearRegressionOracle

    p = model.params["p"]
    post = model.exact_posterior(x)
    exact = model.predictive_mean(x, queries)
    var_f = torch.einsum("bqi,bij,bqj->bq", queries, post.covariance_matrix, queries)
    sigma2 = model.params["noise_scale"] ** 2
    h0 = silverman_bandwidth(p)
    h_l = shrinking_bandwidth(h0, x.shape[1], P5_L0, p)
    keys, values = x[..., :p], x[..., p:]
    out = {
        "exact": exact, "pred_sd": (sigma2 + var_f).sqrt(), "post_sd": var_f.sqrt(),
        CME: LinearRegressionOracle(model).predict(x, queries),
        SOFTMAX_FIXED: softmax_attention(keys, values, queries, bandwidth=h0)[..., 0],
        SOFTMAX_SHRINK: softmax_attention(keys, values, queries, bandwidth=h_l)[..., 0],
    }
    if net is not None:
        means = []
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk):
                q = net.posterior(x[i:i + chunk].float().to(device))
                means.append(q.mean.double().cpu())
        out[NET] = (queries @ torch.cat(means)[..., None])[..., 0]
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def net_kl(model, net, x, device: str = "cpu", chunk: int = 32) -> np.ndarray:
    """KL(exact || q) per sequence of the net's posterior, ``(B,)`` float64 (closed form)."""
    import torch
    from torch.distributions import MultivariateNormal, kl_divergence

    exact = model.exact_posterior(x)
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            q = net.posterior(x[i:i + chunk].float().to(device))
            q64 = MultivariateNormal(q.mean.double().cpu(),
                                     covariance_matrix=q.covariance_matrix.double().cpu())
            p = MultivariateNormal(exact.mean[i:i + chunk].double(),
                                   covariance_matrix=exact.covariance_matrix[i:i + chunk]
                                   .double())
            out.append(kl_divergence(p, q64))
    return torch.cat(out).numpy()


def gp_predictions(data: dict, length: int, chunk: int = 16) -> dict:
    """Exact GP mean, CME attention and the two softmax smoothers at the queries, ``(B, Q)``."""
    import torch

    from bayesattn.inference.oracle import cme_attention

    ell, sigma = GP["lengthscale"], GP["noise_scale"]
    h_l = shrinking_bandwidth(ell, length, P6_L0, 1)
    out: dict[str, list] = {"exact": [], CME: [], SOFTMAX_FIXED: [], SOFTMAX_SHRINK: []}
    for i in range(0, data["keys"].shape[0], chunk):
        k, v, q = (data[n][i:i + chunk] for n in ("keys", "values", "queries"))
        out["exact"].append(gp_mean_direct(k, v, q, lengthscale=ell, noise_scale=sigma))
        out[CME].append(cme_attention(k, v, q, kernel="gaussian", bandwidth=ell,
                                      ridge=sigma**2 / length)[..., 0])
        out[SOFTMAX_FIXED].append(softmax_attention(k, v, q, bandwidth=ell)[..., 0])
        out[SOFTMAX_SHRINK].append(softmax_attention(k, v, q, bandwidth=h_l)[..., 0])
    return {key: torch.cat(val).numpy() for key, val in out.items()}
