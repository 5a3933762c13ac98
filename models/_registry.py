"""Name -> model class registry: ``names()``, ``get(name, **params)``, ``register``."""

from __future__ import annotations

import difflib
from typing import Any

from ._base import ExchangeableModel
from ._errors import UnknownModelError

_REGISTRY: dict[str, type[ExchangeableModel]] = {}


def register(cls: type[ExchangeableModel]) -> type[ExchangeableModel]:
    """Class decorator: make ``cls`` available as ``get(cls.name)``.

    A registered model works with every engine (simulation, ground truth, training)
    with no other change.

    Raises:
        TypeError: ``cls`` is not an ``ExchangeableModel`` subclass.
        ValueError: ``cls.name`` is empty or already taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, ExchangeableModel)):
        raise TypeError(f"register expects an ExchangeableModel subclass; got {cls!r}.")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string; got {name!r}.")
    other = _REGISTRY.get(name)
    same = other is not None and (other.__module__, other.__qualname__) == (
        cls.__module__, cls.__qualname__
    )  # a reloaded module re-registers its own class
    if other is not None and not same:
        where = f"{other.__module__}.{other.__qualname__}"
        raise ValueError(
            f"model name {name!r} is already registered by {where}; "
            "pick another name or unregister it first."
        )
    _REGISTRY[name] = cls
    return cls


def lookup(registry: dict[str, Any], name: str, kind: str, known: str) -> Any:
    """``registry[name]``, or UnknownModelError naming close matches and ``known``."""
    try:
        return registry[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), registry, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownModelError(f"unknown {kind} {name!r}.{hint} {known}") from None


def unregister(name: str) -> None:
    """Remove a model from the registry (used by tests and notebooks)."""
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **params: Any) -> ExchangeableModel:
    """Build the model registered as ``name`` with fixed parameters ``params``.

    Raises:
        UnknownModelError: no such model (the message lists close matches).
    """
    cls = lookup(_REGISTRY, name, "model",
                 f"Known models: {', '.join(names())}.")
    return cls(**params)
