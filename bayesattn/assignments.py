"""Course assignments: write the student version of a solution notebook.

An assignment is one notebook that holds the exercises, their solutions and the checks
that grade them. Cells are marked with notebook cell tags:

- ``solution`` (code): the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``
  are the solution. In the student version each such block becomes
  ``raise NotImplementedError("...")`` at the block's indentation, so function
  signatures, docstrings and set-up lines around it stay. A ``solution`` code cell
  without markers is replaced as a whole.
- ``solution`` (markdown): a written answer; the student version shows a prompt instead.
- ``check``: code that grades an exercise, usually with :mod:`bayesattn.check`. It is
  kept verbatim. Checks should *show* their result (``check_posterior(...)`` as the last
  line of the cell) rather than assert, so that a student version runs top to bottom
  and every check reports what is still wrong.

Everything else is copied. The student version has its outputs and execution counts
cleared, and records in its metadata that it is a student version, so that it is not
converted twice.

Example::

    bayesattn assignment student notebooks/assignments/01_exact_posteriors.ipynb \\
        01_exact_posteriors_student.ipynb
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from bayesattn._files import atomic_path

__all__ = ["AssignmentError", "STUB_MESSAGE", "make_student", "student_notebook"]

#: The text of the ``NotImplementedError`` that replaces each solution block.
STUB_MESSAGE = "exercise: replace this line with your solution"
_ANSWER_PROMPT = "*Write your answer here.*"
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*#\s*END SOLUTION\s*$")


class AssignmentError(ValueError):
    """A notebook that cannot be turned into a student version (the message says why)."""


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _stub_code(source: str, where: str) -> str:
    """Replace every ``BEGIN/END SOLUTION`` block of ``source`` by a stub."""
    out: list[str] = []
    lines = source.splitlines()
    inside: str | None = None
    marked = False
    for number, line in enumerate(lines, 1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if inside is None:
            if end:
                raise AssignmentError(f"{where}, line {number}: '# END SOLUTION' without a "
                                      "'# BEGIN SOLUTION' before it.")
            if begin:
                inside, marked = begin.group("indent"), True
                out.append(f'{inside}raise NotImplementedError("{STUB_MESSAGE}")')
            else:
                out.append(line)
        elif begin:
            raise AssignmentError(f"{where}, line {number}: nested '# BEGIN SOLUTION' (the "
                                  "block opened before it has no '# END SOLUTION').")
        elif end:
            inside = None
    if inside is not None:
        raise AssignmentError(f"{where}: '# BEGIN SOLUTION' without a matching "
                              "'# END SOLUTION'.")
    if not marked:  # no markers: the whole cell
        out = ["# Your solution here.", f'raise NotImplementedError("{STUB_MESSAGE}")']
    return "\n".join(out)


def student_notebook(nb: Any) -> Any:
    """The student version of a solution notebook (an ``nbformat`` notebook, not modified).

    Args:
        nb: The solution notebook (``nbformat.NotebookNode``, version 4).

    Returns:
        A new notebook: solutions replaced by stubs, checks kept, outputs cleared.

    Raises:
        AssignmentError: The notebook has no ``solution`` cell, is already a student
            version, a ``check`` cell holds solution markers, or markers are unbalanced.
    """
    meta = nb.get("metadata", {}).get("bayesattn", {})
    if meta.get("assignment") == "student":
        raise AssignmentError("this notebook is already a student version; pass the "
                              "solution notebook.")
    student = copy.deepcopy(nb)
    solutions = 0
    for index, cell in enumerate(student.cells):
        tags = _tags(cell)
        where = f"cell {index}"
        if "solution" in tags and "check" in tags:
            raise AssignmentError(f"{where} is tagged both 'solution' and 'check'; a check "
                                  "must stay in the student version, a solution must not.")
        if "check" in tags and any(_BEGIN.match(x) or _END.match(x)
                                   for x in cell.source.splitlines()):
            raise AssignmentError(f"{where} is a 'check' cell but contains solution markers.")
        if "solution" in tags:
            solutions += 1
            if cell.cell_type == "code":
                cell.source = _stub_code(cell.source, where)
            elif cell.cell_type == "markdown":
                cell.source = _ANSWER_PROMPT
            else:
                raise AssignmentError(f"{where}: a {cell.cell_type!r} cell cannot be a "
                                      "solution; tag a code or markdown cell.")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    if solutions == 0:
        raise AssignmentError("no cell is tagged 'solution'; tag the cells that hold the "
                              "solutions (see bayesattn.assignments).")
    student.metadata.setdefault("bayesattn", {})["assignment"] = "student"
    return student


def make_student(source: str | os.PathLike, target: str | os.PathLike, *,
                 overwrite: bool = False) -> Path:
    """Write the student version of the solution notebook ``source`` to ``target``.

    The file is written to a temporary name and moved into place, so an error never
    leaves a half-written notebook.

    Args:
        source: The solution notebook (``.ipynb``).
        target: Where to write the student version (``.ipynb``).
        overwrite: Replace ``target`` if it exists.

    Returns:
        The path written.

    Raises:
        AssignmentError: ``source`` is missing or not a notebook, ``target`` is
            ``source`` or exists (without ``overwrite``), or the notebook is unusable
            (see :func:`student_notebook`).
    """
    import nbformat

    source, target = Path(source), Path(target)
    if not source.is_file():
        raise AssignmentError(f"{source}: no such notebook.")
    if target.suffix != ".ipynb":
        raise AssignmentError(f"the student notebook needs an .ipynb name; got {target}.")
    if target.resolve() == source.resolve():
        raise AssignmentError("the student version must go to another file than the "
                              "solution notebook.")
    if target.exists() and not overwrite:
        raise AssignmentError(f"{target} exists; choose another path or pass --overwrite.")
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types
        raise AssignmentError(f"{source} is not a readable notebook: {exc}") from None
    student = student_notebook(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        nbformat.write(student, handle)
    return target
