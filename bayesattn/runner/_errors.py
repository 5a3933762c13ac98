"""User errors of the experiment machinery.

Each is a :class:`ValueError` whose message says what was expected, what was got
and how to fix it, in one line. The ``bayesattn`` command catches exactly these
(:class:`ExperimentError` and its subclasses) and prints them as
``bayesattn: error: ...``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ExperimentError(ValueError):
    """Base class: a user error about an experiment, its settings or its run folder."""


class UnknownExperimentError(ExperimentError):
    """No experiment is registered under the requested name."""


class UnknownPresetError(ExperimentError):
    """The experiment has no preset of the requested name."""


class InvalidParameterError(ExperimentError):
    """An override names a parameter the preset does not have, or has the wrong type."""


class DeviceUnavailableError(ExperimentError):
    """The requested device is not a known device or is not available here."""


class OutputExistsError(ExperimentError):
    """The output folder is not empty and neither resume nor overwrite was asked for."""


class OutputNotWritableError(ExperimentError):
    """The output folder cannot be created or written to."""


class ResumeMismatchError(ExperimentError):
    """``resume`` was asked for but the folder holds a run with other settings."""


class NotARunFolderError(ExperimentError):
    """The folder is not a (finished) run folder written by :func:`bayesattn.experiments.run`."""


class RunFolderLockedError(ExperimentError):
    """Another process is writing the same run folder (it holds the folder's lock)."""


class DiskFullError(OutputNotWritableError):
    """The device of the run folder ran out of space (or quota) during the run."""
