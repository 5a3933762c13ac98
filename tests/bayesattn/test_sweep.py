"""bayesattn sweep: a grid of runs as independent jobs, failures isolated, resume, aggregate.

The jobs are real ``bayesattn run`` child processes. They run a toy experiment defined in
a module written to a temporary folder and named through ``BAYESATTN_EXPERIMENT_MODULES``
(``sweep(modules=...)``), as a user's own experiment would be.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn.cli import main
from bayesattn.metrics import seed_interval
from bayesattn.sweep import Job, aggregate_rows, expand, parse_seeds, sweep

TOY = textwrap.dedent('''
    import os
    import time

    import numpy as np
    import pandas as pd
    from bayesattn import experiments as ex


    def draws(ctx):
        if ctx.params["fail_seed"] == ctx.seed:
            raise RuntimeError("this seed is set to fail")
        gate = os.environ.get("TOY_GATE")  # wait for this file (a test interrupts us here)
        end = time.monotonic() + 120
        while gate and not os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.05)
        rng = np.random.default_rng(ctx.seed_for("draws"))
        return pd.DataFrame({"metric": "x", "value": rng.normal(size=ctx.params["n"])})


    def verdicts(results, params):
        m = float(results["value"].mean())
        return [ex.Verdict("P3", "The mean is positive.", "positive", f"mean {m:.3f}",
                           "supported" if m > 0 else "not supported", {"n": 4.0, "mean": m}),
                ex.Verdict("P3", "The mean is finite.", "finite", "finite",
                           "supported", {"finite": 1.0})]


    def pooled_verdicts(results, params):
        from bayesattn.metrics import seed_interval

        means = results.groupby("seed")["value"].mean()
        est = seed_interval(means.to_numpy())
        verdict = ("supported" if est.ci_low > 0 else "not supported" if est.ci_high < 0
                   else "inconclusive")
        return [ex.Verdict("P3", "The mean is positive.", "positive",
                           f"{len(means)} seeds: {est.value:.3f} [{est.ci_low:.3f}, "
                           f"{est.ci_high:.3f}]", verdict,
                           {"mean": est.value, "ci_low": est.ci_low})]


    ex.register(ex.Experiment(
        name="toy-sweep", title="toy", claims=("P3",), description="Normal draws.",
        presets={p: {"n": 4, "fail_seed": -1} for p in ("smoke", "quick", "full")},
        stages=(ex.Stage("draws", draws),), verdicts=verdicts,
        pooled_verdicts=pooled_verdicts, rules_file=__file__,
        rules=(ex.Rule(claim="P3", version=1, kind="test", measures="the mean over seeds",
                       decision="Student-t interval over seeds above 0", key="mean"),)))
''')

_counter = itertools.count()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A module registering ``toy-sweep`` in the working folder; its name for ``modules``."""
    module = f"toy_sweep_module_{next(_counter)}"
    (tmp_path / f"{module}.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module
    if "toy-sweep" in ex.EXPERIMENTS:
        ex.unregister("toy-sweep")
    sys.modules.pop(module, None)


def test_parse_seeds_accepts_ranges_lists_and_one_seed():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("5") == [5]
    assert parse_seeds("1-2,9") == [1, 2, 9]
    for bad in ("4-0", "a", "-1", "1-x", ""):
        with pytest.raises(ex.InvalidParameterError, match="--seeds"):
            parse_seeds(bad)


def test_grid_crosses_every_value_and_checks_each_job_before_anything_runs(tmp_path):
    jobs = expand(["gap-vs-length"], presets=["smoke"], seeds=[0, 1],
                  grid={"steps": [5, 10], "lr": [1e-3, 3e-3]})
    assert len(jobs) == 2 * 2 * 2
    assert {dict(j.overrides)["steps"] for j in jobs} == {5, 10}
    assert len({j.folder for j in jobs}) == len(jobs), "every job has its own run folder"
    assert expand(["gap-vs-length"], presets=["smoke"], seeds=[0, 0]) == [
        Job("gap-vs-length", "smoke", 0)]
    with pytest.raises(ex.UnknownPresetError, match="no preset 'tiny'"):
        expand(["gap-vs-length"], presets=["tiny"])
    with pytest.raises(ex.UnknownExperimentError):
        expand(["no-such-experiment"])
    with pytest.raises(ex.InvalidParameterError, match="steps"):
        expand(["gap-vs-length"], presets=["smoke"], grid={"steps": [5, "many"]})
    with pytest.raises(ex.InvalidParameterError, match="both"):
        expand(["gap-vs-length"], overrides={"steps": 5}, grid={"steps": [5, 6]})
    out = tmp_path / "sweep"
    with pytest.raises(ex.InvalidParameterError):
        sweep(["gap-vs-length"], presets=["smoke"], grid={"steps": [5, -1]}, out=out)
    assert not out.exists(), "a refused sweep writes nothing"


def test_job_folders_name_the_overrides_and_keep_different_values_apart():
    a = Job("e", "quick", 3, (("train_len", [8, 64]),))
    b = Job("e", "quick", 3, (("train_len", [8, 6]),))
    assert a.folder.startswith("e/quick-train_len=_8,64_-") and a.folder.endswith("/seed3")
    assert a.folder != b.folder and len({a: 1, b: 2}) == 2  # list values hash
    assert Job("e", "quick", 3).folder == "e/quick/seed3"
    assert a.run_args() == ["run", "e", "--preset", "quick", "--seed", "3",
                            "--set", "train_len=[8,64]"]
    assert Job.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_failed_job_is_recorded_and_the_others_finish_as_bayesattn_run_writes_them(toy, tmp_path):
    result = sweep(["toy-sweep"], seeds=range(4), overrides={"fail_seed": 2}, jobs=2,
                   out=tmp_path / "sw", modules=[toy])
    status = {j["seed"]: j["status"] for j in result.jobs}
    assert status == {0: "done", 1: "done", 2: "failed", 3: "done"}
    failed = result.failed[0]
    assert failed["returncode"] != 0 and "resume" in failed["message"]
    assert "this seed is set to fail" in (result.out / failed["log"]).read_text()
    # a job's run folder is the one `bayesattn run` writes: same bytes as a run in-process
    direct = ex.run("toy-sweep", preset="quick", seed=1, overrides={"fail_seed": 2},
                    out=tmp_path / "direct", progress=False, threads=1)
    job = Job("toy-sweep", "quick", 1, (("fail_seed", 2),))
    for name in ("results.csv", "verdicts.json", "stages/draws.csv"):
        assert (result.out / "runs" / job.folder / name).read_bytes() == (
            direct.out / name).read_bytes(), name
    # per-seed verdicts and their aggregate
    per_seed = pd.read_csv(result.out / "verdicts.csv")
    assert len(per_seed) == 3 * 2 and set(per_seed["entry"]) == {"P3", "P3 (2)"}
    agg = pd.read_csv(result.out / "aggregate.csv").set_index("entry")
    first = per_seed[per_seed["entry"] == "P3"]
    assert agg.loc["P3", "seeds"] == 3
    counts = first["verdict"].value_counts()
    assert agg.loc["P3", "agreement"] == pytest.approx(counts.max() / 3)
    # the rule names "mean" as its key number (not the first number, n); the second P3
    # entry has no such number and falls back to its first one
    assert set(first["key"]) == {"mean"} and set(per_seed[per_seed["entry"] == "P3 (2)"][
        "key"]) == {"finite"}
    est = seed_interval(first["key_value"])
    assert agg.loc["P3", "key_ci_low"] == pytest.approx(est.ci_low)
    assert agg.loc["P3", "key_median"] == pytest.approx(np.median(first["key_value"]))
    assert agg.loc["P3 (2)", "majority"] == "supported" and agg.loc["P3 (2)", "agreement"] == 1
    assert (result.out / "figures" / "verdicts-by-seed.png").stat().st_size > 0
    report = result.report.read_text()
    assert "1 failed" in report and job.folder.replace("seed1", "seed2") in report
    # the claim decided from all finished seeds together, by the experiment's own rule
    (pooled,) = result.pooled
    means = [pd.read_csv(result.out / "runs" / Job("toy-sweep", "quick", s, (
        ("fail_seed", 2),)).folder / "results.csv")["value"].mean() for s in (0, 1, 3)]
    est = seed_interval(means)
    assert pooled["seeds"] == 3 and json.loads(pooled["numbers"])["ci_low"] == pytest.approx(
        est.ci_low)
    assert pooled["verdict"] == ("supported" if est.ci_low > 0 else "not supported"
                                 if est.ci_high < 0 else "inconclusive")
    # the toy's module is not in a git checkout: its rules cannot be checked, not provisional
    assert pooled["status"] == "current" and pooled["rule_version"] == 1
    assert "Verdicts from all seeds together" in report
    assert pd.read_csv(result.out / "pooled.csv").loc[0, "claim"] == "P3"


def test_resume_keeps_finished_runs_adds_seeds_and_refuses_other_grids(toy, tmp_path):
    out = tmp_path / "sw"
    sweep(["toy-sweep"], seeds=[0, 1], out=out, modules=[toy])
    first = (out / "runs/toy-sweep/quick/seed0/results.csv").stat().st_mtime_ns
    with pytest.raises(ex.OutputExistsError, match="--resume"):
        sweep(["toy-sweep"], seeds=[0, 1], out=out, modules=[toy])
    result = sweep(["toy-sweep"], seeds=[0, 1, 2], out=out, resume=True, modules=[toy])
    assert [j["status"] for j in result.jobs] == ["reused", "reused", "done"]
    assert (out / "runs/toy-sweep/quick/seed0/results.csv").stat().st_mtime_ns == first
    assert pd.read_csv(out / "aggregate.csv").loc[0, "seeds"] == 3
    with pytest.raises(ex.ResumeMismatchError, match="does not ask for"):
        sweep(["toy-sweep"], seeds=[0], out=out, resume=True, modules=[toy])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    with pytest.raises(ex.OutputExistsError, match="not a sweep folder"):
        sweep(["toy-sweep"], out=tmp_path / "other", modules=[toy])


def test_cli_sweep_exit_status_and_one_line_errors(toy, tmp_path, capsys):
    code = main(["sweep", "toy-sweep", "--seeds", "0-1", "--import", toy, "--jobs", "2",
                 "--out", str(tmp_path / "ok")])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("# Sweep report") and "2 jobs: 2 finished" in out
    code = main(["sweep", "toy-sweep", "--seeds", "0", "--set", "fail_seed=0", "--import", toy,
                 "--out", str(tmp_path / "bad")])
    assert code == 1 and "1 of 1 jobs did not finish" in capsys.readouterr().err
    for argv, needle in [
        (["--grid", "n=3"], "--grid expects KEY=[V1,V2,...]"),
        (["--seeds", "x"], "--seeds expects"),
        (["--preset", "huge"], "no preset 'huge'"),
        (["--import", "no_such_module_xyz"], "cannot import"),
    ]:
        code = main(["sweep", "toy-sweep", "--import", toy, "--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and needle in err[0], err
        assert not (tmp_path / "x").exists()


def test_aggregate_calls_a_tie_split_and_counts_agreement():
    rows = [{"experiment": "e", "preset": "quick", "variant": "default", "seed": s,
             "entry": "P1", "claim": "P1", "verdict": v, "key": "k", "key_value": float(s)}
            for s, v in enumerate(["supported", "inconclusive", "supported", "inconclusive"])]
    (agg,) = aggregate_rows(rows)
    assert agg["majority"] == "split" and agg["agreement"] == 0.5
    assert agg["supported"] == 2 and agg["inconclusive"] == 2 and agg["not supported"] == 0
    assert (agg["key_min"], agg["key_median"], agg["key_max"]) == (0.0, 1.5, 3.0)
    (agg,) = aggregate_rows(rows[:3])
    assert agg["majority"] == "supported" and agg["agreement"] == pytest.approx(2 / 3)


def test_ray_executor_runs_the_same_jobs_on_a_real_local_ray_runtime(toy, tmp_path):
    pytest.importorskip("ray")
    local = sweep(["toy-sweep"], seeds=[0, 1], overrides={"fail_seed": 1}, out=tmp_path / "l",
                  modules=[toy])
    remote = sweep(["toy-sweep"], seeds=[0, 1], overrides={"fail_seed": 1},
                   out=tmp_path / "r", executor="ray", modules=[toy])
    assert [j["status"] for j in remote.jobs] == [j["status"] for j in local.jobs] == [
        "done", "failed"]
    job = Job("toy-sweep", "quick", 0, (("fail_seed", 1),))
    assert (remote.out / "runs" / job.folder / "results.csv").read_bytes() == (
        local.out / "runs" / job.folder / "results.csv").read_bytes()
    assert (remote.out / "aggregate.csv").read_bytes() == (local.out / "aggregate.csv").read_bytes()


def test_ctrl_c_stops_the_sweep_at_once_and_resume_finishes_it(toy, tmp_path):
    out = tmp_path / "sw"
    argv = [sys.executable, "-m", "bayesattn", "sweep", "toy-sweep", "--seeds", "0-2",
            "--import", toy, "--out", str(out)]
    # a new session, interrupted as a whole: what Ctrl-C in a terminal does
    sweep_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True,
                                  env={**os.environ, "TOY_GATE": str(tmp_path / "never")})
    config = out / "runs/toy-sweep/quick/seed0/config.json"  # the first job has started
    end = time.monotonic() + 60
    while not config.exists() and sweep_proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)  # the job is now inside its waiting stage
    os.killpg(sweep_proc.pid, signal.SIGINT)
    _, err = sweep_proc.communicate(timeout=60)
    assert sweep_proc.returncode == 130, err
    assert "Continue it with" in err and "--resume" in err
    jobs = pd.read_csv(out / "jobs.csv")
    assert list(jobs["status"]) == ["pending"] * 3, "no job finished, none started after ^C"
    again = subprocess.run(argv + ["--resume"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert list(pd.read_csv(out / "jobs.csv")["status"]) == ["done"] * 3


def test_a_rule_that_is_code_decides_each_run_and_all_seeds_together(tmp_path):
    """The runner applies the rule's Decision to one run's interval; the sweep's pooled row
    applies it to every seed's number (Student-t over seeds), with the detectable effect."""
    from bayesattn.sweep import pooled_rows

    def draws(ctx):
        rng = np.random.default_rng(ctx.seed_for("draws"))
        return pd.DataFrame({"metric": "x", "value": rng.normal(0.3, 1.0, size=ctx.params["n"])})

    def verdicts(results, params):
        x = results["value"].to_numpy()
        half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
        # the experiment's own word is overridden by the rule's decision
        return [ex.Verdict("P3", "The mean is positive.", "positive", "mean", "inconclusive",
                           {"mean": x.mean(), "mean_ci_low": x.mean() - half,
                            "mean_ci_high": x.mean() + half})]

    rule = ex.Rule("P3", 2, "test", "the mean", "interval above 0", key="mean",
                   decisions=(ex.Decision(("mean",), "above"),))
    ex.register(ex.Experiment(
        name="toy-decided", title="toy", claims=("P3",), description="Normal draws.",
        presets={"smoke": {"n": 10}, "quick": {"n": 50}, "full": {"n": 500}},
        stages=(ex.Stage("draws", draws),), verdicts=verdicts, rules=(rule,),
        rules_file=__file__))
    try:
        jobs = [Job("toy-decided", "quick", s, ()) for s in range(4)]
        numbers = []
        for job in jobs:
            result = ex.run("toy-decided", preset="quick", seed=job.seed,
                            out=tmp_path / "runs" / job.folder, progress=False, threads=1)
            (v,) = result.verdicts
            lo = v.numbers["mean_ci_low"]
            assert v.verdict == ("supported" if lo > 0 else "inconclusive"
                                 if v.numbers["mean_ci_high"] > 0 else "not supported")
            assert "Rule v2: " in v.measured and "one seed" in v.measured
            numbers.append(v.numbers["mean"])
        (row,) = pooled_rows(tmp_path / "runs", jobs)
        est = seed_interval(numbers)
        pooled = json.loads(row["numbers"])
        assert pooled["mean_ci_low"] == pytest.approx(est.ci_low)
        assert row["verdict"] == ("supported" if est.ci_low > 0 else "not supported"
                                  if est.ci_high < 0 else "inconclusive")
        assert row["seeds"] == 4 and row["entry"] == "P3" and row["rule_version"] == 2
        assert pooled["mean_mde"] > 0 and "mean over 4 seeds" in row["measured"]
    finally:
        ex.unregister("toy-decided")
