"""Small helpers that turn estimate rows (``value, ci_low, ci_high``) into verdict text.

Shared by the built-in experiments so that every report words a confidence interval
and decides a direction the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def pick(frame: pd.DataFrame, **where: Any) -> Mapping[str, Any] | None:
    """The first row of ``frame`` whose columns equal ``where`` (None when there is none)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        if column not in frame:
            return None
        mask &= frame[column] == value
    rows = frame[mask]
    return None if rows.empty else rows.iloc[0]


def ci_text(est: Mapping[str, Any] | None, fmt: str = "{:+.2f}") -> str:
    """``"value [ci_low, ci_high]"`` with ``fmt`` for each number; ``"n/a"`` when missing."""
    if est is None:
        return "n/a"
    return (f"{fmt.format(est['value'])} [{fmt.format(est['ci_low'])}, "
            f"{fmt.format(est['ci_high'])}]")


def ci_numbers(est: Mapping[str, Any] | None, name: str = "value") -> dict[str, float]:
    """``{name, ci_low, ci_high}`` as floats for ``Verdict.numbers`` ({} when missing)."""
    if est is None:
        return {}
    return {name: float(est["value"]), "ci_low": float(est["ci_low"]),
            "ci_high": float(est["ci_high"])}


def direction(est: Mapping[str, Any] | None, *, expected_negative: bool = True) -> str:
    """Verdict from the sign of a confidence interval.

    ``supported`` when the whole interval lies on the expected side of zero, ``not
    supported`` when it lies on the other side, ``inconclusive`` when it covers zero or
    the estimate is missing.
    """
    if est is None:
        return "inconclusive"
    if est["ci_high"] < 0:
        return "supported" if expected_negative else "not supported"
    if est["ci_low"] > 0:
        return "not supported" if expected_negative else "supported"
    return "inconclusive"
