"""The run folder: what is there, whether it may be (re)used, and swapping in a new run."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ._errors import (
    NotARunFolderError,
    OutputExistsError,
    OutputNotWritableError,
    ResumeMismatchError,
)
from ._io import read_csv, read_json, write_json
from ._types import Experiment, Verdict

#: The file every run folder carries, written first: ``--overwrite`` replaces only
#: folders that have it (a config.json alone does not make a folder ours).
MARKER = ".bayesattn-run"


def read_config(folder: Path) -> dict[str, Any] | None:
    """The ``config.json`` of a run folder, or None if ``folder`` holds no run."""
    path = Path(folder) / "config.json"
    try:
        config = read_json(path)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and "experiment" in config else None


def plan(
    out: Path, experiment: Experiment, preset: str, params: dict[str, Any], seed: int,
    *, resume: bool, overwrite: bool,
) -> str:
    """Decide between a fresh run, a resume and an overwrite; refuse everything else."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is a file, not a folder; choose another --out")
    try:
        empty = not out.is_dir() or next(out.iterdir(), None) is None
    except OSError as exc:
        raise OutputNotWritableError(
            f"cannot read {out}: {exc.strerror or exc}; choose another --out"
        ) from None
    if empty:
        return "fresh"
    config = read_config(out)
    if config is None:
        raise OutputExistsError(
            f"{out} is not empty and holds no bayesattn run (no config.json); choose another "
            "--out (--resume and --overwrite only apply to run folders)"
        )
    if resume:
        diffs = _differences(config, experiment, preset, params, seed)
        if diffs:
            raise ResumeMismatchError(
                f"cannot resume {out}: it holds a run with {'; '.join(diffs)}; use the same "
                "settings, another --out, or --overwrite"
            )
        return "resume"
    if overwrite:
        if not (out / MARKER).is_file():
            raise OutputExistsError(
                f"{out} has a config.json but no {MARKER} marker, so it was not written by "
                "this version of bayesattn; --overwrite replaces only marked run folders. "
                "Delete it yourself, or choose another --out"
            )
        return "overwrite"
    state = "finished" if (out / "manifest.json").exists() else "unfinished"
    raise OutputExistsError(
        f"{out} already holds a {state} run of {config['experiment']!r} (preset "
        f"{config.get('preset')!r}, seed {config.get('seed')}); pass --resume to continue it, "
        "--overwrite to replace it, or choose another --out"
    )


def _differences(
    config: dict[str, Any], experiment: Experiment, preset: str, params: dict[str, Any], seed: int
) -> list[str]:
    diffs = []
    for what, asked in (("experiment", experiment.name), ("preset", preset), ("seed", seed)):
        if config.get(what) != asked:
            diffs.append(f"{what} {config.get(what)!r} (asked: {asked!r})")
    old = config.get("params", {})
    for key in sorted(set(old) | set(params)):
        if old.get(key, ...) != params.get(key, ...):
            diffs.append(f"{key}={old.get(key)!r} (asked: {params.get(key)!r})")
    return diffs


def prepare(out: Path, mode: str, experiment: str = "") -> Path:
    """Create the folder to write into, prove it is writable and mark it as a run folder
    (before any computation)."""
    if mode == "overwrite":
        work = out.parent / f".{out.name}.new-{uuid.uuid4().hex[:8]}"
    else:
        work = out
    created = not work.exists()
    try:
        work.mkdir(parents=True, exist_ok=True)
        probe = work / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        if not (work / MARKER).is_file():
            write_json(work / MARKER, {"tool": "bayesattn", "marker_version": 1,
                                       "experiment": experiment})
    except OSError as exc:
        if created and work.is_dir():
            shutil.rmtree(work, ignore_errors=True)
        raise OutputNotWritableError(
            f"cannot write to {out}: {exc.strerror or exc}; choose another --out or fix "
            "its permissions"
        ) from None
    return work


def swap(work: Path, out: Path) -> None:
    """Move the finished run ``work`` onto ``out``; remove the old run only then."""
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(work, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_run(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], Any, list[Verdict]]:
    """``(config, results, verdicts)`` of a finished run folder (for notebooks).

    Raises:
        NotARunFolderError: ``folder`` holds no finished run.
    """
    folder = Path(folder)
    config = read_config(folder)
    if config is None:
        raise NotARunFolderError(f"{folder} is not a bayesattn run folder (no config.json)")
    if not (folder / "verdicts.json").is_file() or not (folder / "results.csv").is_file():
        raise NotARunFolderError(f"{folder} holds an unfinished run; finish it with --resume")
    verdicts = [Verdict.from_dict(v) for v in read_json(folder / "verdicts.json")]
    return config, read_csv(folder / "results.csv"), verdicts
