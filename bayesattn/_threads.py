"""CPU thread policy for torch: how many intra-op threads a training run uses.

torch starts one intra-op thread per core. When another process shares the cores, those
threads wait on each other and a small network trains many times slower (measured in
``benchmarks/threads.py``). ``threads="auto"`` therefore uses only the cores that are idle
when the run starts, and :func:`torch_threads` applies a choice for the duration of a
``with`` block and restores the previous setting afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import torch

_SAMPLE_SECONDS = 0.2
_open_blocks = 0  # torch_threads blocks we are inside


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def idle_cores(sample_seconds: float = _SAMPLE_SECONDS) -> float | None:
    """How many of the machine's cores were idle over the next ``sample_seconds``
    (None where /proc/stat does not exist)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_seconds)
    after = _cpu_times()
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return None
    return (os.cpu_count() or 1) * (1.0 - busy / total)


def resolve_threads(threads: Any) -> int:
    """The number of torch intra-op threads for ``threads``.

    Args:
        threads: A positive int (used as given), ``None`` (keep torch's current setting)
            or ``"auto"``: the cores this process may use that are idle right now
            (sampled from /proc/stat for 0.2 s), at least 1 and at most torch's current
            setting; under torchrun at most the cores divided by the number of processes
            on this machine (``LOCAL_WORLD_SIZE``). Where the load cannot be read, and
            inside a :func:`torch_threads` block (e.g. ``train`` inside ``bayesattn run``,
            which has already chosen), ``"auto"`` keeps torch's setting.

    Raises:
        ValueError: anything else.
    """
    current = torch.get_num_threads()
    if threads is None:
        return current
    if threads == "auto":
        if _open_blocks:  # an enclosing torch_threads block has chosen already
            return current
        idle = idle_cores()
        if idle is None:
            return current
        # under torchrun, the processes on this machine share its cores
        share = available_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        return int(max(1, min(current, share, round(idle))))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, 'auto' or None; got {threads!r}.")
    return threads


@contextlib.contextmanager
def torch_threads(threads: Any) -> Iterator[int]:
    """Run the block with ``resolve_threads(threads)`` torch intra-op threads; yields the
    number used and restores the previous setting on exit."""
    global _open_blocks
    n = resolve_threads(threads)
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    _open_blocks += 1
    try:
        yield n
    finally:
        _open_blocks -= 1
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
