"""Paper 2's filtering view of attention: positions, the bilateral kernel, twicing.

Paper 2 of docs/claims.md (Abdullaev, Tkachenko, Nguyen, *Revisiting Transformers with
Insights from Image Filtering (and Boosting)*, arXiv 2506.10371) reads tokens as noisy
pixels with a position each. Two ways to give attention positions live here:

* :func:`sinusoidal_encoding`: the usual *absolute* encoding added to the token
  embeddings; the spatial and range kernels become entangled (cross terms).
* :class:`BilateralKernel` (``"bilateral"``): a *separable* bilateral filter,
  ``logits_ij = r(q_i, k_j) - D(p_i, p_j) / (2 sigma_h^2)``, with one learnable
  bandwidth per head. Its ``"laplacian"`` spatial form ``-sqrt(D) / sigma_h`` is an
  ALiBi-like relative bias.

* :class:`TwicingKernel` (``"twicing"``): boosting of any kernel with weights,
  ``(2A - A^2) V``, computed without forming ``A^2``.

This is our reconstruction of the paper from its abstract and core equations (the
full text was not available); see docs/claims.md#reconstructions.

Positions are float tensors ``(B, L)`` (a 1-D sequence) or ``(B, L, P)`` (e.g. ``P = 2``
for a 2-D patch grid); ``D`` is the squared Euclidean distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._attention import (
    AttentionInputError,
    AttentionKernel,
    GaussianKernel,
    LogitKernel,
    SoftmaxKernel,
    make_kernel,
    register_kernel,
)


def check_positions(positions: Any, batch: int, length: int,
                    name: str = "positions") -> Tensor:
    """Validate token positions and return them as ``(batch, length, P)``.

    Args:
        positions: Tensor ``(batch, length)`` or ``(batch, length, P)``.
        batch: Expected batch size B.
        length: Expected number of tokens L.
        name: Argument name used in error messages.

    Returns:
        Floating-point tensor of shape ``(batch, length, P)``.

    Raises:
        TypeError: not a tensor.
        AttentionInputError: wrong shape.
    """
    if not isinstance(positions, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, L) or (batch, L, P); "
                        f"got {type(positions).__name__}. Convert it with torch.as_tensor(...).")
    got = tuple(positions.shape)
    if positions.ndim == 2:
        positions = positions[..., None]  # (B, L) -> (B, L, 1)
    if positions.ndim != 3 or tuple(positions.shape[:2]) != (batch, length) \
            or positions.shape[-1] < 1:
        raise AttentionInputError(
            f"{name} must have shape (batch, L) = ({batch}, {length}) or (batch, L, P) = "
            f"({batch}, {length}, P); got {got}. Give one position per token (a row/column "
            "pair per patch for a 2-D grid).")
    return positions if positions.is_floating_point() else positions.float()


def index_positions(batch: int, length: int, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Token indices ``0, ..., length - 1`` as positions of shape ``(batch, length)``."""
    return torch.arange(length, device=device, dtype=dtype).expand(batch, length)


