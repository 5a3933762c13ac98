"""Saving and loading stage artifacts (posteriors, network weights, arrays, tables).

Every file is written to a temporary name and moved into place, so a run that is
interrupted never leaves a half-written artifact behind.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bayesattn._files import load_torch_file, save_torch

from ._io import atomic_path, read_csv, read_json, write_csv, write_json

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: kind -> (folder, suffix)
KINDS = {
    "netcdf": ("posteriors", ".nc"),
    "state_dict": ("models", ".pt"),
    "tensor": ("arrays", ".pt"),
    "npy": ("arrays", ".npy"),
    "csv": ("tables", ".csv"),
    "json": ("artifacts", ".json"),
}


def _is_inference_data(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "InferenceData" and cls.__module__.startswith("arviz")


def _torch() -> Any:
    return sys.modules.get("torch")


def _holds_tensor(value: Any) -> bool:
    torch = _torch()
    if torch is None:
        return False
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_tensor(v) for v in value)
    return False


def kind_of(value: Any) -> str:
    """The artifact kind of ``value`` (a key of :data:`KINDS`); TypeError if unsupported."""
    torch = _torch()
    if _is_inference_data(value):
        return "netcdf"
    if torch is not None and isinstance(value, torch.nn.Module):
        return "state_dict"
    if torch is not None and isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, Mapping) and _holds_tensor(value):
        return "state_dict"
    if "numpy" in sys.modules and isinstance(value, sys.modules["numpy"].ndarray):
        return "npy"
    if "pandas" in sys.modules and isinstance(value, sys.modules["pandas"].DataFrame):
        return "csv"
    if isinstance(value, Mapping):
        return "json"
    raise TypeError(
        f"cannot save an artifact of type {type(value).__name__}: use arviz.InferenceData, a "
        "torch state dict / nn.Module / tensor, a NumPy array, a DataFrame or a JSON dict"
    )


def save(out: Path, stage: str, key: str, value: Any) -> dict[str, str]:
    """Save one artifact under ``out``; returns its manifest entry ``{"path", "kind"}``."""
    if not isinstance(key, str) or not KEY.match(key):
        raise ValueError(
            f"stage {stage!r}: artifact key must match [A-Za-z0-9][A-Za-z0-9_.-]* (it names a "
            f"file); got {key!r}"
        )
    kind = kind_of(value)
    folder, suffix = KINDS[kind]
    rel = f"{folder}/{stage}-{key}{suffix}"
    path = Path(out) / rel
    if kind == "netcdf":
        with atomic_path(path) as tmp:
            value.to_netcdf(str(tmp))
    elif kind in ("state_dict", "tensor"):
        torch = _torch()
        if isinstance(value, torch.nn.Module):
            value = value.state_dict()
        if kind == "tensor":
            value = value.detach()
        save_torch(value, path)  # same bytes whatever the temp file's name
    elif kind == "npy":
        import numpy as np

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, value, allow_pickle=False)
    elif kind == "csv":
        write_csv(path, value)
    else:
        try:
            write_json(path, dict(value))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"stage {stage!r}: artifact {key!r} is a dict that is not JSON-serializable "
                f"({exc}); use arrays, tensors or DataFrames for numeric payloads"
            ) from None
    return {"path": rel, "kind": kind}


def load(out: Path, entry: Mapping[str, str]) -> Any:
    """Load an artifact saved by :func:`save` (torch objects onto the CPU)."""
    path = Path(out) / entry["path"]
    kind = entry["kind"]
    if kind == "netcdf":
        import arviz as az

        with az.rc_context({"data.load": "eager"}):
            return az.from_netcdf(str(path))
    if kind in ("state_dict", "tensor"):
        return load_torch_file(path, what="run artifact")
    if kind == "npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if kind == "csv":
        return read_csv(path)
    if kind == "json":
        return read_json(path)
    raise ValueError(f"unknown artifact kind {kind!r} in the manifest of {path}")
