"""What a sweep's runs say together: each claim's verdict per seed, agreement, key numbers.

For every finished run folder of the sweep, each verdict becomes one row of
``verdicts.csv``, with the version and kind of the rule that decided it and whether the
rules were committed before the run (see :class:`bayesattn.runner.Rule`). Rows are
grouped by (experiment, preset, variant, claim entry) in ``aggregate.csv``: how many
seeds, how many gave each verdict, the most common verdict and the fraction of seeds
that agree with it, and the key number (the number its rule names as ``key``, else the
first entry of the verdict's ``numbers``) as median, min and max over seeds with its
mean and a Student-t 95% interval over seeds (the interval includes training randomness:
each seed trains its own networks and draws its own test data).

An experiment that reports the same claim several times (e.g. once per model) gives
entries ``P12``, ``P12 (2)``, ``P12 (3)`` in the order of its verdicts.

Where a claim's current rule is code (:class:`bayesattn.runner.Rule` ``decisions``),
the rule itself decides it from all seeds of a setting together (:func:`pooled_rows`,
``pooled.csv``): each cell's mean over seeds with a Student-t interval, Holm across cells
where any one cell can decide, and each cell's minimum detectable effect at 80% power.
An experiment whose claims module defines ``pooled_verdicts(results, params)`` may also
decide from the finished seeds' ``results.csv`` stacked with a ``seed`` column first.
A pooled verdict carries today's rule; it is *stale* when a run applied another version
of that rule, *provisional* when a run's rules were not committed first.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bayesattn.metrics import seed_interval
from bayesattn.runner import (
    NOT_ASSESSED,
    VERDICTS,
    NotARunFolderError,
    Rule,
    current_rules,
    decide,
    get,
    load_run,
    rule_status,
)

from ._grid import Job

VERDICT_ORDER = (*VERDICTS, NOT_ASSESSED)
SEED_COLUMNS = ("experiment", "preset", "variant", "seed", "entry", "claim", "verdict",
                "key", "key_value", "rule_version", "rule_kind", "rules_committed")
AGGREGATE_COLUMNS = ("experiment", "preset", "variant", "entry", "claim", "rule", "kind",
                     "seeds", "majority", "agreement", *VERDICT_ORDER, "key", "key_median",
                     "key_min", "key_max", "key_mean", "key_ci_low", "key_ci_high")
POOLED_COLUMNS = ("experiment", "preset", "variant", "seeds", "entry", "claim", "verdict",
                  "status", "rule_version", "rule_kind", "statement", "measured", "numbers")


def _entries(verdicts: Sequence[Any]) -> list[tuple[str, Any]]:
    """(entry, verdict) pairs: a claim reported several times gives P12, P12 (2), ..."""
    seen: Counter[str] = Counter()
    out = []
    for v in verdicts:
        seen[v.claim] += 1
        out.append((v.claim if seen[v.claim] == 1 else f"{v.claim} ({seen[v.claim]})", v))
    return out


def seed_rows(runs: Path, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per (finished job, verdict); unfinished or failed jobs give none."""
    rows = []
    for job in jobs:
        try:
            config, _, verdicts = load_run(runs / job.folder)
        except NotARunFolderError:
            continue
        for entry, v in _entries(verdicts):
            named = (v.rule or {}).get("key")  # the rule's key number, else the first one
            key, value = ((named, v.numbers[named]) if named in v.numbers
                          else next(iter(v.numbers.items()), ("", float("nan"))))
            rows.append({"experiment": job.experiment, "preset": job.preset,
                         "variant": job.variant, "seed": job.seed, "entry": entry,
                         "claim": v.claim, "verdict": v.verdict, "key": key,
                         "key_value": float(value),
                         "rule_version": (v.rule or {}).get("version"),
                         "rule_kind": (v.rule or {}).get("kind"),
                         "rules_committed": config.get("rules_committed")})
    return rows


