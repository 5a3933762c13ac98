"""Fixtures shared by the whole suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import torch

# One JAX compilation cache for the whole run, shared with the child processes it starts
# (notebooks, assignments, CLI runs). Each NUTS reference builds its potential function
# afresh, so the in-process jit cache misses, while the compiled XLA program is often the
# same: tests/inference/test_ground_truth.py went from 3 min 55 s to 3 min 18 s. Set
# before anything imports jax (JAX reads these at import); a cache the caller set is kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="bayesattn-tests-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny float64 problems (faster, fair to 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
