"""Seeded random blocks that leave the caller's random state alone (the one home of them).

``with seeded(seed): ...`` runs a block with torch's CPU generator (and, with
``device=`` a CUDA device, that device's generator) seeded to ``seed``, and restores the
states the caller had when the block ends. Unlike ``torch.manual_seed`` inside a plain
``fork_rng(devices=[])``, it never reseeds CUDA devices it does not restore. The lowest
layer: imports nothing from bayesattn; torch is imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int, device: Any = None, *, every_cuda_device: bool = False
           ) -> Iterator[None]:
    """Seed torch's generators for a block and put the caller's states back after it.

    Args:
        seed: The seed (a non-negative int).
        device: Also seed (and restore) this CUDA device's generator, for a block that
            draws on it; None or a CPU device: the CPU generator only.
        every_cuda_device: Seed and restore every CUDA device CUDA has initialised (for a
            block whose draws may land on any of them, e.g. a distribution whose device
            is not known).
    """
    import torch

    device = torch.device(device) if device is not None else torch.device("cpu")
    if every_cuda_device and torch.cuda.is_available() and torch.cuda.is_initialized():
        devices = list(range(torch.cuda.device_count()))
    else:
        devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda" if devices else "cpu"):
        torch.default_generator.manual_seed(int(seed))
        for d in devices:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(int(seed))
        yield
