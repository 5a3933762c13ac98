"""Label switching: Hungarian alignment undoes relabelling; sorting is relabelling-invariant."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesattn.metrics import align_labels, hungarian_permutation, sorted_functional


def test_hungarian_recovers_a_random_permutation():
    rng = np.random.default_rng(0)
    for k in (2, 5, 9):
        means = rng.normal(size=(k, 3)) * 5.0
        perm = rng.permutation(k)
        estimate = means[perm] + 0.01 * rng.normal(size=(k, 3))
        found = hungarian_permutation(estimate, means)
        assert sorted(found) == list(range(k))
        # estimate[found] is aligned with the reference
        np.testing.assert_allclose(estimate[found], means, atol=0.1)
        np.testing.assert_array_equal(perm[found], np.arange(k))


def test_hungarian_minimises_total_cost_not_greedy():
    # greedy nearest neighbour gives reference 0 the estimate 0 (cost 0.25), forcing
    # reference 1 onto estimate 1 (cost 4): total 4.25; the swap costs 1 + 0.25 = 1.25
    reference = np.array([[0.0], [1.0]])
    estimate = np.array([[0.5], [-1.0]])
    perm = hungarian_permutation(estimate, reference)
    cost = np.sum((estimate[perm] - reference) ** 2)
    alt = np.sum((estimate[perm[::-1]] - reference) ** 2)
    assert cost <= alt
    np.testing.assert_array_equal(perm, [1, 0])


def test_align_labels_undoes_per_draw_permutations_exactly():
    rng = np.random.default_rng(1)
    s, k, d = 50, 4, 2
    reference = rng.normal(size=(k, d)) * 3.0
    clean = reference + 0.05 * rng.normal(size=(s, k, d))
    perms = np.array([rng.permutation(k) for _ in range(s)])
    shuffled = np.take_along_axis(clean, perms[:, :, None], axis=1)
    aligned, found = align_labels(shuffled, reference, label_axis=1)
    np.testing.assert_array_equal(aligned, clean)
    assert found.shape == (s, k)
    np.testing.assert_array_equal(np.take_along_axis(shuffled, found[:, :, None], axis=1),
                                  aligned)


def test_align_labels_probability_vectors_and_batch_axes():
    rng = np.random.default_rng(2)
    reference = np.array([0.7, 0.2, 0.1])
    perms = np.array([rng.permutation(3) for _ in range(10)])
    draws = reference[perms]  # (S=10, K=3)
    aligned, _ = align_labels(draws, reference, label_axis=-1)
    np.testing.assert_array_equal(aligned, np.tile(reference, (10, 1)))
    # draws for B datasets: (S, B, K, d) with reference (B, K, d)
    ref = rng.normal(size=(3, 4, 2)) * 4.0
    perms = np.array([[rng.permutation(4) for _ in range(3)] for _ in range(6)])  # (S, B, K)
    shuffled = np.take_along_axis(np.broadcast_to(ref, (6, 3, 4, 2)), perms[..., None], axis=2)
    aligned, found = align_labels(shuffled, ref, label_axis=2)
    np.testing.assert_array_equal(aligned, np.broadcast_to(ref, (6, 3, 4, 2)))
    assert found.shape == (6, 3, 4)


def test_align_labels_validation():
    with pytest.raises(ValueError, match=r"reference: expected shape \(4, 2\).*got \(3, 2\)"):
        align_labels(np.zeros((5, 4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="label_axis"):
        align_labels(np.zeros((5, 4, 2)), np.zeros((4, 2)), label_axis=0)
    with pytest.raises(ValueError, match=r"equal shapes.*\(3, 2\).*\(3, 1\)"):
        hungarian_permutation(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        hungarian_permutation(np.full((2, 2), np.nan), np.zeros((2, 2)))


def test_sorted_functional_orders_by_key_feature():
    x = np.array([[[3.0, 0.0], [1.0, 5.0], [2.0, -1.0]]])  # (S=1, K=3, d=2)
    np.testing.assert_array_equal(sorted_functional(x, label_axis=1)[0, :, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(sorted_functional(x, label_axis=1, key=1)[0, :, 1],
                                  [-1.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="key"):
        sorted_functional(x, label_axis=1, key=2)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), d=st.integers(1, 3),
       ties=st.booleans())
def test_sorted_functional_is_invariant_to_relabelling(seed, k, d, ties):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, k, d))
    if ties:  # equal key features: the order must come from the other features
        x[..., 0] = np.round(x[..., 0])
    perms = np.array([rng.permutation(k) for _ in range(5)])
    shuffled = np.take_along_axis(x, perms[:, :, None], axis=1)
    np.testing.assert_array_equal(sorted_functional(shuffled, label_axis=1),
                                  sorted_functional(x, label_axis=1))
    aligned, _ = align_labels(shuffled, x[0], label_axis=1)
    np.testing.assert_array_equal(aligned[0], x[0])
