"""Inference throughput on normal-mean (d=2): amortized posteriors vs exact vs NumPyro NUTS.

Prints a table (method, L, batch, chunk, datasets/s, seconds) and writes
``benchmarks/results/throughput.csv`` atomically (temp file + rename), with the machine,
the torch / JAX versions and the thread count in every row.

    .venv/bin/python benchmarks/throughput.py              # full run
    .venv/bin/python benchmarks/throughput.py --quick      # smoke run, writes nothing

What is timed, for sets of L = 32 and L = 128 tokens (all real, no padding):
  - ``amortized <encoder>``: ``net.posterior(x)`` of an *untrained* AmortizedPosterior
    (set-transformer, transformer, deepsets; default sizes; the weights do not change the
    cost) on B = 10,000 sets under ``torch.no_grad()`` and ``net.eval()``, with
    ``chunk_size=None`` (one batch), the default (``net.posterior(x)``: 1024), 256 and 4096.
    One warm-up call on a slice, then the median of ``--repeats`` (3) timed calls.
  - ``exact``: the closed-form posterior ``model.exact_posterior(x)`` on the same B sets
    (median of 5 calls after a warm-up).
  - ``numpyro-nuts``: ``reference_posterior(model, x[:n], method="nuts")`` with that
    function's defaults (4 chains, 1000 warm-up + 1000 draws per chain, vectorised over
    datasets and chains in one compiled JAX program) on n = ``--nuts-datasets`` (4) sets.
    The first call includes compilation (row ``numpyro-nuts+compile``); a second call on
    the same sets with another seed reuses the compiled program (row ``numpyro-nuts``).
    ``converged`` is the fraction of those datasets passing the default gate.
datasets/s = sets processed / median wall seconds.

Threads: torch runs with ``--threads`` (default 1) intra-op threads; with 1 thread JAX/XLA
is also made single-threaded (``XLA_FLAGS``, set before JAX starts, unless already set).

Runtime: the full run takes about 5-10 minutes on one core of a 2-core x86_64 VM (most
of it the attention encoders at L = 128, B = 10,000, one thread; compiling the NUTS
program takes ~15 s at L = 32 and ~20-30 s at L = 128). ``--quick`` (B = 512, one repeat,
NUTS on 1 dataset with 200 + 200 draws at L = 32 only) takes about 30 s.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import machine as _machine
from _common import write_csv_atomic  # benchmarks/ is on sys.path when run as a script

OUT = Path(__file__).resolve().parent / "results" / "throughput.csv"
ENCODERS = ("set-transformer", "transformer", "deepsets")
LENGTHS = (32, 128)
# chunk_size passed to net.posterior; "default" = not passed (the library's default).
CHUNKS = (None, "default", 256, 4096)
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"




def _median_time(fn, repeats: int) -> float:
    import numpy as np

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_amortized(model, x, encoder: str, repeats: int) -> list[dict]:
    import torch

    from bayesattn.inference import AmortizedPosterior

    net = AmortizedPosterior(model, encoder=encoder, seed=0).eval()
    rows = []
    with torch.no_grad():
        net.posterior(x[:256]).loc.sum().item()  # warm-up (allocator, kernels)
        for chunk in CHUNKS:
            if chunk == "default":
                def call():
                    return net.posterior(x).loc.sum().item()
            else:
                def call(chunk=chunk):
                    return net.posterior(x, chunk_size=chunk).loc.sum().item()
            sec = _median_time(call, repeats)
            rows.append({
                "method": f"amortized {encoder}", "L": int(x.shape[1]), "batch": int(x.shape[0]),
                "chunk": "none" if chunk is None else str(chunk), "seconds": sec,
                "datasets_per_s": x.shape[0] / sec, "repeats": repeats,
            })
    return rows


def bench_exact(model, x, repeats: int = 5) -> dict:
    model.exact_posterior(x).loc.sum().item()  # warm-up
    sec = _median_time(lambda: model.exact_posterior(x).loc.sum().item(), repeats)
    return {"method": "exact", "L": int(x.shape[1]), "batch": int(x.shape[0]), "chunk": "",
            "seconds": sec, "datasets_per_s": x.shape[0] / sec, "repeats": repeats}


def bench_nuts(model, x, num_samples: int | None, num_warmup: int | None) -> list[dict]:
    from bayesattn.inference import reference_posterior

    kw = {"method": "nuts", "allow_unconverged": True}
    if num_samples is not None:  # --quick only; the full run keeps the function's defaults
        kw.update(num_samples=num_samples, num_warmup=num_warmup)
    n, length = int(x.shape[0]), int(x.shape[1])
    rows = []
    for label, seed in (("numpyro-nuts+compile", 0), ("numpyro-nuts", 1)):
        t = time.perf_counter()
        ref = reference_posterior(model, x, seed=seed, **kw)
        sec = time.perf_counter() - t
        post = ref.idata.posterior
        rows.append({
            "method": label, "L": length, "batch": n, "chunk": "", "seconds": sec,
            "datasets_per_s": n / sec, "repeats": 1, "chains": int(post.sizes["chain"]),
            "draws": int(post.sizes["draw"]),
            "converged": float(ref.diagnostics["converged"].mean()),
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: B=512, 1 repeat, 1 short NUTS dataset at L=32 only; writes "
                         "nothing "
                         "unless --out is given")
    ap.add_argument("--batch", type=int, default=None, help="sets per timing (default 10000)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 3)")
    ap.add_argument("--nuts-datasets", type=int, default=None, help="NUTS datasets (default 4)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"CSV path (default {OUT.name} in benchmarks/results; none with --quick)")
    args = ap.parse_args()
    if args.threads == 1:
        os.environ.setdefault("XLA_FLAGS", SINGLE_THREAD_XLA)  # before JAX initialises

    import pandas as pd
    import torch

    from bayesattn import models

    torch.set_num_threads(args.threads)
    quick = args.quick
    batch = args.batch or (512 if quick else 10_000)
    repeats = args.repeats or (1 if quick else 3)
    nuts_n = args.nuts_datasets or (1 if quick else 4)
    nuts_draws = 200 if quick else None

    model = models.get("normal-mean")
    rows = []
    for length in LENGTHS:
        x = model.simulate(batch, length, seed=length).x
        for encoder in ENCODERS:
            rows += bench_amortized(model, x, encoder, repeats)
            print(f"  done amortized {encoder} L={length}", flush=True)
        rows.append(bench_exact(model, x))
        if not (quick and length != LENGTHS[0]):  # --quick: compiling NUTS at L=128 takes ~30 s
            rows += bench_nuts(model, x[:nuts_n], nuts_draws, nuts_draws)
        print(f"  done exact + numpyro-nuts L={length}", flush=True)

    df = pd.DataFrame(rows)
    df["threads"] = torch.get_num_threads()
    df["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    df["machine"] = _machine()
    import jax
    df["versions"] = f"torch {torch.__version__}, jax {jax.__version__}"
    df["quick"] = quick
    cols = ["method", "L", "batch", "chunk", "datasets_per_s", "seconds"]
    print(f"\nnormal-mean d=2, {torch.get_num_threads()} torch thread(s), {_machine()}"
          + (" [--quick: smoke numbers]" if quick else ""))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[cols + ["converged"]].to_string(
            index=False, na_rep="", float_format="{:.4g}".format))
    out = args.out if args.out is not None else (None if quick else OUT)
    if out is not None:
        write_csv_atomic(df, out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
