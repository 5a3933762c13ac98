"""Decision rules that run: a claim's verdict computed from its numbers, for one seed or many.

A :class:`Decision` states, as data, what a rule decides on and how: which numbers of a
verdict (one or several *cells*), on which side of a threshold the claim puts them, an
optional equivalence margin (a change smaller than the margin is no change: the
"flat" branch that lets a rule say "not supported" when a predicted decrease is absent),
how several cells combine, and an optional gate that makes the claim untestable (e.g. a
network already at its floor everywhere, so there is no error left to fall).

:func:`decide` applies it:

- to **several seeds** (the rule's verdict): each cell's mean over seeds with a
  Student-t interval (seeds are independent replicates, so the interval includes
  training randomness);
- to **one seed**: the seed's own interval (named ``<key>_ci_low`` / ``<key>_ci_high`` in
  its numbers, unless the decision names them), read as a normal interval. One seed
  says nothing about training randomness; its verdict is labelled so.

Per cell, with a two-sided level ``level`` (one-sided tests at ``(1 - level) / 2``):

- *equivalent*: the interval lies inside ``threshold ± margin`` (two one-sided tests;
  margin set), or the value sits exactly on the threshold with no spread (an exact tie)
  -> the cell says "not supported" (no practical change);
- *supported*: the interval lies on the predicted side of the threshold;
- *against*: the interval lies on the other side -> "not supported";
- otherwise inconclusive.

Cells combine as ``"all"`` (the claim holds in every cell: supported only if every cell
is, an intersection-union test that needs no correction; any one cell can refute it, so
refutations are Holm-corrected) or ``"any"`` (any one cell supports it, Holm-corrected;
refuted only if every cell refutes it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

PREDICTS = ("below", "above")
COMBINE = ("all", "any")


@dataclass(frozen=True)
class Gate:
    """The claim is untestable (verdict inconclusive) when the mean over seeds of the
    number ``key`` is on side ``when`` of ``threshold`` (e.g. the network's worst KL is
    below the convergence tolerance at every length: no error is left to fall).

    ``reason`` says why, in words, for the verdict's text."""

    key: str
    when: str
    threshold: float
    reason: str

    def __post_init__(self) -> None:
        if self.when not in PREDICTS:
            raise ValueError(f"Gate.when must be one of {PREDICTS}; got {self.when!r}")
        if not self.reason.strip():
            raise ValueError("Gate.reason must say why the claim is then untestable")

    def closed(self, value: float) -> bool:
        return bool(value < self.threshold if self.when == "below" else value > self.threshold)


