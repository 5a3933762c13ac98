"""The data types of the experiment machinery: Experiment, Stage, StageOutput, Verdict, RunResult.

Light on purpose: nothing here imports pandas, torch or arviz at module level, so
that registering and listing experiments stays fast.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bayesattn._text import short_path

from ._rules import Rule, check_rules

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: What a stage, ``figures`` and the experiment's callables receive: a
#: :class:`~bayesattn.runner.RunContext` (typed loosely here, so that this module of
#: plain data types does not depend on the context that runs them).
RunContext = Any

EXPERIMENT_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
STAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
REQUIRED_PRESETS = ("smoke", "quick", "full")
VERDICTS = ("supported", "not supported", "inconclusive")
#: The verdict of every claim in a plumbing check (a run at the smoke preset's settings,
#: see :func:`bayesattn.experiments.run`): its sizes are too small to be evidence.
NOT_ASSESSED = "not assessed (smoke preset)"


def _json_roundtrip(value: Any, what: str) -> Any:
    """``value`` as it reads back from JSON (tuples become lists); TypeError if impossible."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} must be JSON-serializable (numbers, strings, bools, None, lists, dicts "
            f"with string keys) and finite; got {value!r} ({exc})"
        ) from None


@dataclass(frozen=True)
class Stage:
    """One step of an experiment, cached on disk once it has finished.

    Args:
        name: File-name safe id, unique within the experiment (``[a-z0-9][a-z0-9_-]*``);
            the stage's table is saved as ``stages/<name>.csv``.
        fn: ``fn(ctx: RunContext) -> StageOutput | pandas.DataFrame``. It reads its
            settings from ``ctx.params``, its seed from ``ctx.seed_for(name)``, the
            tables of earlier stages from ``ctx.results`` and their artifacts from
            ``ctx.artifact(stage, key)``. It must not rely on anything else kept in
            memory between stages: a resumed run reloads earlier stages from disk.
    """

    name: str
    fn: Callable[[RunContext], StageOutput | pd.DataFrame]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not STAGE_NAME.match(self.name):
            raise ValueError(
                f"Stage name must match [a-z0-9][a-z0-9_-]* (it names files); got {self.name!r}"
            )
        if not callable(self.fn):
            raise TypeError(f"Stage {self.name!r}: fn must be callable, got {self.fn!r}")


