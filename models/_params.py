"""Validators for the fixed parameters of the models in the zoo.

Each validator takes the model name and the parameter label (both only for the
message), checks one value and returns it in the canonical form the models store
in ``params`` (Python floats, ints and lists, so that ``params`` is JSON). Every
failure raises :class:`ModelInputError` (a ``ValueError``) whose message says
what was expected and what was received, e.g.
``"gamma-poisson: a must be a finite number > 0; got -1.0."``.

Two kinds of scalar checks exist on purpose: :func:`finite` and :func:`positive`
convert with ``float(value)`` (so ``"2"`` or a NumPy scalar pass), while
:func:`in_interval` accepts only real numbers (``int``, ``float``, NumPy scalars;
not bools or strings).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._errors import ModelInputError

#: Largest allowed ``|sum - 1|`` of a row on the probability simplex.
SIMPLEX_ATOL = 1e-6


# Scalars ---------------------------------------------------------------------
def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def finite(model: str, label: str, value: Any) -> float:
    """A finite real number.

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: Anything ``float()`` accepts.

    Returns:
        ``float(value)``.

    Raises:
        ModelInputError: not convertible to float, NaN or infinite.
    """
    v = _as_float(value)
    if not math.isfinite(v):
        raise ModelInputError(f"{model}: {label} must be a finite number; got {value!r}.")
    return v


def positive(model: str, label: str, value: Any) -> float:
    """A finite real number > 0 (a scale, rate, shape or pseudo-count).

    Args and return value as for :func:`finite`.

    Raises:
        ModelInputError: not convertible to float, not finite, or <= 0.
    """
    v = _as_float(value)
    if not (math.isfinite(v) and v > 0):
        raise ModelInputError(f"{model}: {label} must be a finite number > 0; got {value!r}.")
    return v


def integer(model: str, label: str, value: Any, minimum: int | None = None) -> int:
    """An integer (Python or NumPy; bools rejected), optionally ``>= minimum``.

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: The candidate integer.
        minimum: Smallest allowed value, or None for no bound.

    Returns:
        ``int(value)``.

    Raises:
        ModelInputError: not an integer type, a bool, or below ``minimum``.
    """
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or (minimum is not None and value < minimum)):
        want = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ModelInputError(f"{model}: {label} must be {want}; got {value!r}.")
    return int(value)


def in_interval(model: str, label: str, value: Any, low: float, high: float,
                *, open_low: bool = False, open_high: bool = False) -> float:
    """A finite real number (not a bool or string) in an interval.

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: An ``int``, ``float`` or NumPy real scalar.
        low: Lower end of the interval.
        high: Upper end (``math.inf`` for none).
        open_low: Exclude ``low`` itself.
        open_high: Exclude ``high`` itself.

    Returns:
        ``float(value)``.

    Raises:
        ModelInputError: not a real number, not finite, or outside the interval.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    inside = (low < v if open_low else low <= v) and (v < high if open_high else v <= high)
    if not (math.isfinite(v) and inside):
        where = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ModelInputError(f"{model}: {label} must be a number in {where}; got {value!r}.")
    return v


# Arrays ----------------------------------------------------------------------
def _shape_text(shape: tuple[int, ...], dims: str | None) -> str:
    return f"{dims} = {tuple(shape)}" if dims else str(tuple(shape))


