"""bayesattn: attention on trial against exact Bayesian posteriors.

Subpackages (imported lazily so that ``import bayesattn`` stays fast):
    bayesattn.models     the model zoo (Pyro programs + NumPyro twins + exact posteriors)
    bayesattn.inference  ground-truth posteriors (exact, NumPyro NUTS, Pyro NUTS) and
                         amortized attention posteriors
    bayesattn.metrics    gap metrics with confidence intervals (pure functions)
    bayesattn.gaps       gap studies returning tidy DataFrames
    bayesattn.experiments  named experiments for the claims P1-P14, run by the CLI
    bayesattn.check      posterior checks for people and tests (check_posterior, ...)
    bayesattn.assignments  student versions of course-assignment notebooks
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "models", "inference", "metrics", "gaps", "experiments", "report", "plots", "cli", "demo",
    "check", "assignments",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"bayesattn.{name}")
    raise AttributeError(f"module 'bayesattn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
