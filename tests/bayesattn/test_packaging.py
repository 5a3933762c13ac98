"""Packaging: only ``bayesattn`` is importable; import is fast; layers point one way."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
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


def _source_files() -> set[str]:
    """Every file a wheel must ship, as its path inside the wheel."""
    files = set()
    for folder, prefix in (("bayesattn", "bayesattn"), ("models", "bayesattn/models"),
                           ("inference", "bayesattn/inference")):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (the repository is not written to)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / item, src / item)
    for pkg in ("bayesattn", "models", "inference"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(src)],
        check=True, capture_output=True, text=True,
    )
    return next((tmp / "dist").glob("bayesattn-*.whl"))


@pytest.mark.slow
def test_wheel_ships_every_source_file_and_only_the_bayesattn_namespace(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names}
    assert tops == {"bayesattn", next(t for t in tops if t.endswith(".dist-info"))}
    missing = sorted(_source_files() - names)
    assert not missing, (
        f"the wheel lacks {len(missing)} source files, e.g. {missing[:5]}: list their "
        "package in [tool.setuptools] packages (or package-data) in pyproject.toml")


@pytest.mark.slow
def test_wheel_works_outside_the_repository(wheel, tmp_path):
    """Install the wheel alone in a fresh venv and use it from a folder outside the repo.

    The venv reuses this environment's third-party packages through a path entry (no
    download); the editable install of bayesattn there is not activated by it, and the
    test checks that every module comes from the wheel.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_path("purelib")
    (Path(site) / "_bayesattn_test_deps.pth").write_text(ours + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   text=True)
    away = tmp_path / "elsewhere"
    away.mkdir()

    def run(*args: str, timeout: float = 300) -> str:
        out = subprocess.run(list(args), cwd=away, capture_output=True, text=True,
                             timeout=timeout)
        assert out.returncode == 0, f"{args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    imported = run(str(python), "-c", (
        "import importlib, pkgutil, bayesattn\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(bayesattn.__path__, 'bayesattn.')\n"
        "               if m.name != 'bayesattn.__main__')\n"
        "for n in names:\n"
        "    mod = importlib.import_module(n)\n"
        f"    assert mod.__file__.startswith({site!r}), (n, mod.__file__)\n"
        "print(len(names))"))
    expected = {f for f in _source_files() if f.endswith(".py")}
    # every module but bayesattn/__init__ (imported first) and __main__ (it runs the CLI)
    assert int(imported) == len(expected) - 2
    bayesattn_cli = str(venv / "bin" / "bayesattn")
    assert "gap-vs-length" in run(bayesattn_cli, "list")
    run(bayesattn_cli, "run", "gap-vs-length", "--preset", "smoke", "--seed", "0",
        "--threads", "1", "--out", str(away / "smoke"))
    assert (away / "smoke" / "report.md").is_file()
    student = away / "hw1.ipynb"
    run(bayesattn_cli, "assignment", "student",
        str(ROOT / "notebooks" / "assignments" / "01_exact_posteriors.ipynb"), str(student))
    assert "NotImplementedError" in student.read_text()

# The layering, boundary and import-circle checks are in tests/test_architecture.py.