def aggregate_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (experiment, preset, variant, entry), in the order rows first give them."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["preset"], row["variant"], row["entry"]),
                          []).append(row)
    out = []
    for (experiment, preset, variant, entry), members in groups.items():
        counts = Counter(r["verdict"] for r in members)
        top = max(counts.values())
        leaders = [v for v in VERDICT_ORDER if counts.get(v) == top]
        majority = leaders[0] if len(leaders) == 1 else "split"
        values = [r["key_value"] for r in members if math.isfinite(r["key_value"])]
        nan = float("nan")
        if values:
            ordered = sorted(values)
            mid = len(ordered) // 2
            median = (ordered[mid] if len(ordered) % 2
                      else 0.5 * (ordered[mid - 1] + ordered[mid]))
            est = seed_interval(values)
            stats = (median, ordered[0], ordered[-1], est.value, est.ci_low, est.ci_high)
        else:
            stats = (nan,) * 6
        versions = sorted({r.get("rule_version") for r in members},
                          key=lambda v: (v is None, v))
        out.append({
            "experiment": experiment, "preset": preset, "variant": variant, "entry": entry,
            "claim": members[0]["claim"],
            "rule": ", ".join("none" if v is None else f"v{v}" for v in versions),
            "kind": members[0].get("rule_kind") or "",
            "seeds": len(members), "majority": majority,
            "agreement": top / len(members),
            **{v: counts.get(v, 0) for v in VERDICT_ORDER},
            "key": members[0]["key"],
            **dict(zip(("key_median", "key_min", "key_max", "key_mean", "key_ci_low",
                        "key_ci_high"), stats, strict=True)),
        })
    return out


def _status(configs: Sequence[dict[str, Any]], claim: str, rule: Rule | None) -> str:
    """The worst rule status over the runs: stale, provisional, current, or "" (no rule)."""
    statuses = {rule_status((c.get("rules") or {}).get(claim), rule, c.get("rules_committed"))
                for c in configs}
    return next((s for s in ("stale", "provisional", "current", "") if s in statuses), "")


def _pooled_row(name: str, preset: str, variant: str, seeds: int, entry: str, claim: str,
                verdict: str, status: str, rule: Rule | None, statement: str, measured: str,
                numbers: dict[str, float]) -> dict[str, Any]:
    return {
        "experiment": name, "preset": preset, "variant": variant, "seeds": seeds,
        "entry": entry, "claim": claim,
        "verdict": (f"stale: decided ({verdict}) under a rule some runs did not apply; rerun "
                    "them" if status == "stale" else verdict),
        "status": status or "no rules",
        "rule_version": rule.version if rule else None,
        "rule_kind": rule.kind if rule else None,
        "statement": statement, "measured": measured,
        "numbers": json.dumps(numbers, sort_keys=True),
    }


def pooled_rows(runs: Path, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Verdicts decided from all finished seeds of each setting together: by the claim's
    rule where it is code (``Rule.decisions``), and by ``pooled_verdicts`` where the
    experiment defines it. Plumbing checks (smoke settings) decide nothing."""
    import pandas as pd

    groups: dict[tuple[str, str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.experiment, job.preset, job.variant), []).append(job)
    rows = []
    for (name, preset, variant), members in groups.items():
        experiment = get(name)
        latest = current_rules(experiment.rules)
        configs, frames, entries = [], [], {}
        for job in sorted(members, key=lambda j: j.seed):
            try:
                config, results, verdicts = load_run(runs / job.folder)
            except NotARunFolderError:
                continue
            configs.append(config)
            frames.append(results.assign(seed=job.seed)[["seed", *results.columns]])
            for entry, v in _entries(verdicts):
                entries.setdefault(entry, []).append(v)
        if not configs or any(c.get("plumbing_check") for c in configs):
            continue
        for entry, verdicts in entries.items():
            rule = latest.get(verdicts[0].claim)
            decision = rule.decision_for(verdicts[0].numbers) if rule is not None else None
            if decision is None:
                continue
            result = decide(decision, [v.numbers for v in verdicts])
            rows.append(_pooled_row(
                name, preset, variant, len(verdicts), entry, verdicts[0].claim,
                result.verdict, _status(configs, verdicts[0].claim, rule), rule,
                verdicts[0].statement, result.text, result.numbers()))
        if experiment.pooled_verdicts is None:
            continue
        merged = pd.concat(frames, ignore_index=True)
        params = dict(configs[0]["params"])
        for v in experiment.pooled_verdicts(merged, params):
            rule = latest.get(v.claim)
            rows.append(_pooled_row(
                name, preset, variant, len(configs), v.claim, v.claim, v.verdict,
                _status(configs, v.claim, rule), rule, v.statement, v.measured,
                dict(v.numbers)))
    return rows
