"""Checks of plain arguments, one wording everywhere (the one home of them).

Each takes the argument's ``name`` for the message and the exception class to raise
(``error``, a ``ValueError`` subclass by default ``ValueError``), so that every package
keeps its own error types while saying the same thing the same way::

    check_int(steps, "steps", low=1)          # "steps must be an integer >= 1; got 0."
    check_seed(seed)                          # "seed must be an integer >= 0; got -1."
    check_choice(kind, "kind", ("a", "b"))    # "kind must be one of 'a', 'b'; got 'c'."
    length_range((64, 8))                     # "seq_len needs 1 <= low <= high; got ..."

The lowest layer: imports nothing from bayesattn (numpy only).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_choice", "check_int", "check_number", "check_seed", "is_int", "length_range"]


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer (a bool is not one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None,
              error: type[Exception] = ValueError,
              type_error: type[Exception] | None = None) -> int:
    """``value`` as an int within ``[low, high]`` (either bound may be None).

    Raises ``type_error`` (default: ``error``) when ``value`` is not an integer at all,
    ``error`` when it lies outside the bounds.
    """
    in_bounds = is_int(value) and (low is None or value >= low) and (
        high is None or value <= high)
    if not in_bounds:
        bounds = " and ".join(b for b in (f">= {low}" if low is not None else "",
                                          f"<= {high}" if high is not None else "") if b)
        kind = error if is_int(value) or type_error is None else type_error
        raise kind(f"{name} must be an integer{' ' + bounds if bounds else ''}; "
                   f"got {value!r}.")
    return int(value)


def check_seed(seed: Any, name: str = "seed", *, error: type[Exception] = ValueError,
               type_error: type[Exception] | None = None) -> int:
    """``seed`` as a non-negative int."""
    return check_int(seed, name, low=0, error=error, type_error=type_error)


def check_number(value: Any, name: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False, high_open: bool = False,
                 error: type[Exception] = ValueError) -> float:
    """``value`` as a finite float in the interval given by ``low``/``high`` (closed unless
    ``low_open``/``high_open``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    ok = (not isinstance(value, (bool, np.bool_, str)) and math.isfinite(v)
          and (low is None or (v > low if low_open else v >= low))
          and (high is None or (v < high if high_open else v <= high)))
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        where = f" {' and '.join(parts)}" if parts else ""
        raise error(f"{name} must be a finite number{where}; got {value!r}.")
    return v


def check_choice(value: Any, name: str, options: Sequence[str], *,
                 error: type[Exception] = ValueError) -> str:
    """``value`` when it is one of ``options``; else an error naming them (and a close one)."""
    if isinstance(value, str) and value in options:
        return value
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise error(f"{name} must be one of {', '.join(map(repr, options))}; got "
                f"{value!r}{hint}.")


def length_range(seq_len: Any, name: str = "seq_len", *, low: int = 1,
                 error: type[Exception] = ValueError,
                 type_error: type[Exception] | None = None) -> tuple[int, int]:
    """``seq_len`` (an int or a ``(low, high)`` pair) as ``(low, high)`` with
    ``low <= low_ <= high_``; ``type_error`` (default ``error``) when it is neither."""
    pair = (seq_len, seq_len) if is_int(seq_len) else seq_len
    try:
        a, b = pair
    except (TypeError, ValueError):
        a = b = None
    if not (is_int(a) and is_int(b)):
        raise (type_error or error)(
            f"{name} must be an int or a (low, high) pair of ints; got {seq_len!r}.")
    if not low <= a <= b:
        raise error(f"{name} needs {low} <= low <= high; got {seq_len!r}.")
    return int(a), int(b)
