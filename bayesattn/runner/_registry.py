"""The experiment registry: :data:`EXPERIMENTS` and register, unregister, names, get.

:data:`EXPERIMENTS` is a :class:`bayesattn._registry.Registry` (the project's one
extension idiom, as for models and sequence models) that imports the built-in
experiments the first time it is read; the functions here are thin uses of it.

The built-in experiments are the packages named in :data:`BUILTIN_MODULES`; each
registers its experiment when imported. They are imported (by name, so that the
runner never imports the experiments it runs) the first time :func:`names` or
:func:`get` is called (or :data:`EXPERIMENTS` is read), so that importing the runner
stays light. Your own experiments join them the same way: name the modules that
register them in the environment variable ``BAYESATTN_EXPERIMENT_MODULES``
(comma-separated; installed, on ``PYTHONPATH`` or in the working folder), and
``bayesattn run``, ``bayesattn list`` and the jobs of ``bayesattn sweep`` find them.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from bayesattn._registry import Registry

from ._errors import UnknownExperimentError
from ._types import Experiment

__all__ = ["BUILTIN_MODULES", "EXPERIMENTS", "MODULES_ENV", "get", "import_experiment_module",
           "names", "register", "unregister"]

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

#: Environment variable naming further modules that register experiments (comma-separated).
MODULES_ENV = "BAYESATTN_EXPERIMENT_MODULES"

_builtins_loaded = False


def extra_modules() -> list[str]:
    """The modules named in :data:`MODULES_ENV`, in order."""
    return [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]


def import_experiment_module(module: str) -> None:
    """Import ``module``, also from the working folder (as ``python -m`` would)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != module.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        importlib.import_module(module)


def _load_builtins() -> None:
    """Import the modules that register the built-in experiments (once)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # before importing: a builtin module may call names() itself
    try:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for module in extra_modules():
            try:
                import_experiment_module(module)
            except ImportError as exc:
                raise UnknownExperimentError(
                    f"{MODULES_ENV} names {module!r}, which cannot be imported ({exc}); "
                    "check the name and that its folder is on PYTHONPATH") from None
    except BaseException:
        _builtins_loaded = False
        raise


class _ExperimentRegistry(Registry[Experiment]):
    """A :class:`Registry` of experiments that loads :data:`BUILTIN_MODULES` on first read.

    Writing (``register``) loads nothing. Another :class:`Experiment` object under a
    taken name is refused (unregister the old one first).
    """

    def __init__(self) -> None:
        super().__init__("experiment", error=UnknownExperimentError, check=self._check,
                         hint="See `bayesattn list`.")

    def _check(self, name: str, experiment: object) -> None:
        if not isinstance(experiment, Experiment):
            raise TypeError(f"register() expects an Experiment, got {experiment!r}")
        if experiment.name != name:
            raise ValueError(f"experiment {experiment.name!r} cannot be registered as "
                             f"{name!r}: an experiment is registered under its own name")
        if name in self._items and self._items[name] is not experiment:
            raise ValueError(f"an experiment named {name!r} is already registered; "
                             "pick another name or unregister() the old one first")

    def names(self) -> list[str]:
        _load_builtins()
        return super().names()

    def get(self, name: str) -> Experiment:
        _load_builtins()
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        _load_builtins()
        return super().__contains__(name)

    def __len__(self) -> int:
        _load_builtins()
        return super().__len__()


#: The registered experiments (name -> :class:`Experiment`); the built-in ones are
#: imported on first read.
EXPERIMENTS: Registry[Experiment] = _ExperimentRegistry()


def register(experiment: Experiment | Callable[[], Experiment]) -> Experiment:
    """Add an experiment to :data:`EXPERIMENTS`; usable as a plain call or as a decorator.

    Args:
        experiment: An :class:`Experiment`, or a function without arguments that
            returns one (then ``@register`` above the function registers its result).

    Returns:
        The registered :class:`Experiment`.

    Raises:
        TypeError: Neither an Experiment nor a function returning one.
        ValueError: Another experiment is already registered under that name
            (registering the same object again is harmless).
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
    return EXPERIMENTS.register(experiment.name, experiment)


def unregister(name: str) -> Experiment:
    """Remove an experiment from the registry (mainly for tests) and return it.

    Raises:
        UnknownExperimentError: No such experiment; the message suggests close names.
    """
    return EXPERIMENTS.unregister(name)


def names() -> list[str]:
    """Names of all registered experiments (the built-in ones included), sorted."""
    return EXPERIMENTS.names()


def get(name: str) -> Experiment:
    """The experiment registered under ``name``.

    Raises:
        UnknownExperimentError: No such experiment; the message suggests close names
            and points to ``bayesattn list``.
    """
    return EXPERIMENTS.get(name)