@dataclass
class StageOutput:
    """What a stage returns when it has more than a table.

    Args:
        frame: Tidy table, one row per measurement (saved as ``stages/<stage>.csv``;
            a non-default index is kept as columns; the column name ``stage`` is reserved).
        artifacts: Named objects saved next to the table, by type:
            ``arviz.InferenceData`` -> ``posteriors/<stage>-<key>.nc``;
            a torch ``state_dict`` (a mapping holding tensors) or an ``nn.Module``
            (saved as its state dict) -> ``models/<stage>-<key>.pt``;
            a torch tensor -> ``arrays/<stage>-<key>.pt``;
            a NumPy array -> ``arrays/<stage>-<key>.npy``;
            a DataFrame -> ``tables/<stage>-<key>.csv``;
            a JSON-serializable mapping -> ``artifacts/<stage>-<key>.json``.
            Keys are file-name safe (``[A-Za-z0-9][A-Za-z0-9_.-]*``).
    """

    frame: pd.DataFrame
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim.

    Args:
        claim: Claim id from docs/claims.md, e.g. ``"P4"``.
        statement: The claim in words.
        expected: The direction the paper expects, in words.
        measured: What was measured, one sentence with the numbers.
        verdict: One of ``"supported"``, ``"not supported"``, ``"inconclusive"`` (what an
            experiment's ``verdicts()`` returns), or ``NOT_ASSESSED``
            (``"not assessed (smoke preset)"``), which :func:`~bayesattn.experiments.run`
            gives every claim of a plumbing check.
        numbers: The key numbers behind the verdict (name -> float).
        smoke_rule_outcome: Only in a plumbing check (``verdict == NOT_ASSESSED``): what
            the claim's decision rule returned on the run's smoke-size numbers. It is not
            a verdict (smoke sizes are no evidence); it is kept so that tests can check
            the verdict plumbing. None otherwise.
        rule: ``{version, kind, sha256}`` of the rule that decided it (set by the runner
            from the experiment's ``rules``); None when the experiment states none.
    """

    claim: str
    statement: str
    expected: str
    measured: str
    verdict: str
    numbers: Mapping[str, float] = field(default_factory=dict)
    smoke_rule_outcome: str | None = None
    rule: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("claim", "statement", "expected", "measured", "verdict"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"Verdict.{name} must be a str, got {type(value).__name__}")
        if not self.claim.strip():
            raise ValueError("Verdict.claim must name a claim, e.g. 'P4'; got an empty string")
        if self.verdict not in (*VERDICTS, NOT_ASSESSED):
            raise ValueError(
                f"Verdict.verdict must be one of {[*VERDICTS, NOT_ASSESSED]}; got "
                f"{self.verdict!r}"
            )
        if self.smoke_rule_outcome is not None and (
                self.verdict != NOT_ASSESSED or self.smoke_rule_outcome not in VERDICTS):
            raise ValueError(
                f"Verdict.smoke_rule_outcome is one of {list(VERDICTS)} on a verdict "
                f"{NOT_ASSESSED!r} only; got {self.smoke_rule_outcome!r} on {self.verdict!r}"
            )
        try:
            numbers = {str(k): float(v) for k, v in dict(self.numbers).items()}
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"Verdict.numbers must map names to floats; got {self.numbers!r} ({exc})"
            ) from None
        object.__setattr__(self, "numbers", numbers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers as the strings 'nan', 'inf', '-inf');
        ``smoke_rule_outcome`` only when it is set."""
        data = {
            "claim": self.claim,
            "statement": self.statement,
            "expected": self.expected,
            "measured": self.measured,
            "verdict": self.verdict,
            "numbers": {k: v if math.isfinite(v) else str(v) for k, v in self.numbers.items()},
        }
        if self.smoke_rule_outcome is not None:
            data["smoke_rule_outcome"] = self.smoke_rule_outcome
        if self.rule is not None:
            data["rule"] = dict(self.rule)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict`."""
        numbers = {k: float(v) for k, v in dict(data.get("numbers", {})).items()}
        return cls(
            claim=data["claim"], statement=data["statement"], expected=data["expected"],
            measured=data["measured"], verdict=data["verdict"], numbers=numbers,
            smoke_rule_outcome=data.get("smoke_rule_outcome"), rule=data.get("rule"),
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class Experiment:
    """A named, reproducible measurement behind one or more claims.

    Args:
        name: kebab-case id used on the command line (``bayesattn run NAME``).
        title: One-line title for listings and the report.
        claims: Claim ids from docs/claims.md, e.g. ``("P4", "P13")``.
        description: One paragraph: what is measured, on which model, and how.
        presets: Preset name -> parameters (JSON-serializable). At least ``"smoke"``
            (seconds, for CI: a plumbing check whose claims are not assessed),
            ``"quick"`` (a few minutes on a 2-core CPU) and
            ``"full"`` (meant for a GPU). Stage functions see the chosen preset's
            parameters after overrides, as read back from JSON (tuples become lists).
        stages: Stages run in order; each is cached once finished.
        verdicts: ``verdicts(results, params) -> list[Verdict]``; ``results`` is
            ``pandas.read_csv(out / "results.csv")`` (all stage tables with a ``stage``
            column), ``params`` the run's parameters.
        figures: Optional ``figures(ctx, results) -> list[Path]``; save each figure with
            :func:`bayesattn.plots.save_figure` into ``ctx.figures_dir`` and return the
            paths it returns (PNG + SVG; the report embeds the PNGs). Called inside
            :func:`bayesattn.plots.set_style`, with ``results`` as for ``verdicts``.
        headline: Optional ``headline(results) -> DataFrame``: the small table printed at
            the end of ``bayesattn run`` and put at the top of the report.
        convergence: Optional ``convergence(results, params) -> DataFrame`` for experiments
            that train networks: one row per network, its error against its floor, built
            with :func:`~bayesattn.runner.convergence_row`; saved as
            ``convergence.csv`` and shown in the report.
        work: Optional ``work(params) -> float``: the compute a preset's parameters ask
            for, in units the experiment chooses (e.g. token-passes through its networks);
            with measured smoke and quick times it gives
            :func:`~bayesattn.experiments.estimate_cpu_seconds`.
        rules: The decision rules of its claims (:class:`~bayesattn.runner.Rule`, every
            version); a run records the latest of each and the report checks it.
        rules_file: The file that states ``rules`` (a run records whether it was
            committed to git when the run started); None when unknown.
        pooled_verdicts: Optional ``pooled_verdicts(results, params) -> list[Verdict]``:
            the verdicts decided from several runs of one setting together (``bayesattn
            sweep`` calls it with every finished seed's ``results.csv`` stacked, a ``seed``
            column first), so that a rule can pool seeds (a Student-t interval over
            seeds, a two-level bootstrap) instead of reading one seed.
    """

    name: str
    title: str
    claims: tuple[str, ...]
    description: str
    presets: Mapping[str, Mapping[str, Any]]
    stages: tuple[Stage, ...]
    verdicts: Callable[[pd.DataFrame, dict[str, Any]], list[Verdict]]
    figures: Callable[[RunContext, pd.DataFrame], list[Path]] | None = None
    headline: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    convergence: Callable[[pd.DataFrame, dict[str, Any]], pd.DataFrame] | None = None
    work: Callable[[dict[str, Any]], float] | None = None
    rules: tuple[Rule, ...] = ()
    rules_file: str | None = None
    pooled_verdicts: Callable[[pd.DataFrame, dict[str, Any]], list[Verdict]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not EXPERIMENT_NAME.match(self.name):
            raise ValueError(
                f"Experiment name must be kebab-case ([a-z0-9]+(-[a-z0-9]+)*); got {self.name!r}"
            )
        where = f"Experiment {self.name!r}"
        claims = (self.claims,) if isinstance(self.claims, str) else tuple(self.claims)
        if not claims or not all(isinstance(c, str) and c.strip() for c in claims):
            raise ValueError(f"{where}: claims must be non-empty strings like 'P4'; got {claims}")
        object.__setattr__(self, "claims", claims)
        stages = tuple(self.stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise TypeError(f"{where}: stages must be a non-empty sequence of Stage objects")
        seen = [s.name for s in stages]
        if len(set(seen)) != len(seen):
            raise ValueError(f"{where}: stage names must be unique; got {seen}")
        object.__setattr__(self, "stages", stages)
        if not isinstance(self.presets, Mapping):
            raise TypeError(f"{where}: presets must be a dict of dicts, got {self.presets!r}")
        missing = [p for p in REQUIRED_PRESETS if p not in self.presets]
        if missing:
            raise ValueError(
                f"{where}: presets must include {list(REQUIRED_PRESETS)}; missing {missing}"
            )
        presets = {}
        for pname, params in self.presets.items():
            if not isinstance(params, Mapping):
                raise TypeError(f"{where}: preset {pname!r} must be a dict, got {params!r}")
            presets[str(pname)] = MappingProxyType(
                _json_roundtrip(dict(params), f"{where}: preset {pname!r}")
            )
        object.__setattr__(self, "presets", MappingProxyType(presets))
        if not callable(self.verdicts):
            raise TypeError(f"{where}: verdicts must be callable (results, params) -> [Verdict]")
        for opt in ("figures", "headline", "convergence", "work", "pooled_verdicts"):
            if getattr(self, opt) is not None and not callable(getattr(self, opt)):
                raise TypeError(f"{where}: {opt} must be callable or None")
        object.__setattr__(self, "rules", check_rules(self.rules, claims, where))

    @classmethod
    def from_parts(cls, package: str, *, name: str, title: str, claims: tuple[str, ...],
                   stages: tuple[str, ...]) -> Experiment:
        """The experiment a package of parts describes (docs/architecture.md#extending-bayesattn).

        ``package`` (pass ``__name__`` from the package's ``__init__``) has the modules
        ``presets`` (``PRESETS``, optionally ``work``), ``stages`` (one function per stage,
        named like the stage with ``-`` as ``_``), ``claims`` (``verdicts``, optionally
        ``RULES``, ``pooled_verdicts``, ``headline`` and ``convergence``) and optionally
        ``figures`` (``make``). The
        package's docstring, after its first paragraph, is the description.

        Raises:
            AttributeError: a part lacks what it must define (the message names it).
        """
        import importlib
        import importlib.util
        import sys

        def part(module: str) -> Any:
            return importlib.import_module(f"{package}.{module}")

        presets, run, rules = part("presets"), part("stages"), part("claims")
        has_figures = importlib.util.find_spec(f"{package}.figures") is not None
        drawing = part("figures") if has_figures else None
        doc = (sys.modules[package].__doc__ or "").split("\n\n", 1)
        return cls(
            name=name, title=title, claims=claims,
            description=doc[-1].strip(),
            presets=presets.PRESETS,
            stages=tuple(Stage(s, getattr(run, s.replace("-", "_"))) for s in stages),
            figures=getattr(drawing, "make", None),
            verdicts=rules.verdicts,
            headline=getattr(rules, "headline", None),
            convergence=getattr(rules, "convergence", None),
            work=getattr(presets, "work", None),
            rules=tuple(getattr(rules, "RULES", ())),
            rules_file=getattr(rules, "__file__", None),
            pooled_verdicts=getattr(rules, "pooled_verdicts", None),
        )

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Names of the stages, in run order."""
        return tuple(s.name for s in self.stages)

    def preset_params(self, preset: str) -> dict[str, Any]:
        """A fresh copy of a preset's parameters (KeyError if there is no such preset)."""
        return json.loads(json.dumps(dict(self.presets[preset])))


@dataclass(frozen=True)
class RunResult:
    """What :func:`bayesattn.experiments.run` returns.

    Attributes:
        out: The run folder.
        results: ``results.csv`` as a DataFrame (all stage tables, ``stage`` column first).
        verdicts: One :class:`Verdict` per tested claim (each ``NOT_ASSESSED`` in a
            plumbing check: a run at the smoke preset's settings).
        headline: The headline table, or None when the experiment defines none.
        figures: Files the figures were saved to (PNG and SVG), in the order returned.
        report: Path of ``report.md``.
        convergence: The convergence table (one row per trained network), or None when
            the experiment trains none.
    """

    out: Path
    results: pd.DataFrame
    verdicts: list[Verdict]
    headline: pd.DataFrame | None
    figures: list[Path]
    report: Path | None = None
    convergence: pd.DataFrame | None = None

    def __repr__(self) -> str:
        """One line: the run folder, the results' size, the verdicts and the figure count.

        The tables are left out (read ``.results``, ``.headline``, ``.convergence``).
        """
        verdicts = ", ".join(
            f"{v.claim}={'not assessed' if v.verdict == NOT_ASSESSED else v.verdict}"
            for v in self.verdicts
        )
        return (
            f"RunResult(out={short_path(self.out)}, results={len(self.results)} rows, "
            f"verdicts=[{verdicts}], figures={len(self.figures)})"
        )
