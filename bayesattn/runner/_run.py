"""run(): execute an experiment into a run folder, with stage caching, resume and overwrite.

Run folder layout::

    .bayesattn-run         marker, written first: --overwrite replaces only folders that have it
    config.json            experiment, preset, params, seed, device, threads, versions, git commit,
                           plumbing_check (a smoke run: no claim assessed, see run())
    stages/<stage>.csv     each stage's table ...
    stages/<stage>.json    ... and its manifest (with the SHA-256 of its files), written last: the
                           "stage done" marker; resume recomputes a stage whose files changed
    posteriors/<stage>-<key>.nc   models/<stage>-<key>.pt   arrays/  tables/  artifacts/
    checkpoints/<stage>-<key>/    training checkpoints of the running stage (ctx.train);
                                  a killed run resumes mid-training, a finished one has none
    results.csv            all stage tables, ``stage`` column first
    convergence.csv        each trained network's error against its floor (when it trains any)
    headline.csv           the headline table (when the experiment defines one)
    verdicts.json          one entry per tested claim ("not assessed (smoke preset)" in a smoke run)
    figures/<name>.png|svg
    manifest.json          stage timings and figure list, written when the run finished
    report.md

Every file is written to a temporary name and moved into place (``os.replace``).
One process at a time writes a run folder: it holds an OS lock on ``.NAME.lock``
beside the folder (see ``_lock``), and a second writer is refused with a line naming
the holder. Under the lock, what crashed writers left (temporary files, unfinished
``--overwrite`` folders) is removed before the run starts.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._artifacts import save as save_artifact
from ._context import RunContext
from ._convergence import check_convergence_frame
from ._cost import estimate_cpu_seconds
from ._decision import decide
from ._errors import DiskFullError, ExperimentError, InvalidParameterError
from ._folder import plan, prepare, swap
from ._io import environment, file_committed, read_csv, read_json, write_csv, write_json
from ._lock import clean_siblings, remove_temp_files, run_folder_lock
from ._registry import get
from ._report import write_report
from ._rules import Rule, current_rules
from ._settings import check_seed, is_plumbing_check, resolve_device, resolve_params
from ._types import NOT_ASSESSED, VERDICTS, Experiment, RunResult, StageOutput, Verdict


def run(
    name_or_experiment: str | Experiment,
    *,
    preset: str = "quick",
    seed: int = 0,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
    command: str | Sequence[str] | None = None,
    threads: int | str | None = "auto",
    announce: Callable[[str], None] | None = None,
) -> RunResult:
    """Run an experiment and write its run folder (see the module docstring for the layout).

    A run of the ``smoke`` preset, with or without ``overrides`` (or of another preset
    whose parameters after overrides equal the smoke preset's), is a plumbing check, not
    evidence: it shows that every stage, file and figure is produced, at sizes chosen to
    finish in seconds. Its verdicts all read ``"not assessed (smoke preset)"``
    (``NOT_ASSESSED``) in the returned verdicts, ``verdicts.json``, ``report.md`` (which
    says so at its top) and the CLI summary; what each claim's decision rule returned on
    the smoke-size numbers is kept, for tests of the verdict plumbing only, as
    ``Verdict.smoke_rule_outcome`` (``"smoke_rule_outcome"`` in ``verdicts.json``).
    ``config.json`` records ``"plumbing_check": true``. To test the claims, run
    ``quick`` or ``full`` (with overrides if need be).

    Args:
        name_or_experiment: A registered experiment's name, or an :class:`Experiment`.
        preset: Name of one of the experiment's presets (``"smoke"``, ``"quick"``, ``"full"``).
        seed: Non-negative run seed; each stage gets ``ctx.seed_for(stage)`` from it.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        out: Run folder; default ``runs/<name>-<preset>-seed<seed>`` under the working folder.
        resume: Continue the run in ``out``, reusing its finished stages; refused when
            ``out`` holds a run with another experiment, preset, params or seed.
        overwrite: Replace the run in ``out``; the new run is written into a sibling
            temporary folder that replaces ``out`` only once it has finished, so a failed
            run leaves the old results intact.
        progress: Show progress: live tqdm bars in a terminal or Jupyter, a few plain
            lines when the output is not a terminal (see ``bayesattn._progress``);
            False shows nothing.
        overrides: Parameter name -> value replacing the preset's value (names must exist
            in the preset; values are checked against the preset's types).
        command: The command line that started the run, recorded in ``config.json``.
        threads: torch CPU threads for the run (restored afterwards), recorded in
            ``config.json``: an int, None (torch's setting) or ``"auto"`` (default: the
            cores idle when the run starts; see ``bayesattn.inference.resolve_threads``).
        announce: Called once with a line of text (the preset's estimated CPU time, see
            :func:`~bayesattn.experiments.estimate_cpu_seconds`) after every setting has
            been checked and before any stage runs; the CLI prints it. The estimate is
            also recorded in ``config.json`` as ``estimated_cpu_seconds``.

    Returns:
        A :class:`RunResult`.

    Raises:
        UnknownExperimentError, UnknownPresetError, InvalidParameterError,
        DeviceUnavailableError, OutputExistsError, OutputNotWritableError,
        ResumeMismatchError: bad input, raised before anything is computed or deleted.
    """
    experiment = _resolve(name_or_experiment)
    if resume and overwrite:
        raise ExperimentError(
            "resume and overwrite exclude each other (resume continues the run in the folder, "
            "overwrite replaces it); pass one of them"
        )
    seed = check_seed(seed)
    params, overrides = resolve_params(experiment, preset, overrides)
    out = Path(out if out is not None else Path("runs") / f"{experiment.name}-{preset}-seed{seed}")
    out = out.expanduser().absolute()
    device = resolve_device(device)
    from bayesattn._threads import resolve_threads, torch_threads

    try:
        n_threads = resolve_threads(threads)
    except ValueError as err:
        raise InvalidParameterError(str(err)) from None
    if command is not None and not isinstance(command, str):
        command = " ".join(str(c) for c in command)
    estimate = estimate_cpu_seconds(experiment, preset, overrides)
    with run_folder_lock(out, command):
        clean_siblings(out)
        mode = plan(out, experiment, preset, params, seed, resume=resume, overwrite=overwrite)
        if mode == "resume":
            remove_temp_files(out)
        work = prepare(out, mode, experiment.name)
        if announce is not None and math.isfinite(estimate.seconds):
            announce(f"{experiment.name} preset {preset}: estimated CPU time {estimate}")
        try:
            with torch_threads(n_threads):
                result = _execute(
                    experiment, work=work, out=out, mode=mode, preset=preset, params=params,
                    overrides=overrides, seed=seed, device=device, progress=progress,
                    command=command, threads=n_threads, estimate=estimate.seconds,
                    plumbing=is_plumbing_check(experiment, preset, params),
                )
        except BaseException as exc:
            if mode == "overwrite":
                shutil.rmtree(work, ignore_errors=True)
                note = f"the earlier run in {out} is untouched"
            else:
                note = (f"finished stages are saved in {out}; continue with resume=True "
                        f"(bayesattn run {experiment.name} --preset {preset} --seed {seed} "
                        f"--out {out} --resume)")
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(
                    f"no space left on the device of {out} (while writing "
                    f"{exc.filename or 'a file'}); nothing half-written was kept and {note}, "
                    "once space is freed") from exc
            exc.add_note(f"bayesattn: the run failed; {note}.")
            raise
        if mode == "overwrite":
            swap(work, out)
        result = RunResult(
            out=out, results=result.results, verdicts=result.verdicts, headline=result.headline,
            figures=[out / p.relative_to(work) for p in result.figures],
            report=out / "report.md", convergence=result.convergence,
        )
    return result


# ----------------------------------------------------------------- validation
def _resolve(name_or_experiment: str | Experiment) -> Experiment:
    if isinstance(name_or_experiment, Experiment):
        return name_or_experiment
    if isinstance(name_or_experiment, str):
        return get(name_or_experiment)
    raise TypeError(f"run() expects an experiment name or Experiment, got {name_or_experiment!r}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------- execution
def _execute(
    experiment: Experiment, *, work: Path, out: Path, mode: str, preset: str,
    params: dict[str, Any], overrides: dict[str, Any], seed: int, device: str, progress: bool,
    command: str | None, threads: int, estimate: float = math.nan, plumbing: bool = False,
) -> RunResult:
    from bayesattn._progress import progress_bar

    start = time.perf_counter()
    env = environment(device)
    # The rules this process will apply, and whether they were committed before it started.
    latest = current_rules(experiment.rules)
    rules = {claim: rule.record() for claim, rule in latest.items()}
    rules_committed = file_committed(experiment.rules_file) if rules else None
    if mode == "resume":
        config = read_json(work / "config.json")
        config.setdefault("resumed", []).append(
            {"time": _now(), "device": device, "threads": threads, "command": command,
             "git": env["git"]}
        )
        (work / "manifest.json").unlink(missing_ok=True)  # the run is in progress again
        config["plumbing_check"] = plumbing
        config["out"] = str(out)  # where it is now (the report's regenerate line names it)
        config["rules"], config["rules_committed"] = rules, rules_committed
    else:
        config = {
            "experiment": experiment.name, "title": experiment.title,
            "claims": list(experiment.claims), "description": experiment.description,
            "preset": preset, "params": params,
            "overrides": overrides, "seed": seed, "device": device, "threads": threads,
            "plumbing_check": plumbing,
            "estimated_cpu_seconds": round(estimate, 1) if math.isfinite(estimate) else None,
            "out": str(out), "rules": rules, "rules_committed": rules_committed,
            "created": _now(), "command": command, **env,
        }
    write_json(work / "config.json", config)

    ctx = RunContext(
        experiment=experiment, preset=preset, params=copy.deepcopy(params), seed=seed,
        device=device, out=work, progress=progress,
    )
    log = []
    reuse = mode == "resume"
    bar = progress_bar(experiment.stages, desc=experiment.name, unit="stage",
                       disable=not progress, position=0, leave=True, dynamic_ncols=True)
    for stage in bar:
        bar.set_postfix_str(stage.name)
        manifest = _finished_stage(work, stage.name) if reuse else None
        cached = manifest is not None
        if manifest is None:
            reuse = False  # a recomputed stage invalidates the caches of later stages
            manifest = _run_stage(ctx, stage)
        ctx._index[stage.name] = manifest["artifacts"]
        ctx.results[stage.name] = read_csv(work / manifest["table"])
        log.append({"stage": stage.name, "rows": manifest["rows"],
                    "seconds": manifest["seconds"], "cached": cached})
    bar.close()
    ctx.stage = None

    results = _combine(ctx.results, experiment)
    write_csv(work / "results.csv", results)
    results = read_csv(work / "results.csv")

    headline = None
    if experiment.headline is not None:
        headline = _as_frame(experiment.headline(results), "headline")
        write_csv(work / "headline.csv", headline)
        headline = read_csv(work / "headline.csv", keep_text=True)
    else:
        (work / "headline.csv").unlink(missing_ok=True)

    verdicts = list(experiment.verdicts(results, copy.deepcopy(params)))
    for v in verdicts:
        if not isinstance(v, Verdict) or v.verdict not in VERDICTS:
            raise TypeError(f"{experiment.name}: verdicts() must return Verdict objects with "
                            f"a verdict in {list(VERDICTS)}, got {v!r}")
    verdicts = [_apply_rule(v, latest.get(v.claim), rules.get(v.claim)) for v in verdicts]
    if plumbing:  # smoke sizes are no evidence: no claim is assessed
        verdicts = [dataclasses.replace(v, verdict=NOT_ASSESSED, smoke_rule_outcome=v.verdict)
                    for v in verdicts]
    write_json(work / "verdicts.json", [v.to_dict() for v in verdicts])

    convergence = None
    if experiment.convergence is not None:
        convergence = check_convergence_frame(
            experiment.convergence(results, copy.deepcopy(params)), experiment.name)
        write_csv(work / "convergence.csv", convergence)
        convergence = read_csv(work / "convergence.csv")
    else:
        (work / "convergence.csv").unlink(missing_ok=True)

    figures = _make_figures(experiment, ctx, results, work)
    write_json(work / "manifest.json", {
        "experiment": experiment.name, "preset": preset, "seed": seed, "device": device,
        "stages": log, "figures": [p.relative_to(work).as_posix() for p in figures],
        "finished": _now(), "seconds": round(time.perf_counter() - start, 3),
    })
    report = write_report(work)
    return RunResult(out=work, results=results, verdicts=verdicts, headline=headline,
                     figures=figures, report=report, convergence=convergence)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finished_stage(work: Path, name: str) -> dict[str, Any] | None:
    """The manifest of a finished stage whose files are all there and unchanged, else None.

    The manifest stores each file's SHA-256; a file that is missing, truncated or edited
    since makes the stage count as unfinished, so resume recomputes it (and the stages
    after it). Manifests written before hashes were recorded are checked for presence only.
    """
    try:
        manifest = read_json(work / "stages" / f"{name}.json")
        files = [manifest["table"], *(e["path"] for e in manifest["artifacts"].values())]
        hashes = manifest.get("sha256", {})
        for rel in files:
            path = work / rel
            if not path.is_file() or (rel in hashes and _sha256(path) != hashes[rel]):
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


def _run_stage(ctx: RunContext, stage: Any) -> dict[str, Any]:
    ctx.stage = stage.name
    t0 = time.perf_counter()
    output = stage.fn(ctx)
    seconds = time.perf_counter() - t0
    if isinstance(output, StageOutput):
        frame, artifacts = output.frame, dict(output.artifacts)
    else:
        frame, artifacts = output, {}
    frame = _as_frame(frame, f"stage {stage.name!r}")
    if "stage" in frame.columns:
        raise ValueError(
            f"stage {stage.name!r}: its table has a column named 'stage', which results.csv "
            "reserves for the stage name; rename it"
        )
    entries = {key: save_artifact(ctx.out, stage.name, key, value)
               for key, value in artifacts.items()}
    table = f"stages/{stage.name}.csv"
    write_csv(ctx.out / table, frame)
    files = [table, *(e["path"] for e in entries.values())]
    manifest = {
        "stage": stage.name, "table": table, "rows": len(frame),
        "columns": list(frame.columns), "artifacts": entries, "seconds": round(seconds, 3),
        "seed": ctx.seed_for(stage.name), "finished": _now(),
        "sha256": {rel: _sha256(ctx.out / rel) for rel in files},
    }
    write_json(ctx.out / "stages" / f"{stage.name}.json", manifest)  # the "done" marker
    _drop_checkpoints(ctx.out, stage.name)
    return manifest


def _drop_checkpoints(out: Path, stage: str) -> None:
    """Remove a finished stage's training checkpoints (``ctx.train``), and the folder
    when it is empty: a finished run folder holds none."""
    folder = Path(out) / "checkpoints"
    if not folder.is_dir():
        return
    for path in folder.glob(f"{stage}-*"):
        shutil.rmtree(path, ignore_errors=True)
    if next(folder.iterdir(), None) is None:
        folder.rmdir()


def _as_frame(value: Any, what: str) -> Any:
    """Check a returned table; keep a named index as columns; string column names."""
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise TypeError(
            f"{what} must return a pandas DataFrame or StageOutput; got {type(value).__name__}"
        )
    if isinstance(value.columns, pd.MultiIndex):
        raise TypeError(f"{what}: flatten the MultiIndex columns of its table first")
    if any(name is not None for name in value.index.names):
        value = value.reset_index()
    value = value.copy()
    value.columns = [str(c) for c in value.columns]
    return value


def _combine(results: dict[str, Any], experiment: Experiment) -> Any:
    import pandas as pd

    frames = []
    for name in experiment.stage_names:
        frame = results[name]
        if len(frame):
            frames.append(frame.assign(stage=name)[["stage", *frame.columns]])
    if not frames:
        return pd.DataFrame({"stage": []})
    return pd.concat(frames, ignore_index=True, sort=False)


def _make_figures(experiment: Experiment, ctx: RunContext, results: Any, work: Path) -> list[Path]:
    # Figures are redrawn on every run, resumed or not; the report shows exactly the
    # files returned here (recorded in manifest.json), never stale ones in figures/.
    if experiment.figures is None:
        return []
    from bayesattn import plots

    with plots.set_style():
        returned = experiment.figures(ctx, results) or []
    figures: list[Path] = []
    for path in returned:
        path = Path(path)
        path = path if path.is_absolute() else work / path
        if not path.is_file():
            raise FileNotFoundError(f"{experiment.name}: figures() returned {path}, which is "
                                    "not a file; return the paths plots.save_figure returns")
        try:
            path.relative_to(work)
        except ValueError:
            raise ValueError(f"{experiment.name}: figure {path} lies outside the run folder; "
                             "save figures into ctx.figures_dir") from None
        if path not in figures:
            figures.append(path)
    return figures


def _apply_rule(v: Verdict, rule: Rule | None, record: dict[str, Any] | None) -> Verdict:
    """The verdict with its rule recorded and, where the rule is code (``decisions``), the
    verdict that code gives on this run's numbers (one seed: its own intervals)."""
    try:
        decision = rule.decision_for(v.numbers) if rule is not None else None
    except ValueError as err:  # e.g. settings that leave a rule's cells unmeasured
        return dataclasses.replace(
            v, verdict="inconclusive", rule=record,
            measured=f"{v.measured} Rule v{rule.version} cannot decide: {err}.")
    if decision is None:
        return dataclasses.replace(v, rule=record)
    result = decide(decision, [v.numbers])
    return dataclasses.replace(
        v, verdict=result.verdict, rule=record, expected=" ".join(rule.decision.split()),
        measured=f"{v.measured} Rule v{rule.version}: {result.text}")

