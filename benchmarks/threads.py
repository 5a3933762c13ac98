"""Thread policy: training step time with 1 thread, all cores and ``threads="auto"``,
alone and next to a competing process.

Prints a table and writes ``benchmarks/results/threads.csv`` atomically (temp file +
rename), with the machine and its CPU count in every row.

    .venv/bin/python benchmarks/threads.py              # full run
    .venv/bin/python benchmarks/threads.py --quick      # smoke run, writes nothing

For each encoder E in (set-transformer, deepsets) and T in (1, os.cpu_count(), "auto") it
runs ``train(AmortizedPosterior(models.get("normal-mean"), encoder=E), model,
batch_size=128, seq_len=(8, 128), steps=40, threads=T, progress=False)`` with the library
defaults for everything else, and reports the median step time in ms
(``TrainResult.history["seconds"].diff()`` after 5 warm-up steps) and the thread count
used (``TrainResult.threads``: what "auto" picked). Two conditions:
  - ``alone``: nothing else started by this script;
  - ``contended``: a competitor subprocess keeps all cores busy: by default a second,
    identical training loop (same encoder, ``threads=os.cpu_count()``, endless steps),
    or with ``--competitor matmul`` a torch matmul loop on all cores. It is started,
    the script waits until it has run its first step plus 2 s, measures, then kills it
    (also on an error, Ctrl-C or SIGTERM).
The process's torch thread setting is set to all cores first, since "auto" picks at most
that many.

Runtime: about 2-4 minutes on a quiet 2-core x86_64 VM (the contended all-core runs are
the slow ones); ``--quick`` (6 steps, 2 warm-up: 4 timed) takes under a minute. On a shared
machine the "alone" numbers include whatever else is running: report them as such.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import machine as _machine
from _common import (
    step_seconds,
    write_csv_atomic,  # benchmarks/ is on sys.path when run as a script
)

OUT = Path(__file__).resolve().parent / "results" / "threads.csv"
ENCODERS = ("set-transformer", "deepsets")

# The competitor: a second identical training loop, printing "ready" after its first step.
_WATCHDOG = """
import os, sys, threading, time
def _watch(parent=os.getppid()):  # exit if the benchmark dies without killing us
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
"""
_TRAIN_COMPETITOR = _WATCHDOG + """
from bayesattn import models
from bayesattn.inference import AmortizedPosterior, train
m = models.get("normal-mean")
net = AmortizedPosterior(m, encoder=sys.argv[1], seed=1)
def cb(step, row, net):
    if step == 1:
        print("ready", flush=True)
train(net, m, steps=10**7, batch_size=128, seq_len=(8, 128), seed=1, device="cpu",
      progress=False, threads=os.cpu_count(), callback=cb)
"""
# ... or a matmul loop on all cores.
_MATMUL_COMPETITOR = _WATCHDOG + """
import torch
torch.set_num_threads(os.cpu_count())
a = torch.randn(1024, 1024)
(a @ a).sum().item()
print("ready", flush=True)
while True:
    a = torch.tanh(a @ a)
"""




class Competitor:
    """A subprocess that keeps all cores busy; a context manager that always kills it."""

    def __init__(self, kind: str, encoder: str, settle_s: float = 2.0,
                 ready_timeout_s: float = 120.0) -> None:
        self.kind, self.encoder = kind, encoder
        self.settle_s, self.ready_timeout_s = settle_s, ready_timeout_s
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Competitor:
        code = _TRAIN_COMPETITOR if self.kind == "train" else _MATMUL_COMPETITOR
        env = dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count()))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, self.encoder], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
        try:
            self._wait_ready()
            time.sleep(self.settle_s)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(self.ready_timeout_s)
        if not got or got[0].strip() != "ready":
            code = self.proc.poll()
            raise RuntimeError(f"competitor ({self.kind}) did not start within "
                               f"{self.ready_timeout_s:.0f} s (exit code {code})")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()  # this one process, by its id
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __exit__(self, *exc) -> None:
        self.kill()


def measure(model, encoder: str, threads, steps: int, warmup: int) -> dict:
    import numpy as np

    step_s, res = step_seconds(model, encoder, steps=steps, warmup=warmup, threads=threads)
    return {"encoder": encoder, "threads_arg": str(threads), "threads_used": int(res.threads),
            "ms_per_step": 1e3 * float(np.median(step_s)),
            "ms_p90": 1e3 * float(np.quantile(step_s, 0.9)),
            "steps_timed": int(step_s.size)}


def _sigterm(signum, frame):  # turn SIGTERM into an exception so the competitor is killed
    raise SystemExit(128 + signum)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 6 steps (2 warm-up); writes nothing unless --out is given")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 40)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5)")
    ap.add_argument("--competitor", choices=("train", "matmul"), default="train")
    ap.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    ap.add_argument("--out", type=Path, default=None,
                    help=f"CSV path (default {OUT.name} in benchmarks/results; none with --quick)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)

    import pandas as pd
    import torch

    from bayesattn import models
    from bayesattn.inference import available_cores

    ncpu = os.cpu_count() or 1
    torch.set_num_threads(ncpu)  # "auto" picks at most torch's current setting
    steps = args.steps or (6 if args.quick else 40)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    model = models.get("normal-mean")
    settings = (1, ncpu, "auto")

    rows = []
    for encoder in args.encoders:
        for condition in ("alone", "contended"):
            t0 = time.perf_counter()
            if condition == "alone":
                for t in settings:
                    rows.append({"condition": condition, **measure(model, encoder, t, steps,
                                                                   warmup)})
            else:
                with Competitor(args.competitor, encoder):
                    for t in settings:
                        rows.append({"condition": condition,
                                     **measure(model, encoder, t, steps, warmup)})
            print(f"  done {encoder} {condition} ({time.perf_counter() - t0:.0f} s)", flush=True)

    df = pd.DataFrame(rows)
    df["competitor"] = df["condition"].map({"alone": "", "contended": args.competitor})
    df["steps"], df["warmup"] = steps, warmup
    df["cpu_count"], df["available_cores"] = ncpu, available_cores()
    df["machine"] = _machine()
    df["torch"] = torch.__version__
    df["quick"] = args.quick
    print(f"\nnormal-mean d=2, batch 128, L in [8, 128], {steps} steps ({warmup} warm-up), "
          f"{_machine()}, competitor: {args.competitor}"
          + (" [--quick: smoke numbers]" if args.quick else ""))
    cols = ["encoder", "condition", "threads_arg", "threads_used", "ms_per_step", "ms_p90"]
    print(df[cols].to_string(index=False, float_format="{:.1f}".format))
    out = args.out if args.out is not None else (None if args.quick else OUT)
    if out is not None:
        write_csv_atomic(df, out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
