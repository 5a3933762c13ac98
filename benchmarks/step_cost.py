"""Cost of one training step: attention encoders against DeepSets, before and after packing.

One torch thread, normal-mean (d = 2), NPE, batch 128, L drawn in [8, 128] (log-uniform,
the default, and uniform). For each configuration it trains a fresh network for
``--steps`` steps and reports the median step time after ``--warmup`` untimed steps
(``TrainResult.history["seconds"]``), and the ratio to DeepSets with the same packing
and length distribution. Configurations:

  - ``old``: the encoder options before issue 12 (Set Transformer 2 SAB blocks, transformer
    2 layers, feed-forward 4x) without packing (``encoder.buckets = 0``);
  - ``old+packing``: the same with the default packing (4 length buckets);
  - ``default``: the current defaults (1 block, feed-forward 2x, packing).

Prints a table and writes ``benchmarks/results/step_cost.csv`` atomically.

    .venv/bin/python benchmarks/step_cost.py            # about 3 minutes
    .venv/bin/python benchmarks/step_cost.py --quick    # smoke test, writes nothing
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import (  # benchmarks/ is on sys.path as a script
    machine,
    step_seconds,
    write_csv_atomic,
)

OUT = Path(__file__).resolve().parent / "results" / "step_cost.csv"
OLD = {"set-transformer": {"num_blocks": 2, "ff_mult": 4},
       "transformer": {"num_layers": 2, "ff_mult": 4}, "deepsets": {}}


def step_ms(model, encoder: str, options: dict, buckets: int, lengths: str, steps: int,
            warmup: int) -> float:
    import numpy as np

    step_s, _ = step_seconds(model, encoder, steps=steps, warmup=warmup,
                             encoder_options=options, buckets=buckets, lengths=lengths)
    return 1e3 * float(np.median(step_s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 4 steps, writes nothing")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8)
    args = ap.parse_args()
    import pandas as pd
    import torch

    from bayesattn import models

    steps, warmup = (4, 1) if args.quick else (args.steps, args.warmup)
    model = models.get("normal-mean")
    rows = []
    for lengths in ("log-uniform", "uniform"):
        for config in ("old", "old+packing", "default"):
            for encoder in ("set-transformer", "transformer", "deepsets"):
                options = OLD[encoder] if config.startswith("old") else {}
                buckets = 0 if config == "old" else 4
                ms = step_ms(model, encoder, options, buckets, lengths, steps, warmup)
                rows.append({"lengths": lengths, "config": config, "encoder": encoder,
                             "ms_per_step": ms})
                print(f"{lengths:12s} {config:12s} {encoder:16s} {ms:8.1f} ms/step", flush=True)
    df = pd.DataFrame(rows)
    base = df[df.encoder == "deepsets"].set_index(["lengths", "config"])["ms_per_step"]
    df["x_deepsets"] = [r.ms_per_step / base[(r.lengths, r.config)] for r in df.itertuples()]
    df["machine"], df["torch"], df["threads"] = machine(), torch.__version__, 1
    df["steps"], df["warmup"] = steps, warmup
    with pd.option_context("display.width", 160):
        print(df[["lengths", "config", "encoder", "ms_per_step", "x_deepsets"]]
              .to_string(index=False, float_format="{:.1f}".format))
    if not args.quick:
        write_csv_atomic(df, OUT)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
