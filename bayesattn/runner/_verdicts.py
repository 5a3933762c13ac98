"""Small helpers that turn estimate rows (``value, ci_low, ci_high``) into verdict text.

Shared by the built-in experiments so that every report words a confidence interval
and decides a direction the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

ESTIMATE_COLUMNS = ("value", "ci_low", "ci_high", "se", "n")


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


def ci_numbers(est: Mapping[str, Any] | None, name: str = "value", *,
               named: bool = False) -> dict[str, float]:
    """``{name, ci_low, ci_high}`` as floats for ``Verdict.numbers`` ({} when missing);
    ``named=True``: ``{name, name_ci_low, name_ci_high}`` (several estimates in one
    verdict, and the names a :class:`~bayesattn.runner.Decision` reads by default)."""
    if est is None:
        return {}
    low, high = (f"{name}_ci_low", f"{name}_ci_high") if named else ("ci_low", "ci_high")
    return {name: float(est["value"]), low: float(est["ci_low"]),
            high: float(est["ci_high"])}


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


def stage_frame(results: pd.DataFrame, stage: str) -> pd.DataFrame:
    """The rows of one stage of a merged results table, without its all-empty columns.

    Columns that only other stages fill are dropped, except the estimate columns
    ``value, ci_low, ci_high, se, n``, which are kept (possibly all NaN) so that code
    reading them does not fail on a stage whose estimates were all undefined.
    """
    rows = results[results["stage"] == stage]
    keep = [c for c in rows.columns
            if c in ESTIMATE_COLUMNS or rows[c].notna().any()]
    return rows[keep]



def combine_replicates(frame: pd.DataFrame, by: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Average replicate rows (``value, ci_low, ci_high, se, n``) within each ``by`` group.

    One replicate: its row is kept as it is (its own, e.g. bootstrap, CI). Several (R):
    the value is their mean; the standard error is the larger of the between-replicate
    one (sd / sqrt(R)) and the within-replicate one (sqrt(mean se^2 / R)); the CI is
    value +- 1.96 se; ``n`` is the summed n. A ``replicates`` column gives R.
    """
    by = list(by)
    rows = []
    for key, group in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        r = len(group)
        if r == 1:
            row = group.iloc[0][list(ESTIMATE_COLUMNS)].to_dict()
        else:
            values = group["value"].to_numpy(float)
            within = float(np.sqrt(np.nanmean(group["se"].to_numpy(float) ** 2) / r))
            between = float(values.std(ddof=1) / np.sqrt(r))
            se = max(within, between)
            mean = float(values.mean())
            row = {"value": mean, "ci_low": mean - 1.96 * se, "ci_high": mean + 1.96 * se,
                   "se": se, "n": int(group["n"].sum())}
        rows.append({**dict(zip(by, key, strict=True)), **row, "replicates": r})
    return pd.DataFrame(rows)
