"""The documentation in docs/ is self-contained and consistent with the code.

(a) No file of the repository points at notes that live outside it (the working
    summaries that docs/claims.md and docs/architecture.md replace).
(b) docs/claims.md has a section per claim, and every registered experiment's claims
    appear there, each in a section that names the experiment.
(c) Relative links in docs/*.md and README.md point at files that exist, and links
    into docs/ with an ``#anchor`` name a heading of the target page.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLAIMS = DOCS / "claims.md"
CLAIM_IDS = [f"P{i}" for i in range(1, 15)] + [f"E{i}" for i in range(1, 9)]

# Built by concatenation so that this file does not match its own patterns.
FORBIDDEN = ("SCIENCE" + ".md", "DESIGN" + ".md", ".." + "/shared")
SKIP_DIRS = {
    ".git", ".venv", "venv", "runs", "build", "dist", "__pycache__", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".ipynb_checkpoints", "node_modules",
}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _repository_files():
    """Every file under the repository root, outside build outputs and caches."""
    stack = [ROOT]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                if entry.name in SKIP_DIRS or entry.name.endswith(".egg-info"):
                    continue
                stack.append(entry)
            elif entry.is_file():
                yield entry


def _text(path: Path) -> str | None:
    """The file as text, or None for a binary file (NUL bytes or not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ------------------------------------------------------------------ (a) no outside notes
def test_no_file_points_outside_the_repository():
    problems = []
    for path in _repository_files():
        text = _text(path)
        if text is None or not any(p in text for p in FORBIDDEN):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            hits = [p for p in FORBIDDEN if p in line]
            if hits:
                problems.append(f"{_rel(path)}:{number}: mentions {', '.join(hits)}: "
                                f"{line.strip()[:160]}")
    assert not problems, (
        "these lines point at notes outside the repository; point them at "
        "docs/claims.md#<claim> or docs/architecture.md instead:\n" + "\n".join(problems))


# ------------------------------------------------------------------ markdown helpers
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`+[^`]*`+")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    out = []
    for ch in text.strip().lower():
        if ch in " -_" or unicodedata.category(ch)[0] in "LMN":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def headings(path: Path) -> list[tuple[int, int, str, str]]:
    """(line, level, text, anchor) of every heading, with GitHub's -1, -2 suffixes."""
    seen: dict[str, int] = {}
    found = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = github_anchor(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.append((number, len(m.group(1)), m.group(2),
                      base if count == 0 else f"{base}-{count}"))
    return found


def links(path: Path):
    """(line number, target) of every inline or reference link outside code."""
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        prose = INLINE_CODE.sub("", line)
        for m in INLINE_LINK.finditer(prose):
            yield number, m.group(1)
        m = REFERENCE_LINK.match(prose)
        if m:
            yield number, m.group(1)


def test_github_anchor_rules():
    assert github_anchor("P4") == "p4"
    assert github_anchor("Paper 1") == "paper-1"
    assert github_anchor("The data path: one direction!") == "the-data-path-one-direction"
    assert github_anchor("`bayesattn.models` and κ₂") == "bayesattnmodels-and-κ₂"
    assert github_anchor("Run folders (runs/)") == "run-folders-runs"


# ------------------------------------------------------------------ (b) the claims page
def _claim_sections() -> dict[str, tuple[int, str]]:
    """Anchor -> (heading line, section text up to the next heading of level <= 2)."""
    lines = CLAIMS.read_text(encoding="utf-8").splitlines()
    marks = [(n, level, anchor) for n, level, _, anchor in headings(CLAIMS) if level <= 2]
    sections = {}
    for i, (n, _, anchor) in enumerate(marks):
        end = marks[i + 1][0] - 1 if i + 1 < len(marks) else len(lines)
        sections[anchor] = (n, "\n".join(lines[n - 1:end]))
    return sections


def test_claims_page_has_a_section_per_claim():
    assert CLAIMS.is_file(), "docs/claims.md is missing"
    sections = _claim_sections()
    missing = [c for c in CLAIM_IDS if c.lower() not in sections]
    assert not missing, (
        f"docs/claims.md: no '## <claim>' section (anchor #<claim>) for {missing}")


def test_every_registered_claim_is_documented_with_its_experiment():
    experiments = pytest.importorskip("bayesattn.experiments")
    sections = _claim_sections()
    problems = []
    for name in experiments.names():
        for claim in experiments.get(name).claims:
            anchor = claim.lower()
            if anchor not in sections:
                problems.append(f"docs/claims.md: experiment {name!r} tests claim {claim}, "
                                f"which has no section '## {claim}'")
                continue
            line, text = sections[anchor]
            if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
                problems.append(f"docs/claims.md:{line}: the section of {claim} does not name "
                                f"the experiment {name!r} that tests it")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ (c) links
def _markdown_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]


def test_relative_links_resolve():
    anchors: dict[Path, set[str]] = {}
    problems = []
    for page in _markdown_pages():
        if not page.is_file():
            problems.append(f"{_rel(page)}: missing")
            continue
        for number, target in links(page):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = page if not file_part else (page.parent / unquote(file_part)).resolve()
            where = f"{_rel(page)}:{number}: link {target!r}"
            if not dest.exists():
                problems.append(f"{where} points at a file that does not exist")
                continue
            try:
                dest.relative_to(ROOT)
            except ValueError:
                problems.append(f"{where} leaves the repository")
                continue
            if anchor and dest.suffix == ".md" and dest.parent == DOCS:
                if dest not in anchors:
                    anchors[dest] = {a for _, _, _, a in headings(dest)}
                if unquote(anchor).lower() not in anchors[dest]:
                    problems.append(f"{where}: no heading of {_rel(dest)} has the anchor "
                                    f"#{anchor}")
    assert not problems, "\n".join(problems)


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_the_extension_examples_in_the_architecture_page_run():
    """docs/architecture.md#extending-bayesattn: the encoder, head and objective examples
    register, and a network built from them by name trains (then they are removed)."""
    from bayesattn.inference import ENCODERS, HEADS, OBJECTIVES

    text = _section((DOCS / "architecture.md").read_text(encoding="utf-8"),
                    "Extending bayesattn")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 4, "expected the encoder, head, objective and usage examples"
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, "docs/architecture.md", "exec"), namespace)  # noqa: S102
        assert "max-deepsets" in ENCODERS and "laplace-diag" in HEADS
        assert "npe-tempered" in OBJECTIVES
        history = namespace["result"].history
        assert len(history) == 3 and history["loss"].notna().all()
    finally:
        for registry, name in ((ENCODERS, "max-deepsets"), (HEADS, "laplace-diag"),
                               (OBJECTIVES, "npe-tempered")):
            if name in registry:
                registry.unregister(name)
