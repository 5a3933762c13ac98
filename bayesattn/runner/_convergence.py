"""Has each trained network converged? One row per network: its error against its floor.

An experiment that trains networks defines ``convergence(results, params)``, which
returns one row per trained network built with :func:`convergence_row`. The runner
writes the table to ``convergence.csv`` and the report shows it, so that a verdict
drawn from a network that had not finished training is visible as such.

The *floor* is the smallest error the network could reach with unlimited training:
0 nats of KL(exact || q) when its inputs and head can express the exact posterior,
the best member of its head's family when they cannot (e.g. the best diagonal
Gaussian), the exact posterior mean's error for a point estimate. When no floor is
known, ``floor`` is NaN and the row says how convergence was judged instead
(``floor_basis``), e.g. from the flatness of the training loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ._verdicts import pick

CONVERGENCE_COLUMNS = ("network", "measure", "value", "se", "floor", "floor_basis", "excess",
                       "tolerance", "converged")


def convergence_row(
    network: str,
    *,
    measure: str,
    value: float,
    se: float = math.nan,
    floor: float = 0.0,
    floor_basis: str,
    tolerance: float,
    converged: bool | None = None,
) -> dict[str, Any]:
    """One network's row of the convergence table.

    Args:
        network: Which network, as the experiment's other tables name it.
        measure: What ``value`` is, with units, e.g. ``"mean KL(exact || q), nats, L in
            [8, 64]"``.
        value: The network's measured error (mean over test sets).
        se: Its standard error (NaN when not known).
        floor: The smallest value the network could reach (NaN when not known).
        floor_basis: Why that is the floor, or how convergence is judged without one.
        tolerance: The largest ``value - floor`` counted as converged, in the units of
            ``measure``; the experiment chooses it well below the effects it measures.
        converged: Override of ``value - floor <= tolerance``; required when ``floor`` is
            NaN (e.g. the outcome of a plateau test on the training loss).

    Returns:
        A dict with the keys of :data:`CONVERGENCE_COLUMNS`.
    """
    value, se, floor, tolerance = float(value), float(se), float(floor), float(tolerance)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative number; got {tolerance!r}")
    excess = value - floor
    if converged is None:
        if not math.isfinite(excess):
            raise ValueError(
                f"network {network!r}: value {value!r} and floor {floor!r} give no finite excess; "
                "pass converged= with the basis of that judgement in floor_basis"
            )
        converged = excess <= tolerance
    return {"network": str(network), "measure": str(measure), "value": value, "se": se,
            "floor": floor, "floor_basis": str(floor_basis), "excess": excess,
            "tolerance": tolerance, "converged": bool(converged)}


def loss_plateau(history: pd.DataFrame, column: str = "loss", *,
                 fraction: float = 0.1) -> dict[str, float]:
    """Did training flatten? Mean of ``column`` over the last ``fraction`` of the steps
    against the ``fraction`` before it.

    Returns:
        ``{"last": mean of the last window, "drop": earlier mean - last mean, "se": the
        drop's standard error (Welch), "relative_drop": drop / |earlier mean|}``.
        A drop within three standard errors (one-sided, so a flat loss is called falling
        0.1% of the time), or below 1% of the loss, is a plateau.
    """
    values = np.asarray(history[column], dtype=float)
    window = max(2, int(len(values) * fraction))
    if len(values) < 2 * window:
        raise ValueError(f"need at least {2 * window} steps of history; got {len(values)}")
    last, before = values[-window:], values[-2 * window:-window]
    drop = float(before.mean() - last.mean())
    se = float(np.sqrt(before.var(ddof=1) / window + last.var(ddof=1) / window))
    scale = abs(float(before.mean())) or 1.0
    return {"last": float(last.mean()), "drop": drop, "se": se, "relative_drop": drop / scale}


def is_plateau(plateau: dict[str, float]) -> bool:
    """True when the drop of :func:`loss_plateau` is within 3 SE or below 1% of the loss."""
    return plateau["drop"] <= 3 * plateau["se"] or plateau["relative_drop"] < 0.01


def check_convergence_frame(frame: Any, experiment: str) -> pd.DataFrame:
    """``frame`` as a convergence table; TypeError/ValueError naming what is wrong."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{experiment}: convergence() must return a pandas DataFrame; got "
                        f"{type(frame).__name__}")
    missing = [c for c in CONVERGENCE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{experiment}: the convergence table lacks columns {missing}; build "
                         "its rows with convergence_row()")
    return frame[list(CONVERGENCE_COLUMNS)].reset_index(drop=True)


def summary_line(frame: pd.DataFrame) -> str:
    """``"3 of 4 trained networks converged (within tolerance of their floor)"``."""
    n, k = len(frame), int(frame["converged"].astype(bool).sum())
    if n == 0:
        return "this run trained no networks"
    unconverged = ", ".join(frame.loc[~frame["converged"].astype(bool), "network"].astype(str))
    text = f"{k} of {n} trained networks converged (within tolerance of their floor)"
    return text + (f"; not converged: {unconverged}" if unconverged else "")


#: How a network without a known floor is judged (the words every report uses).
PLATEAU_RULE = ("last 10% of the steps against the 10% before: a drop within 3 SE or below "
                "1% of the loss")


def plateau_rows(history: pd.DataFrame, column: str = "loss", **keys: Any) -> list[dict]:
    """Two tidy rows for a stage table: ``plateau_drop`` (value, se) and
    ``plateau_relative_drop`` of :func:`loss_plateau` on ``history[column]``, each with
    ``keys`` (e.g. ``candidate="net"``); none when the history has fewer than 4 steps."""
    if len(history) < 4:
        return []
    pl = loss_plateau(history, column)
    base = {**keys, "ci_low": math.nan, "ci_high": math.nan,
            "n": max(2, int(len(history) * 0.1))}
    return [{**base, "metric": "plateau_drop", "value": pl["drop"], "se": pl["se"]},
            {**base, "metric": "plateau_relative_drop", "value": pl["relative_drop"],
             "se": math.nan}]


def plateau_judgement(frame: pd.DataFrame, what: str = "training loss",
                      **where: Any) -> tuple[bool, str]:
    """``(on a plateau?, how it fell)`` from the :func:`plateau_rows` of one network
    (selected by ``where``) in a stage table; ``(False, ...)`` when there are none."""
    drop = pick(frame, metric="plateau_drop", **where)
    rel = pick(frame, metric="plateau_relative_drop", **where)
    if drop is None or rel is None:
        return False, "no training history to test"
    pl = {"drop": float(drop["value"]), "se": float(drop["se"]),
          "relative_drop": float(rel["value"])}
    return is_plateau(pl), (f"{what} fell {pl['drop']:.2g} (SE {pl['se']:.2g}, "
                            f"{100 * pl['relative_drop']:.2g}%) over the last 10% of the steps")


def unknown_floor_basis(reason: str, how: str, what: str = "training loss") -> str:
    """The ``floor_basis`` of a network whose floor is not known, judged by a plateau."""
    return f"unknown: {reason}; converged = plateau of the {what} ({PLATEAU_RULE}): {how}"
