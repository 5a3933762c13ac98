"""Fault injection on run folders: concurrent writers, kill -9, crash leftovers, foreign folders.

A toy experiment runs in child processes through the real ``bayesattn`` command line;
its second stage waits until the file ``$TOY_GATE`` exists, so that a test can act
mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bayesattn import experiments as ex
from bayesattn.cli import main
from bayesattn.runner import _lock
from bayesattn.runner._folder import MARKER

SCRIPT = textwrap.dedent('''
    import os, sys, time
    import numpy as np
    import pandas as pd
    import torch
    from bayesattn import experiments as ex

    def first(ctx):
        rng = np.random.default_rng(ctx.seed_for("first"))
        return pd.DataFrame({"metric": "x", "value": rng.normal(size=ctx.params["n"])})

    def second(ctx):
        gate = os.environ.get("TOY_GATE")
        end = time.monotonic() + 300
        while gate and not os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.05)
        x = ctx.results["first"]["value"].to_numpy()
        return ex.StageOutput(pd.DataFrame({"metric": ["mean"], "value": [x.mean()]}),
                              {"grid": np.arange(4.0), "t": torch.arange(3.0)})

    ex.register(ex.Experiment(
        name="toy-faults", title="toy", claims=("P4",), description="toy",
        presets={p: {"n": 16} for p in ("smoke", "quick", "full")},
        stages=(ex.Stage("first", first), ex.Stage("second", second)),
        verdicts=lambda results, params: []))
    from bayesattn.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def _starter(script: Path):
    def start(out: Path, *flags: str, gate: Path | None = None) -> subprocess.Popen:
        env = {**os.environ, "TOY_GATE": str(gate) if gate else ""}
        return subprocess.Popen(
            [sys.executable, str(script), "run", "toy-faults", "--preset", "smoke",
             "--no-progress", "--threads", "1", "--out", str(out), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    return start


@pytest.fixture(scope="module")
def toy_script(tmp_path_factory) -> Path:
    script = tmp_path_factory.mktemp("toy") / "toy_cli.py"
    script.write_text(SCRIPT)
    return script


@pytest.fixture
def toy_cli(toy_script):
    return _starter(toy_script)


@pytest.fixture(scope="module")
def clean_run(toy_script, tmp_path_factory) -> Path:
    """One uninterrupted run of the toy (in a child process), shared by the module's
    tests as the bytes every damaged, killed or resumed run must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "run"
    child = _starter(toy_script)(out)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _leftovers(parent: Path) -> list[str]:
    """Hidden files and folders that are not the run marker: temp files, locks, swaps."""
    return sorted(str(p.relative_to(parent)) for p in parent.rglob(".*") if p.name != MARKER)


def test_second_writer_is_refused_with_the_holders_name(toy_cli, tmp_path):
    out = tmp_path / "run"
    gate = tmp_path / "gate"
    first = toy_cli(out, gate=gate)
    _wait_for(out / "stages" / "first.json")
    for flags in ((), ("--resume",), ("--overwrite",)):
        second = toy_cli(out, *flags)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "is being written by pid " + str(first.pid) in lines[0], err
    gate.touch()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["command"].endswith(f"--out {out}")
    gate.unlink()
    assert _leftovers(tmp_path) == [], "the lock file is removed when the run ends"


def test_kill_minus_9_then_resume_gives_the_same_bytes_and_leaves_nothing(toy_cli, tmp_path,
                                                                         clean_run):
    out = tmp_path / "killed"
    victim = toy_cli(out, gate=tmp_path / "never")
    _wait_for(out / "stages" / "first.json")
    (out / f".results.csv.{victim.pid}.tmp").write_text("half a file")  # a crash's leftover
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (out / "results.csv").exists()
    resumed = toy_cli(out, "--resume")  # the kernel dropped the killed run's lock
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    # byte-identical across processes, torch archives included (no temp name inside)
    for name in ("results.csv", "stages/first.csv", "stages/second.csv", "arrays/second-grid.npy",
                 "arrays/second-t.pt", "verdicts.json"):
        assert (out / name).read_bytes() == (clean_run / name).read_bytes(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["cached"] for s in manifest["stages"]] == [True, False]
    assert _leftovers(tmp_path) == []


