"""The shape of the code: layers, public boundaries between packages, no import circles.

One import graph, read from the source with ``ast`` (nothing is imported): every
``import`` and ``from ... import`` statement counts, relative ones, those inside
functions and those under ``TYPE_CHECKING`` included. The package-dir mapping of
pyproject.toml is followed (``models/`` is ``bayesattn.models``, ``inference/`` is
``bayesattn.inference``); ``benchmarks/`` counts too (as ``benchmarks.*``).

- **Layers**: a lower layer never imports a higher one (docs/architecture.md#layers).
- **Boundaries**: a module may use the private names and private modules (``_x``) of
  its own package and of the packages above it in the tree (the shared helpers in
  ``bayesattn/_*.py``), never those of a sibling or of a subpackage of another
  package: what one package takes from another is exported by that package's
  ``__init__``.
- **Circles**: the graph has no cycle. An edge goes to the module that a statement
  names (``from a.b import c`` goes to ``a.b.c`` when that is a module, and to ``a.b``
  too, whose ``__init__`` runs first); the parent packages that ``import a.b.c``
  initialises on the way are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the dotted name it is installed as
SOURCES = (
    (ROOT / "bayesattn", "bayesattn"),
    (ROOT / "models", "bayesattn.models"),
    (ROOT / "inference", "bayesattn.inference"),
    (ROOT / "benchmarks", "benchmarks"),
)

# metrics <- models <- inference <- gaps <- check <- runner <- experiments/report/... <- cli
# (metrics sits below everything: pure functions, no PPL or network code; below it only
# the shared helpers bayesattn/_*.py, which import nothing from bayesattn's packages)
LAYER = {
    "_checks": -2, "_device": -2, "_files": -2, "_progress": -2, "_random": -2, "_text": -2,
    "_threads": -2,
    "_registry": -2,
    "metrics": -1, "models": 0, "inference": 1, "gaps": 2, "check": 3,
    "runner": 4, "report": 4, "plots": 4,
    "experiments": 5, "demo": 5, "assignments": 5, "sweep": 5,
    "cli": 6, "__main__": 6,  # bayesattn.__main__ (python -m bayesattn), the cli's twin
}


@cache
def modules(sources: tuple[tuple[Path, str], ...] = SOURCES) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package and benchmarks."""
    out = {}
    for folder, dotted in sources:
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([dotted, *parts])] = path
    return out


def _package_of(name: str, mods: dict[str, Path]) -> str:
    """The package a module belongs to (itself, for a package's ``__init__``)."""
    path = mods.get(name)
    return name if path is not None and path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(importer: str, node: ast.ImportFrom, mods: dict[str, Path]) -> str:
    if node.level == 0:
        return node.module or ""
    base = _package_of(importer, mods).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports(sources: tuple[tuple[Path, str], ...] = SOURCES
            ) -> dict[str, list[tuple[str, str, int]]]:
    """Module -> [(target module, imported name or "", line)] for first-party targets."""
    mods = modules(sources)
    graph: dict[str, list[tuple[str, str, int]]] = {}
    for name, path in mods.items():
        edges = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges += [(a.name, "", node.lineno) for a in node.names if a.name in mods]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, mods)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:
                        edges.append((sub, "", node.lineno))
                        # `from pkg import submodule` runs pkg's __init__ first, too
                        if base in mods and base != name:
                            edges.append((base, "", node.lineno))
                    elif base in mods:
                        edges.append((base, alias.name, node.lineno))
        graph[name] = edges
    return graph


