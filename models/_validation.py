"""Input checks shared by every model: tokens, masks and latents.

Every failure raises :class:`ModelInputError` (a ``ValueError``) whose message
says what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.distributions import constraints

from ._errors import ModelInputError


def as_tensor(value: Any, name: str) -> torch.Tensor:
    """Turn a tensor or NumPy array into a tensor (no copy for tensors)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) or (
        hasattr(value, "__array__") and not isinstance(value, (str, bytes))
    ):
        # NumPy, JAX and other array-likes; read-only buffers (e.g. from JAX) are copied.
        arr = np.asarray(value)
        return torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    raise ModelInputError(
        f"{name} must be a torch.Tensor or numpy array; got {type(value).__name__}. "
        f"Wrap it with torch.as_tensor(...)."
    )


def _is_categorical(support: constraints.Constraint) -> bool:
    return isinstance(support, constraints.integer_interval)


def check_dtype(x: torch.Tensor, support: constraints.Constraint, name: str) -> torch.Tensor:
    """Check that ``x`` has a dtype that fits ``support`` and return it in canonical dtype.

    Canonical dtypes: ``torch.long`` for categorical values, ``torch.float64`` otherwise.
    """
    if x.is_complex():
        raise ModelInputError(f"{name} must be real-valued; got complex dtype {x.dtype}.")
    if _is_categorical(support):
        if x.dtype == torch.bool or x.is_floating_point():
            raise ModelInputError(
                f"{name} holds category ids and must have an integer dtype (e.g. torch.long); "
                f"got {x.dtype}. Convert with .long() after checking the values are integers."
            )
        return x.long()
    if getattr(support, "is_discrete", False):
        if x.dtype == torch.bool and support is not constraints.boolean:
            raise ModelInputError(f"{name} holds counts; got dtype torch.bool.")
        return x.to(torch.float64)
    if not x.is_floating_point():
        raise ModelInputError(
            f"{name} holds real values and must have a floating dtype "
            f"(float32 or float64); got {x.dtype}. Convert with .double()."
        )
    return x.to(torch.float64)


def check_mask(mask: Any, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """Validate a ``(B, L)`` boolean mask (True = real token); ``None`` means all real."""
    if mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    mask = as_tensor(mask, "mask")
    if mask.dtype != torch.bool:
        raise ModelInputError(
            f"mask must be a bool tensor (True = real token); got dtype {mask.dtype}. "
            "Use mask.bool() if it holds 0/1."
        )
    if tuple(mask.shape) != (batch, length):
        raise ModelInputError(
            f"mask must have shape (B, L) = {(batch, length)} to match the tokens; "
            f"got {tuple(mask.shape)}."
        )
    return mask.to(device)


def check_tokens(
    x: Any,
    mask: Any,
    *,
    token_shape: tuple[int, ...],
    support: constraints.Constraint,
    model_name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate tokens of shape ``(B, L, *token_shape)`` and their mask.

    Padded positions (mask False) may hold anything finite or not; they are
    replaced by zeros, which lie in the support of every model's tokens, so that
    downstream log densities never see invalid values.

    Returns:
        ``(x, mask)``: tokens in canonical dtype and a bool mask of shape ``(B, L)``.
    """
    x = as_tensor(x, "x")
    want = f"(B, L{''.join(', ' + str(s) for s in token_shape)})"
    if x.ndim != 2 + len(token_shape) or tuple(x.shape[2:]) != tuple(token_shape):
        raise ModelInputError(
            f"{model_name}: tokens x must have shape {want} with token_shape "
            f"{tuple(token_shape)}; got shape {tuple(x.shape)}."
        )
    b, length = int(x.shape[0]), int(x.shape[1])
    if b == 0:
        raise ModelInputError(f"{model_name}: x holds no sequences (B = 0); need B >= 1.")
    if length == 0:
        raise ModelInputError(
            f"{model_name}: x has sequence length L = 0; need L >= 1 (shape {want})."
        )
    x = check_dtype(x, support, "x")
    mask = check_mask(mask, b, length, x.device)
    real = mask.reshape(mask.shape + (1,) * len(token_shape)).expand_as(x)
    if x.is_floating_point():
        bad = ~torch.isfinite(x) & real
        if bad.any():
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise ModelInputError(
                f"{model_name}: tokens must be finite; x{list(idx)} = {x[idx].item()}. "
                "Use the mask (False = padding) instead of NaN/inf padding."
            )
    if not bool(mask.all()):
        x = torch.where(real, x, torch.zeros((), dtype=x.dtype, device=x.device))
    ok = support.check(x)
    ok = ok.reshape(b, length, -1).all(-1) if ok.ndim > 2 else ok
    bad = ~ok.bool() & mask
    if bad.any():
        i, j = (int(v) for v in bad.nonzero()[0])
        raise ModelInputError(
            f"{model_name}: token x[{i}, {j}] = {x[i, j].tolist()} is outside the token "
            f"support {support}; expected values in that set."
        )
    return x, mask


def check_latent(
    z: Any, *, batch: int, latent_shape: tuple[int, ...], support: constraints.Constraint,
    model_name: str,
) -> torch.Tensor:
    """Validate latents of shape ``(B, *latent_shape)`` against the prior's support."""
    z = as_tensor(z, "z")
    want = (batch, *latent_shape)
    if tuple(z.shape) != want:
        raise ModelInputError(
            f"{model_name}: z must have shape (B, *latent_shape) = {want}; got {tuple(z.shape)}."
        )
    z = check_dtype(z, support, "z")
    ok = support.check(z)
    if not bool(torch.as_tensor(ok).all()):
        raise ModelInputError(f"{model_name}: some z lie outside the latent support {support}.")
    return z
