"""Amortized posteriors: training throughput and time-to-accuracy, and sbi's NPE.

Prints a table and writes ``benchmarks/results/amortized.csv`` (atomically).

    .venv/bin/python benchmarks/amortized.py [--quick] [--max-seconds 150]

For each model (``concept-mixture`` K=4, d=2 and ``normal-mean`` d=2) and each
encoder (Set Transformer, transformer without positional encoding, DeepSets) it
trains with the exact-KL objective on sequences of L in [8, 128] and records:
  - throughput: training sequences per second (evaluation time excluded);
  - time (training seconds) and simulations until the mean KL(exact || q) on a fixed
    test set of 512 sequences (L drawn in [8, 128]) first falls to <= 1e-2 and <= 1e-3
    (empty when not reached within the time budget).
Then, on ``normal-mean`` with L = 32, the sbi package's NPE (a neural spline flow with
sbi's PermutationInvariantEmbedding) is trained on as many simulations as our Set
Transformer used, from the same simulator (our model's Pyro program), and both are
scored against the exact posterior on 100 test datasets: KL(exact || q) estimated with
1000 exact draws per dataset, and C2ST accuracy (sbi's classifier two-sample test;
0.5 = indistinguishable) on 20 of them. sbi trains with its defaults (early stopping)
but at most 50 epochs, to keep the run under half an hour on 2 cores.
Needs sbi: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bayesattn import models
from bayesattn.inference import AmortizedPosterior, train

OUT = Path(__file__).resolve().parent / "results" / "amortized.csv"
THRESHOLDS = (1e-2, 1e-3)
ENCODERS = ("set-transformer", "transformer", "deepsets")


class _Stop(Exception):
    pass


def _test_set(model, n: int, seed: int, low: int = 8, high: int = 128):
    batch = model.simulate(n, high, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, high + 1, (n,), generator=gen)
    mask = torch.arange(high)[None, :] < lengths[:, None]
    return batch.x, mask, model.exact_posterior(batch.x, mask)


def _mean_kl(net, x, mask, exact) -> float:
    with torch.no_grad():
        q = net.posterior(x, mask)
        if net.model.latent_is_discrete:
            logq = q.logits.double()
            return float((exact.probs * (exact.logits - logq)).sum(-1).mean())
        qd = torch.distributions.MultivariateNormal(
            q.loc.double(), scale_tril=q.scale_tril.double()
        )
        return float(torch.distributions.kl_divergence(exact, qd).mean())


def time_to_accuracy(model, encoder: str, *, max_seconds: float, batch_size: int = 128,
                     eval_every: int = 25, seed: int = 0) -> tuple[dict, AmortizedPosterior]:
    opts = {"dim": 32} if encoder == "deepsets" else {"dim": 32, "num_heads": 4}
    net = AmortizedPosterior(model, encoder=encoder, encoder_options=opts, seed=seed)
    x, mask, exact = _test_set(model, 512, seed=12345)
    state = {"train_s": 0.0, "t": time.perf_counter(), "hit": {}, "kl": np.nan, "steps": 0}

    def callback(step, row, net):
        state["train_s"] += time.perf_counter() - state["t"]
        state["steps"] = step
        if step % eval_every == 0:
            net.eval()
            state["kl"] = _mean_kl(net, x, mask, exact)
            net.train()
            for thr in THRESHOLDS:
                if state["kl"] <= thr and thr not in state["hit"]:
                    state["hit"][thr] = (state["train_s"], step * batch_size)
            if state["kl"] <= min(THRESHOLDS) or state["train_s"] > max_seconds:
                raise _Stop
        state["t"] = time.perf_counter()

    try:
        # A long schedule; the callback stops at the target accuracy or the time budget.
        train(net, model, steps=20_000, batch_size=batch_size, seq_len=(8, 128),
              objective="kl", seed=seed, lr=2e-3, warmup_steps=100, progress=False,
              callback=callback)
    except _Stop:
        pass
    net.eval()
    row = {"model": model.name, "method": f"bayesattn {encoder}", "steps": state["steps"],
           "train_s": state["train_s"],
           "seq_per_s": state["steps"] * batch_size / max(state["train_s"], 1e-9),
           "final_kl": state["kl"]}
    for thr in THRESHOLDS:
        t, sims = state["hit"].get(thr, (np.nan, np.nan))
        row[f"s_to_kl<={thr:g}"] = t
        row[f"sims_to_kl<={thr:g}"] = sims
    return row, net


def compare_with_sbi(model, net: AmortizedPosterior, num_simulations: int, seed: int = 0):
    """sbi NPE with a permutation-invariant embedding vs our net, against the exact posterior."""
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.neural_nets.embedding_nets import FCEmbedding, PermutationInvariantEmbedding
    from sbi.utils.metrics import c2st
    from torch.utils.tensorboard import SummaryWriter

    L, d = 32, model.latent_shape[0]
    train_set = model.simulate(num_simulations, L, seed=seed + 1)
    test = model.simulate(100, L, seed=seed + 2)
    exact = model.exact_posterior(test.x)
    prior = torch.distributions.MultivariateNormal(
        torch.zeros(d), scale_tril=model.params["prior_scale"] * torch.eye(d)
    )
    embedding = PermutationInvariantEmbedding(
        FCEmbedding(input_dim=d, output_dim=32), trial_net_output_dim=32, aggregation_fn="mean",
        output_dim=32,
    )
    estimator = posterior_nn(model="nsf", embedding_net=embedding, z_score_x="none")
    t = time.perf_counter()
    with torch.random.fork_rng(), tempfile.TemporaryDirectory() as logdir:
        torch.manual_seed(seed)
        # sbi logs to ./sbi-logs by default; keep its TensorBoard files out of the tree
        npe = NPE(prior=prior, density_estimator=estimator, show_progress_bars=False,
                  summary_writer=SummaryWriter(logdir))
        npe.append_simulations(train_set.z.float(), train_set.x.float())
        npe.train(show_train_summary=False, max_num_epochs=50)
        posterior = npe.build_posterior()
        sbi_s = time.perf_counter() - t
        kls_sbi, kls_ours, c2_sbi, c2_ours = [], [], [], []
        draws = exact.sample((1000,))  # (1000, 100, d)
        with torch.no_grad():
            q = net.posterior(test.x)
            ours_draws = q.sample((1000,))  # (1000, 100, d)
            logq_ours = q.log_prob(draws.float()).double()  # (1000, 100)
        logp_all = exact.log_prob(draws)  # (1000, 100)
        for i in range(100):
            xi = test.x[i : i + 1].float()
            p_i = draws[:, i]
            logp = logp_all[:, i]
            kls_sbi.append(float((logp - posterior.log_prob(p_i.float(), x=xi).double()).mean()))
            kls_ours.append(float((logp - logq_ours[:, i]).mean()))
            if i < 20:
                s_sbi = posterior.sample((1000,), x=xi, show_progress_bars=False)
                c2_sbi.append(float(c2st(p_i.float(), s_sbi.float())))
                c2_ours.append(float(c2st(p_i.float(), ours_draws[:, i].float())))
    rows = []
    for method, kls, c2 in (("sbi NPE (nsf + PermutationInvariantEmbedding)", kls_sbi, c2_sbi),
                            ("bayesattn set-transformer (same budget)", kls_ours, c2_ours)):
        kls = np.asarray(kls)
        rows.append({"model": model.name, "method": method, "sims": num_simulations,
                     "L": L, "train_s": sbi_s if method.startswith("sbi") else np.nan,
                     "kl_mean": kls.mean(), "kl_se": kls.std(ddof=1) / np.sqrt(kls.size),
                     "c2st_mean": float(np.mean(c2)),
                     "c2st_se": float(np.std(c2, ddof=1) / np.sqrt(len(c2)))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget (a smoke run)")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--no-sbi", action="store_true")
    args = ap.parse_args()
    budget = 10.0 if args.quick else args.max_seconds
    rows, nets = [], {}
    for name, params in (("concept-mixture", {"K": 4, "d": 2}), ("normal-mean", {"d": 2})):
        model = models.get(name, **params)
        for encoder in ENCODERS:
            row, net = time_to_accuracy(model, encoder, max_seconds=budget)
            rows.append(row)
            nets[(name, encoder)] = (net, row)
            print(f"{name:16s} {encoder:16s} {row['seq_per_s']:8.0f} seq/s  "
                  f"final KL {row['final_kl']:.2e}", flush=True)
    table = pd.DataFrame(rows)
    machine = f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}"
    table["machine"] = machine
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(table.drop(columns="machine").to_string(index=False, float_format="{:.4g}".format))
    frames = [table]
    if not args.no_sbi:
        net, row = nets[("normal-mean", "set-transformer")]
        sims = int(row["steps"] * 128)
        cmp_rows = compare_with_sbi(models.get("normal-mean", d=2), net, sims)
        cmp = pd.DataFrame(cmp_rows)
        cmp["machine"] = machine
        print("\nnormal-mean (d=2), L=32, 100 test datasets, same simulation budget:")
        with pd.option_context("display.width", 220, "display.max_columns", 20):
            print(cmp.drop(columns="machine").to_string(index=False,
                                                        float_format="{:.4g}".format))
        frames.append(cmp)
    if not args.quick:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        tmp = OUT.with_suffix(".tmp")
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
        tmp.replace(OUT)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
