"""Validation of the checks' own arguments (bad arguments raise; bad candidates fail)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch

from bayesattn._checks import check_int, length_range
from bayesattn._checks import check_seed as _check_seed
from bayesattn.models import ExchangeableModel, SetBatch, UnknownModelError
from bayesattn.models import get as get_model

__all__ = [
    "CheckArgumentError",
    "CheckTypeError",
    "accepts_mask",
    "as_model",
    "positive_float",
    "positive_int",
    "seq_len_range",
    "simulate",
]


class CheckArgumentError(ValueError):
    """A bad argument of a check (not of the candidate); the message says how to fix it."""


class CheckTypeError(TypeError):
    """An argument of a check with the wrong type."""


def as_model(model: Any) -> ExchangeableModel:
    """A model instance, or a registry name turned into one with default parameters."""
    if isinstance(model, ExchangeableModel):
        return model
    if isinstance(model, str):
        try:
            return get_model(model)
        except UnknownModelError as err:
            raise CheckArgumentError(str(err)) from None
    raise CheckTypeError(
        "model: expected a bayesattn.models.ExchangeableModel or a registry name such as "
        f"'concept-mixture'; got {type(model).__name__}."
    )


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    return check_int(value, name, low=minimum, error=CheckArgumentError,
                     type_error=CheckTypeError)


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CheckTypeError(f"{name}: expected a positive number; got {value!r}.")
    if not (math.isfinite(float(value)) and value > 0):
        raise CheckArgumentError(f"{name}: expected a finite number > 0; got {value!r}.")
    return float(value)


def seq_len_range(value: Any, name: str = "seq_len") -> tuple[int, int]:
    """An int L or a ``(low, high)`` pair as ``(low, high)`` with ``1 <= low <= high``."""
    return length_range(value, name, error=CheckArgumentError, type_error=CheckTypeError)


def simulate(model: ExchangeableModel, num: int, low: int, high: int, seed: int) -> SetBatch:
    """``num`` sequences of the model, lengths uniform in ``[low, high]`` (prefix mask)."""
    batch = model.simulate(num, high, seed=seed)
    if low == high:
        return batch
    gen = torch.Generator().manual_seed(int(seed) + 1)
    lengths = torch.randint(low, high + 1, (num,), generator=gen)  # (B,)
    mask = torch.arange(high)[None, :] < lengths[:, None]  # (B, L)
    return SetBatch(batch.z, batch.x, batch.y, mask)


def check_seed(seed: Any) -> int:
    return _check_seed(seed, error=CheckArgumentError, type_error=CheckTypeError)


def accepts_mask(fn: Any) -> bool:
    """True when ``fn`` can be called as ``fn(x, mask)`` (two positional arguments)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    params = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                  inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2
