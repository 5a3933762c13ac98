"""Ground-truth throughput: exact posteriors, vectorised NumPyro NUTS, Pyro NUTS.

Prints a table and writes ``benchmarks/results/ground_truth.csv`` (atomically).

    .venv/bin/python benchmarks/ground_truth.py [--quick] [--pyro-datasets 2]

Rows:
  exact        concept-mixture exact posterior (enumeration), B=4096, L=256: tokens/s
  numpyro-nuts topic-admixture (K=3, V=20, L=64), 64 datasets x 4 chains x 1000 draws,
               one compiled program: wall time with and without compilation, min ESS/s
  pyro-nuts    the same model through Pyro's NUTS on a few datasets (sequential chains)
ESS/s is per dataset: the worst coordinate's bulk ESS of a dataset divided by the wall
time spent on that dataset (for the vectorised run: the whole batch's time, since all
datasets advance together).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bayesattn import inference, models

OUT = Path(__file__).resolve().parent / "results" / "ground_truth.csv"


def bench_exact(num_sequences: int, seq_len: int, repeats: int = 5) -> dict:
    m = models.get("concept-mixture")
    x = m.simulate(num_sequences, seq_len, seed=0).x
    m.exact_posterior(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        m.exact_posterior(x).probs.sum().item()
        times.append(time.perf_counter() - t)
    wall = float(np.median(times))
    return {
        "row": "exact", "model": "concept-mixture", "datasets": num_sequences,
        "seq_len": seq_len, "chains": 0, "draws": 0, "wall_s": wall, "wall_s_no_compile": wall,
        "tokens_per_s": num_sequences * seq_len / wall, "min_ess": np.nan,
        "ess_per_s_per_dataset": np.nan, "converged_fraction": 1.0,
    }


def _mcmc_row(row: str, ref, wall: float, wall_no_compile: float, seq_len: int) -> dict:
    d = ref.diagnostics
    min_ess = np.minimum(d["ess_bulk"].to_numpy(), d["ess_tail"].to_numpy())
    return {
        "row": row, "model": ref.model.name, "datasets": ref.num_datasets, "seq_len": seq_len,
        "chains": int(ref.idata.posterior.sizes["chain"]),
        "draws": int(ref.idata.posterior.sizes["draw"]),
        "wall_s": wall, "wall_s_no_compile": wall_no_compile, "tokens_per_s": np.nan,
        "min_ess": float(min_ess.min()),
        "ess_per_s_per_dataset": float(np.median(min_ess)) / wall_no_compile,
        "converged_fraction": float(d["converged"].mean()),
    }


def bench_numpyro(num_datasets: int, seq_len: int, num_samples: int) -> dict:
    m = models.get("topic-admixture", K=3, V=20)
    x = m.simulate(num_datasets, seq_len, seed=1).x
    kw = dict(method="nuts", num_samples=num_samples, num_warmup=num_samples, num_chains=4,
              allow_unconverged=True)
    t = time.perf_counter()
    inference.reference_posterior(m, x, seed=0, **kw)
    first = time.perf_counter() - t
    t = time.perf_counter()
    ref = inference.reference_posterior(m, x, seed=1, **kw)  # compiled program is cached
    second = time.perf_counter() - t
    return _mcmc_row("numpyro-nuts", ref, first, second, seq_len)


def bench_pyro(num_datasets: int, seq_len: int, num_samples: int) -> dict:
    m = models.get("topic-admixture", K=3, V=20)
    x = m.simulate(num_datasets, seq_len, seed=1).x
    # Pyro NUTS works on tiny tensors: one torch thread is several times faster than
    # two on this machine (thread hand-off dominates). The script, not the library,
    # sets it, and restores it afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = time.perf_counter()
        ref = inference.reference_posterior(
            m, x, method="pyro-nuts", num_samples=num_samples, num_warmup=num_samples,
            num_chains=4, seed=0, allow_unconverged=True,
        )
        wall = time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    row = _mcmc_row("pyro-nuts", ref, wall, wall, seq_len)
    # Datasets run one after another: the time per dataset is wall / B.
    row["ess_per_s_per_dataset"] *= num_datasets
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--pyro-datasets", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        rows = [bench_exact(256, 64), bench_numpyro(4, 32, 200), bench_pyro(1, 32, 100)]
    else:
        rows = [bench_exact(4096, 256), bench_numpyro(64, 64, 1000),
                bench_pyro(args.pyro_datasets, 64, 1000)]
    df = pd.DataFrame(rows)
    nump = df.loc[df.row == "numpyro-nuts", "ess_per_s_per_dataset"].iloc[0]
    pyro_ = df.loc[df.row == "pyro-nuts", "ess_per_s_per_dataset"].iloc[0]
    df["machine"] = f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}"
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.drop(columns="machine").to_string(index=False, float_format="{:.4g}".format))
    batch = nump * df.loc[df.row == "numpyro-nuts", "datasets"].iloc[0]
    print(f"\nNumPyro / Pyro ESS per second, per dataset: {nump / pyro_:.1f}x")
    print(f"NumPyro / Pyro ESS per second, whole batch (all datasets advance together): "
          f"{batch / pyro_:.0f}x  ({batch:.0f} vs {pyro_:.1f} ESS/s)")
    if not args.quick:
        from bayesattn.runner import write_csv

        write_csv(OUT, df)
        print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main()
