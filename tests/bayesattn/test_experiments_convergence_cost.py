"""Convergence tables (convergence.csv, report section) and CPU-time estimates."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn.cli import main
from bayesattn.runner import _convergence, _cost

NAME = "toy-convergence"


def _toy(convergence=True, work=True):
    def stage(ctx):
        return pd.DataFrame({"network": ["a", "b"], "metric": "kl", "value": [0.2, 0.004]})

    def conv(results, params):
        return pd.DataFrame([
            ex.convergence_row(r.network, measure="mean KL(exact || q), nats", value=r.value,
                               se=0.001, floor=0.0, floor_basis="exact posterior reachable",
                               tolerance=0.01)
            for r in results.itertuples()])

    return ex.Experiment(
        name=NAME, title="toy", claims=("P4",), description="toy",
        presets={"smoke": {"n": 1}, "quick": {"n": 10}, "full": {"n": 1000}},
        stages=(ex.Stage("train", stage),), verdicts=lambda r, p: [],
        convergence=conv if convergence else None,
        work=(lambda p: 5.0 + p["n"]) if work else None)


@pytest.fixture
def toy():
    ex.register(_toy())
    yield
    ex.unregister(NAME)


def test_convergence_row_judges_excess_against_tolerance():
    row = ex.convergence_row("net", measure="KL", value=0.05, se=0.01, floor=0.03,
                             floor_basis="family", tolerance=0.01)
    assert row["excess"] == pytest.approx(0.02) and row["converged"] is False
    assert set(row) == set(_convergence.CONVERGENCE_COLUMNS)
    ok = ex.convergence_row("net", measure="KL", value=0.035, floor=0.03, floor_basis="f",
                            tolerance=0.01)
    assert ok["converged"] is True and math.isnan(ok["se"])
    with pytest.raises(ValueError, match="converged="):
        ex.convergence_row("net", measure="KL", value=0.1, floor=math.nan, floor_basis="?",
                           tolerance=0.01)
    judged = ex.convergence_row("net", measure="KL", value=0.1, floor=math.nan,
                                floor_basis="plateau", tolerance=0.01, converged=True)
    assert judged["converged"] is True and math.isnan(judged["excess"])
    with pytest.raises(ValueError, match="tolerance"):
        ex.convergence_row("net", measure="KL", value=0.1, floor_basis="f", tolerance=-1)


def test_loss_plateau_separates_flat_from_falling():
    rng = np.random.default_rng(0)
    flat = pd.DataFrame({"loss": 1.0 + 0.1 * rng.normal(size=1000)})
    falling = pd.DataFrame({"loss": np.linspace(2.0, 1.0, 1000) + 0.01 * rng.normal(size=1000)})
    p_flat, p_fall = _convergence.loss_plateau(flat), _convergence.loss_plateau(falling)
    assert _convergence.is_plateau(p_flat)
    assert not _convergence.is_plateau(p_fall)
    # the last 10% against the 10% before: a drop of 0.1 over a linear fall of 1.0
    assert p_fall["drop"] == pytest.approx(0.1, abs=0.005)
    with pytest.raises(ValueError, match="steps of history"):
        _convergence.loss_plateau(flat.head(3))


def test_run_writes_convergence_csv_and_report_section(toy, tmp_path):
    result = ex.run(NAME, preset="smoke", out=tmp_path / "r", progress=False)
    frame = pd.read_csv(tmp_path / "r" / "convergence.csv")
    assert list(frame.columns) == list(_convergence.CONVERGENCE_COLUMNS)
    assert frame["converged"].tolist() == [False, True]
    pd.testing.assert_frame_equal(result.convergence, frame)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Training convergence" in report
    assert "1 of 2 trained networks converged" in report and "not converged: a" in report
    assert r"| a | mean KL(exact \|\| q), nats | 0.2 ± 0.001 | 0 |" in report


def test_no_convergence_means_no_file_and_bad_tables_are_named(tmp_path):
    plain = _toy(convergence=False)
    result = ex.run(plain, preset="smoke", out=tmp_path / "plain", progress=False)
    assert result.convergence is None and not (tmp_path / "plain" / "convergence.csv").exists()
    assert "Training convergence" not in (tmp_path / "plain" / "report.md").read_text()
    bad = ex.Experiment(**{**{f: getattr(plain, f) for f in (
        "name", "title", "claims", "description", "presets", "stages", "verdicts")},
        "convergence": lambda r, p: pd.DataFrame({"network": ["a"]})})
    with pytest.raises(ValueError, match="lacks columns"):
        ex.run(bad, preset="smoke", out=tmp_path / "bad", progress=False)
    with pytest.raises(TypeError, match="convergence must be callable"):
        ex.Experiment(**{**{f: getattr(plain, f) for f in (
            "name", "title", "claims", "description", "presets", "stages", "verdicts")},
            "convergence": 3})


def test_line_through_measured_points():
    pts = {"smoke": {"work": 10.0, "seconds": 12.0}, "quick": {"work": 110.0, "seconds": 62.0}}
    assert _cost.line_through(pts) == pytest.approx((7.0, 0.5))
    # a negative overhead falls back to the line through the origin and quick
    steep = {"smoke": {"work": 10.0, "seconds": 1.0}, "quick": {"work": 20.0, "seconds": 40.0}}
    assert _cost.line_through(steep) == pytest.approx((0.0, 2.0))
    # smoke slower than quick (noise): also through the origin
    odd = {"smoke": {"work": 1.0, "seconds": 9.0}, "quick": {"work": 2.0, "seconds": 8.0}}
    assert _cost.line_through(odd) == pytest.approx((0.0, 4.0))


@pytest.mark.parametrize("seconds, text", [(5.2, "5 s"), (65, "1 min 5 s"), (120, "2 min"),
                                           (7260, "2 h 1 min"), (3 * 86400, "3.0 days"),
                                           (math.nan, "unknown")])
def test_format_duration(seconds, text):
    assert _cost.format_duration(seconds) == text


@pytest.fixture
def measured(monkeypatch):
    data = {"reference": {"machine": "test cpu", "threads": 1},
            "experiments": {NAME: {"smoke": {"work": 6.0, "seconds": 3.0},
                                   "quick": {"work": 15.0, "seconds": 12.0}}}}
    monkeypatch.setattr(_cost, "_measurements", lambda: data)
    return data


def test_estimate_cpu_seconds_extrapolates_the_measured_line(toy, measured):
    # line through (6, 3) and (15, 12): seconds = -3 + work -> negative overhead, so the
    # estimate goes through the origin and quick: 12/15 s per unit of work
    est = ex.estimate_cpu_seconds(NAME, "full")
    assert est.seconds == pytest.approx(1005 * 12 / 15)
    assert "test cpu" in est.basis and "quick 12 s" in est.basis
    assert str(est).startswith("~13 min 24 s (")
    over = ex.estimate_cpu_seconds(NAME, "quick", {"n": 100})
    assert over.seconds == pytest.approx(105 * 12 / 15)
    with pytest.raises(ex.InvalidParameterError):
        ex.estimate_cpu_seconds(NAME, "full", {"nope": 1})


def test_estimate_is_unknown_without_work_or_measurements(tmp_path, measured):
    assert math.isnan(ex.estimate_cpu_seconds(_toy(work=False)).seconds)
    measured["experiments"].clear()
    est = ex.estimate_cpu_seconds(_toy())
    assert math.isnan(est.seconds) and str(est).startswith("unknown (no measured")
    broken = _toy()
    object.__setattr__(broken, "work", lambda p: -1.0)
    with pytest.raises(ValueError, match="positive finite"):
        _cost.work_of(broken, {"n": 1})


def test_cli_prints_the_estimate_and_the_convergence_summary(toy, measured, tmp_path, capsys):
    assert main(["run", NAME, "--preset", "smoke", "--no-progress", "--out",
                 str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert f"{NAME} preset smoke: estimated CPU time ~5 s (test cpu" in captured.err
    assert "1 of 2 trained networks converged" in captured.out
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "full CPU (est.)" in listing
    assert main(["list", NAME]) == 0
    assert "estimated CPU time: ~13 min 24 s" in capsys.readouterr().out



def test_announce_comes_after_validation_and_config_records_the_estimate(toy, measured,
                                                                          tmp_path):
    lines = []
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ex.OutputNotWritableError):
        ex.run(NAME, preset="smoke", out=blocker / "r", progress=False, announce=lines.append)
    assert lines == []  # bad input: one error, no estimate line before it
    ex.run(NAME, preset="smoke", out=tmp_path / "r", progress=False, announce=lines.append)
    estimate = ex.estimate_cpu_seconds(NAME, "smoke")
    assert lines == [f"{NAME} preset smoke: estimated CPU time {estimate}"]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["estimated_cpu_seconds"] == pytest.approx(6 * 12 / 15, abs=0.05)


def test_plateau_rows_and_judgement_round_trip_through_a_stage_table():
    falling = pd.DataFrame({"kl": np.linspace(1.0, 0.1, 100)})
    flat = pd.DataFrame({"kl": np.full(100, 0.1)})
    table = pd.DataFrame(_convergence.plateau_rows(falling, "kl", candidate="a")
                         + _convergence.plateau_rows(flat, "kl", candidate="b"))
    assert set(table["metric"]) == {"plateau_drop", "plateau_relative_drop"}
    ok_a, how_a = _convergence.plateau_judgement(table, "training KL", candidate="a")
    ok_b, _ = _convergence.plateau_judgement(table, candidate="b")
    assert not ok_a and ok_b and how_a.startswith("training KL fell 0.091 (SE ")
    assert _convergence.plateau_judgement(table, candidate="c") == (
        False, "no training history to test")
    assert _convergence.plateau_rows(falling.head(3), "kl") == []
    basis = _convergence.unknown_floor_basis("blind to L", how_a, "training KL")
    assert basis.startswith("unknown: blind to L; converged = plateau of the training KL (")
    assert "3 SE" in basis
