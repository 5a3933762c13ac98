"""The experiment runner: run an :class:`Experiment` into a reproducible run folder.

This wing knows how to run any experiment and nothing about the built-in ones (those
live in :mod:`bayesattn.experiments`, which re-exports this API): the registry
:data:`EXPERIMENTS` (:func:`register`, :func:`names`, :func:`get`), :func:`run` with
its stage cache, resume, overwrite and folder lock, the :class:`RunContext` a stage
sees, parameter overrides, CPU-time estimates, the convergence table and ``report.md``.

Decision rules are data (:class:`Rule`, versioned and hashed): a run records the rules
it applied and whether they were committed to git, and the report calls a verdict stale
when its rule has changed since (:func:`rule_status`, :func:`rules_markdown`). A rule can
be code (:class:`Decision`, :class:`Gate`): :func:`decide` turns one seed's or several
seeds' numbers into the verdict the rule states.

It also holds the kit for writing an experiment's claims: :func:`stage_frame`,
:func:`pick`, :func:`ci_text`, :func:`ci_numbers`, :func:`direction`,
:func:`combine_replicates` (verdict text and rules) and :func:`convergence_row`,
:func:`loss_plateau`, :func:`plateau_rows`, :func:`plateau_judgement` (convergence).

Files are written atomically (:func:`atomic_path`, :func:`write_csv`, :func:`write_json`,
:func:`write_text`): a reader sees the old file or the whole new one. One writer at a
time: :func:`run_folder_lock` (also used by :mod:`bayesattn.sweep` for sweep folders).

Importing it is light (no torch, jax, arviz or matplotlib).
"""

from __future__ import annotations

from ._context import LoopCheckpoint, RunContext, derive_seed
from ._convergence import (
    CONVERGENCE_COLUMNS,
    PLATEAU_RULE,
    convergence_row,
    is_plateau,
    loss_plateau,
    plateau_judgement,
    plateau_rows,
    summary_line,
    unknown_floor_basis,
)
from ._cost import (
    CpuEstimate,
    estimate_cpu_seconds,
    format_duration,
    measured_seconds,
    work_of,
    write_measurements,
)
from ._decision import Cell, Decision, DecisionResult, Gate, decide
from ._errors import (
    DeviceUnavailableError,
    DiskFullError,
    ExperimentError,
    InvalidParameterError,
    NotARunFolderError,
    OutputExistsError,
    OutputNotWritableError,
    ResumeMismatchError,
    RunFolderLockedError,
    UnknownExperimentError,
    UnknownPresetError,
)
from ._folder import load_run
from ._io import atomic_path, read_csv, read_json, write_csv, write_json, write_text
from ._lock import run_folder_lock
from ._registry import (
    BUILTIN_MODULES,
    EXPERIMENTS,
    MODULES_ENV,
    get,
    import_experiment_module,
    names,
    register,
    unregister,
)
from ._report import format_verdicts, frame_to_markdown, markdown_table, render_report, write_report
from ._rules import (
    RULE_KINDS,
    Rule,
    current_rules,
    practical_version,
    rule_status,
    rules_markdown,
)
from ._run import run
from ._settings import resolve_params
from ._types import NOT_ASSESSED, VERDICTS, Experiment, RunResult, Stage, StageOutput, Verdict
from ._verdicts import (
    ESTIMATE_COLUMNS,
    ci_numbers,
    ci_text,
    combine_replicates,
    direction,
    pick,
    stage_frame,
)

__all__ = [
    "RULE_KINDS",
    "Rule",
    "Cell",
    "Decision",
    "DecisionResult",
    "Gate",
    "decide",
    "rule_status",
    "current_rules",
    "practical_version",
    "import_experiment_module",
    "rules_markdown",
    "atomic_path",
    "read_csv",
    "read_json",
    "run_folder_lock",
    "write_csv",
    "write_json",
    "write_text",
    "BUILTIN_MODULES",
    "MODULES_ENV",
    "CONVERGENCE_COLUMNS",
    "ESTIMATE_COLUMNS",
    "EXPERIMENTS",
    "NOT_ASSESSED",
    "PLATEAU_RULE",
    "VERDICTS",
    "CpuEstimate",
    "DeviceUnavailableError",
    "DiskFullError",
    "Experiment",
    "ExperimentError",
    "InvalidParameterError",
    "LoopCheckpoint",
    "NotARunFolderError",
    "OutputExistsError",
    "OutputNotWritableError",
    "ResumeMismatchError",
    "RunContext",
    "RunFolderLockedError",
    "RunResult",
    "Stage",
    "StageOutput",
    "UnknownExperimentError",
    "UnknownPresetError",
    "Verdict",
    "ci_numbers",
    "ci_text",
    "combine_replicates",
    "convergence_row",
    "derive_seed",
    "direction",
    "estimate_cpu_seconds",
    "format_duration",
    "format_verdicts",
    "frame_to_markdown",
    "get",
    "is_plateau",
    "load_run",
    "loss_plateau",
    "markdown_table",
    "measured_seconds",
    "names",
    "pick",
    "plateau_judgement",
    "plateau_rows",
    "register",
    "render_report",
    "resolve_params",
    "run",
    "stage_frame",
    "summary_line",
    "unknown_floor_basis",
    "unregister",
    "work_of",
    "write_measurements",
    "write_report",
]
