"""Atomic file writes and the provenance recorded in ``config.json``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded with every run.
PACKAGES = (
    "bayesattn", "torch", "pyro-ppl", "numpyro", "jax", "numpy", "pandas", "arviz", "seaborn",
)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Readers see the old file or the complete new one, never a partial write. On an
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: Path, frame: Any) -> Path:
    """Write a DataFrame as CSV (no index, ``\\n`` line ends) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def read_csv(path: Path, *, keep_text: bool = False) -> Any:
    """Read a CSV written by :func:`write_csv`; an empty file gives an empty DataFrame.

    ``keep_text=True`` keeps every cell as written (empty cells stay ``""``, "n/a" stays
    text): for display tables such as headline.csv, where pandas' default would turn them
    into NaN and the report would print "nan".
    """
    import pandas as pd

    try:
        return pd.read_csv(path, keep_default_na=not keep_text)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state() -> dict[str, Any] | None:
    """Commit and dirtiness of the git checkout holding this package, or None."""
    here = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def environment(device: str) -> dict[str, Any]:
    """Python, platform, package versions, git state and (on CUDA) the GPU name."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "git": git_state(),
    }
    if device.startswith("cuda"):
        import torch

        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env
