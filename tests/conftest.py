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

# Under pytest-xdist (make test runs PYTEST_WORKERS processes) the workers share the cores:
# each gets its share of torch intra-op threads, so that torch's default and train's
# threads="auto" (which never exceeds torch's setting) do not oversubscribe them. One test
# of the 2-worker suite, trained with "auto", took 69 s instead of 15 s before this.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // max(1, _workers)))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny float64 problems (faster, fair to 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
