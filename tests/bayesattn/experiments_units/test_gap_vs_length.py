"""Unit tests of the gap-vs-length experiment's convergence table, work and P4 rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesattn.experiments.gap_vs_length import claims, presets

PARAMS = {"train_len": [8, 64]}


def _results(given_kl: float, blind_drop: float, blind_se: float = 1e-3) -> pd.DataFrame:
    rows = []
    for L in (2, 8, 16, 32, 64, 256):
        for cand, kl in (("net (given L)", given_kl), ("net (no L)", 0.05)):
            rows.append({"stage": "evaluate", "candidate": cand, "L": L,
                         "metric": "kl_forward", "value": kl if 8 <= L <= 64 else 10 * kl,
                         "ci_low": kl / 2, "ci_high": kl * 2, "se": kl / 10, "n": 256})
    rows += [{"stage": "train", "candidate": "net (no L)", "metric": "plateau_drop",
              "value": blind_drop, "se": blind_se, "n": 150},
             {"stage": "train", "candidate": "net (no L)", "metric": "plateau_relative_drop",
              "value": blind_drop / 0.05, "se": np.nan, "n": 150}]
    return pd.DataFrame(rows)


def test_convergence_judges_given_l_against_floor_and_blind_net_by_plateau():
    ok = claims.convergence(_results(0.001, blind_drop=0.0005), PARAMS).set_index("network")
    assert ok.loc["net (given L)", "value"] == pytest.approx(0.001)  # only L in [8, 64]
    assert ok.loc["net (given L)", "floor"] == 0 and ok.loc["net (given L)", "converged"]
    assert np.isnan(ok.loc["net (no L)", "floor"]) and ok.loc["net (no L)", "converged"]
    bad = claims.convergence(_results(0.02, blind_drop=0.01), PARAMS).set_index("network")
    assert bad.loc["net (given L)", "excess"] > presets.GIVEN_L_TOLERANCE
    assert not bad.loc["net (given L)", "converged"]
    assert not bad.loc["net (no L)", "converged"]  # still falling by 20%, 10 SE


def test_work_grows_with_size_and_orders_the_presets():
    base = presets.PRESETS["quick"]
    w = presets.work(dict(base))
    for key, bigger in (("steps", 3000), ("batch_size", 128), ("dim", 64),
                        ("num_sequences", 512), ("lengths", base["lengths"] + [2048]),
                        ("train_len", [8, 128])):
        assert presets.work({**base, key: bigger}) > w, key
    works = [presets.work(dict(presets.PRESETS[p])) for p in ("smoke", "quick", "full")]
    assert works[0] < works[1] < works[2]


def _p4(kl_inside: float, slope: tuple[float, float, float]):
    ev = [{"stage": "evaluate", "candidate": "net (given L)", "L": L, "metric": m,
           "value": v, "ci_low": v, "ci_high": v}
          for L in (8, 16, 32, 64) for m, v in (("kl_forward", kl_inside),
                                                ("entropy_q", 0.5), ("entropy_exact", 0.5))]
    sl = [{"stage": "slopes", "candidate": "net (given L)", "metric": "slope_kl_forward",
           "range": r, "value": slope[0], "ci_low": slope[1], "ci_high": slope[2]}
          for r in ("inside", "beyond")]
    results = pd.DataFrame(ev + sl)
    params = {"train_len": [8, 64]}
    return next(v for v in claims.verdicts(results, params) if v.claim == "P4")


def test_p4_is_inconclusive_when_the_net_is_at_its_floor_inside_the_training_range():
    assert _p4(0.05, (-0.5, -0.7, -0.3)).verdict == "supported"
    assert _p4(0.05, (0.5, 0.3, 0.7)).verdict == "not supported"
    at_floor = _p4(presets.GIVEN_L_TOLERANCE / 2, (-0.5, -0.7, -0.3))
    assert at_floor.verdict == "inconclusive" and "floor" in at_floor.measured
