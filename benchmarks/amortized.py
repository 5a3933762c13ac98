"""Amortized posteriors on normal-mean (d=2) against the exact posterior, and sbi's NPE.

Every method is trained on the same distribution of set sizes, L ~ ``training_lengths(n,
(8, 128))`` (the library default), and scored by KL(exact || q) at L = 8, 32 and 128 on
200 fixed test datasets per L (the same datasets for every method; mean and standard
error over datasets). Methods:

  - bayesattn ``set-transformer``, ``transformer``, ``deepsets``: ``AmortizedPosterior``
    with default options, ``train(objective="npe", batch_size=128, threads=1)``, fresh
    online simulations every step (each simulation used once). KL in closed form
    between MultivariateNormals (float64); a Monte Carlo estimate with the same exact
    draws as sbi's is reported next to it (``kl_mc_*``).
  - sbi 0.27 NPE: ``posterior_nn("nsf", embedding_net=PermutationInvariantEmbedding(
    FCEmbedding(2, 32), trial_net_output_dim=32, aggregation_fn="mean", output_dim=32),
    z_score_x="none")``, prior MultivariateNormal(0, I), trained on a fixed set of
    simulations NaN-padded to (N, 128, 2). sbi's embedding masks NaN trials and counts
    the real ones; ``append_simulations`` would drop every set with a NaN by default
    (``exclude_invalid_x=True`` in round 0), so it is called with
    ``exclude_invalid_x=False`` (the option sbi's own error message names for missing
    trials encoded as NaN). KL is Monte Carlo: E_p[log p - log q] with 1000 exact draws
    per dataset, ``posterior.log_prob_batched(theta, x, norm_posterior=False)`` with x the
    NaN-padded (B, 128, 2) sets. ``posterior.log_prob(theta, x=x_i)`` cannot be used: it
    rejects NaN in x (``process_x``), and the un-padded (L, 2) set does not match the
    condition shape (128, 2) fixed at training. The script prints a check on one
    dataset: embedding (and log q, where sbi allows it) of the un-padded vs the padded
    set, and log_prob vs log_prob_batched at L = 128 (no padding). The prior has full
    support, so sbi's leakage correction is exactly 1 (norm_posterior=False skips its
    10,000 rejection samples per dataset).

Comparisons (all printed; one CSV, ``benchmarks/results/amortized.csv``, written
atomically, column ``comparison``):

  (a) ``equal-wallclock``, budgets ``--budgets`` (default 60 and 180 s): ours measure the
      step time over 10 steps (once per encoder, before the runs), then train for
      budget / step_time steps (the cosine schedule needs the count up front). sbi
      simulates N = 128 * (set-transformer's steps) sets up front (simulation time
      counted), then trains with ``resume_training`` in rounds of about 10 % of the
      budget until the budget is used or it early-stops. ``train_s``: actual seconds.
  (b) ``equal-sims``: N = ``--sims`` (default 128 * 1000) simulations; ours train
      N / 128 steps of 128 online simulations, sbi trains with its defaults (early
      stopping; ``--sbi-max-epochs`` caps the epochs, default none) on N fixed ones.
  (c) ``time-to-kl``: during the runs with the largest budget, KL at L = 8, 32, 128 on the
      first 64 test datasets every ~10 % of the run for ours (train's callback) and
      after every sbi round; evaluation time is taken off the clock. Figure
      ``benchmarks/results/amortized_time_to_kl.png`` (+ ``.svg``).
  ``headline``: for each L, sbi's best KL (200 datasets) over all its runs, and the first
      training time at which each of our methods reaches it on the time-to-KL curve
      (64 datasets); "goal met" when that is <= 1/5 of the wall clock of sbi's run.

Run (one torch thread throughout; needs sbi: ``pip install -e ".[bench]"``):

    .venv/bin/python benchmarks/amortized.py --budgets 60 180 --sims 128000

Runtime: about 4 methods x sum(budgets) (16 min) + the equal-simulations runs (1000 steps
of each of our encoders, ~2-4 min on one thread, plus sbi until early stopping: ~0.1 ms
per simulation per epoch on one thread, so ~15 s per epoch at 128k simulations and at
least 21 epochs; likely 5-25 min) + evaluation (sbi's Monte Carlo KL costs ~0.1 s per
dataset: ~1 min per sbi run, ~2 min of curve points; ours seconds): roughly 35-60 min with
the defaults (38 min on the project's 2-core CPU, 17 of them sbi's 71 epochs).
``--sbi-max-epochs`` bounds the sbi part. ``--replot`` redraws the figure from the CSV
without training. ``--quick`` is a smoke test (3 s budget, 384 simulations, 24 test
datasets (8 for the curves), sbi capped at 20 epochs; about a minute); it writes its CSV
and figure to a temporary folder (printed), never to ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import machine, step_seconds, write_csv_atomic  # benchmarks/ is on sys.path
from torch.distributions import MultivariateNormal, kl_divergence

from bayesattn import models
from bayesattn.inference import AmortizedPosterior, train, training_lengths

RESULTS = Path(__file__).resolve().parent / "results"
ENCODERS = ("set-transformer", "transformer", "deepsets")
SBI = "sbi NPE (nsf + PermutationInvariantEmbedding)"
LOW, HIGH = 8, 128
TEST_LENGTHS = (8, 32, 128)
BATCH = 128
N_DRAWS = 1000
TEST_SEED = 20_000


@dataclass
class TestSet:
    L: int
    x: torch.Tensor  # (n, L, 2) float64
    xpad: torch.Tensor  # (n, HIGH, 2) float32, NaN after L
    exact: MultivariateNormal  # batch (n,), float64
    draws: torch.Tensor  # (N_DRAWS, n, 2) float64, exact posterior draws
    logp: torch.Tensor  # (N_DRAWS, n) float64


def make_test_sets(model, n: int) -> dict[int, TestSet]:
    sets = {}
    for L in TEST_LENGTHS:
        batch = model.simulate(n, L, seed=TEST_SEED + L)
        exact = model.exact_posterior(batch.x, None)
        with torch.random.fork_rng():
            torch.manual_seed(TEST_SEED + 1000 + L)
            draws = exact.sample((N_DRAWS,))
        xpad = torch.full((n, HIGH, batch.x.shape[-1]), math.nan)
        xpad[:, :L] = batch.x.float()
        sets[L] = TestSet(L, batch.x, xpad, exact, draws, exact.log_prob(draws))
    return sets


def _summary(kls: np.ndarray) -> tuple[float, float]:
    return float(kls.mean()), float(kls.std(ddof=1) / math.sqrt(kls.size))


def kl_ours(net: AmortizedPosterior, ts: TestSet, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form and Monte Carlo KL(exact || q) on the first n datasets."""
    with torch.no_grad():
        q = net.posterior(ts.x[:n])
        q64 = MultivariateNormal(q.loc.double(), scale_tril=q.scale_tril.double())
        exact = MultivariateNormal(ts.exact.loc[:n], scale_tril=ts.exact.scale_tril[:n])
        closed = kl_divergence(exact, q64).numpy()
        mc = (ts.logp[:, :n] - q64.log_prob(ts.draws[:, :n])).mean(0).numpy()
    return closed, mc