@dataclass(frozen=True)
class Decision:
    """How a rule turns numbers into a verdict (see the module docstring).

    Args:
        keys: Names, in each verdict's ``numbers``, of the cells decided on; a name with
            ``*`` is a pattern (``fnmatch``) for every number it matches (interval ends
            and ``_mde`` entries left out), e.g. one cell per length: ``"kl_diff_L*"``.
        predicts: ``"below"`` or ``"above"``: the side of ``threshold`` the claim puts
            each cell on.
        threshold: The value the claim compares with (0 for a slope or a difference).
        margin: Equivalence margin: an interval inside ``threshold ± margin`` means no
            practical change and gives "not supported". None: no equivalence branch.
        combine: ``"all"`` or ``"any"`` (how several cells decide).
        level: Two-sided confidence level of each interval.
        min_seeds: The fewest seeds whose pooled verdict the rule counts as decided.
        gate: Optional :class:`Gate` that makes the claim untestable.
        ci: For one-seed decisions: ``{key: (low_name, high_name)}`` where the
            verdict's numbers name the interval ends otherwise than
            ``<key>_ci_low`` / ``<key>_ci_high``.
        practical: Support needs a practical effect: the interval must lie beyond the
            margin on the predicted side (below ``threshold - margin`` for "below"),
            not only beyond the threshold. Needs a margin.
    """

    keys: tuple[str, ...]
    predicts: str
    threshold: float = 0.0
    margin: float | None = None
    combine: str = "all"
    level: float = 0.95
    min_seeds: int = 5
    gate: Gate | None = None
    ci: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    practical: bool = False

    def __post_init__(self) -> None:
        keys = (self.keys,) if isinstance(self.keys, str) else tuple(self.keys)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"Decision.keys must name at least one number; got {self.keys!r}")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "ci", dict(self.ci))
        if self.predicts not in PREDICTS:
            raise ValueError(f"Decision.predicts must be one of {PREDICTS}; got {self.predicts!r}")
        if self.combine not in COMBINE:
            raise ValueError(f"Decision.combine must be one of {COMBINE}; got {self.combine!r}")
        if not 0.0 < float(self.level) < 1.0:
            raise ValueError(f"Decision.level must be in (0, 1); got {self.level!r}")
        if self.margin is not None and not float(self.margin) > 0:
            raise ValueError(f"Decision.margin must be > 0 or None; got {self.margin!r}")
        if self.practical and self.margin is None:
            raise ValueError("Decision.practical needs a margin (the practical effect size)")
        if isinstance(self.min_seeds, bool) or not isinstance(self.min_seeds, int) \
                or self.min_seeds < 1:
            raise ValueError(f"Decision.min_seeds must be an integer >= 1; got {self.min_seeds!r}")

    def describe(self) -> str:
        """The decision in one line of words (what ``docs/rules.md`` shows)."""
        side = "<" if self.predicts == "below" else ">"
        cells = (f"`{self.keys[0]}`" if len(self.keys) == 1
                 else f"{'every' if self.combine == 'all' else 'any'} one of "
                      + ", ".join(f"`{k}`" for k in self.keys))
        beyond = (f"{self.threshold - self.margin:g}" if self.practical and self.predicts == "below"
                  else f"{self.threshold + self.margin:g}" if self.practical
                  else f"{self.threshold:g}")
        text = (f"supported if the {self.level:.0%} interval of {cells} lies {side} "
                f"{beyond}; not supported if it lies on the other side of {self.threshold:g}")
        if self.margin is not None:
            text += (f", or inside {self.threshold:g} ± {self.margin:g} (no practical "
                     "change)")
        text += "; inconclusive otherwise"
        if len(self.keys) > 1:
            text += ("; refutations Holm-corrected over the cells" if self.combine == "all"
                     else "; support Holm-corrected over the cells")
        if self.gate is not None:
            text += (f". Untestable (inconclusive) when the mean of `{self.gate.key}` is "
                     f"{self.gate.when} {self.gate.threshold:g}: {self.gate.reason}")
        return (text + f". Decided from at least {self.min_seeds} seeds (Student-t over "
                "seeds); one seed's verdict uses its own interval and is marked so.")

    def cells_of(self, numbers: Mapping[str, Any]) -> list[str]:
        """The cell names these numbers give: each key, patterns expanded (sorted by the
        number they end with, else by name). A plain key is kept even where missing."""
        from fnmatch import fnmatchcase

        out: list[str] = []
        for key in self.keys:
            if "*" not in key:
                out.append(key)
                continue
            found = [n for n in numbers if fnmatchcase(n, key)
                     and not n.endswith(("_ci_low", "_ci_high", "_mde"))]
            out += sorted(found, key=_natural)
        return out

    def fits(self, numbers: Mapping[str, Any]) -> bool:
        """Whether these numbers hold every cell (and at least one per pattern)."""
        from fnmatch import fnmatchcase

        return all(any(fnmatchcase(n, k) for n in numbers) if "*" in k else k in numbers
                   for k in self.keys)

    def interval_names(self, key: str) -> tuple[str, str]:
        return self.ci.get(key, (f"{key}_ci_low", f"{key}_ci_high"))


