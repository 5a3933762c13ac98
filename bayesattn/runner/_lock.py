"""One writer per run folder: an exclusive OS lock, and clean-up of what crashed writers left.

The lock is an advisory ``flock`` (POSIX) or ``msvcrt.locking`` (Windows) on a hidden
file beside the run folder, ``.NAME.lock``. The kernel drops it when the holder exits,
however it exits (``kill -9`` included), so a lock is never stale. The holder writes
who it is into the file; a second writer is refused with that line. The file is
removed when the holder releases it; a writer that opened the file just before that
notices it locked a removed file and tries again.

While it holds the lock a run also removes what earlier, crashed writers of the same
folder left behind: temporary files (``.NAME.PID.tmp``, write probes) inside the
folder, unfinished ``--overwrite`` folders (``.OUT.new-XXXX``) beside it, and the old
run an interrupted swap had set aside (``.OUT.old-XXXX``), which is put back when the
folder itself is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ._errors import OutputNotWritableError, RunFolderLockedError

TEMP_FILE = re.compile(r"^\..+\.\d+\.tmp$|^\.write-probe-\d+$")


def lock_path(out: Path) -> Path:
    """The lock file of run folder ``out``: ``.NAME.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0) if hasattr(os, "pread") else b""
    except OSError:
        text = b""
    return " ".join(text.decode("utf-8", "replace").split()) or "another process"


@contextmanager
def run_folder_lock(out: Path, command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of run folder ``out`` for the ``with`` block.

    Raises:
        RunFolderLockedError: another process holds it (the message names that process).
        OutputNotWritableError: the lock file cannot be created beside ``out``.
    """
    path = lock_path(out)
    while True:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputNotWritableError(
                f"cannot write to {out}: {exc.strerror or exc}; choose another --out or fix "
                "its permissions"
            ) from None
        if not _try_lock(fd):
            holder = _holder(fd)
            os.close(fd)
            raise RunFolderLockedError(
                f"{out} is being written by {holder}; wait for that run to finish (or stop "
                "it), or choose another --out"
            )
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed this file: lock the new one
    try:
        when = datetime.now(UTC).isoformat(timespec="seconds")
        line = f"pid {os.getpid()} on {socket.gethostname()} since {when}"
        os.ftruncate(fd, 0)
        os.write(fd, (line + (f" ({command})" if command else "") + "\n").encode())
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)  # still ours: unlink before the lock goes
        finally:
            os.close(fd)


def clean_siblings(out: Path) -> list[Path]:
    """Remove the unfinished ``--overwrite`` folders beside ``out`` and the old run an
    interrupted swap set aside (put back when ``out`` is missing); call with the lock held.

    Returns:
        The paths removed or restored.
    """
    done: list[Path] = []
    prefix = f".{out.name}."
    siblings = sorted(out.parent.glob(f"{prefix}*")) if out.parent.is_dir() else []
    for old in (p for p in siblings if p.name.startswith(f"{prefix}old-") and p.is_dir()):
        if not out.exists():
            os.rename(old, out)  # a swap was interrupted between its two renames
        else:
            shutil.rmtree(old, ignore_errors=True)
        done.append(old)
    for new in (p for p in siblings if p.name.startswith(f"{prefix}new-") and p.is_dir()):
        shutil.rmtree(new, ignore_errors=True)
        done.append(new)
    return done


def remove_temp_files(folder: Path) -> list[Path]:
    """Remove crashed writers' temporary files inside run folder ``folder`` (lock held)."""
    done = []
    for root, _, files in os.walk(folder):
        for name in files:
            if TEMP_FILE.match(name):
                (Path(root) / name).unlink(missing_ok=True)
                done.append(Path(root) / name)
    return done