def kl_sbi(posterior, ts: TestSet, n: int, chunk: int = 4) -> np.ndarray:
    """Monte Carlo KL(exact || q) on the first n datasets, E_p[log p - log q].

    ``log_prob_batched`` with the NaN-padded sets: ``log_prob`` refuses NaN in x
    (``process_x``) and refuses an un-padded (L, 2) set (condition shape (128, 2)).
    sbi repeats the condition for every draw and embeds each copy, so this costs
    1000 x 128 trial-net passes per dataset; ``chunk`` datasets at a time bound memory.
    """
    out = []
    with torch.no_grad():
        for i in range(0, n, chunk):
            j = min(n, i + chunk)
            logq = posterior.log_prob_batched(ts.draws[:, i:j].float(), x=ts.xpad[i:j],
                                              norm_posterior=False).double()  # (S, j - i)
            out.append((ts.logp[:, i:j] - logq).mean(0).numpy())
    return np.concatenate(out)


def step_time(model, encoder: str, n: int = 10) -> float:
    """Seconds per training step of a throwaway network (2 warm-up steps not counted)."""
    step_s, _ = step_seconds(model, encoder, steps=n + 2, warmup=2, seed=99)
    return float(step_s.mean())


def run_ours(model, encoder: str, steps: int, sets: dict[int, TestSet],
             curve_n: int | None = None, seed: int = 0):
    """Train one of our networks for ``steps``; returns (net, training seconds, curve rows)."""
    net = AmortizedPosterior(model, encoder=encoder, seed=seed)
    marks = set()
    if curve_n:
        marks = {int(s) for s in np.linspace(0, steps, 11).round()[1:] if s >= 1}
    state = {"eval_s": 0.0}
    curve: list[dict] = []

    def callback(step, row, net):
        if step not in marks:
            return
        t0 = time.perf_counter()
        clock = row["seconds"] - state["eval_s"]
        net.eval()
        for L, ts in sets.items():
            closed, _ = kl_ours(net, ts, curve_n)
            curve.append({"method": f"bayesattn {encoder}", "seconds": clock, "step": step,
                          "L": L, "kl": float(closed.mean())})
        net.train()
        state["eval_s"] += time.perf_counter() - t0

    res = train(net, model, steps=steps, batch_size=BATCH, seq_len=(LOW, HIGH),
                objective="npe", device="cpu", progress=False, threads=1, seed=seed,
                callback=callback)
    net.eval()
    return net, res.seconds - state["eval_s"], curve


