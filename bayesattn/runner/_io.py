"""Reading run-folder tables, and the provenance recorded in ``config.json``.

Atomic writes live in :mod:`bayesattn._files` (re-exported here for the runner).
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from bayesattn._files import atomic_path, read_json, write_csv, write_json, write_text

__all__ = ["atomic_path", "environment", "read_csv", "read_json", "write_csv", "write_json",
           "write_text"]

#: Distributions whose versions are recorded with every run.
PACKAGES = (
    "bayesattn", "torch", "pyro-ppl", "numpyro", "jax", "numpy", "pandas", "arviz", "seaborn",
)


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
    here = Path(__file__).resolve().parents[2]

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


def file_committed(path: str | None) -> bool | None:
    """Whether ``path`` is tracked by git and unchanged from the commit checked out (True),
    tracked or not but changed or new (False), or unknowable (None: no path, no git, or
    not inside a git checkout)."""
    if not path:
        return None
    file = Path(path).resolve()

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=file.parent, capture_output=True, text=True,
                              timeout=10, check=False)

    try:
        if git("rev-parse", "--is-inside-work-tree").returncode != 0:
            return None
        if git("ls-files", "--error-unmatch", file.name).returncode != 0:
            return False  # not tracked: never committed
        return not git("status", "--porcelain", "--", file.name).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


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
