"""Running a sweep's jobs: each one a ``bayesattn run`` process of its own.

A job is the command ``python -m bayesattn run ... --threads 1 --resume --out FOLDER``
with its output in a log file. A separate process per job means that one job's crash
(an exception, a killed process, running out of memory) costs that job only: the sweep
records its exit status and goes on. ``--resume`` makes a rerun of the sweep continue
every unfinished job from its cached stages, and a job whose run folder is finished is
not started again.

Executors: ``"local"`` runs up to ``jobs`` processes at a time on this machine (threads
wait on them); ``"ray"`` submits each job as a Ray task with one CPU to a Ray cluster
(``address=None`` starts a local Ray runtime), so that a sweep can use every machine of
the cluster. Ray workers must see the sweep folder (a shared file system) and have
bayesattn installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from bayesattn.runner import MODULES_ENV, ExperimentError

from ._grid import Job

EXECUTORS = ("local", "ray")

#: Environment of a job: one thread for every numerical library, so that N jobs use N cores.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Outcome:
    """What became of one job: ``status`` is ``"done"`` (ran and finished), ``"reused"``
    (its run folder was already finished), ``"failed"`` (non-zero exit status) or
    ``"lost"`` (the executor lost it: a Ray worker died)."""

    job: Job
    status: str
    returncode: int | None
    seconds: float
    message: str = ""


def command(job: Job, folder: Path) -> list[str]:
    """The job's command line (the interpreter running this sweep, or the Ray worker's)."""
    return [sys.executable, "-m", "bayesattn", *job.run_args(), "--threads", "1", "--resume",
            "--no-progress", "--out", str(folder)]


def job_env(modules: Sequence[str] = ()) -> dict[str, str]:
    """A job's environment: this one, one thread per library, and ``modules`` added to
    ``BAYESATTN_EXPERIMENT_MODULES`` (so that the job finds experiments they register)."""
    env = {**os.environ, **ONE_THREAD}
    named = [m for m in env.get(MODULES_ENV, "").split(",") if m.strip()]
    named += [m for m in modules if m not in named]
    if named:
        env[MODULES_ENV] = ",".join(named)
    return env


def run_one(args: Sequence[str], log: str, modules: Sequence[str] = ()) -> tuple[int, float, str]:
    """Run one job's command with its output in ``log``: (exit status, seconds, last line)."""
    start = time.perf_counter()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        rc = subprocess.run(list(args), stdout=out, stderr=subprocess.STDOUT,
                            env=job_env(modules), check=False).returncode
    seconds = time.perf_counter() - start
    lines = Path(log).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return rc, seconds, (lines[-1] if lines else "")


def execute(
    pending: Sequence[tuple[Job, Path, Path]],
    *,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    modules: Sequence[str] = (),
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run ``(job, run folder, log file)`` triples; ``on_outcome`` sees each as it ends.
    ``modules``: modules that register experiments, imported by every job.

    Raises:
        ExperimentError: an unknown executor, ``jobs`` < 1, or Ray asked for but missing.
    """
    if executor not in EXECUTORS:
        raise ExperimentError(f"--executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ExperimentError(f"--jobs must be an integer >= 1; got {jobs!r}")
    if executor == "ray":
        return _execute_ray(pending, address, modules, on_outcome)
    outcomes = []
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(run_one, command(job, folder), str(log), modules): job
                   for job, folder, log in pending}
        for future in as_completed(futures):
            rc, seconds, last = future.result()
            outcome = Outcome(futures[future], "done" if rc == 0 else "failed", rc, seconds,
                              "" if rc == 0 else last)
            on_outcome(outcome)
            outcomes.append(outcome)
    finally:
        # On Ctrl-C the running jobs got it too (same process group): they stop and keep
        # their finished stages. No queued job starts; they stay pending for --resume.
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def _remote_job(job_dict: dict, folder: str, log: str,
                modules: Sequence[str]) -> tuple[int, float, str]:
    """The Ray task: build the command on the worker (its own interpreter) and run it."""
    return run_one(command(Job.from_dict(job_dict), Path(folder)), log, modules)


def _execute_ray(pending, address, modules, on_outcome) -> list[Outcome]:
    try:
        import ray
    except ImportError:
        raise ExperimentError(
            "--executor ray needs Ray: pip install 'bayesattn[ray]' (or pip install ray)"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_remote_job)
        refs = {task.remote(job.to_dict(), str(folder), str(log), list(modules)): job
                for job, folder, log in pending}
        outcomes = []
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            job = refs[ready[0]]
            try:
                rc, seconds, last = ray.get(ready[0])
                outcome = Outcome(job, "done" if rc == 0 else "failed", rc, seconds,
                                  "" if rc == 0 else last)
            except Exception as exc:  # a worker died or the task could not run
                outcome = Outcome(job, "lost", None, float("nan"),
                                  " ".join(str(exc).split())[:300])
            on_outcome(outcome)
            outcomes.append(outcome)
        return outcomes
    finally:
        if started:
            ray.shutdown()
