"""The ``bayesattn`` command.

    bayesattn models                 list the model zoo
    bayesattn demo [options]         exact vs NUTS posteriors on simulated data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_models(args: argparse.Namespace) -> int:
    from bayesattn import models

    for name in models.names():
        m = models.get(name)
        kind = "exact" if m.has_exact_posterior else "MCMC"
        print(
            f"{name:24s} z{tuple(m.latent_shape)!s:10s} x{tuple(m.token_shape)!s:8s} "
            f"ground truth: {kind}"
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from bayesattn import models
    from bayesattn.demo import format_table, run_demo

    unknown = [n for n in args.models if n not in models.names()]
    if unknown:
        print(f"bayesattn demo: unknown model(s) {unknown}; known: {models.names()}",
              file=sys.stderr)
        return 2
    if args.out is not None and args.out.exists():
        print(f"bayesattn demo: {args.out} exists; choose another --out path.", file=sys.stderr)
        return 2
    print(
        f"Simulating {args.num_sequences} sequences of length {args.seq_len} per model; "
        f"exact posterior vs NumPyro NUTS (4 chains x {args.num_samples} draws, float64)...",
        flush=True,
    )
    df = run_demo(
        tuple(args.models), num_sequences=args.num_sequences, seq_len=args.seq_len,
        seed=args.seed, num_samples=args.num_samples,
    )
    print(format_table(df))
    seconds = df.groupby("model", sort=False)["nuts_seconds"].first()
    print("\nNUTS wall time per model (incl. compilation): "
          + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()))
    print(f"max |z_score| = {df['z_score'].abs().max():.2f} over {len(df)} coordinates "
          "(NUTS mean minus exact mean, in Monte Carlo standard errors)")
    if args.out is not None:
        tmp = args.out.with_name(args.out.name + ".tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(args.out)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesattn", description="Attention on trial against exact Bayesian posteriors."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the model zoo").set_defaults(func=_cmd_models)
    from bayesattn.demo import DEFAULT_MODELS

    demo = sub.add_parser("demo", help="exact vs NUTS posteriors on simulated data")
    demo.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME")
    demo.add_argument("--num-sequences", type=int, default=4)
    demo.add_argument("--seq-len", type=int, default=32)
    demo.add_argument("--num-samples", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