def _private_part(module: str) -> str | None:
    """The package that owns the first private component of ``module`` (None if public)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def private_crossings(sources: tuple[tuple[Path, str], ...] = SOURCES) -> list[str]:
    """Imports of a private module or name from outside its package and its subpackages."""
    found = []
    mods = modules(sources)
    for importer, edges in imports(sources).items():
        home = _package_of(importer, mods)
        for target, name, line in edges:
            owner = _private_part(target)
            if owner is None and name.startswith("_") and not name.startswith("__"):
                owner = _package_of(target, mods)
            if owner is None:
                continue
            # allowed: the owner is the importer's package or one of its ancestors
            if home == owner or home.startswith(owner + "."):
                continue
            what = f"{target}.{name}" if name else target
            path = mods[importer]
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append(f"{where}:{line} imports {what}")
    return sorted(found)


def cycles(sources: tuple[tuple[Path, str], ...] = SOURCES) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph = {m: sorted({t for t, _, _ in edges}) for m, edges in imports(sources).items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> Iterator[None]:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                yield from visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))
        yield

    for v in graph:
        if v not in index:
            for _ in visit(v):
                pass
    return sorted(out)


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "bayesattn" or len(parts) < 2:
        return None
    return LAYER.get(parts[1])


def test_no_private_imports_across_packages():
    found = private_crossings()
    assert not found, (
        f"{len(found)} private cross-package imports; export the name from the owning "
        "package's __init__ (or move a shared helper into bayesattn/_*.py):\n"
        + "\n".join(found))


def test_no_import_circles():
    found = cycles()
    assert not found, f"{len(found)} import circles:\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_lower_layers_never_import_higher_ones():
    problems = []
    for name, edges in imports().items():
        own = _layer_of(name)
        if own is None:
            continue
        for target, _, line in edges:
            other = _layer_of(target)
            if other is not None and other > own:
                problems.append(f"{name}:{line} (layer {own}) imports {target} (layer {other})")
    assert not problems, "\n".join(problems)


def test_every_module_is_assigned_a_layer():
    unassigned = [n for n in modules() if n.startswith("bayesattn.") and _layer_of(n) is None]
    assert not unassigned, f"add these to LAYER in this test: {unassigned}"


def test_the_reader_finds_circles_and_crossings_of_every_kind(tmp_path):
    """The checks above can fail: on a small tree with one circle through a deferred
    import, one through a TYPE_CHECKING import and relative imports, and private names
    taken across packages, they find exactly those."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from ._impl import thing\n",
        "pkg/a/_impl.py": "def thing():\n    from ..b import other\n    return other\n"
                          "def _hidden():\n    pass\n",
        "pkg/b/__init__.py": "from pkg.a._impl import _hidden\nfrom pkg.a import thing\n"
                             "other = 1\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from pkg import d\n",
        "pkg/d.py": "from . import c\nfrom ._shared import helper\n",
        "pkg/_shared.py": "def helper():\n    pass\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    sources = ((tmp_path / "pkg", "pkg"),)
    assert cycles(sources) == [["pkg.a", "pkg.a._impl", "pkg.b"], ["pkg.c", "pkg.d"]]
    found = private_crossings(sources)
    # pkg.b takes a private module and a private name of its sibling pkg.a; pkg.d may use
    # the shared helper of its parent package
    assert len(found) == 1 and "imports pkg.a._impl._hidden" in found[0], found


def _reach(start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    graph = {m: {t for t, _, _ in edges} for m, edges in imports().items()}
    seen, todo = set(), [start]
    while todo:
        for t in graph.get(todo.pop(), ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


EXPERIMENTS = ROOT / "bayesattn" / "experiments"


def _experiment_packages() -> list[str]:
    return sorted(p.name for p in EXPERIMENTS.iterdir()
                  if (p / "__init__.py").is_file() and not p.name.startswith("_"))


def test_every_experiment_is_a_package_of_parts():
    """presets + stages + claims + figures; figures and claims never reach the stages (they
    read what the run folder holds); stages never reach claims or figures."""
    problems = []
    packages = _experiment_packages()
    assert len(packages) >= 13, packages
    for name in packages:
        pkg = f"bayesattn.experiments.{name}"
        parts = {m.rsplit(".", 1)[1] for m in modules() if m.startswith(pkg + ".")}
        missing = {"presets", "stages", "claims", "figures"} - parts
        if missing:
            problems.append(f"{pkg} lacks {sorted(missing)}")
            continue
        for part in ("claims", "figures"):
            stages = sorted(m for m in _reach(f"{pkg}.{part}") if m.startswith(f"{pkg}.stages"))
            if stages:
                problems.append(f"{pkg}.{part} imports {stages}")
        for other in ("claims", "figures"):
            if f"{pkg}.{other}" in _reach(f"{pkg}.stages"):
                problems.append(f"{pkg}.stages imports {pkg}.{other}")
    assert not problems, "\n".join(problems)


def test_no_experiment_file_is_longer_than_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in EXPERIMENTS.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these files (at most 400 lines each): {long}"


def test_the_runner_never_imports_the_experiments_it_runs():
    reached = {m for m in modules() if m.startswith("bayesattn.runner")}
    into = sorted({f"{m} -> {t}" for m in reached for t, _, _ in imports()[m]
                   if t.startswith("bayesattn.experiments")})
    assert not into, into
