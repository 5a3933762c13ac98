"""The jobs of a sweep: every (experiment, preset, seed, overrides) of a grid, checked up front."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bayesattn._checks import check_seed as _check_seed
from bayesattn.runner import ExperimentError, InvalidParameterError, get, resolve_params


def check_seed(seed: Any) -> int:
    return _check_seed(seed, error=InvalidParameterError)


_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


def _canonical(overrides: Mapping[str, Any]) -> str:
    return json.dumps(dict(sorted(overrides.items())), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Job:
    """One run of a sweep: an experiment's preset with one seed and one set of overrides.

    Attributes:
        experiment: Registered experiment name.
        preset: Preset name.
        seed: Run seed.
        overrides: ``(parameter, value)`` pairs, sorted by parameter (JSON values).
    """

    experiment: str
    preset: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()

    def __hash__(self) -> int:  # override values may be lists: hash their JSON text
        return hash((self.experiment, self.preset, self.seed, _canonical(dict(self.overrides))))

    @property
    def variant(self) -> str:
        """``"default"``, or the overrides as ``key=value`` pairs (JSON values), comma-joined."""
        if not self.overrides:
            return "default"
        return ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in self.overrides)

    @property
    def folder(self) -> str:
        """The run folder, relative to the sweep's ``runs/``:
        ``EXPERIMENT/PRESET/seedN``, or ``EXPERIMENT/PRESET-VARIANT-HASH/seedN`` with
        overrides (the variant made file-name safe and cut at 60 characters; the hash of
        the exact overrides keeps two variants apart)."""
        group = self.preset
        if self.overrides:
            digest = hashlib.sha256(_canonical(dict(self.overrides)).encode()).hexdigest()[:8]
            group = f"{self.preset}-{_UNSAFE.sub('_', self.variant)[:60]}-{digest}"
        return f"{self.experiment}/{group}/seed{self.seed}"

    @property
    def id(self) -> str:
        """The folder with ``/`` replaced by ``__`` (names the job's log file)."""
        return self.folder.replace("/", "__")

    def run_args(self) -> list[str]:
        """The ``bayesattn run`` arguments of this job, without ``--out``."""
        args = ["run", self.experiment, "--preset", self.preset, "--seed", str(self.seed)]
        for key, value in self.overrides:
            args += ["--set", f"{key}={json.dumps(value, separators=(',', ':'))}"]
        return args

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "preset": self.preset, "seed": self.seed,
                "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(data["experiment"], data["preset"], int(data["seed"]),
                   tuple(sorted(dict(data.get("overrides") or {}).items())))


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` (inclusive range), ``"0,3,7"`` or ``"5"`` (one seed) -> seeds.

    Raises:
        InvalidParameterError: anything else (the message shows the accepted forms).
    """
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            lo, sep, hi = part.strip().partition("-")
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(lo))
    except ValueError:
        raise InvalidParameterError(
            f"--seeds expects non-negative seeds as a range '0-4', a list '0,3,7' or one "
            f"seed '5'; got {text!r}") from None
    return [check_seed(s) for s in seeds]


def expand(
    experiments: Sequence[str],
    *,
    presets: Sequence[str] = ("quick",),
    seeds: Iterable[int] = (0,),
    overrides: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> list[Job]:
    """Every job of a sweep, each checked as ``bayesattn run`` would check it.

    Args:
        experiments: Experiment names.
        presets: Presets run for each experiment.
        seeds: Run seeds.
        overrides: Parameter -> value applied to every job (``--set``).
        grid: Parameter -> list of values; the sweep crosses every combination
            (``--grid``).

    Returns:
        The jobs, experiment by experiment, in grid order, without duplicates.

    Raises:
        UnknownExperimentError, UnknownPresetError, InvalidParameterError: before any job
        runs, naming the experiment, preset, parameter or value at fault.
    """
    if isinstance(experiments, str) or not experiments:
        raise ExperimentError(
            f"a sweep needs a list of experiment names; got {experiments!r}")
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise InvalidParameterError("a sweep needs at least one seed")
    grid = dict(grid or {})
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidParameterError(
                f"--grid {key}=... expects a non-empty JSON list of values, e.g. "
                f"--grid {key}=[1,2]; got {values!r}")
        if key in (overrides or {}):
            raise InvalidParameterError(
                f"{key!r} is given both by --set and by --grid; give it once")
    keys = list(grid)
    jobs: list[Job] = []
    for name in experiments:
        experiment = get(name)
        for preset in presets:
            for combo in itertools.product(*(grid[k] for k in keys)):
                wanted = {**dict(overrides or {}), **dict(zip(keys, combo, strict=True))}
                _, checked = resolve_params(experiment, preset, wanted)
                for seed in seeds:
                    job = Job(experiment.name, preset, seed, tuple(sorted(checked.items())))
                    if job not in jobs:
                        jobs.append(job)
    return jobs
