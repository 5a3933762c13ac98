"""The maths of oversmoothing-boosting (pure NumPy): the attention matrix, one layer of
each stack, the collapse metrics (E3), the shrinkage and SNR of a linear filter (E4)
and the exact smoother."""

from __future__ import annotations

import numpy as np

from .presets import VARIANTS


def attention_matrix(tokens: np.ndarray, bandwidth: float,
                     spatial_bandwidth: float | None = None) -> np.ndarray:
    """Row-normalised Gaussian (non-local means) kernel: ``(..., L, d)`` -> ``(..., L, L)``.

    ``A_ij ∝ exp(-||x_i - x_j||^2 / (2 h^2) - (i - j)^2 / (2 h_p^2))`` (the spatial term only
    when ``spatial_bandwidth`` is given), normalised as a softmax over j.
    """
    x = np.asarray(tokens, dtype=np.float64)
    sq = (x * x).sum(-1)
    d2 = sq[..., :, None] + sq[..., None, :] - 2.0 * x @ np.swapaxes(x, -1, -2)
    logits = -np.maximum(d2, 0.0) / (2.0 * bandwidth**2)
    if spatial_bandwidth is not None:
        i = np.arange(x.shape[-2], dtype=np.float64)
        logits = logits - (i[:, None] - i[None, :]) ** 2 / (2.0 * spatial_bandwidth**2)
    logits = logits - logits.max(-1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(-1, keepdims=True)


def layer(variant: str, A: np.ndarray, x: np.ndarray, x0: np.ndarray,
          boost_lambda: float) -> np.ndarray:
    """One layer of a stack: ``A (..., L, L)``, tokens ``x, x0 (..., L, d)``."""
    ax = A @ x
    if variant == "plain":
        return ax
    if variant == "residual":
        return 0.5 * (x + ax)
    if variant == "twicing":
        return 2.0 * ax - A @ ax
    if variant == "boosting":
        return 0.5 * (x + ax) + boost_lambda * (x0 - x)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}.")


def mean_pairwise_cosine(tokens: np.ndarray) -> np.ndarray:
    """Mean cosine similarity over pairs i != j of the L tokens; ``(..., L, d)`` -> ``(...)``."""
    x = np.asarray(tokens, dtype=np.float64)
    unit = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)
    gram = unit @ np.swapaxes(unit, -1, -2)
    L = x.shape[-2]
    return (gram.sum((-1, -2)) - np.trace(gram, axis1=-2, axis2=-1)) / (L * (L - 1))


def effective_rank(tokens: np.ndarray) -> np.ndarray:
    """Entropy effective rank exp(H(p)), p = sigma / sum(sigma), of ``(..., L, d)`` matrices."""
    s = np.linalg.svd(np.asarray(tokens, dtype=np.float64), compute_uv=False)
    p = s / np.maximum(s.sum(-1, keepdims=True), 1e-300)
    h = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(-1)
    return np.exp(h)


def shrinkage(F: np.ndarray, S: np.ndarray, noise_scale: float) -> dict[str, float]:
    """Population alpha, beta, SNR(y), SNR(y + F y) and their ratio for a filter ``F (L, L)``."""
    L = S.shape[0]
    s2 = noise_scale**2
    alpha = float(np.sqrt(np.trace(F @ S @ F.T) / np.trace(S)))
    beta = float(np.sqrt(np.trace(F @ F.T) / L))
    G = np.eye(L) + F
    snr_in = float(np.trace(S) / (L * s2))
    snr_out = float(np.trace(G @ S @ G.T) / (s2 * np.trace(G @ G.T)))
    return {"alpha": alpha, "beta": beta, "snr_in": snr_in, "snr_out": snr_out,
            "snr_gain": snr_out / snr_in}


def smoother_matrix(S: np.ndarray, noise_scale: float) -> np.ndarray:
    """``W = S (S + s^2 I)^-1`` for a covariance ``S (L, L)`` (float64 NumPy)."""
    A = S + noise_scale**2 * np.eye(S.shape[0])
    return np.linalg.solve(A, S).T


def _token_scale(model) -> float:
    """Marginal sd of one noisy token coordinate, sqrt(amplitude^2 + s^2): the bandwidth unit."""
    return float(np.sqrt(model.params["amplitude"] ** 2 + model.params["noise_scale"] ** 2))
