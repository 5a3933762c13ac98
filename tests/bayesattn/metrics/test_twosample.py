"""Two-sample statistics: calibrated under the null, powerful under shifts, exact where exact."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.optimize import linear_sum_assignment

from bayesattn.metrics import TwoSampleResult, c2st, energy_distance, mmd2, wasserstein2


# ------------------------------------------------------------------------------ C2ST
def test_c2st_same_distribution_is_chance():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    est = c2st(x, y, seed=1)
    n = est.n
    assert n == 400
    # held-out accuracy of any fixed classifier on n points: sd <= sqrt(0.25 / n)
    assert abs(est.value - 0.5) < 4 * np.sqrt(0.25 / n) + 0.02, est
    assert est.ci_low <= est.value <= est.ci_high
    assert c2st(x, y, seed=1).value == est.value  # deterministic
    logit = c2st(x, y, classifier="logistic")
    assert abs(logit.value - 0.5) < 4 * np.sqrt(0.25 / n) + 0.02, logit


def test_c2st_disjoint_distributions_are_separated():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 2))
    y = rng.normal(size=(120, 2)) + np.array([10.0, 0.0])
    for clf in ("mlp", "logistic"):
        est = c2st(torch.as_tensor(x), y, classifier=clf)
        assert est.value > 0.97, (clf, est)
        assert est.n == 240  # balanced to min(n, m) = 120 per class


def test_c2st_mlp_sees_a_variance_difference_logistic_does_not_need_to():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 1)), 3.0 * rng.normal(size=(300, 1))
    # Bayes accuracy between N(0,1) and N(0,9) is about 0.70
    assert c2st(x, y).value > 0.6


def test_c2st_validation():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="classifier"):
        c2st(x, x, classifier="svm")
    with pytest.raises(ValueError, match="folds"):
        c2st(x, x, folds=1)
    with pytest.raises(ValueError, match="at least folds=5 draws each, got 3"):
        c2st(x[:3], x)


# ------------------------------------------------------------------------------- MMD
def test_mmd_permutation_test_holds_its_level_and_is_unbiased():
    rng = np.random.default_rng(3)
    reps, alpha = 100, 0.1
    pvals, statistics = [], []
    for r in range(reps):
        x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
        res = mmd2(x, y, num_permutations=200, seed=r)
        pvals.append(res.p_value)
        statistics.append(res.statistic.value)
    rate = np.mean(np.array(pvals) <= alpha)
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps), rate
    statistics = np.array(statistics)
    se = statistics.std(ddof=1) / np.sqrt(reps)
    assert abs(statistics.mean()) < 4 * se, (statistics.mean(), se)


def test_mmd_rejects_a_shifted_distribution():
    rng = np.random.default_rng(4)
    for r in range(5):
        x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) + 1.5
        res = mmd2(x, y, num_permutations=200, seed=r)
        assert isinstance(res, TwoSampleResult)
        assert res.p_value == pytest.approx(1 / 201)  # no permutation reaches it
        assert res.statistic.value > 0 and res.statistic.se > 0 and res.null.shape == (200,)
        assert res.bandwidth > 0


def test_mmd_matches_a_direct_double_loop():
    rng = np.random.default_rng(5)
    x, y, h = rng.normal(size=(7, 2)), rng.normal(size=(5, 2)), 0.8

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * h * h))

    kxx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    kyy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    kxy = sum(k(a, b) for a in x for b in y) / 35
    res = mmd2(x, y, bandwidth=h, num_permutations=0)
    assert res.statistic.value == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-12)
    assert np.isnan(res.p_value) and res.null.shape == (0,)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd2(x, y, bandwidth=-1.0)


# ---------------------------------------------------------------------------- energy
def test_energy_v_statistic_matches_scipy_in_1d():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=50), rng.normal(1.0, 2.0, size=70)
    # scipy's energy_distance is sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) on the empirical
    # measures (V-statistic)
    want = stats.energy_distance(x, y) ** 2
    assert energy_distance(x, y, unbiased=False).value == pytest.approx(want, rel=1e-10)


def test_energy_u_statistic_matches_brute_force():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(4, 2))

    def dist(a, b):
        return float(np.linalg.norm(a - b))

    exy = np.mean([dist(a, b) for a in x for b in y])
    exx = np.mean([dist(x[i], x[j]) for i in range(6) for j in range(6) if i != j])
    eyy = np.mean([dist(y[i], y[j]) for i in range(4) for j in range(4) if i != j])
    assert energy_distance(x, y).value == pytest.approx(2 * exy - exx - eyy, rel=1e-12)


def test_energy_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    null = energy_distance(x, y)
    assert abs(null.value) < 4 * null.se, null
    assert null.ci_low <= null.value <= null.ci_high
    values = [energy_distance(x, y + s).value for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert np.all(np.diff(values) > 0), values
    assert energy_distance(x, x, unbiased=False).value == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------- Wasserstein
def test_w2_1d_matches_assignment_exactly():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=60), rng.exponential(size=60)
    cost = (x[:, None] - y[None, :]) ** 2
    rows, cols = linear_sum_assignment(cost)
    want = np.sqrt(cost[rows, cols].mean())
    assert wasserstein2(x, y).value == pytest.approx(want, rel=1e-12)


def test_w2_1d_unequal_sizes_exact_via_replication():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=6), rng.normal(2.0, 0.5, size=4)
    # repeating each atom keeps the empirical measure: sizes 6*4 == 4*6
    want = wasserstein2(np.repeat(x, 4), np.repeat(y, 6)).value
    assert wasserstein2(x, y).value == pytest.approx(want, rel=1e-12)


def test_w2_1d_gaussians_match_the_analytic_value():
    rng = np.random.default_rng(11)
    (m1, s1), (m2, s2), n, reps = (0.0, 1.0), (1.0, 2.0), 2000, 20
    w2sq = np.array([
        wasserstein2(rng.normal(m1, s1, n), rng.normal(m2, s2, n)).value ** 2
        for _ in range(reps)
    ])
    analytic = (m1 - m2) ** 2 + (s1 - s2) ** 2
    se = w2sq.std(ddof=1) / np.sqrt(reps)
    # plus the positive finite-sample bias, O(log log n / n) per sample (Bobkov-Ledoux),
    # allowed generously as (s1^2 + s2^2) * 5 / n
    assert abs(w2sq.mean() - analytic) < 4 * se + (s1**2 + s2**2) * 5 / n, (w2sq.mean(), se)


def test_w2_exact_assignment_on_permuted_copy_is_zero_and_sliced_is_smaller():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(40, 3))
    assert wasserstein2(x, x[rng.permutation(40)], method="exact").value == pytest.approx(0.0)
    for seed in range(5):
        a, b = rng.normal(size=(30, 3)), rng.standard_t(3, size=(30, 3)) + 0.3
        exact = wasserstein2(a, b, method="exact")
        sliced = wasserstein2(a, b, method="sliced", seed=seed)
        assert sliced.value <= exact.value + 1e-12
        assert sliced.value > 0 and sliced.se > 0
        assert wasserstein2(a, b).value == exact.value  # auto: exact for n == m <= 2000


def test_w2_exact_needs_equal_sizes():
    rng = np.random.default_rng(13)
    with pytest.raises(ValueError, match="n=5, m=4"):
        wasserstein2(rng.normal(size=(5, 2)), rng.normal(size=(4, 2)), method="exact")
    assert wasserstein2(rng.normal(size=(5, 2)), rng.normal(size=(4, 2))).value > 0  # sliced


# --------------------------------------------------------------------------- shared
samples = st.integers(0, 10_000).map(lambda s: np.random.default_rng(s))


@settings(max_examples=25, deadline=None)
@given(rng=samples, n=st.integers(3, 12), m=st.integers(3, 12), d=st.integers(1, 3))
def test_statistics_invariant_to_sample_order(rng, n, m, d):
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) + 0.5
    px, py = x[rng.permutation(n)], y[rng.permutation(m)]
    a, b = mmd2(x, y, num_permutations=0), mmd2(px, py, num_permutations=0)
    assert b.statistic.value == pytest.approx(a.statistic.value, rel=1e-9, abs=1e-12)
    assert energy_distance(px, py).value == pytest.approx(energy_distance(x, y).value,
                                                          rel=1e-9, abs=1e-12)
    if d == 1 or n == m:
        assert wasserstein2(px, py, method="exact").value == pytest.approx(
            wasserstein2(x, y, method="exact").value, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("fn", [
    c2st,
    lambda x, y: mmd2(x, y, num_permutations=0),
    energy_distance,
    wasserstein2,
])
def test_bad_input_names_expected_and_got(fn):
    good = np.zeros((10, 2))
    bad_nan = good.copy()
    bad_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="expected finite values, got 1 NaN"):
        fn(bad_nan, good)
    with pytest.raises(ValueError, match=r"expected draws of shape \(n, d\).*got shape"):
        fn(np.zeros((10, 2, 2)), good)
    with pytest.raises(ValueError, match=r"same dimension d.*\(10, 2\).*\(10, 3\)"):
        fn(good, np.zeros((10, 3)))
    with pytest.raises(TypeError, match="array of numbers"):
        fn(good, "not an array")