def _simulate_padded(model, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n sets with L ~ training_lengths, NaN-padded to HIGH: (theta (n, 2), x (n, HIGH, 2))."""
    batch = model.simulate(n, HIGH, seed=seed)
    lengths = training_lengths(n, (LOW, HIGH), seed=seed + 1)
    x = batch.x.float()
    x[torch.arange(HIGH)[None, :] >= lengths[:, None]] = math.nan
    return batch.z.float(), x


def run_sbi(model, n_sims: int, sets: dict[int, TestSet], *, budget: float | None = None,
            max_epochs: int | None = None, curve_n: int | None = None, seed: int = 0):
    """sbi NPE on ``n_sims`` NaN-padded simulations.

    With ``budget``: rounds of ~10 % of the budget (``resume_training``) until the
    wall clock (simulation included, evaluation excluded) reaches it or sbi early-stops.
    Without: sbi's default training (early stopping), at most ``max_epochs``.
    Returns (posterior, seconds, epochs, converged, curve rows).
    """
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.neural_nets.embedding_nets import FCEmbedding, PermutationInvariantEmbedding
    from torch.utils.tensorboard import SummaryWriter

    d = model.latent_shape[0]
    curve: list[dict] = []
    eval_s = 0.0
    t_start = time.perf_counter()
    with (torch.random.fork_rng(), tempfile.TemporaryDirectory() as logdir,
          warnings.catch_warnings()):
        warnings.simplefilter("ignore")  # "max_num_epochs reached" after every round
        torch.manual_seed(seed)
        theta, x = _simulate_padded(model, n_sims, seed=seed + 7)
        prior = MultivariateNormal(torch.zeros(d), torch.eye(d))
        embedding = PermutationInvariantEmbedding(
            FCEmbedding(input_dim=d, output_dim=32), trial_net_output_dim=32,
            aggregation_fn="mean", output_dim=32)
        estimator = posterior_nn(model="nsf", embedding_net=embedding, z_score_x="none")
        # sbi logs to ./sbi-logs by default; keep its TensorBoard files out of the tree
        npe = NPE(prior=prior, density_estimator=estimator, show_progress_bars=False,
                  summary_writer=SummaryWriter(logdir))
        # NaN marks missing trials; don't let sbi drop those sets as invalid (and skip its
        # warning that NaN simulations "will likely" make training fail: the embedding
        # masks them)
        logging.disable(logging.WARNING)
        try:
            npe.append_simulations(theta, x, exclude_invalid_x=False)
        finally:
            logging.disable(logging.NOTSET)

        def fit(max_num_epochs: int, resume: bool) -> bool:
            with contextlib.redirect_stdout(io.StringIO()):  # sbi's "\r converged" print
                npe.train(max_num_epochs=max_num_epochs, resume_training=resume,
                          show_train_summary=False)
            return npe.epoch <= max_num_epochs  # left the loop by early stopping

        def clock() -> float:
            return time.perf_counter() - t_start - eval_s

        if budget is None:
            converged = fit(2**31 - 1 if max_epochs is None else max(1, max_epochs - 1), False)
        else:
            # sbi trains epochs 0..max_num_epochs (max >= 1): the first round is 2 epochs
            epochs, done, converged = 2, 0, False
            while True:
                t0 = time.perf_counter()
                converged = fit(done + epochs - 1, done > 0)
                epoch_s = (time.perf_counter() - t0) / max(1, npe.epoch - done)
                done = npe.epoch
                if curve_n:
                    t_eval, now = time.perf_counter(), clock()
                    posterior = npe.build_posterior()
                    for L, ts in sets.items():
                        curve.append({"method": SBI, "seconds": now, "step": npe.epoch,
                                      "L": L, "kl": float(kl_sbi(posterior, ts, curve_n).mean())})
                    eval_s += time.perf_counter() - t_eval
                left = budget - clock()
                if converged or left < 0.5 * epoch_s:
                    break
                epochs = max(1, int(min(0.1 * budget, left) / epoch_s))
        posterior = npe.build_posterior()
        seconds = clock()
    return posterior, seconds, npe.epoch, converged, curve


def check_padding(posterior, sets: dict[int, TestSet]) -> str:
    """Check the NaN-padded evaluation path against the un-padded set and sbi's log_prob."""
    ts = sets[TEST_LENGTHS[0]]
    est = posterior.posterior_estimator
    theta = ts.draws[:5, :1].float()  # (5, 1, 2)
    with torch.no_grad():
        e_pad, e_raw = est.embedding_net(ts.xpad[:1]), est.embedding_net(ts.x[:1].float())
        lp_pad = posterior.log_prob_batched(theta, x=ts.xpad[:1], norm_posterior=False)
        try:
            lp_raw = est.log_prob(theta, condition=ts.x[:1].float())
            raw = f"max |diff| = {float((lp_pad - lp_raw).abs().max()):.2e}"
        except Exception as err:  # noqa: BLE001 -- report whatever sbi raises
            raw = f"refused ({type(err).__name__}: {str(err)[:80]})"
        try:
            posterior.log_prob(theta[:, 0], x=ts.x[0].float(), norm_posterior=False)
            api = "accepts"
        except Exception as err:  # noqa: BLE001
            api = f"refuses ({type(err).__name__})"
        full = sets[HIGH]  # no padding: log_prob and log_prob_batched must agree
        a = posterior.log_prob(full.draws[:5, 0].float(), x=full.xpad[:1], norm_posterior=False)
        b = posterior.log_prob_batched(full.draws[:5, :1].float(), x=full.xpad[:1],
                                       norm_posterior=False)[:, 0]
    return (f"sbi padding check (dataset 0): L={ts.L}: embedding un-padded vs NaN-padded "
            f"max |diff| = {float((e_pad - e_raw).abs().max()):.2e}; estimator log q "
            f"un-padded vs NaN-padded: {raw}; posterior.log_prob {api} the un-padded set. "
            f"L={HIGH}: log_prob vs log_prob_batched max |diff| = "
            f"{float((a - b).abs().max()):.2e}. KL uses log_prob_batched on NaN-padded x.")


def final_rows(comparison: str, method: str, budget, sims, steps, epochs, seconds,
               sets, kls: dict, estimator: str, extra: dict | None = None) -> list[dict]:
    rows = []
    for L in sets:
        closed, mc = kls[L]
        mean, se = _summary(closed)
        mc_mean, mc_se = _summary(mc)
        rows.append({"comparison": comparison, "method": method, "budget_s": budget,
                     "sims": sims, "steps": steps, "epochs": epochs, "train_s": seconds,
                     "L": L, "n_test": closed.size, "kl_mean": mean, "kl_se": se,
                     "kl_estimator": estimator, "kl_mc_mean": mc_mean, "kl_mc_se": mc_se,
                     **(extra or {})})
    return rows


def score_ours(net, sets, n):
    return {L: kl_ours(net, ts, n) for L, ts in sets.items()}


def score_sbi(posterior, sets, n):
    out, t0 = {}, time.perf_counter()
    for L, ts in sets.items():
        mc = kl_sbi(posterior, ts, n)
        out[L] = (mc, mc)
    print(f"  (sbi KL evaluation on {n} x {len(sets)} datasets: "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def headline(final: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    rows = []
    sbi = final[final["method"] == SBI]
    for L in TEST_LENGTHS:
        s = sbi[sbi["L"] == L]
        if s.empty:
            continue
        best = s.loc[s["kl_mean"].idxmin()]
        for enc in ENCODERS:
            method = f"bayesattn {enc}"
            c = curves[(curves["method"] == method) & (curves["L"] == L)].sort_values("seconds")
            hit = c[c["kl"] <= best["kl_mean"]]
            t = float(hit["seconds"].iloc[0]) if len(hit) else math.nan
            rows.append({"comparison": "headline", "method": method, "L": L,
                         "sbi_best_kl": float(best["kl_mean"]),
                         "sbi_run": f"{best['comparison']} {best['budget_s']:g} s"
                         if best["comparison"] == "equal-wallclock"
                         else f"{best['comparison']} {int(best['sims'])} sims",
                         "sbi_s": float(best["train_s"]), "ours_s_to_sbi_best": t,
                         "ratio": t / float(best["train_s"]),
                         "goal": "goal met" if t <= float(best["train_s"]) / 5
                         else ("not reached" if math.isnan(t) else "goal missed")})
    return pd.DataFrame(rows)


def plot_curves(curves: pd.DataFrame, path: Path, budget: float, n: int,
                final: pd.DataFrame | None = None) -> None:
    """KL against training wall clock, one panel per L. With ``final`` (the end-of-run
    rows), sbi's finished runs are drawn as stars and a dashed line marks a fifth of the
    wall clock of its best run (the goal of issue 12)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    g = sns.relplot(data=curves, x="seconds", y="kl", hue="method", col="L", kind="line",
                    marker="o", height=3.6, aspect=1.05, facet_kws={"sharey": False})
    g.set(xscale="log", yscale="log")
    for ax in g.axes.flat:  # minor-tick labels collide on short ranges
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if final is not None:
        sbi_runs = final[final["method"] == SBI]
        for L, ax in zip(g.col_names, g.axes.flat, strict=True):
            runs = sbi_runs[sbi_runs["L"] == L]
            if runs.empty:
                continue
            ax.scatter(runs["train_s"], runs["kl_mean"], marker="*", s=120, color="black",
                       zorder=5, label="sbi, end of run (200 datasets)")
            best = runs.loc[runs["kl_mean"].idxmin()]
            ax.axvline(best["train_s"] / 5, color="black", ls="--", lw=1,
                       label="1/5 of the best sbi run's time")
            ax.axhline(best["kl_mean"], color="black", ls=":", lw=1,
                       label="best sbi KL")
        handles, labels = g.axes.flat[0].get_legend_handles_labels()
        keep = [i for i, lab in enumerate(labels) if lab.startswith(("sbi, end", "1/5", "best"))]
        g.figure.legend([handles[i] for i in keep], [labels[i] for i in keep],
                        loc="upper center", ncol=3, frameon=False,
                        bbox_to_anchor=(0.42, 0.0))
    g.set_axis_labels("training wall clock (s)", "mean KL(exact || q) (nats)")
    g.set_titles("L = {col_name}")
    g.figure.suptitle(f"normal-mean (d=2): time to KL, {budget:g} s runs, {n} test datasets "
                      "(sbi: Monte Carlo KL)", y=1.03)
    from bayesattn.runner import atomic_path

    for ext in ("png", "svg"):
        with atomic_path(path.with_suffix(f".{ext}")) as tmp:
            g.figure.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")
    plt.close(g.figure)


def _machine() -> str:
    import sbi

    return f"{machine()}, torch {torch.__version__}, sbi {sbi.__version__}"


def _print(title: str, df: pd.DataFrame) -> None:
    print(f"\n{title}")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df.to_string(index=False, float_format="{:.4g}".format), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[60.0, 180.0],
                    help="wall-clock budgets in seconds (comparison a)")
    ap.add_argument("--sims", type=int, default=BATCH * 1000,
                    help="simulations for comparison b")
    ap.add_argument("--sbi-max-epochs", type=int, default=None,
                    help="cap on sbi's epochs in comparison b (default: early stopping only)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: tiny budgets, written to a temporary folder")
    ap.add_argument("--replot", action="store_true",
                    help="redraw the figure from benchmarks/results/amortized.csv (no training)")
    args = ap.parse_args()
    if args.replot:
        table = pd.read_csv(RESULTS / "amortized.csv")
        curves = table[table["comparison"] == "time-to-kl"]
        final = table[table["comparison"].isin(["equal-wallclock", "equal-sims"])]
        n = int(curves["n_test"].iloc[0]) if "n_test" in curves and curves["n_test"].notna().any() \
            else 64
        plot_curves(curves, RESULTS / "amortized_time_to_kl", float(curves["budget_s"].max()), n,
                    final)
        print(f"wrote {RESULTS / 'amortized_time_to_kl.png'} (+ .svg)")
        return
    torch.set_num_threads(1)
    budgets = [3.0] if args.quick else sorted(args.budgets)
    sims = 3 * BATCH if args.quick else args.sims
    sbi_max_epochs = 20 if args.quick else args.sbi_max_epochs
    n_test, curve_n = (24, 8) if args.quick else (200, 64)
    out_dir = Path(tempfile.mkdtemp(prefix="amortized-quick-")) if args.quick else RESULTS
    curve_budget = max(budgets)

    model = models.get("normal-mean", d=2)
    sets = make_test_sets(model, n_test)
    estimators = {"ours": "closed form (float64)", "sbi": f"Monte Carlo, {N_DRAWS} exact draws"}
    rows, curves = [], []
    step_s = {enc: step_time(model, enc) for enc in ENCODERS}
    print("step time (s, 10 steps, 1 thread): "
          + ", ".join(f"{k} {v:.4f}" for k, v in step_s.items()), flush=True)

    checked = False
    for budget in budgets:
        curve = curve_n if budget == curve_budget else None
        st_steps = None
        for enc in ENCODERS:
            steps = max(1, int(budget / step_s[enc]))
            st_steps = steps if enc == "set-transformer" else st_steps
            net, secs, c = run_ours(model, enc, steps, sets, curve)
            curves += c
            rows += final_rows("equal-wallclock", f"bayesattn {enc}", budget, steps * BATCH,
                               steps, math.nan, secs, sets, score_ours(net, sets, n_test),
                               estimators["ours"])
            print(f"budget {budget:g} s  {enc:16s} {steps:6d} steps  {secs:7.1f} s", flush=True)
        n_sbi = BATCH * st_steps
        posterior, secs, epochs, conv, c = run_sbi(model, n_sbi, sets, budget=budget,
                                                   curve_n=curve)
        curves += c
        if not checked:
            print(check_padding(posterior, sets), flush=True)
            checked = True
        rows += final_rows("equal-wallclock", SBI, budget, n_sbi, math.nan, epochs, secs, sets,
                           score_sbi(posterior, sets, n_test), estimators["sbi"],
                           {"sbi_early_stopped": conv})
        print(f"budget {budget:g} s  sbi {n_sbi} sims {epochs} epochs  {secs:7.1f} s "
              f"(early-stopped: {conv})", flush=True)

    steps = max(1, sims // BATCH)
    for enc in ENCODERS:
        net, secs, _ = run_ours(model, enc, steps, sets)
        rows += final_rows("equal-sims", f"bayesattn {enc}", math.nan, steps * BATCH, steps,
                           math.nan, secs, sets, score_ours(net, sets, n_test),
                           estimators["ours"])
        print(f"sims {steps * BATCH}  {enc:16s} {secs:7.1f} s", flush=True)
    posterior, secs, epochs, conv, _ = run_sbi(model, sims, sets, max_epochs=sbi_max_epochs)
    rows += final_rows("equal-sims", SBI, math.nan, sims, math.nan, epochs, secs, sets,
                       score_sbi(posterior, sets, n_test), estimators["sbi"],
                       {"sbi_early_stopped": conv})
    print(f"sims {sims}  sbi {epochs} epochs {secs:7.1f} s (early-stopped: {conv})", flush=True)

    final = pd.DataFrame(rows)
    curves_df = pd.DataFrame(curves)
    cols = ["method", "budget_s", "sims", "steps", "epochs", "train_s", "L", "kl_mean", "kl_se",
            "kl_mc_mean", "kl_mc_se"]
    _print(f"(a) equal wall clock: KL(exact || q) on {n_test} datasets per L "
           f"(ours: closed form; sbi: Monte Carlo, {N_DRAWS} exact draws per dataset; "
           "kl_mc: Monte Carlo with the same draws for all)",
           final[final["comparison"] == "equal-wallclock"][cols])
    _print(f"(b) equal simulations ({sims}): KL(exact || q) on {n_test} datasets per L "
           f"(ours: closed form; sbi: Monte Carlo, {N_DRAWS} exact draws per dataset)",
           final[final["comparison"] == "equal-sims"][[c for c in cols if c != "budget_s"]])
    curves_df["comparison"] = "time-to-kl"
    curves_df["budget_s"] = curve_budget
    curves_df["n_test"] = curve_n
    _print(f"(c) time to KL during the {curve_budget:g} s runs (mean KL on {curve_n} datasets; "
           "seconds exclude evaluation)",
           curves_df.pivot_table(index=["method", "step", "seconds"], columns="L",
                                 values="kl").reset_index())
    head = headline(final, curves_df)
    _print(f"headline: first time ours reach sbi's best KL (over all sbi runs, {n_test} "
           f"datasets; ours on the {curve_budget:g} s curves, {curve_n} datasets); goal: "
           "<= 1/5 of that sbi run's wall clock", head)

    table = pd.concat([final, curves_df, head], ignore_index=True)
    table["machine"] = _machine()
    table["torch_threads"] = torch.get_num_threads()
    out = out_dir / ("amortized-quick.csv" if args.quick else "amortized.csv")
    write_csv_atomic(table, out)
    fig = out_dir / "amortized_time_to_kl.png"
    plot_curves(curves_df, fig, curve_budget, curve_n, final)
    print(f"\nwrote {out}, {fig} (+ .svg)")


if __name__ == "__main__":
    main()