@dataclass(frozen=True)
class Cell:
    """One cell's test: estimate, interval, one-sided p-values and outcome."""

    key: str
    value: float
    ci_low: float
    ci_high: float
    se: float
    df: float
    n: int
    p_support: float
    p_against: float
    p_equivalent: float
    outcome: str  # "supported", "against", "equivalent", "inconclusive"


@dataclass(frozen=True)
class DecisionResult:
    verdict: str
    basis: str  # "seeds" or "one seed"
    seeds: int
    cells: tuple[Cell, ...]
    gated: bool
    text: str

    def numbers(self) -> dict[str, float]:
        """Each cell's pooled estimate and interval, and the minimum detectable effect."""
        out: dict[str, float] = {"seeds": float(self.seeds)}
        for c in self.cells:
            out[f"{c.key}"] = c.value
            out[f"{c.key}_ci_low"] = c.ci_low
            out[f"{c.key}_ci_high"] = c.ci_high
            out[f"{c.key}_mde"] = _mde(c)
        return out


def _natural(name: str) -> tuple:
    import re

    m = re.search(r"(-?\d+(?:\.\d+)?)$", name)
    return (0, float(m.group(1)), name) if m else (1, 0.0, name)


def _t_cdf(t: float, df: float) -> float:
    from scipy import stats

    if math.isinf(df):
        return float(stats.norm.cdf(t))
    return float(stats.t.cdf(t, df))


