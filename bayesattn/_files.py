"""Writing files so that a reader never sees half of one, and reading torch files safely.

The one home of bayesattn's file I/O (the lowest layer: imports nothing from bayesattn;
torch and pandas are imported only when a function needs them):

- :func:`atomic_path` yields a temporary name beside the target and renames it over the
  target once the write has finished; :func:`write_text`, :func:`write_bytes`,
  :func:`write_json`, :func:`write_csv` and :func:`save_torch` are built on it;
- :func:`torch_bytes` serialises a torch object to the same bytes whatever the file is
  called; :func:`load_torch_file` reads one with ``weights_only=True`` and names the
  file when it is damaged (:class:`DamagedFileError`).

Temporary files are called ``.NAME.PID.tmp``, so that the run-folder lock can recognise
and remove what a killed writer left behind.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "DamagedFileError", "atomic_path", "load_torch_file", "read_json", "save_torch",
    "torch_bytes", "write_bytes", "write_csv", "write_json", "write_text",
]


class DamagedFileError(ValueError):
    """A torch file (network, checkpoint, artifact) is empty, truncated or not a torch file."""


def temp_name(path: Path) -> Path:
    """The temporary file beside ``path`` that this process writes before the rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The parent folder is created when missing. Readers see the old file or the complete
    new one, never a partial write. On an error (or an interrupt) the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (finite numbers only) atomically."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document in ``path`` (UTF-8)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: str | os.PathLike[str], frame: Any) -> Path:
    """Write a DataFrame as CSV (no index, ``\\n`` line ends) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` as bytes. Saved through memory, the archive's inner folder is
    always ``archive/``, so the same object gives the same bytes whatever the file is
    called (a temporary file name would otherwise end up inside the archive)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_torch(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write :func:`torch_bytes` of ``obj`` to ``path`` atomically."""
    return write_bytes(path, torch_bytes(obj))


def load_torch_file(path: str | os.PathLike[str], *, map_location: Any = "cpu",
                    what: str = "torch file") -> Any:
    """``torch.load(path, weights_only=True)`` that names the file when it is damaged.

    Raises:
        FileNotFoundError: there is no such file.
        DamagedFileError: the file is empty, truncated, or not a torch file.
    """
    import torch

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    if size == 0:
        raise DamagedFileError(f"{what} {path} is empty (0 bytes): it was not written "
                               "completely; delete it, or save it again")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, OSError,
            KeyError, ValueError) as exc:
        # torch's own message advises weights_only=False (running the file's code): not
        # advice to pass on for a file that is merely damaged
        reason = ("it ends early" if isinstance(exc, EOFError) else
                  "it is not a complete torch archive" if isinstance(exc, RuntimeError) else
                  "its contents are not a saved torch object")
        raise DamagedFileError(
            f"{what} {path} ({size} bytes) cannot be read: {reason} ({type(exc).__name__}); "
            "it is truncated, damaged or not a file bayesattn saved. Delete it, or save it "
            "again") from None
