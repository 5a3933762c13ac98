"""The ``bayesattn`` command: list, run, report, one-line user errors; models and demo intact.

Commands that need the toy experiment run in-process through ``bayesattn.cli.main``
(the toy is registered in this process only); the rest also run as subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn.cli import main

NAME = "toy-cli"


def _toy(interrupt: list[bool]) -> ex.Experiment:
    def draws(ctx):
        if interrupt and interrupt.pop():
            raise KeyboardInterrupt
        rng = np.random.default_rng(ctx.seed_for("draws"))
        return pd.DataFrame({"metric": ["a", "b"], "value": rng.normal(size=2)})

    return ex.Experiment(
        name=NAME, title="CLI toy", claims=("P3",), description="Two normal draws.",
        presets={"smoke": {"n": 2}, "quick": {"n": 3}, "full": {"n": 4}},
        stages=(ex.Stage("draws", draws),),
        verdicts=lambda results, params: [
            ex.Verdict("P3", "Outputs are invariant.", "zero spread", "spread 0.0",
                       "supported", {"spread": 0.0})],
        headline=lambda results: results[["metric", "value"]],
    )


@pytest.fixture
def interrupt():
    flags: list[bool] = []
    ex.register(_toy(flags))
    yield flags
    ex.unregister(NAME)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayesattn: error: ") and "Traceback" not in err
    return lines[0]


def test_list(interrupt, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["name", "claims", "presets", "quick", "CPU", "full", "CPU", "(est.)",
                      "title"]
    row = next(line for line in out.splitlines() if line.startswith(NAME))
    # the toy has no work() estimate: its CPU times are unknown
    assert row.split()[:5] == [NAME, "P3", "smoke,quick,full", "unknown", "unknown"]
    assert row.endswith("CLI toy")
    assert main(["list", NAME]) == 0
    out = capsys.readouterr().out
    assert "Two normal draws." in out and 'preset quick: {"n": 3}' in out and "stages: draws" in out


def test_run_prints_headline_verdicts_and_folder(interrupt, tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["run", NAME, "--preset", "smoke", "--seed", "4", "--device", "cpu", "--out",
            str(out_dir), "--no-progress", "--set", "n=3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "value" in out
    # a smoke run (with overrides too) is a plumbing check: no claim is assessed
    assert "plumbing check, not evidence" in out and "SUPPORTED" not in out
    assert "P3    not assessed (smoke preset)" in out and "measured: spread 0.0" in out
    assert f"run folder: {out_dir}" in out and "report.md" in out
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["seed"] == 4 and cfg["overrides"] == {"n": 3}
    assert cfg["command"].startswith(f"bayesattn run {NAME} --preset smoke")
    # again without flags: refused in one line, files untouched
    before = (out_dir / "results.csv").read_bytes()
    assert main(argv) == 2
    assert "--resume" in _error_line(capsys)
    assert main([*argv, "--resume"]) == 0
    capsys.readouterr()
    assert main([*argv[:-1], "n=2", "--resume"]) == 2
    assert "cannot resume" in _error_line(capsys)
    assert (out_dir / "results.csv").read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0


def test_quick_run_prints_the_verdicts(interrupt, tmp_path, capsys):
    assert main(["run", NAME, "--preset", "quick", "--device", "cpu", "--out",
                 str(tmp_path / "q"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "P3    SUPPORTED  Outputs are invariant." in out and "plumbing" not in out


def test_version(capsys, monkeypatch):
    import importlib.metadata
    from importlib.metadata import version

    import bayesattn
    from bayesattn import cli

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"bayesattn {version('bayesattn')}\n"
    assert bayesattn.__version__ == version("bayesattn")
    out = subprocess.run([sys.executable, "-m", "bayesattn", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout == f"bayesattn {bayesattn.__version__}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(bayesattn, "__version__", "9.8.7")
    assert cli.version() == "9.8.7"  # sources used without being installed


def test_report_command(interrupt, tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["run", NAME, "--preset", "smoke", "--device", "cpu", "--out", str(out_dir),
                 "--no-progress"]) == 0
    capsys.readouterr()
    original = (out_dir / "report.md").read_text()
    (out_dir / "report.md").unlink()
    assert main(["report", str(out_dir)]) == 0
    assert capsys.readouterr().out == original == (out_dir / "report.md").read_text()
    assert main(["report", str(tmp_path)]) == 2
    assert "not a bayesattn run folder" in _error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "toy-clj"], f"did you mean '{NAME}'"),
        (["run", NAME, "--preset", "big"], "known presets: smoke, quick, full"),
        (["run", NAME, "--set", "m=1"], "no parameter 'm'"),
        (["run", NAME, "--set", "novalue"], "KEY=VALUE"),
        (["run", NAME, "--resume", "--overwrite"], "not allowed with"),
        (["run", NAME, "--seed", "abc"], "invalid int value"),
        (["list", "toy-clj"], "did you mean"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line(interrupt, tmp_path, capsys, argv, needle):
    try:
        code = main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "run" else [])])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert needle in _error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_unwritable_and_existing_folders(interrupt, tmp_path, capsys):
    (tmp_path / "plain").write_text("x")
    assert main(["run", NAME, "--out", str(tmp_path / "plain" / "run"), "--no-progress"]) == 2
    assert "cannot write" in _error_line(capsys)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["run", NAME, "--out", str(tmp_path / "mine"), "--overwrite"]) == 2
    assert "no bayesattn run" in _error_line(capsys)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_interrupt_says_how_to_resume(interrupt, tmp_path, capsys):
    interrupt.append(True)
    argv = ["run", NAME, "--preset", "smoke", "--device", "cpu", "--out", str(tmp_path / "r"),
            "--no-progress"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert main([*argv, "--resume"]) == 0


def test_models_and_demo_still_work(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "concept-mixture" in out and "ground truth: exact" in out
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0
    assert "--num-sequences" in capsys.readouterr().out
    assert main(["demo", "--models", "no-such-model"]) == 2


def test_module_entry_point_and_list_stays_light(tmp_path):
    code = ("import sys; from bayesattn.cli import main; rc = main(['list']);"
            "print('HEAVY', sorted(m for m in ('torch', 'jax', 'pyro', 'arviz')"
            " if m in sys.modules), rc)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY [] 0"
    done = subprocess.run([sys.executable, "-m", "bayesattn.cli", "run", "no-such-experiment"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("bayesattn: error: unknown experiment")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
