"""Every code block of README.md runs verbatim, and shows the output it prints.

Each ```python block runs on its own in a fresh namespace (a reader copies one block, not
the page), in a scratch folder so that what it writes stays out of the repository. When a
```text block follows a python block directly, it is that block's output, and what the
block prints must equal it. Each ```bash block that calls ``.venv/bin/bayesattn`` runs in
the same scratch folder, with ``.venv`` and ``notebooks`` pointing at this environment and
the repository's notebooks. (``make run`` and ``make test`` are the README's own two
commands: CI runs the second, and the first is the README's recorded output.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def _blocks() -> list[tuple[str, str, int, str | None]]:
    """(language, code, line, output) for every fenced block; output is the text block after."""
    text = (ROOT / "README.md").read_text()
    found = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.start(), m.end())
             for m in FENCE.finditer(text)]
    blocks = []
    for i, (lang, code, line, _, end) in enumerate(found):
        after = found[i + 1] if i + 1 < len(found) else None
        output = (after[1] if after and after[0] == "text" and not text[end:after[3]].strip()
                  else None)
        blocks.append((lang, code, line, output))
    return blocks


PYTHON = [(code, line, out) for lang, code, line, out in _blocks() if lang == "python"]
BASH = [(code, line) for lang, code, line, _ in _blocks()
        if lang == "bash" and ".venv/bin/bayesattn" in code]


def test_the_readme_has_code_to_check():
    assert len(PYTHON) >= 4 and BASH, "the README lost its code blocks, or this parser broke"
    langs = {lang for lang, *_ in _blocks()}
    assert langs <= {"python", "bash", "text"}, f"a block in a language this test skips: {langs}"


@pytest.fixture()
def scratch(tmp_path):
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks", target_is_directory=True)
    return tmp_path


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("code,line,output", PYTHON, ids=[f"line{b[1]}" for b in PYTHON])
def test_python_block_runs_verbatim(code, line, output, scratch):
    done = subprocess.run([sys.executable, "-c", code], cwd=scratch, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (
        f"README.md line {line}: the python block failed on its own:\n{done.stderr[-3000:]}")
    if output is not None:
        assert _normalise(done.stdout) == _normalise(output), (
            f"README.md line {line}: the text block after this python block is not what it "
            f"prints now. It prints:\n{done.stdout}")


@pytest.mark.slow
@pytest.mark.parametrize("code,line", BASH, ids=[f"line{b[1]}" for b in BASH])
def test_bash_block_runs_verbatim(code, line, scratch):
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=scratch,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"README.md line {line}: the bash block failed:\n{done.stdout[-2000:]}\n"
        f"{done.stderr[-3000:]}")
