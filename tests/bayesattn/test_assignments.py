"""Student versions of assignment notebooks: solutions become stubs, checks stay."""

from __future__ import annotations

import nbformat
import pytest

from bayesattn import cli
from bayesattn.assignments import STUB_MESSAGE, AssignmentError, make_student, student_notebook

nbclient = pytest.importorskip("nbclient")


def _cell(kind, source, *tags):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    cell.metadata["tags"] = list(tags)
    return cell


SOLVED = '''def square(v):
    """Return v squared."""
    # BEGIN SOLUTION
    out = v * v
    return out
    # END SOLUTION

def cube(v):
    # BEGIN SOLUTION
    return v ** 3
    # END SOLUTION'''

CHECK = '''def grade(fn, v, want):
    try:
        got = fn(v)
    except NotImplementedError as exc:
        return f"FAILED {fn.__name__}: not implemented ({exc})"
    return "passed" if got == want else f"FAILED {fn.__name__}({v}) = {got}, expected {want}"

print(grade(square, 3, 9)); print(grade(cube, 2, 8))'''


def _notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("markdown", "# Exercise"), _cell("code", "BASE = 1", "parameters"),
                _cell("code", SOLVED, "solution"), _cell("code", CHECK, "check"),
                _cell("markdown", "Squares grow faster than lines.", "solution"),
                _cell("code", "x = 41\nx + BASE", "solution")]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="old")]
    nb.cells[1].execution_count = 3
    return nb


def _run(nb, tmp_path):
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)


def test_stubs_replace_solutions_and_checks_are_kept():
    nb = _notebook()
    student = student_notebook(nb)
    assert nb.cells[2].source == SOLVED  # the input is not modified
    code = student.cells[2].source
    assert "v * v" not in code and "v ** 3" not in code and "SOLUTION" not in code
    assert f'    raise NotImplementedError("{STUB_MESSAGE}")' in code.splitlines()
    assert 'def square(v):\n    """Return v squared."""' in code  # signature and docstring
    assert student.cells[3].source == CHECK
    assert student.cells[4].source.startswith("*Write your answer")
    assert "41" not in student.cells[5].source  # unmarked solution cell replaced whole
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.metadata["bayesattn"]["assignment"] == "student"
    with pytest.raises(AssignmentError, match="already a student version"):
        student_notebook(student)


def test_solution_passes_and_student_version_runs_with_failing_checks(tmp_path):
    solved = _run(_notebook(), tmp_path)
    assert solved.count("passed") == 2 and "FAILED" not in solved
    source = tmp_path / "a.ipynb"
    nb = _notebook()
    nb.cells.pop()  # the whole-cell stub raises at top level; keep this run crash-free
    nbformat.write(nb, source)
    assert cli.main(["assignment", "student", str(source), str(tmp_path / "s.ipynb")]) == 0
    out = _run(nbformat.read(tmp_path / "s.ipynb", as_version=4), tmp_path)
    assert "FAILED square: not implemented" in out and "FAILED cube" in out


@pytest.mark.parametrize(("source", "match"), [
    ("x = 1\n# END SOLUTION", "without a '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\nx = 1", "without a matching"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "nested"),
])
def test_unbalanced_markers_are_reported(source, match):
    nb = _notebook()
    nb.cells[2].source = source
    with pytest.raises(AssignmentError, match=match):
        student_notebook(nb)


def test_bad_notebooks_and_paths_give_one_line_errors(tmp_path, capsys):
    nb = _notebook()
    nb.cells[3].metadata["tags"].append("solution")
    with pytest.raises(AssignmentError, match="both 'solution' and 'check'"):
        student_notebook(nb)
    nb = _notebook()
    nb.cells[3].source += "\n# BEGIN SOLUTION"
    with pytest.raises(AssignmentError, match="check' cell but contains"):
        student_notebook(nb)
    nb = _notebook()
    for c in nb.cells:
        c.metadata["tags"] = []
    with pytest.raises(AssignmentError, match="no cell is tagged 'solution'"):
        student_notebook(nb)
    good = tmp_path / "good.ipynb"
    nbformat.write(_notebook(), good)
    (tmp_path / "bad.ipynb").write_text("{not json")
    (tmp_path / "taken.ipynb").write_text("keep")
    cases = [(tmp_path / "missing.ipynb", tmp_path / "o.ipynb", "no such notebook"),
             (tmp_path / "bad.ipynb", tmp_path / "o.ipynb", "not a readable notebook"),
             (good, good, "another file"),
             (good, tmp_path / "o.txt", "needs an .ipynb"),
             (good, tmp_path / "taken.ipynb", "exists")]
    for src, dst, match in cases:
        assert cli.main(["assignment", "student", str(src), str(dst)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("bayesattn: error:") and match in err and err.count("\n") == 1
    assert (tmp_path / "taken.ipynb").read_text() == "keep"
    assert not list(tmp_path.glob(".*.tmp"))
    make_student(good, tmp_path / "taken.ipynb", overwrite=True)
    assert nbformat.read(tmp_path / "taken.ipynb", as_version=4).metadata["bayesattn"]
