"""Every registered experiment: its smoke preset runs and writes every output file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn.experiments import VERDICTS


@pytest.mark.parametrize("name", ex.names())
def test_smoke_preset_writes_every_output(name, tmp_path):
    exp = ex.get(name)
    assert set(exp.presets) >= {"smoke", "quick", "full"}
    out = tmp_path / name
    result = ex.run(name, preset="smoke", seed=0, device="cpu", out=out, progress=False)
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
    assert all(v.verdict in VERDICTS for v in result.verdicts)
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


@pytest.mark.parametrize("name", ex.names())
def test_same_seed_gives_the_same_results_csv(name, tmp_path):
    """Re-running with the same seed on CPU reproduces results.csv byte for byte."""
    files = []
    for run in ("first", "second"):
        ex.run(name, preset="smoke", seed=0, device="cpu", out=tmp_path / run, progress=False)
        files.append((tmp_path / run / "results.csv").read_bytes())
    assert files[0] == files[1]


# experiments whose stages train no network (hand-set attention, fitted filters, exact
# references): they need no convergence table
TRAIN_NOTHING = {"contamination-attention", "denoising-1d", "oversmoothing-boosting"}


@pytest.mark.parametrize("name", ex.names())
def test_cost_and_convergence_are_declared(name):
    from bayesattn.experiments import _cost

    exp = ex.get(name)
    works = [_cost.work_of(exp, exp.preset_params(p)) for p in ("smoke", "quick", "full")]
    assert works[0] < works[1] < works[2], works
    assert (exp.convergence is None) == (name in TRAIN_NOTHING)


@pytest.mark.parametrize("name", ex.names())
def test_measured_cpu_times_match_the_current_presets(name):
    """cpu_seconds.json was measured with today's presets (else rerun
    benchmarks/preset_times.py NAME), and full gets a finite estimate."""
    from bayesattn.experiments import _cost

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
