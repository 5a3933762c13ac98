"""``CheckResult``: what a check found, with a message a student can act on."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CheckResult", "WorstCase", "fmt"]


def fmt(value: Any, digits: int = 3, max_items: int = 4) -> str:
    """Compact text for a number or a short vector: ``0.812`` or ``[0.12, -0.5]``."""
    arr = np.asarray(value, dtype=float).reshape(-1) if not np.isscalar(value) else None
    if arr is None:
        return f"{float(value):.{digits}g}"
    if arr.size == 1:
        return f"{float(arr[0]):.{digits}g}"
    items = [f"{float(v):.{digits}g}" for v in arr[:max_items]]
    if arr.size > max_items:
        items.append(f"... ({arr.size} values)")
    return "[" + ", ".join(items) + "]"


@dataclass(frozen=True)
class WorstCase:
    """One of the datasets (sequences) where the candidate is furthest from the truth.

    Attributes:
        index: Position of the sequence in the simulated batch (0-based).
        length: Number of real tokens L of that sequence.
        value: The per-sequence statistic (e.g. KL in nats, C2ST accuracy, abs error).
        tokens: A short summary of the tokens (first few, and their mean).
        expected: What the reference says, e.g. ``{"P(z=1)": 0.81}`` or
            ``{"mean": [...], "sd": [...]}``.
        got: The same quantities for the candidate.
        summary: One line, e.g. ``"sequence 3 (L=8): expected P(z=1)=0.81, got 0.33"``.
    """

    index: int
    length: int
    value: float
    tokens: str
    expected: dict[str, Any]
    got: dict[str, Any]
    summary: str


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check; truthy when it passed.

    Attributes:
        passed: True when the candidate is within tolerance of the reference.
        check: Which check produced it (``"check_posterior"``, ...).
        statistic: The summary statistic (``nan`` when the candidate could not be compared).
        statistic_name: What ``statistic`` measures, with units.
        threshold: The pass threshold (``statistic <= threshold`` passes unless said otherwise).
        message: A human-readable verdict naming the number, the threshold and the worst
            sequences; for an invalid candidate, what was expected and what was received.
        worst: The worst sequences (largest per-sequence statistic first).
        per_dataset: Per-sequence statistic, shape ``(B,)`` (None when not defined).
        reference: ``"exact"``, ``"nuts"``, ``"pyro-nuts"`` or a description of the truth.
        model: Name of the model checked against.
        invalid: True when the candidate's output was invalid (wrong type, shape, support,
            NaN...) or it raised, so no statistic could be computed.
        details: Extra numbers (CIs, sizes, the reference's diagnostics...).
    """

    passed: bool
    check: str
    statistic: float
    statistic_name: str
    threshold: float
    message: str
    worst: tuple[WorstCase, ...] = ()
    per_dataset: np.ndarray | None = field(default=None, repr=False)
    reference: str = "exact"
    model: str = ""
    invalid: bool = False
    details: dict[str, Any] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.passed)

    def __repr__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return f"<{self.check} {verdict}: {self.message}>"

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        verdict = "PASSED" if self.passed else "FAILED"
        rows = "".join(
            f"<tr><td>{w.index}</td><td>{w.length}</td><td>{w.value:.4g}</td>"
            f"<td>{html.escape(_pairs(w.expected))}</td><td>{html.escape(_pairs(w.got))}</td>"
            "</tr>"
            for w in self.worst
        )
        table = (
            "<table><tr><th>sequence</th><th>L</th><th>value</th><th>expected</th>"
            f"<th>got</th></tr>{rows}</table>" if rows else ""
        )
        return (
            f"<div><b style='color:{colour}'>{self.check} {verdict}</b> "
            f"<span>({html.escape(self.model)}, reference: {html.escape(self.reference)})"
            f"</span><p>{html.escape(self.message)}</p>{table}</div>"
        )


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in d.items())


def invalid_result(check: str, model: str, reference: str, statistic_name: str,
                   threshold: float, problem: str) -> CheckResult:
    """A FAILED result for a candidate that could not be compared at all."""
    return CheckResult(
        passed=False, check=check, statistic=math.nan, statistic_name=statistic_name,
        threshold=threshold, message=f"{check} FAILED ({model}): {problem}",
        reference=reference, model=model, invalid=True,
    )


def verdict_message(check: str, model: str, passed: bool, name: str, statistic: float,
                    threshold: float, context: str, worst: Sequence[WorstCase],
                    hint: str = "") -> str:
    """``"<check> FAILED (model): mean KL ... = 0.42 > tol 0.05 over ...; worst: ..."``."""
    op = "<=" if passed else ">"
    head = (f"{check} {'passed' if passed else 'FAILED'} ({model}): {name} = "
            f"{statistic:.3g} {op} tol {threshold:.3g} {context}")
    if passed:
        return head + "."
    lines = "; ".join(w.summary for w in worst)
    tail = f" Worst: {lines}." if lines else ""
    return head + "." + tail + (f" {hint}" if hint else "")
