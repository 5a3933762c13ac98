"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def write_csv_atomic(df, path: Path) -> None:
    """Write a DataFrame to ``path`` atomically (``bayesattn.runner.write_csv``)."""
    from bayesattn.runner import write_csv

    write_csv(path, df)


def machine() -> str:
    """``"x86_64 2 cpu (CPU model name)"``."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()} {os.cpu_count()} cpu ({name})"


def step_seconds(model, encoder: str, *, steps: int, warmup: int, threads=1,
                 encoder_options: dict | None = None, buckets: int | None = None,
                 lengths: str = "log-uniform", seed: int = 0):
    """Train a fresh network for ``steps`` NPE steps (batch 128, L in [8, 128], CPU) and
    return ``(seconds of each step after the first warmup, TrainResult)``."""
    import numpy as np

    from bayesattn.inference import AmortizedPosterior, train

    net = AmortizedPosterior(model, encoder=encoder, encoder_options=encoder_options,
                             seed=seed)
    if buckets is not None:
        net.encoder.buckets = buckets
    result = train(net, model, steps=steps, batch_size=128, seq_len=(8, 128), lengths=lengths,
                   objective="npe", device="cpu", progress=False, threads=threads, seed=seed)
    step_s = result.history["seconds"].diff().to_numpy()[warmup:]  # row i: step i's own time
    return step_s[np.isfinite(step_s)], result
