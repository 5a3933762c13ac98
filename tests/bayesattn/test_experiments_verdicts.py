"""The shared helpers behind every built-in experiment's verdicts and tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesattn.runner._verdicts import (
    ci_numbers,
    ci_text,
    combine_replicates,
    direction,
    pick,
    stage_frame,
)


def _rows(values, ses, **keys):
    return pd.DataFrame([{**keys, "replicate": i, "value": v, "ci_low": v - 0.1,
                          "ci_high": v + 0.1, "se": s, "n": 10}
                         for i, (v, s) in enumerate(zip(values, ses, strict=True))])


def test_combine_replicates_keeps_a_single_replicate_as_it_is():
    out = combine_replicates(_rows([0.3], [0.05], N=64, metric="gap"), ["N", "metric"])
    row = out.iloc[0]
    assert len(out) == 1 and row["replicates"] == 1
    assert row["value"] == 0.3 and row["ci_low"] == pytest.approx(0.2) and row["se"] == 0.05


def test_combine_replicates_uses_the_larger_standard_error():
    # between-replicate spread dominates: sd([1, 3]) / sqrt(2) = 1
    row = combine_replicates(_rows([1.0, 3.0], [0.01, 0.01], N=64), ["N"]).iloc[0]
    assert row["value"] == pytest.approx(2.0) and row["se"] == pytest.approx(1.0)
    assert row["ci_low"] == pytest.approx(2.0 - 1.96) and row["ci_high"] == pytest.approx(3.96)
    assert row["replicates"] == 2 and row["n"] == 20
    # within-replicate error dominates: sqrt(mean(se^2) / R) = sqrt(4 / 2)
    row = combine_replicates(_rows([1.0, 1.0], [2.0, 2.0], N=64), ["N"]).iloc[0]
    assert row["se"] == pytest.approx(np.sqrt(2.0))


def test_combine_replicates_groups_in_order_of_appearance():
    frame = pd.concat([_rows([5.0], [0.5], g="b"), _rows([1.0, 3.0], [0.0, 0.0], g="a")])
    out = combine_replicates(frame, ("g",))
    assert list(out["g"]) == ["b", "a"] and list(out["replicates"]) == [1, 2]


def test_stage_frame_drops_other_stages_columns_but_keeps_estimates():
    results = pd.DataFrame({"stage": ["a", "b"], "only_b": [np.nan, 1.0],
                            "value": [np.nan, 2.0], "ci_low": [np.nan, 1.0],
                            "ci_high": [np.nan, 3.0], "se": [np.nan, 0.5], "n": [np.nan, 4]})
    a = stage_frame(results, "a")
    assert "only_b" not in a and {"value", "ci_low", "ci_high", "se", "n"} <= set(a)
    assert "only_b" in stage_frame(results, "b")


def test_pick_text_numbers_and_direction():
    frame = pd.DataFrame({"name": ["x", "y"], "value": [-1.0, 0.5], "ci_low": [-1.5, -0.1],
                          "ci_high": [-0.5, 1.1]})
    x = pick(frame, name="x")
    assert x["value"] == -1.0 and pick(frame, name="z") is None
    assert pick(frame, missing_column=1) is None
    assert ci_text(x) == "-1.00 [-1.50, -0.50]" and ci_text(None) == "n/a"
    assert ci_numbers(x, "slope") == {"slope": -1.0, "ci_low": -1.5, "ci_high": -0.5}
    assert ci_numbers(None) == {}
    assert direction(x) == "supported"
    assert direction(x, expected_negative=False) == "not supported"
    assert direction(pick(frame, name="y")) == "inconclusive"
    assert direction(None) == "inconclusive"
