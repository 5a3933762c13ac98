"""The filters of denoising-1d: one hand-set self-attention layer read as a
Nadaraya-Watson smoother (spatial, range, SA+PE, bilateral, twicing), and their tuning
grids. Pure NumPy (torch only for the positional encoding)."""

from __future__ import annotations

import math

import numpy as np

from .presets import BILATERAL, FILTERS


def positional_encoding(L: int, dim: int, base: float) -> np.ndarray:
    """Sinusoidal absolute encoding of positions 0 .. L-1, ``(L, dim)`` float64."""
    import torch

    from bayesattn.inference import sinusoidal_encoding

    pos = torch.arange(L, dtype=torch.float64)[None]
    return sinusoidal_encoding(pos, dim, base)[0].numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(-1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(-1, keepdims=True)


def _spatial_logits(L: int, sigma: float) -> np.ndarray:
    if math.isinf(sigma):
        return np.zeros((L, L))
    i = np.arange(L, dtype=np.float64)
    return -((i[:, None] - i[None, :]) ** 2) / (2.0 * sigma**2)


def _range_logits(y: np.ndarray, h: float) -> np.ndarray:
    if math.isinf(h):
        return np.zeros(y.shape + y.shape[-1:])
    return -((y[..., :, None] - y[..., None, :]) ** 2) / (2.0 * h**2)


def sa_pe_logits(y: np.ndarray, beta: float, omega: float, pe: np.ndarray) -> np.ndarray:
    """Entangled SA+PE logits beta x_i.x_j / sqrt(d), x_i = y_i c + omega p_i, ``(n, L, L)``."""
    d = pe.shape[-1]
    c = np.full(d, 1.0 / math.sqrt(d))
    x = y[..., None] * c + omega * pe  # (n, L, d)
    return beta * (x @ np.swapaxes(x, -1, -2)) / math.sqrt(d)


def weights(name: str, y: np.ndarray, theta: dict, pe: np.ndarray | None = None) -> np.ndarray:
    """Row-stochastic attention matrices ``(n, L, L)`` of filter ``name`` on tokens ``y (n, L)``."""
    y = np.asarray(y, dtype=np.float64)
    n, L = y.shape
    if name in ("spatial", "spatial+twicing"):
        return np.broadcast_to(_softmax(_spatial_logits(L, theta["sigma"])), (n, L, L))
    if name == "range":
        return _softmax(_range_logits(y, theta["h"]))
    if name in BILATERAL:
        return _softmax(_spatial_logits(L, theta["sigma"]) + _range_logits(y, theta["h"]))
    if name == "sa+pe":
        if pe is None:
            raise ValueError("the sa+pe filter needs a positional encoding pe (L, d).")
        return _softmax(sa_pe_logits(y, theta["beta"], theta["omega"], pe))
    raise ValueError(f"unknown filter {name!r}; expected one of {FILTERS}.")


def apply_filter(name: str, y: np.ndarray, theta: dict,
                 pe: np.ndarray | None = None) -> np.ndarray:
    """One layer of filter ``name``: ``A y`` (``(2A - A^2) y`` for the ``+twicing`` ones)."""
    A = weights(name, y, theta, pe)
    ay = np.einsum("nij,nj->ni", A, y)
    if name.endswith("+twicing"):
        return 2.0 * ay - np.einsum("nij,nj->ni", A, ay)
    return ay


def _bw(value) -> float:
    """A grid bandwidth as a float (``None`` = infinite)."""
    return math.inf if value is None else float(value)


def grid(name: str, p: dict) -> list[dict]:
    """The tuning grid of filter ``name`` from the preset ``p`` (``None`` = infinite)."""
    if name in ("spatial", "spatial+twicing"):
        return [{"sigma": _bw(s)} for s in p["spatial_grid"]]
    if name == "range":
        return [{"h": _bw(h)} for h in p["range_grid"]]
    if name == "sa+pe":
        return [{"beta": float(b), "omega": float(w)}
                for b in p["sa_beta_grid"] for w in p["sa_omega_grid"]]
    if name in BILATERAL:
        return [{"sigma": _bw(s), "h": _bw(h)}
                for s in p["spatial_grid"] for h in p["range_grid"]]
    raise ValueError(f"unknown filter {name!r}; expected one of {FILTERS}.")