def test_overwrite_refuses_folders_without_the_marker(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "config.json").write_text(json.dumps({"experiment": "my-own-thing"}))
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    code = main(["run", "gap-vs-length", "--preset", "smoke", "--out", str(thesis),
                 "--overwrite", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and MARKER in err[0] and "Delete it yourself" in err[0]
    assert sorted(p.name for p in thesis.iterdir()) == ["config.json", "thesis.tex"]
    assert _leftovers(tmp_path) == []


def test_interrupted_overwrite_and_swap_are_cleaned_up(tmp_path):
    exp = ex.Experiment(
        name="toy-swap", title="t", claims=("P4",), description="d",
        presets={p: {"n": 2} for p in ("smoke", "quick", "full")},
        stages=(ex.Stage("s", lambda ctx: __import__("pandas").DataFrame({"v": [1.0]})),),
        verdicts=lambda r, p: [])
    out = tmp_path / "run"
    ex.run(exp, preset="smoke", out=out, progress=False)
    before = (out / "results.csv").read_bytes()
    # a crashed --overwrite left its half-written folder; a crashed swap set the run aside
    (tmp_path / ".run.new-dead0001" / "stages").mkdir(parents=True)
    os.rename(out, tmp_path / ".run.old-dead0002")
    (tmp_path / ".run.old-dead0002" / "stages" / ".s.csv.999999.tmp").write_text("partial")
    result = ex.run(exp, preset="smoke", out=out, progress=False, resume=True)
    assert (result.out / "results.csv").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_lock_is_reentrant_across_processes_only_after_release(tmp_path):
    out = tmp_path / "run"
    with _lock.run_folder_lock(out, "first holder"):
        assert "first holder" in _lock.lock_path(out).read_text()
        code = ("from pathlib import Path; from bayesattn.runner import _lock\n"
                f"with _lock.run_folder_lock(Path({str(out)!r})): pass")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode != 0 and "RunFolderLockedError" in done.stderr
        assert "first holder" in done.stderr
    assert not _lock.lock_path(out).exists()
    with _lock.run_folder_lock(out):
        pass


@pytest.mark.parametrize("overwrite", [False, True])
def test_full_disk_is_one_clear_line_and_leaves_no_partial_files(tmp_path, monkeypatch, capsys,
                                                                 overwrite):
    import errno

    import pandas as pd

    from bayesattn.runner import _io

    def stage(ctx):
        return pd.DataFrame({"v": [1.0]})

    exp = ex.Experiment(name="toy-disk", title="t", claims=("P4",), description="d",
                        presets={p: {"n": 2} for p in ("smoke", "quick", "full")},
                        stages=(ex.Stage("a", stage), ex.Stage("b", stage)),
                        verdicts=lambda r, p: [])
    out = tmp_path / "run"
    if overwrite:
        ex.run(exp, preset="smoke", out=out, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = _io.write_csv

    def full_disk(path, frame):
        if Path(path).name == "b.csv":
            with _io.atomic_path(path) as tmp:
                tmp.write_text("half")  # the device fills up mid-write
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real(path, frame)

    monkeypatch.setattr("bayesattn.runner._run.write_csv", full_disk)
    ex.register(exp)
    try:
        code = main(["run", "toy-disk", "--preset", "smoke", "--no-progress", "--out", str(out),
                     *(["--overwrite"] if overwrite else [])])
    finally:
        ex.unregister("toy-disk")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "no space left on the device of" in err[0]
    assert ("is untouched" if overwrite else "--resume") in err[0]
    assert _leftovers(tmp_path) == []
    if overwrite:
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    else:
        assert (out / "stages" / "a.json").is_file() and not (out / "stages" / "b.csv").exists()


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete"])
def test_resume_recomputes_stages_whose_files_were_damaged(toy_cli, tmp_path, damage,
                                                          clean_run):
    out = tmp_path / "run"
    shutil.copytree(clean_run, out)  # a finished run (the run folder does not name itself)
    target = out / "arrays" / "second-t.pt"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:40])
    elif damage == "edit":
        (out / "stages" / "first.csv").write_text("metric,value\nx,0.0\n")
    else:
        target.unlink()
    resumed = toy_cli(out, "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    cached = [s["cached"] for s in manifest["stages"]]
    assert cached == ([False, False] if damage == "edit" else [True, False])
    for name in ("results.csv", "stages/first.csv", "arrays/second-t.pt"):
        assert (out / name).read_bytes() == (clean_run / name).read_bytes(), name


@pytest.mark.parametrize("setting, expected", [
    ("steps=0", "'steps' of 'gap-vs-length' expects positive integers"),
    ("lengths=[0,2]", "'lengths' of 'gap-vs-length' expects positive integers"),
    ("num_sequences=0", "'num_sequences' of 'gap-vs-length' expects positive integers"),
    ("num_sequences=-3", "expects positive integers"),
    ("lengths=[]", "expects a non-empty list"),
])
def test_bad_counts_are_refused_before_anything_is_written(tmp_path, capsys, setting, expected):
    out = tmp_path / "run"
    code = main(["run", "gap-vs-length", "--preset", "smoke", "--no-progress", "--out", str(out),
                 "--set", setting])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert list(tmp_path.iterdir()) == [], "no folder, no lock file"


def test_zero_stays_allowed_where_the_preset_uses_it():
    params, _ = ex.resolve_params(ex.get("oversmoothing-boosting"), "smoke",
                                  {"depths": [0, 1, 2]})
    assert params["depths"] == [0, 1, 2]
    with pytest.raises(ex.InvalidParameterError, match="non-negative"):
        ex.resolve_params(ex.get("oversmoothing-boosting"), "smoke", {"depths": [-1, 2]})


TRAIN_SCRIPT = textwrap.dedent('''
    import os, sys, time
    import pandas as pd
    from bayesattn import experiments as ex, models
    from bayesattn.inference import AmortizedPosterior

    def fit(ctx):
        model = models.get("beta-bernoulli")
        net = AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 8}, seed=1)
        gate = os.environ.get("TOY_GATE")

        def wait(step, row, net):  # after step 10's checkpoint: hold until the test acts
            with open(os.environ["TOY_LOG"], "a") as log:
                log.write(f"{step}\\n")
            while step == 10 and gate and not os.path.exists(gate):
                time.sleep(0.05)

        result = ctx.train("net", net, model, steps=20, batch_size=8, seq_len=6, seed=3,
                           checkpoint_every=5, callback=wait)
        return ex.StageOutput(pd.DataFrame({"metric": ["loss"],
                                            "value": [result.history["loss"].iloc[-1]]}),
                              {"net": net})

    ex.register(ex.Experiment(
        name="toy-train", title="toy", claims=("P4",), description="toy",
        presets={p: {"n": 1} for p in ("smoke", "quick", "full")},
        stages=(ex.Stage("fit", fit),), verdicts=lambda results, params: []))
    from bayesattn.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def test_killed_training_resumes_from_its_checkpoint_with_the_same_bytes(tmp_path):
    script = tmp_path / "toy_train.py"
    script.write_text(TRAIN_SCRIPT)

    def start(out, *flags, gate=""):
        return subprocess.Popen(
            [sys.executable, str(script), "run", "toy-train", "--preset", "smoke",
             "--no-progress", "--threads", "1", "--out", str(out), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TOY_GATE": str(gate), "TOY_LOG": str(tmp_path / "steps.log")})

    clean = start(tmp_path / "clean")
    assert clean.wait(timeout=120) == 0, clean.communicate()[1]
    out = tmp_path / "killed"
    victim = start(out, gate=tmp_path / "never")
    _wait_for(out / "checkpoints" / "fit-net" / "checkpoint.pt")
    time.sleep(0.5)  # let step 10's checkpoint finish (it is written atomically anyway)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (out / "stages" / "fit.json").exists()
    (tmp_path / "steps.log").unlink()
    resumed = start(out, "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    steps = [int(v) for v in (tmp_path / "steps.log").read_text().split()]
    assert steps == list(range(11, 21)), "the resumed run continued after step 10's checkpoint"
    (tmp_path / "steps.log").unlink()
    for name in ("results.csv", "models/fit-net.pt"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert not (out / "checkpoints").exists(), "a finished run keeps no checkpoints"
    assert _leftovers(tmp_path) == []


def test_loop_checkpoint_restores_module_optimizer_scheduler_and_generator(tmp_path):
    import torch

    from bayesattn.runner._context import LoopCheckpoint

    def run(stop=None, folder=None):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        opt = torch.optim.AdamW(net.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, 4, 0.5)
        gen = torch.Generator().manual_seed(5)
        ckpt = LoopCheckpoint(folder, {"net": net, "opt": opt, "sched": sched, "gen": gen})
        losses = list(ckpt.extra.get("losses", []))
        for step in range(ckpt.start, 10):
            if step == stop:
                return None
            x = torch.randn(8, 3, generator=gen)
            loss = (net(x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
            if (step + 1) % 3 == 0:
                ckpt.save(step + 1, losses=losses)
        return losses, net.weight.detach().clone()

    full = run(folder=tmp_path / "a")
    assert run(stop=7, folder=tmp_path / "b") is None  # killed after step 6's checkpoint
    resumed = run(folder=tmp_path / "b")
    assert resumed[0] == full[0] and torch.equal(resumed[1], full[1])
