"""Decision rules as data: versioned, hashed, recorded with every run, checked by the report.

A claim's verdict is only as good as the rule that decided it, and a rule chosen after
seeing the data decides nothing. So each experiment states its rules as :class:`Rule`
objects (``RULES`` in its ``claims`` module), one per claim and version. A run records
the version and SHA-256 of every rule it applied in ``config.json``, and whether the file
that states them was committed to git when the run started. The report then refuses to
call a verdict whose rule has changed since the run ("stale") and marks one decided by
uncommitted rules as provisional: a rule must be committed *before* the runs it decides.

``docs/rules.md`` is :func:`rules_markdown` of the registered experiments (a test keeps
it so), and ``bayesattn rules`` prints it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ._decision import Decision

#: What a rule is: a test of the claim, or a sanity check that holds by construction and
#: guards the pipeline (it never counts as support for the claim).
RULE_KINDS = ("test", "sanity")


@dataclass(frozen=True)
class Rule:
    """One version of the rule that decides one claim.

    Args:
        claim: Claim id (``"P4"``).
        version: 1, 2, ...: a rule changed after its data is a new version.
        kind: ``"test"`` (tests the claim) or ``"sanity"`` (true by construction).
        measures: What is measured, in which units, on what.
        decision: When the verdict is supported, not supported and inconclusive.
        multiplicity: How several cells or candidates are combined (correction used).
        replication: Seeds, budgets and sizes the verdict rests on.
        key: The name, in the verdict's ``numbers``, of the number the rule decides on
            (what a sweep summarises across seeds); empty: the verdict's first number.
        decisions: The rule as code (:class:`Decision`): the runner applies it to a
            run's numbers and the sweep to all seeds' numbers, so the verdict is what the
            stated rule gives and nothing else. Several: one per kind of verdict the
            claim gets (each verdict takes the first whose numbers it holds). Empty: the
            experiment's ``verdicts()`` decides (version-1 rules).
    """

    claim: str
    version: int
    kind: str
    measures: str
    decision: str
    multiplicity: str = "one estimate decides; no correction"
    replication: str = "one run seed"
    key: str = ""
    decisions: tuple[Decision, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.claim, str) or not self.claim.strip():
            raise ValueError(f"Rule.claim must name a claim, e.g. 'P4'; got {self.claim!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"Rule.version must be an integer >= 1; got {self.version!r}")
        if self.kind not in RULE_KINDS:
            raise ValueError(f"Rule.kind must be one of {RULE_KINDS}; got {self.kind!r}")
        for name in ("measures", "decision", "multiplicity", "replication"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Rule.{name} must be a non-empty text; got {value!r}")
        if not isinstance(self.key, str):
            raise ValueError(f"Rule.key must name one of the verdict's numbers; got {self.key!r}")
        decisions = ((self.decisions,) if isinstance(self.decisions, Decision)
                     else tuple(self.decisions))
        if not all(isinstance(d, Decision) for d in decisions):
            raise TypeError(f"Rule.decisions must be Decision objects; got {self.decisions!r}")
        object.__setattr__(self, "decisions", decisions)

    def decision_for(self, numbers: Mapping[str, Any]) -> Decision | None:
        """The first of :attr:`decisions` whose numbers ``numbers`` holds (None if the rule
        has no decisions).

        Raises:
            ValueError: the rule has decisions but none fits these numbers (a verdict the
                rule cannot decide is a bug in the experiment or the rule).
        """
        if not self.decisions:
            return None
        for d in self.decisions:
            if d.fits(numbers):
                return d
        wanted = " or ".join(str(list(d.keys)) for d in self.decisions)
        raise ValueError(f"rule {self.claim} v{self.version} decides on {wanted}, but the "
                         f"verdict's numbers are {sorted(numbers)}")

    @property
    def sha256(self) -> str:
        """SHA-256 of the rule's fields (canonical JSON, whitespace runs collapsed; an
        empty ``key`` or ``decisions`` is left out, so that rules stated before they existed
        keep their hash)."""
        fields = {k: " ".join(v.split()) if isinstance(v, str) else v
                  for k, v in asdict(self).items()
                  if not (k in ("key", "decisions") and not v)}
        for d in fields.get("decisions", ()):  # a Decision field added later, at default
            if not d.get("practical"):
                d.pop("practical", None)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """What a run records of the rule: ``{version, kind, sha256}`` and ``key`` if set."""
        out = {"version": self.version, "kind": self.kind, "sha256": self.sha256}
        if self.key:
            out["key"] = self.key
        return out


def practical_version(rule: Rule, version: int) -> Rule:
    """``rule`` as a new version whose decisions support only beyond their margin
    (``Decision.practical``); everything else, wording included, unchanged."""
    return replace(rule, version=version,
                   decisions=tuple(replace(d, practical=True) for d in rule.decisions))


def check_rules(rules: Iterable[Rule], claims: Sequence[str], where: str) -> tuple[Rule, ...]:
    """``rules`` as a tuple, refused unless each is a Rule of one of ``claims`` and no
    (claim, version) appears twice."""
    rules = tuple(rules)
    seen = set()
    for rule in rules:
        if not isinstance(rule, Rule):
            raise TypeError(f"{where}: rules must be Rule objects; got {rule!r}")
        if rule.claim not in claims:
            raise ValueError(f"{where}: a rule for claim {rule.claim!r}, which the experiment "
                             f"does not test (its claims: {', '.join(claims)})")
        if (rule.claim, rule.version) in seen:
            raise ValueError(f"{where}: two rules for {rule.claim} version {rule.version}")
        seen.add((rule.claim, rule.version))
    return rules


def current_rules(rules: Iterable[Rule]) -> dict[str, Rule]:
    """Claim -> its latest rule (highest version)."""
    latest: dict[str, Rule] = {}
    for rule in rules:
        if rule.claim not in latest or rule.version > latest[rule.claim].version:
            latest[rule.claim] = rule
    return latest


def rule_status(recorded: Mapping[str, Any] | None, now: Rule | None,
                committed: bool | None) -> str:
    """How a verdict stands against today's rules:

    - ``""``: no rule then and none now (the experiment states no rules);
    - ``"stale"``: today's rule differs from the one that decided it (or one exists now
      and none was recorded, or none exists any more);
    - ``"provisional"``: same rule, but its file was not committed when the run started;
    - ``"current"``: same rule, committed before the run (or no git checkout to ask).
    """
    if not recorded:
        return "" if now is None else "stale"
    if now is None or now.sha256 != recorded.get("sha256"):
        return "stale"
    if committed is False:
        return "provisional"
    return "current"


def rules_markdown(experiments: Iterable[Any]) -> str:
    """``docs/rules.md``: every registered experiment's rules, latest version first."""
    lines = [
        "# Decision rules",
        "",
        "Every claim's verdict is decided by a versioned rule, stated in its experiment's",
        "`claims.py` (`RULES`) and printed here by `bayesattn rules` (a test keeps this page",
        "equal to that output). A run records each rule's version and SHA-256 in",
        "`config.json`, and whether the rules were committed to git when it started. Its",
        "report calls a verdict *stale* when the rule has changed since the run, and",
        "*provisional* when the rules were not committed before it: a rule must be",
        "committed before the runs that decide it. A *sanity* rule checks something that",
        "holds by construction; it guards the pipeline and never counts as support.",
        "",
    ]
    for experiment in experiments:
        rules = getattr(experiment, "rules", ())
        if not rules:
            continue
        lines += [f"## `{experiment.name}`", ""]
        for claim in experiment.claims:
            versions = sorted((r for r in rules if r.claim == claim),
                              key=lambda r: -r.version)
            for i, rule in enumerate(versions):
                state = "current" if i == 0 else "superseded"
                lines += [
                    f"### {claim}, rule v{rule.version} ({state}; "
                    f"{'test of the claim' if rule.kind == 'test' else 'sanity check'})",
                    "",
                    f"- **Measures:** {' '.join(rule.measures.split())}",
                    f"- **Decides:** {' '.join(rule.decision.split())}",
                    f"- **Multiplicity:** {' '.join(rule.multiplicity.split())}",
                    f"- **Replication:** {' '.join(rule.replication.split())}",
                    *([f"- **Key number:** `{rule.key}`"] if rule.key else []),
                    *[f"- **As code:** {d.describe()}" for d in rule.decisions],
                    f"- **SHA-256:** `{rule.sha256[:16]}`",
                    "",
                ]
    return "\n".join(lines).rstrip() + "\n"
