"""bayesattn: attention on trial against exact Bayesian posteriors.

Subpackages (imported lazily so that ``import bayesattn`` stays fast):
    bayesattn.models     the model zoo (Pyro programs + NumPyro twins + exact posteriors)
    bayesattn.inference  ground-truth posteriors (exact, NumPyro NUTS, Pyro NUTS)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {"models", "inference", "cli", "demo"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"bayesattn.{name}")
    raise AttributeError(f"module 'bayesattn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SUBMODULES))
