"""``report.md`` for a run folder: verdicts, headline table, figures, configuration, reproduction.

The report is a function of the files in the run folder (``config.json``,
``results.csv``, ``verdicts.json``, ``headline.csv``, ``manifest.json``, ``figures/``)
and of one thing outside it: the experiment's decision rules today. A verdict whose rule
has changed since the run is printed as *stale* (not as a verdict), one decided by rules
that were not committed when the run started as *provisional* (see ``_rules``). So
``bayesattn report DIR`` regenerates the same text as long as the rules stand.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._convergence import summary_line
from ._errors import NotARunFolderError, UnknownExperimentError
from ._io import write_text
from ._registry import get
from ._rules import Rule, current_rules, rule_status
from ._types import NOT_ASSESSED, Verdict


def write_report(out: str | os.PathLike[str]) -> Path:
    """(Re)write ``out/report.md`` from the files of a finished run folder.

    Args:
        out: A run folder written by :func:`bayesattn.experiments.run`.

    Returns:
        The path of ``report.md``.

    Raises:
        NotARunFolderError: ``out`` holds no run, or a run that has not finished.
    """
    out = Path(out)
    text = render_report(out)
    path = out / "report.md"
    return write_text(path, text)


def render_report(out: str | os.PathLike[str]) -> str:
    """The Markdown text of the report of run folder ``out`` (see :func:`write_report`)."""
    import pandas as pd

    out = Path(out)
    config = _read_json(out / "config.json")
    if not isinstance(config, dict) or "experiment" not in config:
        raise NotARunFolderError(
            f"{out} is not a bayesattn run folder (no config.json from `bayesattn run`)"
        )
    verdicts_data = _read_json(out / "verdicts.json")
    if verdicts_data is None or not (out / "results.csv").is_file():
        raise NotARunFolderError(
            f"{out} holds an unfinished run of {config['experiment']!r}; finish it with "
            f"`{_reproduce(config, out)} --resume`"
        )
    verdicts = [Verdict.from_dict(v) for v in verdicts_data]
    manifest = _read_json(out / "manifest.json") or {}
    try:
        results = pd.read_csv(out / "results.csv")
    except pd.errors.EmptyDataError:
        results = pd.DataFrame({"stage": []})

    plumbing = _ran_as_plumbing_check(config)
    lines = [f"# {config.get('title') or config['experiment']}", ""]
    if plumbing:
        lines += [_plumbing_note(config), ""]
    lines += [
        f"Experiment `{config['experiment']}` · claims {', '.join(config.get('claims', []))} · "
        f"preset `{config.get('preset')}` · seed {config.get('seed')} · "
        f"device {config.get('device')}",
        "",
    ]
    if config.get("description"):
        lines += [config["description"], ""]

    lines += ["## Verdicts", ""]
    now = _rules_now(config["experiment"])
    if verdicts:
        # a plumbing check assesses no claim (also in run folders written before the
        # runner said so in verdicts.json)
        rows = [(f"**{v.claim}** {v.statement}", v.expected, v.measured,
                 _verdict_cell(v, NOT_ASSESSED if plumbing else v.verdict, now, config))
                for v in verdicts]
        lines += [markdown_table(["claim", "expected", "measured", "verdict"], rows), ""]
        lines += _rules_lines(verdicts, now, config)
    else:
        lines += ["(this experiment states no verdicts)", ""]

    if (out / "headline.csv").is_file():
        try:
            headline = pd.read_csv(out / "headline.csv", keep_default_na=False)
        except pd.errors.EmptyDataError:
            headline = pd.DataFrame()
        lines += ["## Headline", "", frame_to_markdown(headline), ""]

    if (out / "convergence.csv").is_file():
        lines += ["## Training convergence", "", *_convergence_lines(out / "convergence.csv"), ""]

    figures = _embedded_figures(out, manifest)
    if figures:
        lines += ["## Figures", ""]
        for rel in figures:
            lines += [f"![{rel.stem}]({rel.as_posix()})", ""]

    lines += ["## Run", ""]
    stages = manifest.get("stages")
    if stages:
        rows = [(s["stage"], s["rows"], f"{s['seconds']:.1f}", "yes" if s.get("cached") else "no")
                for s in stages]
        lines += [markdown_table(["stage", "rows", "seconds", "reused from cache"], rows), ""]
    counts = results["stage"].value_counts(sort=False) if "stage" in results else {}
    lines += [
        f"`results.csv`: {len(results)} rows"
        + (" (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")" if len(counts) else "")
        + "; `verdicts.json`: the verdicts above with their numbers.",
        "",
    ]
    git = config.get("git") or {}
    commit = "unknown"
    if git.get("commit"):
        commit = f"`{git['commit'][:12]}`" + (" (uncommitted changes)" if git.get("dirty") else "")
    device = str(config.get("device"))
    if config.get("gpu"):
        device += f" ({config['gpu']})"
    facts = [
        ("preset", f"`{config.get('preset')}`"),
        ("seed", str(config.get("seed"))),
        ("device", device),
        ("created", str(config.get("created"))),
        ("git commit", commit),
        ("python", f"{config.get('python')} on {config.get('platform')}"),
    ]
    if config.get("command"):
        facts.append(("command", f"`{config['command']}`"))
    for resumed in config.get("resumed", []):
        facts.append(("resumed", f"{resumed.get('time')} on {resumed.get('device')}"))
    lines += [markdown_table(["setting", "value"], facts), ""]
    lines += ["Parameters:", "", "```json", json.dumps(config.get("params", {}), indent=2), "```",
              ""]
    versions = config.get("versions") or {}
    if versions:
        lines += [markdown_table(["package", "version"],
                                 [(k, v or "not installed") for k, v in versions.items()]), ""]

    lines += ["## Reproduce", "", "```bash", _reproduce(config, None), "```", "",
              "Regenerate this report from the saved files with "
              f"`bayesattn report {shlex.quote(str(config.get('out') or out))}` (the run "
              "folder where it ran; give its new path if it has moved).",
              ""]
    return "\n".join(lines)


def _rules_now(name: str) -> dict[str, Rule] | None:
    """The experiment's rules today (claim -> latest rule); None when it is not registered
    in this process (then no verdict can be checked against them)."""
    try:
        experiment = get(name)
    except UnknownExperimentError:
        return None
    return current_rules(experiment.rules)


def _status(v: Verdict, now: dict[str, Rule] | None, config: dict[str, Any]) -> str:
    if now is None:
        return "unchecked" if v.rule else ""
    return rule_status(v.rule, now.get(v.claim), config.get("rules_committed"))


def _verdict_cell(v: Verdict, word: str, now: dict[str, Rule] | None,
                  config: dict[str, Any]) -> str:
    status = "" if word == NOT_ASSESSED else _status(v, now, config)  # nothing assessed
    sanity = (" (sanity check)" if (v.rule or {}).get("kind") == "sanity"
              and word != NOT_ASSESSED else "")
    if status == "stale":
        return (f"stale: decided ({word}) by a rule that has changed since the run; rerun "
                "to decide")
    if status == "provisional":
        return f"**{word}**{sanity}, provisional: its rules were not committed before the run"
    return f"**{word}**{sanity}"


def _rules_lines(verdicts: Sequence[Verdict], now: dict[str, Rule] | None,
                 config: dict[str, Any]) -> list[str]:
    if not any(v.rule for v in verdicts) and not now:
        return []
    committed = config.get("rules_committed")
    rows = []
    for v in verdicts:
        then, today = v.rule or {}, (now or {}).get(v.claim)
        rows.append((v.claim,
                     f"v{then['version']} ({then['kind']}) `{then['sha256'][:12]}`" if then
                     else "none recorded",
                     f"v{today.version} ({today.kind}) `{today.sha256[:12]}`" if today
                     else ("experiment not registered here" if now is None else "none"),
                     _status(v, now, config) or "no rules"))
    said = {True: "were committed to git when the run started",
            False: "were NOT committed to git when the run started",
            None: "could not be checked against git"}[committed]
    return ["Decision rules (docs/rules.md): the rule each verdict was decided by, and "
            f"today's. The run's rules {said}.", "",
            markdown_table(["claim", "rule of the run", "rule today", "status"], rows), ""]


def _ran_as_plumbing_check(config: dict[str, Any]) -> bool:
    """Whether the run of ``config`` (a ``config.json``) is a plumbing check: the smoke
    preset's settings, whose claims are not assessed (see ``bayesattn.experiments.run``).
    Run folders written before ``plumbing_check`` was recorded: a ``smoke`` preset."""
    return bool(config.get("plumbing_check", config.get("preset") == "smoke"))


def _plumbing_note(config: dict[str, Any]) -> str:
    preset = config.get("preset")
    settings = ("the `smoke` preset" if preset == "smoke"
                else f"preset `{preset}` with the smoke preset's settings")
    return (f"> **Plumbing check, not evidence.** This run used {settings}: sizes chosen to "
            "finish in seconds, to show that every stage, file and figure is produced. No "
            f"claim is assessed (every verdict reads *{NOT_ASSESSED}*), and no number below "
            "is evidence for or against a claim. To test the claims, run the `quick` or "
            "`full` preset.")


def _convergence_lines(path: Path) -> list[str]:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return ["this run trained no networks"]

    def number(v: Any) -> str:
        return "n/a" if not math.isfinite(float(v)) else f"{float(v):.3g}"

    rows = []
    for r in frame.itertuples(index=False):
        value = number(r.value) + (f" ± {number(r.se)}" if math.isfinite(float(r.se)) else "")
        rows.append((r.network, r.measure, value, number(r.floor), r.floor_basis,
                     number(r.excess), number(r.tolerance),
                     "**yes**" if bool(r.converged) else "**no**"))
    header = ["network", "measure", "value ± se", "floor", "floor basis", "excess",
              "tolerance", "converged"]
    return [summary_line(frame) + ". A verdict resting on a network that has not converged "
            "measures its training budget as much as the claim.", "",
            markdown_table(header, rows)]


def _embedded_figures(out: Path, manifest: dict[str, Any]) -> list[Path]:
    """Figures to embed, relative to ``out``: each PNG, or the SVG of a figure without one."""
    files = manifest.get("figures")
    if files is None:
        files = sorted(p.relative_to(out).as_posix() for p in (out / "figures").glob("*.*"))
    paths = [Path(f) for f in files]
    pngs = {p.with_suffix("") for p in paths if p.suffix.lower() == ".png"}
    chosen = []
    for p in paths:
        suffix = p.suffix.lower()
        if suffix in (".png", ".jpg", ".jpeg") or (suffix == ".svg" and p.with_suffix("") not in
                                                   pngs):
            chosen.append(p)
    return chosen


def _reproduce(config: dict[str, Any], out: Path | None) -> str:
    parts = ["bayesattn", "run", str(config["experiment"]), "--preset", str(config.get("preset")),
             "--seed", str(config.get("seed"))]
    for key, value in (config.get("overrides") or {}).items():
        parts += ["--set", f"{key}={json.dumps(value)}"]
    if out is not None:
        parts += ["--out", str(out)]
    return shlex.join(parts)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.4g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (floats with 4 significant digits)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def frame_to_markdown(frame: Any) -> str:
    """A DataFrame as a Markdown table (index dropped)."""
    if frame.shape[1] == 0:
        return "(empty table)"
    rows = [[v.item() if hasattr(v, "item") else v for v in row]
            for row in frame.itertuples(index=False, name=None)]
    return markdown_table([str(c) for c in frame.columns], rows)


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    """Verdicts as plain text for a terminal, one block per claim.

    A verdict is upper-cased (``SUPPORTED``), except ``NOT_ASSESSED``, which is written
    as it is, below a line that says the run is a plumbing check.
    """
    if not verdicts:
        return "verdicts: (none stated)"

    def word(v: Verdict) -> str:
        return v.verdict if v.verdict == NOT_ASSESSED else v.verdict.upper()

    width = max(len(word(v)) for v in verdicts)
    lines = ["verdicts:"]
    if any(v.verdict == NOT_ASSESSED for v in verdicts):
        lines = ["verdicts: none assessed. The smoke preset is a plumbing check, not evidence; "
                 "run --preset quick or full to test the claims."]
    for v in verdicts:
        sanity = (" (sanity check)" if (v.rule or {}).get("kind") == "sanity"
              and word != NOT_ASSESSED else "")
        lines.append(f"  {v.claim:5s} {word(v):{width}s}  {v.statement}{sanity}")
        lines.append(f"  {'':5s} {'':{width}s}  expected: {v.expected}")
        lines.append(f"  {'':5s} {'':{width}s}  measured: {v.measured}")
    return "\n".join(lines)
