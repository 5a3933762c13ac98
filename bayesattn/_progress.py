"""Progress bars that suit where the output goes: live in a terminal, a few lines in a log.

:func:`progress_bar` is what every loop in bayesattn uses (training, the experiment
runner's stage bar, the bars inside stages, the gap grids). In a terminal or a Jupyter
kernel it is a ``tqdm.auto`` bar. When the output is not a terminal (``make run >
log``, CI, a batch job) a redrawn bar would pile up in the file, so it writes plain
lines instead: at most one every ``every`` of the total (10%) and at least
``min_seconds`` (30 s) apart, plus a last line when the loop ends. ``disable=True``
(``progress=False`` in the callers) writes nothing.

The lowest layer: imports nothing from bayesattn.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any


def in_jupyter() -> bool:
    """Whether this process is a running Jupyter (IPython) kernel."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def is_interactive(file: IO[str] | None = None) -> bool:
    """Whether a live bar suits ``file`` (default ``sys.stderr``): a terminal, or the
    output of a Jupyter kernel."""
    stream = sys.stderr if file is None else file
    if in_jupyter() and stream in (sys.stderr, sys.stdout):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    disable: bool = False,
    file: IO[str] | None = None,
    min_seconds: float = 30.0,
    every: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    **kwargs: Any,
) -> Any:
    """A progress bar over ``iterable`` with tqdm's interface (iteration, ``update``,
    ``set_postfix``, ``set_postfix_str``, ``set_description``, ``close``, ``n``, ``total``).

    Args:
        iterable: What to iterate over (or None, then call ``update``).
        disable: Show nothing (the callers' ``progress=False``).
        file: Where to write (default ``sys.stderr`` at the time of the call).
        min_seconds: Without a terminal, the least time between two lines.
        every: Without a terminal, the least progress between two lines, as a fraction
            of ``total`` (ignored when the total is unknown).
        clock: Without a terminal, the clock (seconds) that spaces the lines.
        **kwargs: tqdm's arguments (``desc``, ``total``, ``initial``, ``unit``, ``leave``,
            ``position``, ...); those that only shape a live bar are ignored in a log.

    Returns:
        A ``tqdm.auto.tqdm`` in a terminal or Jupyter, a disabled tqdm when ``disable``,
        else a :class:`LogProgress`.
    """
    if disable:
        from tqdm.std import tqdm

        return tqdm(iterable, disable=True, **kwargs)
    if is_interactive(file):
        from tqdm.auto import tqdm

        return tqdm(iterable, file=file, **kwargs)
    return LogProgress(iterable, file=file, min_seconds=min_seconds, every=every, clock=clock,
                       **kwargs)


class LogProgress:
    """Progress as a few plain lines, for output that is not a terminal (see
    :func:`progress_bar`). Lines look like ``train concept-mixture: 300/1000 (30%) after
    01:12, loss=0.1094``."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        desc: str | None = None,
        total: float | None = None,
        *,
        initial: float = 0,
        unit: str = "it",
        leave: bool | None = True,
        file: IO[str] | None = None,
        min_seconds: float = 30.0,
        every: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        **_live_only: Any,  # position, dynamic_ncols, mininterval, ...: a live bar's
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable, self.desc, self.total, self.unit = iterable, desc or "", total, unit
        self.n = initial
        self.leave = leave is None or bool(leave)
        self.disable = False
        self._file = file
        self._min_seconds, self._every, self._clock = float(min_seconds), float(every), clock
        self._start = self._last_t = clock()
        self._last_n = initial
        self._lines = 0
        self._postfix = ""
        self._closed = False

    # ------------------------------------------------------------ tqdm's interface
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress: nothing to iterate over (pass an iterable)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last_t < self._min_seconds:
            return
        if self.total and self.n - self._last_n < self._every * self.total:
            return
        self._line(now)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw in a log."""

    def close(self) -> None:
        """Write the last line: for a bar that stays (``leave``), or one that wrote lines."""
        if self._closed:
            return
        self._closed = True
        if self.leave or self._lines:
            self._line(self._clock(), last=True)

    # ------------------------------------------------------------ output
    def _line(self, now: float, last: bool = False) -> None:
        from tqdm.std import tqdm

        count = _number(self.n) + ("" if self.total is None else f"/{_number(self.total)}")
        if self.unit != "it":
            count += f" {self.unit}s" if not self.unit.endswith("s") else f" {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        elapsed = tqdm.format_interval(now - self._start)
        text = f"{self.desc}: " if self.desc else ""
        text += f"{count} {'in' if last else 'after'} {elapsed}"
        if self._postfix:
            text += f", {self._postfix}"
        stream = sys.stderr if self._file is None else self._file
        stream.write(text + "\n")
        stream.flush()
        self._lines += 1
        self._last_t, self._last_n = now, self.n


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"
