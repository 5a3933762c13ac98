"""Multi-head attention over sets, with a boolean key mask and a pluggable kernel.

The similarity kernel is a small module of its own (:class:`AttentionKernel`), so a new
variant (bilateral or twicing attention, docs/claims.md#paper-2) is one subclass plus
``@register_kernel("name")`` (the same as ``@KERNELS.register("name")``; :data:`KERNELS`
is a :class:`~bayesattn._registry.Registry`); :class:`MultiHeadAttention` and every
encoder pick it up by name. Built-in kernels:

* ``"softmax"``: ``softmax(q k^T / sqrt(dh))`` (Nadaraya-Watson with an exp-dot kernel).
* ``"gaussian"``: non-local means, ``softmax(-||q - k||^2 / (2 sqrt(dh)))``.
* ``"cme"``: kernel conditional mean embedding (kernel ridge regression, paper 1),
  ``out(q) = V^T (G + n lambda I)^-1 kappa_K(q)`` over the real keys only.
* ``"twicing"`` (in ``_filtering.py``): ``(2A - A^2) V`` for any base kernel A (paper 2's
  boosting).
* ``"bilateral"`` (in ``_filtering.py``): range kernel times a spatial kernel over token
  positions, one learnable bandwidth per head (our reconstruction of paper 2).

Masks are boolean, True = real token. Padded keys never change an output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bayesattn._registry import Registry


class AttentionInputError(ValueError):
    """Tokens, masks or settings that do not fit an attention layer or a set encoder.

    The message says what was expected, what was received and how to fix it.
    """


# ----------------------------------------------------------------------------- validation
def check_tokens(x: Any, name: str, dim: int, batch: int | None = None) -> None:
    """Raise unless ``x`` is a float tensor of shape ``(batch, L, dim)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, L, {dim}); "
                        f"got {type(x).__name__}. Convert it with torch.as_tensor(...).")
    if x.ndim != 3 or x.shape[-1] != dim:
        raise AttentionInputError(
            f"{name} must have shape (batch, L, {dim}); got {tuple(x.shape)}. Reshape the "
            f"tokens to (batch, L, features) or build the layer with a feature size of "
            f"{x.shape[-1] if x.ndim else '?'}.")
    if batch is not None and x.shape[0] != batch:
        raise AttentionInputError(f"{name} must have batch size {batch} like the query; "
                                  f"got {x.shape[0]}.")
    if not x.is_floating_point():
        raise AttentionInputError(f"{name} must be a floating-point tensor; got {x.dtype}. "
                                  "Cast it with .float().")


