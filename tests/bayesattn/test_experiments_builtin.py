"""Every registered experiment: its smoke preset runs, writes every output file and, being
a plumbing check, assesses no claim."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn import report as rep
from bayesattn.experiments import NOT_ASSESSED, VERDICTS


@pytest.fixture(scope="module", params=ex.names())
def smoke_run(request, tmp_path_factory):
    """``(name, result)``: one smoke run per registered experiment, shared by the tests
    of this module (pytest groups the tests by experiment, so each runs once)."""
    name = request.param
    out = tmp_path_factory.mktemp("smoke") / name
    # one thread: the rerun below compares bytes, whatever else keeps the machine busy
    return name, ex.run(name, preset="smoke", seed=0, device="cpu", out=out, progress=False,
                        threads=1)


def test_smoke_preset_writes_every_output(smoke_run):
    name, result = smoke_run
    exp = ex.get(name)
    assert set(exp.presets) >= {"smoke", "quick", "full"}
    out = result.out
    for file in ("config.json", "results.csv", "verdicts.json", "report.md", "manifest.json"):
        assert (out / file).is_file(), file
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == name and config["seed"] == 0
    assert {"torch", "numpy"} <= set(config["versions"])
    results = pd.read_csv(out / "results.csv")
    assert {"stage", "metric", "value"} <= set(results.columns)
    assert len(results) > 0
    pngs = sorted((out / "figures").glob("*.png"))
    assert pngs and all(p.with_suffix(".svg").is_file() for p in pngs)
    assert list((out / "posteriors").glob("*.nc")), "no InferenceData written"
    claims = {v.claim for v in result.verdicts}
    assert claims == set(exp.claims)
    report = (out / "report.md").read_text()
    for claim in exp.claims:
        assert claim in report
    for png in pngs:
        assert f"figures/{png.name}" in report
    if exp.convergence is not None:
        table = pd.read_csv(out / "convergence.csv")
        assert len(table) > 0 and table["converged"].dtype == bool
        assert table["measure"].str.len().min() > 0 and table["floor_basis"].str.len().min() > 0
        assert "## Training convergence" in report


def test_smoke_run_assesses_no_claim(smoke_run):
    """A smoke run is a plumbing check: every claim reads "not assessed (smoke preset)" in
    the returned verdicts, verdicts.json, report.md (which says so at its top) and the CLI
    summary; the decision rule still ran (its outcome kept apart, for these tests)."""
    name, result = smoke_run
    exp = ex.get(name)
    assert {v.claim for v in result.verdicts} == set(exp.claims)  # some state several
    for v in result.verdicts:
        assert v.verdict == NOT_ASSESSED, (name, v.claim, v.verdict)
        assert v.smoke_rule_outcome in VERDICTS, (name, v.claim)
        # a rule that is code finds the numbers it decides on in every verdict it rules
        assert "cannot decide" not in v.measured, (name, v.claim, v.measured)
        rule = ex.current_rules(exp.rules).get(v.claim)
        if rule is not None and rule.decisions:
            assert rule.decision_for(v.numbers) is not None
            assert f"Rule v{rule.version}: " in v.measured
    saved = json.loads((result.out / "verdicts.json").read_text())
    assert [d["verdict"] for d in saved] == [NOT_ASSESSED] * len(result.verdicts)
    assert saved == [v.to_dict() for v in result.verdicts]  # (to_dict: NaN == NaN)
    assert [v.to_dict() for v in ex.load_run(result.out)[2]] == saved
    assert json.loads((result.out / "config.json").read_text())["plumbing_check"] is True
    report = (result.out / "report.md").read_text()
    head = report.split("## Verdicts")[0]
    assert "**Plumbing check, not evidence.**" in head
    rows = [line for line in report.split("## Verdicts")[1].split("\n## ")[0].splitlines()
            if line.startswith("| **")]
    assert len(rows) == len(result.verdicts)
    assert all(row.endswith(f"| **{NOT_ASSESSED}** |") for row in rows), rows
    for word in ("**supported**", "**not supported**", "**inconclusive**"):
        assert word not in report
    summary = rep.format_verdicts(result.verdicts)
    assert "plumbing check, not evidence" in summary
    for claim in exp.claims:
        assert any(line.split()[:1] == [claim] and NOT_ASSESSED in line
                   for line in summary.splitlines()), (claim, summary)
    for word in ("SUPPORTED", "INCONCLUSIVE"):
        assert word not in summary


def test_same_seed_gives_the_same_results_csv(smoke_run, tmp_path):
    """Re-running with the same seed on CPU reproduces results.csv byte for byte."""
    name, first = smoke_run
    ex.run(name, preset="smoke", seed=0, device="cpu", out=tmp_path / "second", progress=False,
           threads=1)
    assert ((tmp_path / "second" / "results.csv").read_bytes()
            == (first.out / "results.csv").read_bytes())


# experiments whose stages train no network (hand-set attention, fitted filters, exact
# references): they need no convergence table
TRAIN_NOTHING = {"contamination-attention", "denoising-1d", "oversmoothing-boosting"}


@pytest.mark.parametrize("name", ex.names())
def test_cost_and_convergence_are_declared(name):
    from bayesattn.runner import _cost

    exp = ex.get(name)
    works = [_cost.work_of(exp, exp.preset_params(p)) for p in ("smoke", "quick", "full")]
    assert works[0] < works[1] < works[2], works
    assert (exp.convergence is None) == (name in TRAIN_NOTHING)


@pytest.mark.parametrize("name", ex.names())
def test_measured_cpu_times_match_the_current_presets(name):
    """cpu_seconds.json was measured with today's presets (else rerun
    benchmarks/preset_times.py NAME), and full gets a finite estimate."""
    from bayesattn.runner import _cost

    exp = ex.get(name)
    points = _cost.measured_seconds()["experiments"].get(name)
    assert points is not None, f"{name} has no measured times: run benchmarks/preset_times.py"
    for preset in ("smoke", "quick"):
        assert points[preset]["work"] == pytest.approx(
            _cost.work_of(exp, exp.preset_params(preset)), rel=1e-9), (
            f"{name}: the {preset} preset changed since its time was measured; rerun "
            f"benchmarks/preset_times.py {name}")
    estimate = ex.estimate_cpu_seconds(name, "full")
    assert estimate.seconds > points["quick"]["seconds"]