def sinusoidal_encoding(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Absolute sinusoidal encoding (Vaswani et al. 2017), one block per coordinate.

    Args:
        positions: ``(B, L)`` or ``(B, L, P)``; coordinate c gets channels
            ``[c * dim / P, (c + 1) * dim / P)``, half sines and half cosines.
        dim: Encoding width; divisible by ``2 P``.
        base: Longest wavelength scale.

    Returns:
        Tensor of shape ``(B, L, dim)``, to be added to the token embeddings.
    """
    if positions.ndim == 2:
        positions = positions[..., None]  # (B, L) -> (B, L, 1)
    P = positions.shape[-1]
    if dim % (2 * P):
        raise AttentionInputError(f"a sinusoidal encoding of {P}-D positions needs a width "
                                  f"divisible by {2 * P}; got dim={dim}.")
    half = dim // (2 * P)
    dt = torch.promote_types(positions.dtype, torch.float32)
    freq = torch.exp(-math.log(base) * torch.arange(half, device=positions.device,
                                                    dtype=dt) / half)  # (half,)
    angle = positions.to(dt)[..., None] * freq  # (B, L, P, half)
    enc = torch.cat([angle.sin(), angle.cos()], dim=-1)  # (B, L, P, 2 half)
    return enc.flatten(-2)  # (B, L, P, 2 half) -> (B, L, dim)


def _default_bandwidths(num_heads: int) -> list[float]:
    """Geometric per-head bandwidths from 2 to 32 position units (one head: 8)."""
    if num_heads == 1:
        return [8.0]
    return [2.0 ** (1 + 4 * h / (num_heads - 1)) for h in range(num_heads)]


@register_kernel("bilateral")
class BilateralKernel(LogitKernel):
    """Bilateral self-attention: ``softmax_j(r(q_i, k_j) - D(p_i, p_j) / (2 sigma_h^2))``.

    OUR RECONSTRUCTION of the bilateral attention of paper 2 (Abdullaev, Tkachenko,
    Nguyen, arXiv 2506.10371): only the abstract and core equations were available, see
    docs/claims.md#paper-2 and #reconstructions. The spatial kernel
    (positions) and the range kernel (content) multiply, so there is no additive
    positional encoding and no cross term; ``sigma_h -> inf`` recovers the range kernel
    alone (plain softmax attention for ``range="dot"``).

    Extra inputs (keywords of :meth:`attend` / :meth:`MultiHeadAttention.forward`):
        positions: Key positions ``(B, L)`` or ``(B, L, P)``. Required.
        query_positions: Query positions ``(B, Q)`` or ``(B, Q, P)``; default: the key
            positions (self-attention, needs Q == L).

    Args:
        spatial: ``"gaussian"`` (``-D / (2 sigma_h^2)``, D the squared distance) or
            ``"laplacian"`` (``-sqrt(D) / sigma_h``, an ALiBi-like linear distance bias).
        range: ``"dot"`` (``q.k / sqrt(dh)``) or ``"distance"``
            (``-||q - k||^2 / (2 sqrt(dh))``, the non-local-means kernel).
        num_heads: Number of bandwidths; 1 shares one across heads. Set automatically by
            :class:`MultiHeadAttention`.
        bandwidth: Initial sigma_h in position units: a number (all heads) or one per
            head; None = geometric from 2 to 32 over the heads.
        learn_bandwidth: Learn ``log sigma_h``; else the bandwidths are fixed buffers.
    """

    per_head = True
    uses_positions = True
    RANGES = {"dot": SoftmaxKernel, "distance": GaussianKernel}

    def __init__(self, spatial: str = "gaussian", range: str = "dot",  # noqa: A002
                 num_heads: int = 1, bandwidth: float | Sequence[float] | None = None,
                 learn_bandwidth: bool = True) -> None:
        super().__init__()
        if spatial not in ("gaussian", "laplacian"):
            raise AttentionInputError(f"spatial must be 'gaussian' or 'laplacian'; got "
                                      f"{spatial!r}.")
        if range not in self.RANGES:
            raise AttentionInputError(f"range must be one of {sorted(self.RANGES)}; got "
                                      f"{range!r}.")
        if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads < 1:
            raise AttentionInputError(f"num_heads must be a positive int; got {num_heads!r}.")
        if bandwidth is None:
            bw = _default_bandwidths(num_heads)
        elif isinstance(bandwidth, int | float):
            bw = [float(bandwidth)] * num_heads
        else:
            bw = [float(b) for b in bandwidth]
        if len(bw) != num_heads or not all(b > 0 and math.isfinite(b) for b in bw):
            raise AttentionInputError(f"bandwidth must be a positive number or {num_heads} "
                                      f"positive numbers (one per head); got {bandwidth!r}.")
        self.spatial, self.range, self.learn_bandwidth = spatial, range, bool(learn_bandwidth)
        self.range_kernel = self.RANGES[range]()
        log_bw = torch.log(torch.tensor(bw, dtype=torch.float64)).float()  # (H,)
        if self.learn_bandwidth:
            self.log_bandwidth = nn.Parameter(log_bw)
        else:
            self.register_buffer("log_bandwidth", log_bw)

    def extra_repr(self) -> str:
        return (f"spatial={self.spatial!r}, range={self.range!r}, "
                f"num_heads={self.log_bandwidth.numel()}, learn_bandwidth={self.learn_bandwidth}")

    def bandwidth(self) -> Tensor:
        """Current sigma_h, shape ``(num_heads,)``."""
        return self.log_bandwidth.exp()

    def spatial_logits(self, q: Tensor, k: Tensor, positions: Any = None,
                       query_positions: Any = None) -> Tensor:
        """The spatial term ``-D / (2 sigma_h^2)`` (or ``-sqrt(D) / sigma_h``),
        shape ``(B, H, Q, L)``; q ``(B, H, Q, dh)`` and k ``(B, H, L, dh)`` give the sizes."""
        B, H, Q, _ = q.shape
        L = k.shape[2]
        if positions is None:
            raise AttentionInputError(
                "bilateral attention needs token positions: pass positions=(B, L) or "
                "(B, L, P) to MultiHeadAttention.forward (or use TransformerEncoder("
                "positional='relative'), which passes token indices).")
        pk = check_positions(positions, B, L, "positions")  # (B, L, P)
        if query_positions is None:
            if Q != L:
                raise AttentionInputError(
                    f"queries ({Q}) and keys ({L}) differ in number, so the query positions "
                    "cannot default to the key positions; pass query_positions=(B, Q) or "
                    "(B, Q, P).")
            pq = pk
        else:
            pq = check_positions(query_positions, B, Q, "query_positions")  # (B, Q, P)
        if pq.shape[-1] != pk.shape[-1]:
            raise AttentionInputError(f"query_positions have {pq.shape[-1]} coordinates but "
                                      f"positions have {pk.shape[-1]}; use the same P.")
        n_bw = self.log_bandwidth.numel()
        if n_bw not in (1, H):
            raise AttentionInputError(f"this bilateral kernel has {n_bw} bandwidths but the "
                                      f"layer has {H} heads; build it with num_heads={H}.")
        dt = torch.promote_types(q.dtype, torch.float32)
        diff = pq.to(dt)[:, :, None, :] - pk.to(dt)[:, None, :, :]  # (B, Q, L, P)
        sigma = self.bandwidth().to(dt)[None, :, None, None]  # (1, H or 1, 1, 1)
        if self.spatial == "gaussian":
            return -diff.pow(2).sum(-1)[:, None] / (2 * sigma**2)  # (B, H, Q, L)
        return -diff.norm(dim=-1)[:, None] / sigma  # (B, H, Q, L)

    def logits(self, q: Tensor, k: Tensor, positions: Any = None,
               query_positions: Any = None, **inputs: Any) -> Tensor:
        """``r(q_i, k_j) + spatial_ij``, shape ``(B, H, Q, L)`` (float32 or wider)."""
        spatial = self.spatial_logits(q, k, positions, query_positions)  # (B, H, Q, L)
        return self.range_kernel.logits(q, k).to(spatial.dtype) + spatial


@register_kernel("twicing")
class TwicingKernel(AttentionKernel):
    """Twicing attention (paper 2, boosting): ``out = (2A - A^2) V`` for a base kernel A.

    Computed as ``AV + A(V - AV)``: one extra ``(Q, L) x (L, dv)`` matmul, A^2 is never
    formed. A is square only for self-attention, so queries and keys must be the same
    tokens (Q == L is checked; the order must match too). Works with any base kernel that
    has weights (softmax, gaussian, bilateral, cme); extra inputs such as positions go to
    the base. Dropout, if any, drops the same weights in both products.

    Args:
        base: Registered kernel name or an :class:`AttentionKernel` instance.
        num_heads: Passed to a base kernel with per-head parameters.
        **base_kwargs: Keyword arguments of the base kernel (with a name only).
    """

    per_head = True

    def __init__(self, base: str | AttentionKernel = "softmax", num_heads: int | None = None,
                 **base_kwargs: Any) -> None:
        super().__init__()
        if isinstance(base, AttentionKernel):
            if base_kwargs:
                raise AttentionInputError("pass base_kwargs only with a kernel name; got a "
                                          f"kernel instance and {sorted(base_kwargs)}.")
            self.base = base
        else:
            self.base = make_kernel(base, num_heads=num_heads, **base_kwargs)
        self.uses_positions = self.base.uses_positions

    @staticmethod
    def _check_square(q: Tensor, k: Tensor) -> None:
        if q.shape[2] != k.shape[2]:
            raise AttentionInputError(
                f"twicing attention needs self-attention (A square); got {q.shape[2]} queries "
                f"and {k.shape[2]} keys. Use it in self-attention layers only.")

    def _base_weights(self, q, k, key_mask, **inputs) -> Tensor:
        self._check_square(q, k)
        w = self.base._weights(q, k, key_mask, **inputs)  # (B, H, L, L)
        if w is None:
            raise AttentionInputError(f"twicing needs a base kernel with attention weights; "
                                      f"{type(self.base).__name__} has none.")
        return w

    def _weights(self, q, k, key_mask, **inputs):
        """Effective smoother ``2A - A^2`` ``(B, H, L, L)``; forms A^2, so for inspection
        only (the forward pass does not)."""
        w = self._base_weights(q, k, key_mask, **inputs)
        return 2 * w - w @ w

    def _attend(self, q, k, v, key_mask, *, dropout_p=0.0, **inputs):
        w = F.dropout(self._base_weights(q, k, key_mask, **inputs), p=dropout_p)  # (B,H,L,L)
        vw = v.to(w.dtype)
        if key_mask is not None:  # padded values carry zero weight; keep them finite too
            vw = vw.masked_fill(~key_mask[:, None, :, None], 0.0)
        av = w @ vw  # (B, H, L, dv)
        return (av + w @ (vw - av)).to(v.dtype)  # AV + A(V - AV) = (2A - A^2) V
