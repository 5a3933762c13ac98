"""sweep(): run a grid of experiment runs as independent jobs and aggregate their verdicts."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bayesattn.runner import (
    ExperimentError,
    OutputExistsError,
    ResumeMismatchError,
    import_experiment_module,
    read_json,
    run_folder_lock,
    write_csv,
    write_json,
    write_text,
)

from ._aggregate import (
    AGGREGATE_COLUMNS,
    POOLED_COLUMNS,
    SEED_COLUMNS,
    aggregate_rows,
    pooled_rows,
    seed_rows,
)
from ._execute import Outcome, execute
from ._grid import Job, expand
from ._report import draw_verdict_grid, render

JOB_COLUMNS = ("experiment", "preset", "variant", "seed", "status", "returncode", "seconds",
               "folder", "log", "message")


@dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` wrote.

    Attributes:
        out: The sweep folder.
        jobs: One dict per job (``jobs.csv``): status ``done``, ``reused``, ``failed``,
            ``lost`` or ``pending`` (not run: the sweep was interrupted).
        verdicts: One dict per (finished job, verdict) (``verdicts.csv``).
        aggregate: One dict per claim entry and setting (``aggregate.csv``).
        report: Path of ``report.md``.
        pooled: One dict per claim and setting decided from all its seeds together
            (``pooled.csv``; experiments with ``pooled_verdicts`` only).
    """

    out: Path
    jobs: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    aggregate: list[dict[str, Any]]
    report: Path
    pooled: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The jobs that did not finish (failed, lost or not run)."""
        return [j for j in self.jobs if j["status"] not in ("done", "reused")]

    def __repr__(self) -> str:
        return (f"SweepResult(out={str(self.out)!r}, jobs={len(self.jobs)}, "
                f"failed={len(self.failed)}, claims={len(self.aggregate)})")


def import_module(module: str) -> None:
    """Import a module that registers experiments; a clear error when it cannot be."""
    try:
        import_experiment_module(module)
    except ImportError as exc:
        raise ExperimentError(
            f"--import {module}: cannot import it ({exc}); give a module importable from "
            "the working folder or PYTHONPATH") from None


def _write_rows(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    import pandas as pd

    write_csv(path, pd.DataFrame(list(rows), columns=list(columns)))


def _finished(folder: Path) -> bool:
    return all((folder / f).is_file() for f in ("manifest.json", "verdicts.json", "report.md"))


def _job_row(job: Job, status: str, returncode: int | None = None,
             seconds: float = float("nan"), message: str = "") -> dict[str, Any]:
    return {"experiment": job.experiment, "preset": job.preset, "variant": job.variant,
            "seed": job.seed, "status": status, "returncode": returncode,
            "seconds": seconds, "folder": f"runs/{job.folder}", "log": f"logs/{job.id}.log",
            "message": message}


def _check_folder(out: Path, jobs: list[Job], resume: bool) -> list[Job]:
    """The jobs to write into ``sweep.json``: refuses a used folder unless resuming a sweep
    whose jobs are all among the new ones (a sweep may grow: more seeds, more settings)."""
    record = out / "sweep.json"
    if not record.is_file():
        if out.exists() and any(out.iterdir()):
            raise OutputExistsError(
                f"{out} exists and is not a sweep folder; choose another --out")
        return jobs
    if not resume:
        raise OutputExistsError(
            f"{out} holds a sweep; pass --resume to continue it (finished runs are kept), or "
            "choose another --out")
    old = [Job.from_dict(d) for d in read_json(record)["jobs"]]
    missing = [j for j in old if j not in jobs]
    if missing:
        shown = ", ".join(j.folder for j in missing[:3])
        raise ResumeMismatchError(
            f"--resume: {out} holds {len(missing)} job(s) this command does not ask for "
            f"(e.g. {shown}); repeat the sweep's own options (sweep.json lists them), adding "
            "seeds or settings if you want more")
    return old + [j for j in jobs if j not in old]


def sweep(
    experiments: Sequence[str],
    *,
    presets: Sequence[str] = ("quick",),
    seeds: Sequence[int] = (0,),
    overrides: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    out: str | os.PathLike[str] = "sweeps/sweep",
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    resume: bool = False,
    modules: Sequence[str] = (),
    command: Sequence[str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run every (experiment, preset, seed, overrides) of a grid as an independent job.

    Each job is a ``bayesattn run`` process with one torch thread, writing a locked run
    folder ``OUT/runs/EXPERIMENT/PRESET[-OVERRIDES-HASH]/seedN`` exactly as ``bayesattn
    run`` would. A job that fails (an error, a crash, a killed process) is recorded in
    ``jobs.csv`` and the others go on. Every setting of every job is checked before the
    first one starts. With ``resume=True`` a sweep continues: finished runs are kept,
    unfinished ones resume from their cached stages, and new seeds or settings are added.
    At the end, ``verdicts.csv``, ``aggregate.csv``, ``figures/verdicts-by-seed.png`` and
    ``report.md`` summarise the verdicts across seeds (see :mod:`bayesattn.sweep`).

    Args:
        experiments: Experiment names.
        presets: Presets to run.
        seeds: Run seeds.
        overrides: Parameter -> value for every job (``--set``).
        grid: Parameter -> list of values, crossed (``--grid``).
        out: The sweep folder.
        executor: ``"local"`` (processes on this machine) or ``"ray"`` (a Ray cluster).
        jobs: Local executor: how many jobs run at once (one core each).
        address: Ray executor: the cluster address (None starts a local Ray runtime).
        resume: Continue the sweep in ``out``.
        modules: Modules that register your own experiments (imported here and by every
            job; see ``BAYESATTN_EXPERIMENT_MODULES`` in :mod:`bayesattn.runner`).
        command: The command line to record (and print in the report).
        announce: Called with a line of text as each job ends.

    Returns:
        :class:`SweepResult`.

    Raises:
        ExperimentError (and subclasses): a bad setting, an unusable folder, a sweep
        folder locked by another sweep; all before any job starts.
    """
    modules = list(modules)
    for module in modules:
        import_module(module)
    todo = expand(experiments, presets=presets, seeds=seeds, overrides=overrides, grid=grid)
    out = Path(out).expanduser().absolute()
    command = list(command) if command is not None else [
        "bayesattn", "sweep", *experiments, "--resume", "--out", str(out)]
    say = announce or (lambda line: None)
    with run_folder_lock(out, " ".join(command)):
        todo = _check_folder(out, todo, resume)
        write_json(out / "sweep.json", {
            "jobs": [j.to_dict() for j in todo], "command": command, "executor": executor,
            "modules": modules,
            "updated": datetime.now(UTC).isoformat(timespec="seconds")})
        rows = {j: _job_row(j, "pending") for j in todo}
        pending = []
        for j in todo:
            if _finished(out / "runs" / j.folder):
                rows[j] = _job_row(j, "reused")
            else:
                pending.append((j, out / "runs" / j.folder, out / "logs" / f"{j.id}.log"))
        lock = threading.Lock()

        def save_jobs() -> None:
            _write_rows(out / "jobs.csv", [rows[j] for j in todo], JOB_COLUMNS)

        def finished(o: Outcome) -> None:
            with lock:
                rows[o.job] = _job_row(o.job, o.status, o.returncode, o.seconds, o.message)
                save_jobs()
                done = sum(r["status"] != "pending" for r in rows.values())
            time_text = "" if math.isnan(o.seconds) else f" in {o.seconds:.0f} s"
            say(f"[{done}/{len(todo)}] {o.job.folder}: {o.status}{time_text}"
                + (f" ({o.message})" if o.message else ""))

        save_jobs()
        say(f"{len(todo)} jobs: {len(todo) - len(pending)} already finished, "
            f"{len(pending)} to run ({executor}"
            + (f", {jobs} at a time)" if executor == "local" else ")"))
        try:
            execute(pending, executor=executor, jobs=jobs, address=address, modules=modules,
                    on_outcome=finished)
        except KeyboardInterrupt as exc:
            _write_summary(out, todo, [rows[j] for j in todo], command)
            exc.add_note(f"The sweep stopped; finished runs are kept. Continue it with: "
                         f"{' '.join(command)}" + ("" if "--resume" in command else " --resume"))
            raise
        result = _write_summary(out, todo, [rows[j] for j in todo], command)
    return result


def _write_summary(out: Path, todo: list[Job], job_rows: list[dict[str, Any]],
                   command: Sequence[str]) -> SweepResult:
    per_seed = seed_rows(out / "runs", todo)
    agg = aggregate_rows(per_seed)
    pooled = pooled_rows(out / "runs", todo)
    _write_rows(out / "jobs.csv", job_rows, JOB_COLUMNS)
    _write_rows(out / "verdicts.csv", per_seed, SEED_COLUMNS)
    _write_rows(out / "aggregate.csv", agg, AGGREGATE_COLUMNS)
    if pooled:
        _write_rows(out / "pooled.csv", pooled, POOLED_COLUMNS)
    else:
        (out / "pooled.csv").unlink(missing_ok=True)
    figures = (draw_verdict_grid(per_seed, [j.seed for j in todo], out / "figures")
               if per_seed else [])
    report = out / "report.md"
    write_text(report, render(out=out, aggregate=agg, pooled=pooled, outcomes=job_rows,
                              command=command, figures=figures))
    return SweepResult(out, job_rows, per_seed, agg, report, pooled)
