"""Checking a run's settings: seed, preset parameters with overrides, device."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bayesattn._checks import check_seed as _check_seed
from bayesattn._device import resolve_device as _resolve_device
from bayesattn._text import a_or_an

from ._errors import (
    DeviceUnavailableError,
    ExperimentError,
    InvalidParameterError,
    UnknownPresetError,
)
from ._types import Experiment


def check_seed(seed: Any) -> int:
    """``seed`` as a non-negative int; ExperimentError otherwise (bools refused)."""
    return _check_seed(seed, error=ExperimentError)


def resolve_params(
    experiment: Experiment, preset: str, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The preset's parameters with ``overrides`` applied, and the checked overrides.

    Raises:
        UnknownPresetError: ``preset`` is not one of the experiment's presets.
        InvalidParameterError: An override names an unknown parameter or has the wrong type.
    """
    if not isinstance(preset, str) or preset not in experiment.presets:
        raise UnknownPresetError(
            f"experiment {experiment.name!r} has no preset {preset!r}; known presets: "
            f"{', '.join(experiment.presets)}"
        )
    params = experiment.preset_params(preset)
    checked: dict[str, Any] = {}
    for key, value in dict(overrides or {}).items():
        if key not in params:
            raise InvalidParameterError(
                f"preset {preset!r} of {experiment.name!r} has no parameter {key!r}; its "
                f"parameters: {', '.join(params) or '(none)'}"
            )
        checked[key] = _coerce(key, value, params[key])
        _check_range(key, checked[key], params[key], preset, experiment.name)
    try:
        checked = json.loads(json.dumps(checked, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"overrides must be JSON values; {exc}") from None
    params.update(checked)
    return params, checked


def is_plumbing_check(experiment: Experiment, preset: str, params: Mapping[str, Any]) -> bool:
    """Whether a run is a plumbing check, whose claims are not assessed.

    It is one when it runs the ``smoke`` preset, with or without overrides (the smoke
    sizes are chosen to finish in seconds, not to decide a claim; for evidence run
    ``quick`` or ``full``, with overrides if need be), or when another preset's
    parameters after overrides equal the smoke preset's.
    """
    if preset == "smoke":
        return True
    smoke = experiment.presets.get("smoke")
    return smoke is not None and dict(params) == experiment.preset_params("smoke")


def _ints(value: Any) -> list[int] | None:
    """The ints of an int or a list of ints (bools excluded), else None."""
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return list(items)
    return None


def _check_range(key: str, value: Any, default: Any, preset: str, name: str) -> None:
    """Counts stay counts: an int parameter (or list of ints) whose preset value is >= 1
    must stay >= 1 (steps, sizes, lengths), one whose preset value includes 0 must stay
    >= 0 (e.g. depths); a non-empty list must stay non-empty. Refused before anything
    is written, so a bad override never leaves a half-made run folder."""
    if isinstance(default, list) and default and isinstance(value, list) and not value:
        raise InvalidParameterError(
            f"parameter {key!r} of {name!r} expects a non-empty list like {default!r}; got []")
    defaults, values = _ints(default), _ints(value)
    if defaults is None or values is None:
        return
    low = 1 if min(defaults) >= 1 else 0
    bad = [v for v in values if v < low]
    if bad:
        what = "positive" if low == 1 else "non-negative"
        raise InvalidParameterError(
            f"parameter {key!r} of {name!r} expects {what} integers (preset {preset!r} has "
            f"{default!r}); got {value!r}")


def _coerce(key: str, value: Any, default: Any) -> Any:
    def bad() -> InvalidParameterError:
        return InvalidParameterError(
            f"parameter {key!r} expects {a_or_an(type(default).__name__)} like {default!r}; "
            f"got {value!r}"
        )

    number = isinstance(value, int | float) and not isinstance(value, bool)
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad()
        return value
    if isinstance(default, int):
        if number and float(value).is_integer():
            return int(value)
        raise bad()
    if isinstance(default, float):
        if number:
            return float(value)
        raise bad()
    if isinstance(default, str):
        if isinstance(value, str) or number:
            return str(value)
        raise bad()
    if isinstance(default, list):
        if isinstance(value, list | tuple):
            return list(value)
        raise bad()
    if isinstance(default, dict):
        if isinstance(value, Mapping):
            return dict(value)
        raise bad()
    return value


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; checks ``"cuda[:N]"``
    (DeviceUnavailableError, with the fix, when it cannot be used)."""
    if not isinstance(device, str) or not (
        device in ("auto", "cpu", "cuda")
        or (device.startswith("cuda:") and device[5:].isdigit())
    ):
        raise DeviceUnavailableError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}"
        )
    if device == "cpu":
        return device
    resolved = _resolve_device(device, error=DeviceUnavailableError,
                               fix="use --device cpu (or auto)")
    return device if device != "auto" else resolved.type
