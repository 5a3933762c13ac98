"""Label switching: comparing mixture-type latents whose component labels are arbitrary.

A posterior over K exchangeable components (means, weights, ...) is invariant under
relabelling, so draws from two samplers (or a draw and the truth) only agree up to a
permutation of the K labels. Either align each draw to a reference with the Hungarian
algorithm (:func:`hungarian_permutation`, :func:`align_labels`) or compare a
permutation-invariant functional (:func:`sorted_functional`).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._estimate import as_numpy

__all__ = ["hungarian_permutation", "align_labels", "sorted_functional"]


def _components(x: np.ndarray, name: str) -> np.ndarray:
    """(K, F) view of component parameters (K, ...) (features flattened)."""
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected component parameters of shape (K, ...) with K >= 1, "
                         f"got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def hungarian_permutation(estimate, reference) -> np.ndarray:
    """The relabelling of ``estimate`` that best matches ``reference``.

    Minimises ``sum_k |estimate[perm[k]] - reference[k]|^2`` over permutations
    (:func:`scipy.optimize.linear_sum_assignment`), so ``estimate[perm]`` is aligned
    with ``reference``.

    Args:
        estimate: Component parameters, shape (K, ...) (e.g. means (K, d), or
            probabilities (K,)); stack several parameters along the trailing axes.
        reference: Component parameters, same shape (K, ...).

    Returns:
        Integer array ``perm`` of shape (K,), a permutation of ``0..K-1``.
    """
    est = as_numpy(estimate, "estimate")
    ref = as_numpy(reference, "reference")
    if est.shape != ref.shape:
        raise ValueError(f"estimate and reference: expected equal shapes (K, ...), got "
                         f"{est.shape} and {ref.shape}")
    e, r = _components(est, "estimate"), _components(ref, "reference")
    cost = ((r[:, None, :] - e[None, :, :]) ** 2).sum(-1)  # (K ref, K est)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(e.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm


def _label_axis(label_axis: int, ndim: int, lowest: int) -> int:
    if isinstance(label_axis, bool) or not isinstance(label_axis, int | np.integer):
        raise TypeError(f"label_axis: expected an integer, got {type(label_axis).__name__}")
    axis = int(label_axis) + ndim if label_axis < 0 else int(label_axis)
    if not lowest <= axis < ndim:
        raise ValueError(
            f"label_axis: expected an axis in {lowest}..{ndim - 1} (or negative) of an array "
            f"with {ndim} dimensions, got {label_axis}"
        )
    return axis


def align_labels(samples, reference, *, label_axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Relabel every draw so that its components best match the reference.

    Axis 0 of ``samples`` indexes draws; ``label_axis`` is the K axis (the component
    labels) of ``samples``; the axes after it are the components' features, matched by
    squared Euclidean distance. ``reference`` has the shape of one draw.

    Examples of shapes: means of K Gaussian components, samples (S, K, d) with
    ``label_axis=1`` and reference (K, d); probability vectors over K labels, samples
    (S, K) with ``label_axis=1`` and reference (K,).

    Args:
        samples: Draws, shape (S, ..., K, ...) with K at ``label_axis`` (>= 1; negative
            counts from the end). Axes between 0 and ``label_axis`` are treated as
            extra batch axes (e.g. datasets (S, B, K, d) with ``label_axis=2`` and
            reference (B, K, d)), each aligned separately.
        reference: Target labelling, shape ``samples.shape[1:]``.
        label_axis: Which axis of ``samples`` holds the K labels.

    Returns:
        ``(aligned, perms)``: ``aligned`` has the shape of ``samples`` with each draw's K
        axis permuted; ``perms`` has shape ``samples.shape[:label_axis] + (K,)`` with
        ``aligned[..., k, ...] = samples[..., perms[..., k], ...]``.
    """
    arr = as_numpy(samples, "samples")
    ref = as_numpy(reference, "reference")
    if arr.ndim < 2:
        raise ValueError(f"samples: expected draws of shape (S, ..., K, ...), got shape "
                         f"{arr.shape}")
    axis = _label_axis(label_axis, arr.ndim, 1)
    if ref.shape != arr.shape[1:]:
        raise ValueError(f"reference: expected shape {arr.shape[1:]} (one draw of samples), "
                         f"got {ref.shape}")
    lead = arr.shape[:axis]  # draws and batch axes
    k = arr.shape[axis]
    flat = arr.reshape(int(np.prod(lead)), k, -1)  # (S * batch, K, F)
    ref_b = np.broadcast_to(ref, arr.shape).reshape(flat.shape)  # (S * batch, K, F)
    perms = np.empty((flat.shape[0], k), dtype=np.int64)
    for i in range(flat.shape[0]):
        perms[i] = hungarian_permutation(flat[i], ref_b[i])
    aligned = np.take_along_axis(flat, perms[:, :, None], axis=1)
    return aligned.reshape(arr.shape), perms.reshape(*lead, k)


def sorted_functional(samples, *, label_axis: int, key: int = 0) -> np.ndarray:
    """A permutation-invariant version of mixture latents: components sorted.

    Along ``label_axis`` the K components are sorted by their feature ``key``
    (ascending), ties broken by the remaining features in order, so the result is the
    same for any relabelling of the input. Compare sorted draws from two posteriors
    directly (e.g. with :func:`wasserstein2` or moments) without aligning them.

    Args:
        samples: Array (..., K, ...) with K at ``label_axis``; axes after it are the
            components' features (flattened in C order, indexed by ``key``), axes
            before it are batch axes (draws, datasets).
        label_axis: Which axis holds the K labels.
        key: Index of the (flattened) feature that orders the components.

    Returns:
        Float64 array of the input's shape, components sorted along ``label_axis``.
    """
    arr = as_numpy(samples, "samples")
    if arr.ndim < 1:
        raise ValueError(f"samples: expected an array with a label axis, got shape {arr.shape}")
    axis = _label_axis(label_axis, arr.ndim, 0)
    lead = arr.shape[:axis]
    k = arr.shape[axis]
    flat = arr.reshape(int(np.prod(lead)), k, -1)  # (batch, K, F)
    num_feat = flat.shape[2]
    if isinstance(key, bool) or not isinstance(key, int | np.integer) \
            or not -num_feat <= key < num_feat:
        raise ValueError(f"key: expected a feature index in 0..{num_feat - 1}, got {key!r}")
    order_feats = [int(key) % num_feat] + [f for f in range(num_feat) if f != int(key) % num_feat]
    # np.lexsort sorts by the last key first: primary feature goes last
    keys = np.stack([flat[:, :, f] for f in reversed(order_feats)])  # (F, batch, K)
    order = np.lexsort(keys, axis=-1)  # (batch, K)
    out = np.take_along_axis(flat, order[:, :, None], axis=1)
    return out.reshape(arr.shape)
