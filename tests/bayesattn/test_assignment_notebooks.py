"""The course assignments: solutions pass every check, student versions fail every check.

Each assignment in ``notebooks/assignments/`` is a solution notebook (see
:mod:`bayesattn.assignments`). Its ``check`` cells show a :class:`bayesattn.check.CheckResult`
labelled ``[Exercise ...]``. The solution must pass every check; its student version
(solutions replaced by ``raise NotImplementedError``) must still run top to bottom, with
every check reporting FAILED and naming its exercise.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bayesattn.assignments import STUB_MESSAGE, make_student, student_notebook

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "notebooks" / "assignments"
ASSIGNMENTS = ["01_exact_posteriors.ipynb", "02_attention_as_inference.ipynb",
               "03_measuring_gaps.ipynb"]

# Small sizes injected after each notebook's parameters cell (as in test_notebooks.py).
SMALL = {
    "01_exact_posteriors.ipynb": {"NUM_SEQUENCES": 8, "MAX_LEN": 16, "NUTS_SEQUENCES": 2,
                                  "NUM_SAMPLES": 600, "NUM_WARMUP": 600},
    "02_attention_as_inference.ipynb": {"NUM_SEQUENCES": 4, "FIGURE_LENGTHS": [1, 4, 16, 64]},
    "03_measuring_gaps.ipynb": {"TRAIN_STEPS": 40, "TEST_LENGTHS": [2, 8, 32, 128], "NUM_TEST": 32,
                                "MC_SAMPLES": 2000},
}
LABEL = re.compile(r"\[Exercise (?P<name>[^\]]+)\]")


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _text(cell) -> str:
    """What a cell showed: stream text and the text/plain of its results."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"ERROR {out.ename}: {out.evalue}")
    return "".join(parts)


def _solution_functions(nb) -> set[str]:
    return {m for c in nb.cells if c.cell_type == "code" and "solution" in _tags(c)
            for m in re.findall(r"^def (\w+)\(", c.source, flags=re.M)}


def _checks(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "check" in _tags(c)]


def _with_small_sizes(nb, name):
    params = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    assert len(params) == 1, f"{name}: needs exactly one 'parameters' cell"
    source = "\n".join(f"{k} = {v!r}" for k, v in SMALL[name].items())
    nb.cells.insert(params[0] + 1, nbformat.v4.new_code_cell(source))
    return nb


def _execute(nb, cwd: Path):
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    return nb


def _assert_all_passed(nb, name):
    checks = _checks(nb)
    assert checks, f"{name}: no 'check' cells"
    for cell in checks:
        text = _text(cell)
        assert LABEL.search(text), f"{name}: a check shows no [Exercise ...] label:\n{text}"
        assert "PASSED" in text and "FAILED" not in text, f"{name}: a check did not pass:\n{text}"


def _assert_all_failed(nb, name, solved):
    checks = _checks(nb)
    assert len(checks) == len(_checks(solved))
    for cell in checks:
        text = _text(cell)
        label = LABEL.search(text)
        assert label, f"{name}: a student check shows no [Exercise ...] label:\n{text}"
        assert "FAILED" in text and "PASSED" not in text, f"{name}: a student check passed:\n{text}"
        assert STUB_MESSAGE in text, f"{name}: the failure does not say what is missing:\n{text}"
        function = label.group("name").split()[1]  # "1a beta_bernoulli_posterior" -> the function
        assert function in _solution_functions(solved), (
            f"{name}: the label names {function!r}, which no solution cell defines:\n{text}")


def test_there_are_three_assignments():
    assert sorted(p.name for p in FOLDER.glob("*.ipynb")) == ASSIGNMENTS


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_committed_solution_passes_every_check(name):
    nb = nbformat.read(FOLDER / name, as_version=4)
    _assert_all_passed(nb, name)
    summary = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("summary = ")]
    assert summary and "checks passed" in _text(summary[0])
    passed = re.search(r"(\d+) of (\d+) checks passed", _text(summary[0]))
    assert passed and passed.group(1) == passed.group(2) == str(len(_checks(nb)))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_version_keeps_checks_and_hides_solutions(name):
    nb = nbformat.read(FOLDER / name, as_version=4)
    student = student_notebook(nb)
    solutions = [i for i, c in enumerate(nb.cells) if "solution" in _tags(c)]
    assert any(nb.cells[i].cell_type == "markdown" for i in solutions), "no written answer"
    for i in solutions:
        cell = student.cells[i]
        assert "SOLUTION" not in cell.source
        if cell.cell_type == "code":
            assert f'raise NotImplementedError("{STUB_MESSAGE}")' in cell.source
            assert re.search(r"^def \w+\(", cell.source, flags=re.M)  # the signature stays
    for i, cell in enumerate(nb.cells):
        if "check" in _tags(cell):
            assert student.cells[i].source == cell.source


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_runs_and_passes_at_small_sizes(name, tmp_path):
    nb = _with_small_sizes(nbformat.read(FOLDER / name, as_version=4), name)
    _assert_all_passed(_execute(nb, tmp_path), name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_version_runs_and_every_check_fails_helpfully(name, tmp_path):
    target = make_student(FOLDER / name, tmp_path / f"student_{name}")
    nb = _with_small_sizes(nbformat.read(target, as_version=4), name)
    solved = nbformat.read(FOLDER / name, as_version=4)
    _assert_all_failed(_execute(nb, tmp_path), name, solved)
