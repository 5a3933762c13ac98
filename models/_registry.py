"""The model registry: :data:`MODELS` (name -> model class) and its functions.

:data:`MODELS` is a :class:`bayesattn._registry.Registry`, the project's one
extension idiom; ``register``, ``unregister``, ``names`` and ``get`` are thin uses
of it, kept as the model zoo's public API::

    @models.register                      # or @models.MODELS.register()
    class MyModel(ExchangeableModel):
        name = "my-model"
        ...

    models.get("my-model", a=1.0)         # MyModel(a=1.0)
    models.get("my-modle")                # UnknownModelError: ... did you mean 'my-model'?
"""

from __future__ import annotations

from typing import Any

from bayesattn._registry import Registry

from ._base import ExchangeableModel
from ._errors import UnknownModelError

__all__ = ["MODELS", "get", "names", "register", "unregister"]


#: The exchangeable models (name -> :class:`ExchangeableModel` subclass). Positional
#: models are kept apart, in :data:`SEQUENCE_MODELS`.
MODELS: Registry[type[ExchangeableModel]] = Registry(
    "model", error=UnknownModelError, base=ExchangeableModel, own_name=True,
    hint="Register one with @bayesattn.models.register on an ExchangeableModel subclass.")


def register(cls: type[ExchangeableModel]) -> type[ExchangeableModel]:
    """Class decorator: make ``cls`` available as ``get(cls.name)``.

    A registered model works with every engine (simulation, ground truth, training)
    with no other change. Registering the same class again (a reloaded module) is
    allowed.

    Raises:
        TypeError: ``cls`` is not an ``ExchangeableModel`` subclass.
        ValueError: ``cls.name`` is empty or already taken by another class.
    """
    return MODELS.register(None, cls)


def unregister(name: str) -> None:
    """Remove a model from the registry (used by tests and notebooks); an unknown name
    is ignored."""
    if name in MODELS:
        MODELS.unregister(name)


def names() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()


def get(name: str, **params: Any) -> ExchangeableModel:
    """Build the model registered as ``name`` with fixed parameters ``params``.

    Raises:
        UnknownModelError: no such model (the message lists close matches and the
            known models).
    """
    return MODELS.get(name)(**params)
