"""Measure the wall time of each experiment's smoke and quick presets; estimate full.

Runs ``bayesattn run NAME --preset P --threads 1 --device cpu`` in a fresh process for
each experiment and preset (the time a user waits, imports included), then writes

- ``bayesattn/runner/cpu_seconds.json``: the measured seconds and ``work(params)``
  of every preset measured, which ``bayesattn.experiments.estimate_cpu_seconds`` (and so
  ``bayesattn run`` and ``bayesattn list``) reads;
- ``benchmarks/results/preset_times.csv``: one row per experiment with the measured
  smoke and quick times, the full preset's estimate and its work relative to quick.

Measure on a quiet machine: another busy process on the cores inflates every number.

Usage::

    python benchmarks/preset_times.py                  # every experiment, smoke + quick
    python benchmarks/preset_times.py gap-vs-length    # some experiments (others kept)
    python benchmarks/preset_times.py --runs runs      # keep the run folders in runs/
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_csv_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "preset_times.csv"
PRESETS = ("smoke", "quick")


def timed_run(name: str, preset: str, runs: Path | None) -> float:
    """Wall seconds of ``bayesattn run`` in a fresh process (raises if the run fails).

    The run folder is ``runs/NAME-PRESET`` (replaced) when ``runs`` is given, else a
    temporary folder that is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix=f"preset-{name}-") as tmp:
        out = runs / f"{name}-{preset}" if runs is not None else Path(tmp) / "run"
        cmd = [sys.executable, "-m", "bayesattn", "run", name, "--preset", preset,
               "--threads", "1", "--device", "cpu", "--no-progress", "--overwrite",
               "--out", str(out.absolute())]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    from bayesattn import experiments, runner

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="experiments to measure (default: all)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="keep the run folders here (NAME-PRESET) instead of discarding them")
    args = parser.parse_args()
    names = args.names or experiments.names()
    data = runner.measured_seconds()
    data["reference"] = {"machine": machine(), "threads": 1, "measured": str(date.today())}
    table = data.setdefault("experiments", {})

    if args.runs is not None:
        args.runs.mkdir(parents=True, exist_ok=True)
    for name in names:
        e = experiments.get(name)
        for preset in PRESETS:
            seconds = timed_run(name, preset, args.runs)
            work = runner.work_of(e, e.preset_params(preset))
            table.setdefault(name, {})[preset] = {"seconds": round(seconds, 1), "work": work}
            print(f"{name:24s} {preset:6s} {seconds:8.1f} s", flush=True)
            runner.write_measurements(data)  # after each run: an interrupted sweep keeps it
    path = runner.write_measurements(data)

    rows = []
    for name in experiments.names():
        e, points = experiments.get(name), table.get(name, {})
        if not {"smoke", "quick"} <= set(points):
            continue
        full_work = runner.work_of(e, e.preset_params("full"))
        rows.append({
            "experiment": name, "smoke_s": points["smoke"]["seconds"],
            "quick_s": points["quick"]["seconds"],
            "full_est_s": round(experiments.estimate_cpu_seconds(e, "full").seconds, 0),
            "full_work_over_quick": round(full_work / points["quick"]["work"], 2),
            "machine": data["reference"]["machine"], "threads": 1,
            "measured": data["reference"]["measured"],
        })
    frame = pd.DataFrame(rows)
    write_csv_atomic(frame, RESULTS)
    shown = frame.assign(full_est=frame["full_est_s"].map(runner.format_duration))
    print()
    print(shown[["experiment", "smoke_s", "quick_s", "full_work_over_quick", "full_est"]]
          .to_string(index=False))
    print(f"\nquick total {frame['quick_s'].sum() / 60:.1f} min; full total "
          f"{runner.format_duration(frame['full_est_s'].sum())} (estimated); wrote {RESULTS} and "
          f"{path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
