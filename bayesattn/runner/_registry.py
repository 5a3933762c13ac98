"""The experiment registry: register, unregister, names, get.

The built-in experiments are the packages named in :data:`BUILTIN_MODULES`; each
registers its experiment when imported. They are imported (by name, so that the
runner never imports the experiments it runs) the first time :func:`names` or
:func:`get` is called, so that importing the runner stays light.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from ._errors import UnknownExperimentError
from ._types import Experiment

__all__ = ["BUILTIN_MODULES", "get", "names", "register", "unregister"]

#: The packages that register the built-in experiments when imported. They must import
#: torch / pyro / jax / arviz only inside their stage functions, so that listing stays fast.
BUILTIN_MODULES: tuple[str, ...] = tuple(
    f"bayesattn.experiments.{name}" for name in (
        "gap_vs_length",
        "attention_is_bayes",
        "generalisation",
        "representations",
        "mtp_transfer",
        "length_awareness",
        "heads_width",
        "oversmoothing_boosting",
        "denoising_1d",
        "contamination_attention",
        "denoising_2d",
        "robust_encoders",
        "change_point_attention",
    )
)

_REGISTRY: dict[str, Experiment] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    """Import the modules that register the built-in experiments (once)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # before importing: a builtin module may call names() itself
    try:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    except BaseException:
        _builtins_loaded = False
        raise


def register(experiment: Experiment | Callable[[], Experiment]) -> Experiment:
    """Add an experiment to the registry; usable as a plain call or as a decorator.

    Args:
        experiment: An :class:`Experiment`, or a function without arguments that
            returns one (then ``@register`` above the function registers its result).

    Returns:
        The registered :class:`Experiment`.

    Raises:
        TypeError: Neither an Experiment nor a function returning one.
        ValueError: Another experiment is already registered under that name.
    """
    if not isinstance(experiment, Experiment):
        if not callable(experiment):
            raise TypeError(f"register() expects an Experiment, got {experiment!r}")
        made = experiment()
        if not isinstance(made, Experiment):
            raise TypeError(
                f"register(): {getattr(experiment, '__name__', experiment)!r} returned "
                f"{type(made).__name__}, expected an Experiment"
            )
        experiment = made
    existing = _REGISTRY.get(experiment.name)
    if existing is not None and existing is not experiment:
        raise ValueError(
            f"an experiment named {experiment.name!r} is already registered; "
            "pick another name or unregister() the old one first"
        )
    _REGISTRY[experiment.name] = experiment
    return experiment


def unregister(name: str) -> Experiment:
    """Remove an experiment from the registry (mainly for tests) and return it."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise UnknownExperimentError(_unknown_message(name)) from None


def names() -> list[str]:
    """Names of all registered experiments, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    """The experiment registered under ``name``.

    Raises:
        UnknownExperimentError: No such experiment; the message suggests close names.
    """
    _load_builtins()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownExperimentError(_unknown_message(name))
    return _REGISTRY[name]


def _unknown_message(name: object) -> str:
    known = sorted(_REGISTRY)
    if not known:
        return f"unknown experiment {name!r}: no experiments are registered"
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown experiment {name!r}{hint} (known: {', '.join(known)}; "
        "see `bayesattn list`)"
    )