def _first(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _parse(model: str, label: str, value: Any, want: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ModelInputError(f"{model}: {label} must be {want}; got {value!r} ({err}).") from None


def _check_finite(model: str, label: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = _first(bad)
        raise ModelInputError(
            f"{model}: every entry of {label} must be finite; "
            f"got {label}{list(idx)} = {float(arr[idx])!r}.")


def float_array(model: str, label: str, value: Any, shape: tuple[int, ...] | None = None,
                *, dims: str | None = None, require_finite: bool = True) -> np.ndarray:
    """A rectangular array of numbers, as float64.

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: A (nested) list, NumPy array or tensor of numbers.
        shape: Required shape, or None for any shape.
        dims: Names of the axes for the message, e.g. ``"(K, d)"``.
        require_finite: Also require every entry to be finite.

    Returns:
        The float64 array.

    Raises:
        ModelInputError: ragged or non-numeric input, wrong shape, or (when
            ``require_finite``) a NaN or infinite entry.
    """
    want = "a rectangular nested list of numbers"
    if shape is not None:
        want += f" of shape {_shape_text(shape, dims)}"
    arr = _parse(model, label, value, want)
    if shape is not None and arr.shape != tuple(shape):
        raise ModelInputError(
            f"{model}: {label} must have shape {_shape_text(shape, dims)}; got {arr.shape}.")
    if require_finite:
        _check_finite(model, label, arr)
    return arr


def vector(model: str, label: str, value: Any, n: int, *, size: str = "p") -> list[float]:
    """A list of ``n`` finite numbers (a query or other fixed vector).

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: A list, NumPy array or tensor of numbers.
        n: Required length.
        size: Name of the length for the message (``"p"`` gives ``length p = n``).

    Returns:
        The entries as a list of Python floats.

    Raises:
        ModelInputError: non-numeric input, wrong shape or a non-finite entry.
    """
    arr = _parse(model, label, value, f"a list of {size} = {n} numbers")
    if arr.shape != (n,):
        raise ModelInputError(
            f"{model}: {label} must have length {size} = {n} (shape ({n},)); "
            f"got shape {arr.shape}.")
    _check_finite(model, label, arr)
    return [float(v) for v in arr]


def simplex_rows(model: str, label: str, value: Any, shape: tuple[int, ...], *,
                 positive: bool, dims: str | None = None,
                 renormalise: bool = True) -> np.ndarray:
    """An array whose rows (last axis) lie on the probability simplex.

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: A (nested) list, NumPy array or tensor of numbers.
        shape: Required shape, e.g. ``(K,)`` or ``(K, V)``.
        positive: Require entries > 0 (else >= 0).
        dims: Names of the axes for the message, e.g. ``"(K, V)"``.
        renormalise: Divide each row by its sum (which is within
            ``SIMPLEX_ATOL`` of 1) before returning.

    Returns:
        The float64 array, rows renormalised when ``renormalise``.

    Raises:
        ModelInputError: ragged input, wrong shape, a non-finite or negative
            (zero when ``positive``) entry, or a row whose sum differs from 1 by
            more than ``SIMPLEX_ATOL``.
    """
    arr = float_array(model, label, value, shape, dims=dims, require_finite=False)
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if bad.any():
        kind = "positive" if positive else "non-negative"
        idx = _first(bad)
        raise ModelInputError(
            f"{model}: every entry of {label} must be finite and {kind}; "
            f"got {label}{list(idx)} = {float(arr[idx])!r}.")
    sums = arr.sum(-1)
    off = np.abs(sums - 1.0) > SIMPLEX_ATOL
    if off.any():
        rows = ", ".join(map(str, _first(off)))
        got = (f"row {rows} sums to {float(sums[off][0])!r}; got sums" if arr.ndim > 1
               else "got sum")
        raise ModelInputError(
            f"{model}: {label} must sum to 1 along its last axis (probability simplex, "
            f"within {SIMPLEX_ATOL}); {got} {np.round(sums, 8).tolist()}. "
            "Divide by the sum first.")
    return arr / sums[..., None] if renormalise else arr


def concentration(model: str, label: str, value: Any, K: int) -> float | list[float]:
    """A Dirichlet concentration: one number > 0 or a list of ``K`` numbers > 0.

    Args:
        model: Model name, for the message.
        label: Parameter name, for the message.
        value: A scalar (shared by all K categories) or a length-K sequence.
        K: Number of categories.

    Returns:
        The JSON form the models store: a float for a scalar, else a list of K floats.

    Raises:
        ModelInputError: wrong shape (ragged included) or an entry that is not a
            finite number > 0 (the message names the entry, e.g. ``alpha[2]``).
    """
    try:
        shape = np.shape(value)
    except ValueError:  # ragged nested lists
        shape = None
    if shape == ():
        return positive(model, label, value)
    if shape != (K,):
        got = "a ragged nested list" if shape is None else f"shape {shape}"
        raise ModelInputError(
            f"{model}: {label} must be a number > 0 or a list of length K = {K} of "
            f"numbers > 0; got {got}.")
    return [positive(model, f"{label}[{k}]", v) for k, v in enumerate(value)]
