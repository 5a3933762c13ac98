"""Sweeps: a grid of experiment runs as independent jobs, and their verdicts across seeds.

``bayesattn sweep`` (or :func:`sweep`) runs every (experiment, preset, seed, overrides)
of a grid as its own ``bayesattn run`` process with one torch thread, on this machine
(``executor="local"``, ``jobs`` at a time) or on a Ray cluster (``executor="ray"``;
``pip install 'bayesattn[ray]'``). Every job's settings are checked before the first one
starts; a job that fails is recorded and the others go on; ``resume=True`` continues a
sweep (finished runs are kept, unfinished ones resume from their cached stages) and may
add seeds or settings.

Sweep folder::

    sweep.json       the jobs, the command, the executor
    jobs.csv         one row per job: status (done, reused, failed, lost, pending),
                     exit status, seconds, run folder, log
    runs/EXPERIMENT/PRESET[-OVERRIDES-HASH]/seedN/   one run folder per job, exactly
                     as ``bayesattn run`` writes it
    logs/JOB.log     each job's output
    verdicts.csv     one row per (run, verdict): the verdict and its key number
    aggregate.csv    per claim and setting: verdict counts, the most common verdict and
                     the seeds' agreement with it, the key number's median/min/max and
                     its mean with a Student-t 95% interval over seeds
    pooled.csv       per claim and setting, the verdict decided from all seeds together
                     (experiments whose claims define ``pooled_verdicts``)
    figures/verdicts-by-seed.png|svg    claims x seeds, coloured by verdict
    report.md

Example::

    from bayesattn.sweep import sweep

    result = sweep(["gap-vs-length"], presets=["smoke"], seeds=range(3), jobs=2,
                   out="sweeps/demo")
    result.aggregate[0]["agreement"]
"""

from __future__ import annotations

from ._aggregate import aggregate_rows, pooled_rows, seed_rows
from ._execute import EXECUTORS, Outcome
from ._grid import Job, expand, parse_seeds
from ._sweep import SweepResult, sweep

__all__ = ["EXECUTORS", "Job", "Outcome", "SweepResult", "aggregate_rows", "expand",
           "parse_seeds", "pooled_rows", "seed_rows", "sweep"]
