"""Where computation runs: ``"auto"`` picks CUDA when torch sees a GPU (the one home of it).

The lowest layer: imports nothing from bayesattn; torch is imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["resolve_device"]


def resolve_device(device: Any = "auto", *, error: type[Exception] = ValueError,
                   fix: str = "use 'cpu' or 'auto'") -> Any:
    """``device`` as a ``torch.device``: ``"auto"`` is CUDA when available, else the CPU.

    Accepts ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.

    Raises:
        error: another value, or a CUDA device that torch does not see (the message ends
            with ``fix``).
    """
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (TypeError, RuntimeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise error(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise error(f"device {str(device)!r} was requested but torch {torch.__version__} "
                        f"sees no CUDA GPU; {fix}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise error(f"device {str(device)!r} was requested but only "
                        f"{torch.cuda.device_count()} GPU(s) exist")
    return resolved
