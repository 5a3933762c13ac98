"""How long will a preset take on a CPU? Estimates from measured runs and each experiment's work.

Every built-in experiment defines ``work(params)``: the compute its parameters ask for,
in units it chooses (typically token-passes through its networks plus the cost of its
references). ``cpu_seconds.json`` (written by ``benchmarks/preset_times.py``) holds the
measured wall time and work of its ``smoke`` and ``quick`` presets on a reference CPU
at one torch thread. The estimate for any parameters is the straight line through those
two points, ``seconds = overhead + rate * work``: the overhead covers imports, JIT
compilation and fixed set-up, the rate the part that grows with the work.

The estimate is for the reference machine at one thread; it is an extrapolation, so
treat it as a guide to the order of magnitude (``benchmarks/preset_times.py`` reports
how well smoke predicts quick through the same line's slope).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bayesattn._files import write_text

from ._registry import get
from ._settings import resolve_params
from ._types import Experiment

MEASUREMENTS = Path(__file__).with_name("cpu_seconds.json")


@dataclass(frozen=True)
class CpuEstimate:
    """An estimated CPU wall time.

    Attributes:
        seconds: The estimate (NaN when it cannot be made).
        basis: What it rests on, in words (the reference machine and measured presets).
    """

    seconds: float
    basis: str

    def __str__(self) -> str:
        if not math.isfinite(self.seconds):
            return f"unknown ({self.basis})"
        return f"~{format_duration(self.seconds)} ({self.basis})"


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 5 s"``, ``"2 h 10 min"``, ``"3.2 days"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m} min {s} s" if s else f"{m} min"
    if seconds < 48 * 3600:
        h, m = divmod(round(seconds / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{seconds / 86400:.1f} days"


@cache
def _measurements() -> dict[str, Any]:
    try:
        return json.loads(MEASUREMENTS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"reference": {}, "experiments": {}}


def measured_seconds() -> dict[str, Any]:
    """The measured smoke and quick times (a copy of ``cpu_seconds.json``)."""
    return json.loads(json.dumps(_measurements()))


def write_measurements(data: Mapping[str, Any]) -> Path:
    """Replace ``cpu_seconds.json`` with ``data`` (atomically; ``benchmarks/preset_times.py``
    calls it after each measured run) and forget the cached copy. Returns its path."""
    write_text(MEASUREMENTS, json.dumps(data, indent=2, sort_keys=True) + "\n")
    _measurements.cache_clear()
    return MEASUREMENTS


def work_of(experiment: Experiment, params: Mapping[str, Any]) -> float:
    """``experiment.work(params)`` checked to be a positive finite number."""
    if experiment.work is None:
        raise ValueError(f"experiment {experiment.name!r} defines no work() estimate")
    value = float(experiment.work(dict(params)))
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{experiment.name}: work() must return a positive finite number; "
                         f"got {value!r}")
    return value


def line_through(points: Mapping[str, Mapping[str, float]]) -> tuple[float, float]:
    """``(overhead, rate)`` of the line through the measured smoke and quick points.

    Falls back to a line through the origin and the quick point when the two points
    do not give a non-negative overhead and a positive rate.
    """
    ws, ts = float(points["smoke"]["work"]), float(points["smoke"]["seconds"])
    wq, tq = float(points["quick"]["work"]), float(points["quick"]["seconds"])
    if wq > ws and tq > ts:
        rate = (tq - ts) / (wq - ws)
        overhead = ts - rate * ws
        if overhead >= 0:
            return overhead, rate
    return 0.0, tq / wq


def estimate_cpu_seconds(
    name_or_experiment: str | Experiment,
    preset: str = "full",
    overrides: Mapping[str, Any] | None = None,
) -> CpuEstimate:
    """Estimated wall time of a preset (with overrides) on the reference CPU, one thread.

    Args:
        name_or_experiment: A registered experiment's name, or an :class:`Experiment`.
        preset: The preset to estimate (default ``"full"``).
        overrides: Parameter overrides, as for :func:`bayesattn.experiments.run`.

    Returns:
        A :class:`CpuEstimate`; its ``seconds`` is NaN when the experiment defines no
        ``work`` or has no measured smoke and quick times.
    """
    experiment = (name_or_experiment if isinstance(name_or_experiment, Experiment)
                  else get(name_or_experiment))
    params, _ = resolve_params(experiment, preset, overrides)
    data = _measurements()
    ref = data.get("reference", {})
    points = data.get("experiments", {}).get(experiment.name)
    if experiment.work is None or not points or not {"smoke", "quick"} <= set(points):
        return CpuEstimate(math.nan, f"no measured smoke and quick times for {experiment.name}")
    overhead, rate = line_through(points)
    seconds = overhead + rate * work_of(experiment, params)
    basis = (f"{ref.get('machine', 'reference CPU')}, {ref.get('threads', 1)} torch thread; "
             f"from measured smoke {format_duration(points['smoke']['seconds'])} and quick "
             f"{format_duration(points['quick']['seconds'])}")
    return CpuEstimate(float(seconds), basis)