def check_mask(mask: Any, batch: int, length: int, name: str = "mask") -> Tensor | None:
    """Validate a boolean mask of shape ``(batch, length)``; None means all tokens are real.

    Raises:
        AttentionInputError: wrong type, dtype or shape, or a row with no True entry.
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise AttentionInputError(f"{name} must be a bool tensor (True = real token); got "
                                  f"{got}. Pass mask.bool() or (mask > 0).")
    if tuple(mask.shape) != (batch, length):
        raise AttentionInputError(
            f"{name} must have shape (batch, L) = ({batch}, {length}) to match the tokens; "
            f"got {tuple(mask.shape)}. Give one entry per token, True for real tokens.")
    empty = ~mask.any(dim=1)  # (B,)
    if bool(empty.any()):
        i = int(empty.nonzero()[0, 0])
        raise AttentionInputError(f"sequence {i} has no real tokens (its {name} row is all "
                                  "False); drop it from the batch or mark a token as real.")
    return mask


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor | None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.ndim != 4:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise AttentionInputError(f"{name} must have shape (batch, heads, n, dim_head); "
                                      f"got {got}.")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise AttentionInputError(
            "expected q (B, H, Q, dh), k (B, H, L, dh), v (B, H, L, dv); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}.")
    return check_mask(key_mask, k.shape[0], k.shape[2], "key_mask")


# ----------------------------------------------------------------------------- kernels
class AttentionKernel(nn.Module):
    """Base class of similarity kernels: ``(q, k, v, key_mask) -> out``.

    Subclasses implement ``_attend`` (and ``_weights`` when the kernel has attention
    weights); the public ``attend`` / ``weights`` validate and then call them. Extra
    keyword inputs (e.g. token positions for a bilateral kernel) are passed through from
    :meth:`MultiHeadAttention.forward`.

    Attributes:
        per_head: The constructor takes ``num_heads`` (per-head parameters);
            :class:`MultiHeadAttention` then passes its head count.
        uses_positions: The kernel needs token positions (``positions=...``).
    """

    per_head: bool = False
    uses_positions: bool = False

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, *,
               dropout_p: float = 0.0, **inputs: Any) -> Tensor:
        """Attention output.

        Args:
            q: Queries, shape ``(B, H, Q, dh)``.
            k: Keys, shape ``(B, H, L, dh)``.
            v: Values, shape ``(B, H, L, dv)``.
            key_mask: Bool ``(B, L)``, True = real key; None = all real.
            dropout_p: Dropout on attention weights (ignored by kernels without weights).
            **inputs: Kernel-specific extra inputs.

        Returns:
            Tensor of shape ``(B, H, Q, dv)``.
        """
        key_mask = _check_qkv(q, k, v, key_mask)
        return self._attend(q, k, v, key_mask, dropout_p=dropout_p, **inputs)

    def weights(self, q: Tensor, k: Tensor, key_mask: Tensor | None = None,
                **inputs: Any) -> Tensor | None:
        """Attention weights ``(B, H, Q, L)`` (zero on padded keys), or None if the kernel
        has none. Args as in :meth:`attend`."""
        key_mask = _check_qkv(q, k, k, key_mask)
        return self._weights(q, k, key_mask, **inputs)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None,
                **kw: Any) -> Tensor:
        return self.attend(q, k, v, key_mask, **kw)

    def _attend(self, q, k, v, key_mask, *, dropout_p=0.0, **inputs) -> Tensor:
        raise NotImplementedError

    def _weights(self, q, k, key_mask, **inputs) -> Tensor | None:
        return None


class LogitKernel(AttentionKernel):
    """A kernel whose weights are ``softmax(logits)`` over the real keys.

    Subclasses implement ``logits(q, k) -> (B, H, Q, L)``; a per-query constant may be
    dropped since softmax ignores it.
    """

    def logits(self, q: Tensor, k: Tensor, **inputs: Any) -> Tensor:
        raise NotImplementedError

    def _weights(self, q, k, key_mask, **inputs):
        logits = self.logits(q, k, **inputs)  # (B, H, Q, L)
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return torch.softmax(logits, dim=-1)

    def _attend(self, q, k, v, key_mask, *, dropout_p=0.0, **inputs):
        w = F.dropout(self._weights(q, k, key_mask, **inputs), p=dropout_p)  # (B, H, Q, L)
        return w.to(v.dtype) @ v  # (B, H, Q, dv)


def _check_kernel(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, AttentionKernel)):
        raise TypeError(f"attention kernel {name!r}: expected an AttentionKernel subclass; "
                        f"got {cls!r}")


#: The registered attention kernels (name -> :class:`AttentionKernel` subclass).
KERNELS: Registry[type[AttentionKernel]] = Registry(
    "attention kernel", error=AttentionInputError, check=_check_kernel,
    hint="Register one with @register_kernel('name') on an AttentionKernel subclass.")


def register_kernel(name: str) -> Callable[[type[AttentionKernel]], type[AttentionKernel]]:
    """Class decorator adding an :class:`AttentionKernel` subclass to :data:`KERNELS`
    (the same as ``@KERNELS.register(name)``)."""
    return KERNELS.register(name)


def kernel_names() -> list[str]:
    """Names accepted by :func:`make_kernel` (``KERNELS.names()``)."""
    return KERNELS.names()


def make_kernel(name: str, *, num_heads: int | None = None, **kw: Any) -> AttentionKernel:
    """Build a registered kernel, e.g. ``make_kernel("cme", kappa="linear", ridge=0.5)``.

    ``num_heads`` is passed on only to kernels with per-head parameters (``per_head``).

    Raises:
        AttentionInputError: ``name`` is not registered (the message suggests close names).
    """
    cls = KERNELS.get(name)
    if num_heads is not None and cls.per_head:
        kw["num_heads"] = num_heads
    return cls(**kw)


@register_kernel("softmax")
class SoftmaxKernel(LogitKernel):
    """Dot-product softmax attention, ``softmax(q k^T / sqrt(dh))``, via fused SDPA."""

    def logits(self, q, k, **inputs):
        return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, Q, L)

    def _attend(self, q, k, v, key_mask, *, dropout_p=0.0, **inputs):
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, L)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


@register_kernel("gaussian")
class GaussianKernel(LogitKernel):
    """Non-local means: ``softmax(-||q - k||^2 / (2 sqrt(dh)))`` over the real keys.

    Uses ``-||q-k||^2 = 2 q.k - ||k||^2 - ||q||^2`` and drops ``||q||^2`` (constant per
    query), so it runs as fused SDPA with an additive key bias ``-||k||^2 / (2 sqrt dh)``.
    """

    def logits(self, q, k, **inputs):
        sq_k = k.pow(2).sum(-1)[:, :, None, :]  # (B, H, 1, L)
        return (2 * q @ k.transpose(-1, -2) - sq_k) / (2 * math.sqrt(q.shape[-1]))

    def _attend(self, q, k, v, key_mask, *, dropout_p=0.0, **inputs):
        bias = -k.pow(2).sum(-1)[:, :, None, :] / (2 * math.sqrt(q.shape[-1]))  # (B,H,1,L)
        if key_mask is not None:
            bias = bias.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                              dropout_p=dropout_p)


@register_kernel("cme")
class CMEKernel(AttentionKernel):
    """Kernel conditional-mean-embedding attention (kernel ridge regression, paper 1).

    ``out(q) = V^T (G + n lambda I)^-1 kappa_K(q)`` with ``G_ij = kappa(k_i, k_j)`` over
    the real keys and ``n`` the number of real keys of the sequence. Padded rows/columns of
    G are the identity and padded entries of ``kappa_K(q)`` and V are zero, so the linear
    system is block diagonal and padding has no effect. Solved by Cholesky.

    Args:
        kappa: ``"gaussian"`` (``exp(-||k - k'||^2 / (2 bandwidth^2))``) or ``"linear"``
            (``<k, k'>``).
        ridge: lambda > 0 (initial value when learnable).
        learn_ridge: Learn lambda as ``softplus(raw)``; else it is fixed.
        bandwidth: Gaussian bandwidth; None = ``dh ** 0.25`` (matches ``"gaussian"``).
        float64: Solve in float64 and cast the output back (slower, more accurate).
    """

    def __init__(self, kappa: str = "gaussian", ridge: float = 0.1, learn_ridge: bool = True,
                 bandwidth: float | None = None, float64: bool = False) -> None:
        super().__init__()
        if kappa not in ("gaussian", "linear"):
            raise AttentionInputError(f"kappa must be 'gaussian' or 'linear'; got {kappa!r}.")
        for name, val in (("ridge", ridge), ("bandwidth", bandwidth)):
            if val is not None and not (isinstance(val, int | float) and val > 0):
                raise AttentionInputError(f"{name} must be a positive number; got {val!r}.")
        self.kappa, self.bandwidth, self.float64 = kappa, bandwidth, bool(float64)
        self.learn_ridge = bool(learn_ridge)
        if self.learn_ridge:  # softplus^-1(ridge)
            raw = math.log(math.expm1(ridge)) if ridge < 20 else float(ridge)
            self.raw_ridge = nn.Parameter(torch.tensor(raw, dtype=torch.float32))
        else:
            self.fixed_ridge = float(ridge)

    def extra_repr(self) -> str:
        return (f"kappa={self.kappa!r}, learn_ridge={self.learn_ridge}, "
                f"bandwidth={self.bandwidth}, float64={self.float64}")

    def ridge(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Current lambda as a scalar tensor of ``dtype``."""
        if self.learn_ridge:
            return F.softplus(self.raw_ridge.to(dtype))
        return torch.tensor(self.fixed_ridge, dtype=dtype)

    def _gram(self, a: Tensor, b: Tensor) -> Tensor:
        """kappa(a_i, b_j): a ``(..., Na, dh)``, b ``(..., Nb, dh)`` -> ``(..., Na, Nb)``."""
        dot = a @ b.transpose(-1, -2)
        if self.kappa == "linear":
            return dot
        h2 = self.bandwidth ** 2 if self.bandwidth is not None else math.sqrt(a.shape[-1])
        sq = a.pow(2).sum(-1)[..., :, None] + b.pow(2).sum(-1)[..., None, :] - 2 * dot
        return torch.exp(-sq.clamp_min(0) / (2 * h2))

    def _dtype(self, dtype: torch.dtype) -> torch.dtype:
        return torch.float64 if self.float64 else torch.promote_types(dtype, torch.float32)

    def _weights(self, q, k, key_mask, **inputs):
        """Smoother weights ``kappa_K(q)^T (G + n lambda I)^-1``, ``(B, H, Q, L)``; unlike
        softmax weights they are not normalised and may be negative."""
        dt = self._dtype(q.dtype)
        B, _, L, _ = k.shape
        with torch.autocast(device_type=q.device.type, enabled=False):
            q, k = q.to(dt), k.to(dt)
            eye = torch.eye(L, dtype=dt, device=k.device)  # (L, L)
            gram = self._gram(k, k)  # (B, H, L, L)
            cross = self._gram(k, q)  # (B, H, L, Q)
            if key_mask is None:
                n = torch.full((B,), float(L), dtype=dt, device=k.device)
            else:
                real = key_mask[:, None, :, None]  # (B, 1, L, 1)
                gram = torch.where(real & key_mask[:, None, None, :], gram, eye)
                cross = cross.masked_fill(~real, 0.0)
                n = key_mask.sum(-1).to(dt)  # (B,)
            ridge = (n * self.ridge(dt).to(k.device))[:, None, None, None]  # (B, 1, 1, 1)
            try:
                chol = torch.linalg.cholesky(gram + ridge * eye)  # (B, H, L, L)
            except torch.linalg.LinAlgError as err:
                raise torch.linalg.LinAlgError(
                    "CME attention: G + n*lambda*I is not positive definite in "
                    f"{dt}; use a larger ridge or CMEKernel(float64=True).") from err
            alpha = torch.cholesky_solve(cross, chol)  # (B, H, L, Q)
        return alpha.transpose(-1, -2)  # (B, H, Q, L)

    def _attend(self, q, k, v, key_mask, *, dropout_p=0.0, **inputs):
        w = self._weights(q, k, key_mask)  # (B, H, Q, L), compute dtype
        with torch.autocast(device_type=q.device.type, enabled=False):
            v64 = v.to(w.dtype)
            if key_mask is not None:
                v64 = v64.masked_fill(~key_mask[:, None, :, None], 0.0)
            return (w @ v64).to(v.dtype)  # (B, H, Q, dv)


# ----------------------------------------------------------------------------- layer
@dataclass
class AttentionConfig:
    """Settings of one :class:`MultiHeadAttention` layer.

    Attributes:
        dim: Model width (query features and output features); divisible by num_heads.
        num_heads: Number of heads; each has width ``dim // num_heads``.
        kernel: Registered kernel name (``kernel_names()``).
        dim_kv: Context (key/value source) features; None = ``dim``.
        dropout: Dropout on attention weights and on the output projection.
        bias: Bias in the Q/K/V/output projections.
        kernel_kwargs: Keyword arguments for the kernel (e.g. ``{"kappa": "linear"}``).
    """

    dim: int
    num_heads: int = 4
    kernel: str = "softmax"
    dim_kv: int | None = None
    dropout: float = 0.0
    bias: bool = True
    kernel_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("dim", "num_heads") + (("dim_kv",) if self.dim_kv is not None else ()):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise AttentionInputError(f"{name} must be a positive int; got {val!r}.")
        if self.dim % self.num_heads:
            fix = self.num_heads * max(1, self.dim // self.num_heads)
            raise AttentionInputError(
                f"dim must be divisible by num_heads; got dim={self.dim}, num_heads="
                f"{self.num_heads}. Pick e.g. dim={fix}.")
        if not 0.0 <= self.dropout < 1.0:
            raise AttentionInputError(f"dropout must be in [0, 1); got {self.dropout!r}.")
        KERNELS.get(self.kernel)  # an unknown name: AttentionInputError, close names

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


class MultiHeadAttention(nn.Module):
    """Multi-head attention of queries over a masked set of context tokens.

    Args:
        config: An :class:`AttentionConfig`.
    """

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        if not isinstance(config, AttentionConfig):
            raise TypeError(f"config must be an AttentionConfig; got {type(config).__name__}.")
        c = self.config = config
        dim_kv = c.dim_kv or c.dim
        self.q_proj = nn.Linear(c.dim, c.dim, bias=c.bias)
        self.k_proj = nn.Linear(dim_kv, c.dim, bias=c.bias)
        self.v_proj = nn.Linear(dim_kv, c.dim, bias=c.bias)
        self.out_proj = nn.Linear(c.dim, c.dim, bias=c.bias)
        self.kernel = make_kernel(c.kernel, **{"num_heads": c.num_heads, **c.kernel_kwargs})
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, query: Tensor, context: Tensor | None = None,
                key_mask: Tensor | None = None, *, return_weights: bool = False,
                **kernel_inputs: Any) -> Tensor | tuple[Tensor, Tensor | None]:
        """Attend from ``query`` over ``context``.

        Args:
            query: Query tokens, shape ``(B, Q, dim)``.
            context: Key/value tokens, shape ``(B, L, dim_kv)``; None = self-attention.
            key_mask: Bool ``(B, L)``, True = real context token; None = all real.
            return_weights: Also return the kernel's weights ``(B, H, Q, L)`` (None for a
                kernel without weights).
            **kernel_inputs: Extra inputs for the kernel (e.g. positions).

        Returns:
            Output ``(B, Q, dim)``, or ``(output, weights)`` if ``return_weights``.
        """
        c = self.config
        check_tokens(query, "query", c.dim)
        context = query if context is None else context
        check_tokens(context, "context", c.dim_kv or c.dim, batch=query.shape[0])
        B, Q, _ = query.shape
        L = context.shape[1]
        key_mask = check_mask(key_mask, B, L, "key_mask")
        H, dh = c.num_heads, c.head_dim
        q = self.q_proj(query).view(B, Q, H, dh).transpose(1, 2)  # (B, Q, dim) -> (B, H, Q, dh)
        k = self.k_proj(context).view(B, L, H, dh).transpose(1, 2)  # (B, L, dim) -> (B, H, L, dh)
        v = self.v_proj(context).view(B, L, H, dh).transpose(1, 2)  # (B, L, dim) -> (B, H, L, dh)
        p = c.dropout if self.training else 0.0
        y = self.kernel._attend(q, k, v, key_mask, dropout_p=p, **kernel_inputs)  # (B,H,Q,dh)
        y = y.transpose(1, 2).reshape(B, Q, c.dim)  # (B, H, Q, dh) -> (B, Q, dim)
        y = self.resid_dropout(self.out_proj(y))
        if not return_weights:
            return y
        return y, self.kernel._weights(q, k, key_mask, **kernel_inputs)
