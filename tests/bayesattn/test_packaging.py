"""Packaging: only ``bayesattn`` is importable; import is fast; layers point one way."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_no_top_level_models_or_inference(tmp_path):
    code = (
        "import importlib.util as u, bayesattn.models as m, bayesattn.inference as i;"
        "print(u.find_spec('models'), u.find_spec('inference'), m.__name__, i.__name__)"
    )
    assert _run(code, tmp_path) == "None None bayesattn.models bayesattn.inference"
    # and not in this process either (pytest runs with --import-mode=importlib)
    assert importlib.util.find_spec("models") is None
    assert importlib.util.find_spec("inference") is None


def test_import_bayesattn_is_light(tmp_path):
    code = (
        "import sys, bayesattn;"
        "print(sorted(m for m in ('torch', 'jax', 'pyro', 'arviz') if m in sys.modules))"
    )
    assert _run(code, tmp_path) == "[]"


@pytest.mark.slow
def test_wheel_contains_only_the_bayesattn_namespace(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / item, src / item)
    for pkg in ("bayesattn", "models", "inference"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True, text=True,
    )
    wheel = next((tmp_path / "dist").glob("bayesattn-*.whl"))
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"bayesattn", next(t for t in tops if t.endswith(".dist-info"))}
    names = zipfile.ZipFile(wheel).namelist()
    assert "bayesattn/models/_base.py" in names and "bayesattn/inference/_reference.py" in names


# ---------------------------------------------------------------- layering
# metrics <- models <- inference <- gaps <- check <- experiments/report/plots/demo <- cli
# (metrics sits below everything: pure functions, no PPL or network code)
LAYER = {
    "metrics": -1, "models": 0, "inference": 1, "gaps": 2, "check": 3,
    "experiments": 4, "report": 4, "plots": 4, "demo": 4, "assignments": 4, "cli": 5,
    "main__": 5,  # bayesattn.__main__ (python -m bayesattn), the cli's twin
}
SOURCE = {name: ROOT / name for name in ("models", "inference", "bayesattn")}


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "bayesattn" or len(parts) < 2:
        return None
    return LAYER.get(parts[1].lstrip("_"), None)


def _modules():
    for pkg, folder in SOURCE.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if pkg == "bayesattn":
                name = ".".join(["bayesattn", *parts])
            else:
                name = ".".join(["bayesattn", pkg, *parts])
            yield name, path


def test_lower_layers_never_import_higher_ones():
    problems = []
    for name, path in _modules():
        own = _layer_of(name)
        if own is None:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                other = _layer_of(t)
                if other is not None and other > own:
                    problems.append(f"{name} (layer {own}) imports {t} (layer {other})")
    assert not problems, problems


def test_every_module_is_assigned_a_layer():
    unassigned = [n for n, _ in _modules() if n != "bayesattn" and _layer_of(n) is None]
    assert not unassigned, f"add these to LAYER in this test: {unassigned}"