def _t_quantile(q: float, df: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def _mde(c: Cell) -> float:
    """Smallest true distance from the threshold the cell detects with 80% power (t test
    at the cell's level and degrees of freedom)."""
    if not math.isfinite(c.se):
        return float("nan")
    return c.se * (_t_quantile(0.975, c.df) + _t_quantile(0.8, c.df))


def _one_sided(d: Decision, value: float, se: float, df: float) -> tuple[float, float, float]:
    """(p_support, p_against, p_equivalent) of a cell estimated at ``value`` with ``se``."""
    sign = 1.0 if d.predicts == "below" else -1.0

    def p_less(bound: float) -> float:  # p-value of H0: mean >= bound
        if se == 0:
            return 0.0 if value < bound else 1.0
        return _t_cdf((value - bound) / se, df)

    def p_greater(bound: float) -> float:  # p-value of H0: mean <= bound
        if se == 0:
            return 0.0 if value > bound else 1.0
        return 1.0 - _t_cdf((value - bound) / se, df)

    # support against the threshold, or (practical) against the margin's far edge
    edge = d.threshold - sign * d.margin if d.practical and d.margin is not None \
        else d.threshold
    support, against = ((p_less(edge), p_greater(d.threshold)) if sign > 0
                        else (p_greater(edge), p_less(d.threshold)))
    # an exact tie (the same value in every seed, on the threshold) is no effect either way
    equivalent = 0.0 if se == 0 and value == d.threshold else 1.0
    if d.margin is not None:
        equivalent = max(p_greater(d.threshold - d.margin), p_less(d.threshold + d.margin))
    return support, against, equivalent


def _cell(d: Decision, key: str, seeds: Sequence[Mapping[str, Any]]) -> Cell:
    nan = float("nan")
    if len(seeds) == 1:
        numbers = seeds[0]
        value = float(numbers.get(key, nan))
        lo_name, hi_name = d.interval_names(key)
        lo, hi = float(numbers.get(lo_name, nan)), float(numbers.get(hi_name, nan))
        z = _t_quantile(0.5 + d.level / 2, math.inf)
        se = (hi - lo) / (2 * z) if math.isfinite(lo) and math.isfinite(hi) else nan
        df, n = math.inf, 1
    else:
        values = np.array([float(s.get(key, nan)) for s in seeds], dtype=np.float64)
        n = int(values.size)
        value = float(values.mean())
        se = float(values.std(ddof=1) / math.sqrt(n))
        df = float(n - 1)
        half = _t_quantile(0.5 + d.level / 2, df) * se
        lo, hi = value - half, value + half
    if not (math.isfinite(value) and math.isfinite(se)):
        return Cell(key, value, nan, nan, se, df, n, nan, nan, nan, "inconclusive")
    if len(seeds) == 1 and se == 0:
        lo = hi = value
    support, against, equivalent = _one_sided(d, value, se, df)
    return Cell(key, value, lo, hi, se, df, n, support, against, equivalent, "")


def decide(decision: Decision, seeds: Sequence[Mapping[str, Any]]) -> DecisionResult:
    """Apply ``decision`` to the numbers of one or several seeds (one mapping per seed).

    Raises:
        ValueError: no seeds, or a seed whose numbers lack a key the decision names.
    """
    from bayesattn.metrics import holm

    seeds = list(seeds)
    if not seeds:
        raise ValueError("decide: expected the numbers of at least one seed, got none")
    names = decision.cells_of(seeds[0])
    for i, numbers in enumerate(seeds):
        missing = [k for k in names if k not in numbers]
        if missing or not names or decision.cells_of(numbers) != names:
            raise ValueError(f"decide: seed {i}'s numbers lack {missing or list(decision.keys)}"
                             f" (or give other cells than seed 0's {names}); they hold "
                             f"{sorted(numbers)}")
    alpha = (1 - decision.level) / 2
    cells = [_cell(decision, k, seeds) for k in names]
    testable = [c for c in cells if math.isfinite(c.p_support)]
    refute_p = [min(c.p_against, c.p_equivalent) for c in testable]
    if decision.combine == "all":
        supported_cells = [c.p_support <= alpha for c in testable]
        refuted_cells = list(holm(refute_p) <= alpha) if testable else []
    else:
        supported_cells = list(holm([c.p_support for c in testable]) <= alpha) if testable else []
        refuted_cells = [p <= alpha for p in refute_p]
    outcome = {}
    for c, s, r in zip(testable, supported_cells, refuted_cells, strict=True):
        if r and c.p_equivalent <= alpha:
            outcome[c.key] = "equivalent"
        elif s:
            outcome[c.key] = "supported"
        elif r:
            outcome[c.key] = "against"
        else:
            outcome[c.key] = "inconclusive"
    cells = [c if c.key not in outcome else replace(c, outcome=outcome[c.key]) for c in cells]
    results = [c.outcome for c in cells]
    refutes = [o in ("against", "equivalent") for o in results]
    if decision.combine == "all":
        verdict = ("supported" if all(o == "supported" for o in results)
                   else "not supported" if any(refutes) else "inconclusive")
    else:
        verdict = ("supported" if any(o == "supported" for o in results)
                   else "not supported" if all(refutes) else "inconclusive")
    gated = False
    gate = decision.gate
    if gate is not None:
        values = [float(s.get(gate.key, float("nan"))) for s in seeds]
        if all(math.isfinite(v) for v in values) and gate.closed(float(np.mean(values))):
            gated, verdict = True, "inconclusive"
    basis = "seeds" if len(seeds) > 1 else "one seed"
    return DecisionResult(verdict, basis, len(seeds), tuple(cells), gated,
                          _text(decision, cells, verdict, basis, len(seeds), gated))


def _text(d: Decision, cells: Sequence[Cell], verdict: str, basis: str, n: int,
          gated: bool) -> str:
    how = (f"mean over {n} seeds, Student-t {d.level:.0%} interval" if basis == "seeds"
           else f"one seed, its own {d.level:.0%} interval (training randomness not included)")
    parts = [f"{c.key} = {c.value:.4g} [{c.ci_low:.4g}, {c.ci_high:.4g}] ({c.outcome})"
             for c in cells]
    text = f"{'; '.join(parts)}; {how}."
    if gated and d.gate is not None:
        text += f" Untestable: {d.gate.reason}."
    if basis == "seeds" and n < d.min_seeds:
        text += f" Only {n} seeds: the rule asks for at least {d.min_seeds}."
    return text
