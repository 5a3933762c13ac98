"""Progress output: a live tqdm bar in a terminal or Jupyter, a few plain lines in a log."""

from __future__ import annotations

import io
import sys
import types

import pytest
from tqdm.auto import tqdm as auto_tqdm

from bayesattn._progress import LogProgress, in_jupyter, is_interactive, progress_bar


class FakeClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text, "a log gets plain lines, no redrawing"
    return text.splitlines()


@pytest.mark.parametrize("seconds_per_step", [0.0, 0.01, 1.0, 60.0])
def test_a_log_gets_a_bounded_number_of_lines(seconds_per_step):
    log = io.StringIO()
    bar = progress_bar(range(10_000), desc="train toy", file=log,
                       clock=FakeClock(seconds_per_step))
    assert isinstance(bar, LogProgress)
    for step in bar:
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    lines = _lines(log)
    # at most one line per 10% of the total, at least 30 s apart, plus the last line
    assert 1 <= len(lines) <= 11, lines
    if seconds_per_step == 0.0:
        assert len(lines) == 1
    assert lines[-1].startswith("train toy: 10000/10000 (100%) in ")
    assert lines[-1].endswith("loss=0.0001")
    assert len(log.getvalue()) < 1000


def test_lines_are_spaced_in_time_and_progress():
    log = io.StringIO()
    clock = FakeClock(1.0)  # 1 s per reading: 10,000 s in all
    for _ in progress_bar(range(10_000), desc="d", file=log, clock=clock, min_seconds=30):
        pass
    lines = _lines(log)
    assert len(lines) == 11  # every 10% (1000 s >= 30 s apart), and the last line
    assert lines[0].startswith("d: 1000/10000 (10%) after ")
    # an unknown total: spaced in time only
    log = io.StringIO()
    for _ in progress_bar(iter(range(1000)), desc="d", file=log, clock=FakeClock(1.0),
                          min_seconds=60):
        pass
    lines = _lines(log)
    assert 10 <= len(lines) <= 18 and lines[-1].startswith("d: 1000 in ")


def test_update_initial_and_units_in_a_log():
    log = io.StringIO()
    bar = progress_bar(total=100, initial=40, desc="resumed", unit="stage", file=log,
                       clock=FakeClock(100.0))
    bar.update(30)
    bar.set_postfix_str("fit")
    bar.close()
    bar.close()  # once only
    assert _lines(log) == ["resumed: 70/100 stages (70%) after 01:40",
                           "resumed: 70/100 stages (70%) in 03:20, fit"]


def test_a_short_transient_bar_writes_nothing_to_a_log():
    log = io.StringIO()
    for _ in progress_bar(range(5), desc="inner", leave=False, file=log):
        pass
    assert log.getvalue() == ""


def test_a_terminal_gets_a_live_tqdm_bar():
    term = FakeTerminal()
    bar = progress_bar(range(50), desc="live", file=term, mininterval=0)
    assert isinstance(bar, auto_tqdm)
    for _ in bar:
        bar.set_postfix(loss="0.1")
    assert "\r" in term.getvalue() and "live" in term.getvalue()


@pytest.mark.parametrize("file", [io.StringIO(), FakeTerminal()])
def test_disable_writes_nothing(file):
    bar = progress_bar(range(100), desc="off", disable=True, file=file)
    assert list(bar) == list(range(100))
    bar.set_postfix(loss=1.0)
    bar.close()
    assert file.getvalue() == ""


def test_jupyter_kernel_gets_a_live_bar(monkeypatch):
    assert not in_jupyter()
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: shell))
    assert in_jupyter()
    assert is_interactive() and is_interactive(sys.stdout)
    assert not is_interactive(io.StringIO())  # an explicit file is not the notebook
    shell.kernel = None  # IPython in a terminal, with ipykernel merely imported
    assert not in_jupyter()


def test_runner_and_training_write_plain_lines_to_a_log(tmp_path, capsys):
    """The experiment runner's stage bar, the bars inside its stages and train()'s bar
    write a few lines, no redraws, when stderr is not a terminal (as under pytest)."""
    from bayesattn import experiments as ex
    from bayesattn import models
    from bayesattn.inference import AmortizedPosterior, train

    res = ex.run("gap-vs-length", preset="smoke", out=tmp_path / "r", device="cpu",
                 progress=True, threads=1)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert 1 <= len(lines) <= 12, lines
    assert lines[-1].startswith("gap-vs-length: 4/4 stages (100%) in ")
    assert res.out.is_dir()

    model = models.get("concept-mixture")
    train(AmortizedPosterior(model, seed=0), model, steps=40, batch_size=8, seq_len=8,
          objective="kl", seed=0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("train concept-mixture: 40/40 (100%) in ")
