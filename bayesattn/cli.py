"""The ``bayesattn`` command.

    bayesattn --version              print ``bayesattn <version>``
    bayesattn models                 list the model zoo
    bayesattn demo [options]         exact vs NUTS posteriors on simulated data
    bayesattn list [NAME]            list the experiments (or describe one)
    bayesattn run NAME [options]     run an experiment into a run folder
    bayesattn sweep NAME... [options]
                                     run a grid of runs (presets x seeds x settings) as
                                     independent jobs and aggregate their verdicts
    bayesattn report DIR             regenerate and print the report of a run folder
    bayesattn rules [NAME...]        print the decision rules (docs/rules.md)
    bayesattn assignment student IN.ipynb OUT.ipynb
                                     write the student version of an assignment notebook

User errors (unknown experiment or preset, unusable output folder, ...) are printed
as one line ``bayesattn: error: ...`` with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from bayesattn._files import write_csv


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
        write_csv(args.out, df)
        print(f"wrote {args.out}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from bayesattn import experiments
    from bayesattn.runner import format_duration

    if args.name is not None:
        e = experiments.get(args.name)
        print(f"{e.name}: {e.title}")
        print(f"claims: {', '.join(e.claims)}")
        print(f"stages: {', '.join(e.stage_names)}")
        print(f"\n{e.description}\n")
        for preset, params in e.presets.items():
            print(f"preset {preset}: {json.dumps(dict(params))}")
            print(f"  estimated CPU time: {experiments.estimate_cpu_seconds(e, preset)}")
        return 0
    names = experiments.names()
    if not names:
        print("no experiments are registered")
        return 0
    rows = [("name", "claims", "presets", "quick CPU", "full CPU (est.)", "title")]
    for name in names:
        e = experiments.get(name)
        quick, full = (experiments.estimate_cpu_seconds(e, p).seconds for p in ("quick", "full"))
        rows.append((e.name, ",".join(e.claims), ",".join(e.presets), format_duration(quick),
                     format_duration(full), e.title))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    print("\nCPU times: one torch thread on the reference 2-core CPU; quick as measured, full "
          "extrapolated (bayesattn list NAME for the basis).")
    return 0


def _parse_sets(items: list[str]) -> dict[str, object]:
    from bayesattn.experiments import InvalidParameterError

    overrides: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InvalidParameterError(
                f"--set expects KEY=VALUE (e.g. --set steps=200); got {item!r}"
            )
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text
    return overrides


def _threads_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from bayesattn import experiments, report

    argv = args.argv if args.argv is not None else sys.argv[1:]
    result = experiments.run(
        args.name, preset=args.preset, seed=args.seed, device=args.device, out=args.out,
        resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
        overrides=_parse_sets(args.set), command=shlex.join(["bayesattn", *argv]),
        threads=args.threads, announce=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if result.headline is not None:
        print(result.headline.to_string(index=False, float_format="{:.3g}".format))
        print()
    print(report.format_verdicts(result.verdicts))
    if result.convergence is not None:
        from bayesattn.runner import summary_line

        print(f"\n{summary_line(result.convergence)}")
    print(f"\nrun folder: {result.out}")
    print(f"report:     {result.report}")
    return 0


def _parse_grid(items: list[str]) -> dict[str, list[object]]:
    from bayesattn.experiments import InvalidParameterError

    grid: dict[str, list[object]] = {}
    for key, value in _parse_sets(items).items():
        if not isinstance(value, list) or not value:
            raise InvalidParameterError(
                f"--grid expects KEY=[V1,V2,...] (a non-empty JSON list, e.g. "
                f"--grid steps=[500,1000]); got {key}={json.dumps(value)}")
        grid[key] = value
    return grid


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bayesattn.sweep import parse_seeds, sweep

    argv = args.argv if args.argv is not None else sys.argv[1:]
    out = args.out if args.out is not None else Path("sweeps") / "-".join(args.names)
    result = sweep(
        args.names, presets=args.preset or ["quick"], seeds=parse_seeds(args.seeds),
        overrides=_parse_sets(args.set), grid=_parse_grid(args.grid), out=out,
        executor=args.executor, jobs=args.jobs, address=args.address, resume=args.resume,
        modules=args.imports, command=["bayesattn", *argv],
        announce=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(result.report.read_text(encoding="utf-8"), end="")
    if result.failed:
        print(f"bayesattn sweep: {len(result.failed)} of {len(result.jobs)} jobs did not "
              f"finish; see {result.out / 'jobs.csv'} and their logs", file=sys.stderr)
        return 1
    return 0


def _cmd_rules(args: argparse.Namespace) -> int:
    from bayesattn import experiments
    from bayesattn.runner import rules_markdown

    names = args.names or experiments.names()
    print(rules_markdown([experiments.get(n) for n in names]), end="")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from bayesattn import report

    path = report.write_report(args.folder)
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def _cmd_assignment(args: argparse.Namespace) -> int:
    from bayesattn.assignments import make_student

    path = make_student(args.source, args.target, overwrite=args.overwrite)
    print(f"wrote the student version {path}")
    return 0


def version() -> str:
    """The installed distribution's version (``importlib.metadata``), else
    ``bayesattn.__version__`` (e.g. sources used without being installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("bayesattn")
    except PackageNotFoundError:
        import bayesattn

        return str(getattr(bayesattn, "__version__", "unknown"))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``bayesattn: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bayesattn: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayesattn", description="Attention on trial against exact Bayesian posteriors."
    )
    parser.add_argument("--version", action="version", version=f"bayesattn {version()}",
                        help="print the version and exit")
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

    lst = sub.add_parser("list", help="list the experiments (or describe one)")
    lst.add_argument("name", nargs="?", default=None, help="describe this experiment")
    lst.set_defaults(func=_cmd_list)

    run = sub.add_parser(
        "run", help="run an experiment into a run folder",
        description="Run an experiment: cached stages, results.csv, verdicts.json, figures/ "
        "and report.md in the run folder.",
    )
    run.add_argument("name", help="experiment name (see `bayesattn list`)")
    run.add_argument("--preset", default="quick",
                     help="smoke (seconds), quick (minutes on a CPU, default) or full (GPU)")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--threads", type=_threads_arg, default="auto", metavar="N|auto",
                     help="torch CPU threads (default auto: the cores idle at the start; "
                          "recorded in config.json)")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default runs/NAME-PRESET-seedSEED)")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out, reusing its finished stages")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (the old one is kept until the new one "
                       "has finished)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a preset parameter (VALUE read as JSON, else as text)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    swp = sub.add_parser(
        "sweep", help="run a grid of runs as independent jobs and aggregate their verdicts",
        description="Run every experiment x preset x seed x --grid combination as its own "
        "`bayesattn run` process (one torch thread each) into OUT/runs/, then write "
        "verdicts.csv, aggregate.csv, figures/ and report.md in OUT. A failed job is "
        "recorded and the others go on; --resume continues (or grows) a sweep.",
    )
    swp.add_argument("names", nargs="+", metavar="NAME", help="experiment names")
    swp.add_argument("--preset", action="append", default=None,
                     help="preset to run (repeat for several; default quick)")
    swp.add_argument("--seeds", default="0", metavar="SEEDS",
                     help="run seeds: a range 0-4, a list 0,3,7 or one seed (default 0)")
    swp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a preset parameter in every job (VALUE read as JSON)")
    swp.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2]",
                     help="cross the sweep with every value of a parameter (a JSON list)")
    swp.add_argument("--out", type=Path, default=None,
                     help="sweep folder (default sweeps/NAME[-NAME...])")
    swp.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="local processes (default) or a Ray cluster (bayesattn[ray])")
    swp.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="local executor: jobs at a time, one core each (default 1)")
    swp.add_argument("--address", default=None,
                     help="ray executor: cluster address (default: start a local Ray runtime)")
    swp.add_argument("--import", dest="imports", action="append", default=[],
                     metavar="MODULE", help="a module that registers your own experiments "
                     "(imported by the sweep and every job; repeatable)")
    swp.add_argument("--resume", action="store_true",
                     help="continue the sweep in --out: keep finished runs, resume the rest")
    swp.set_defaults(func=_cmd_sweep)

    rul = sub.add_parser("rules", help="print the decision rules of the experiments' claims",
                         description="Print every claim's decision rule, each version with "
                         "its SHA-256, as Markdown (docs/rules.md is this output).")
    rul.add_argument("names", nargs="*", metavar="NAME", help="only these experiments")
    rul.set_defaults(func=_cmd_rules)

    rep = sub.add_parser("report", help="regenerate and print the report of a run folder")
    rep.add_argument("folder", type=Path, help="a run folder written by `bayesattn run`")
    rep.set_defaults(func=_cmd_report)

    asg = sub.add_parser("assignment", help="course assignments")
    asg_sub = asg.add_subparsers(dest="action", required=True)
    stu = asg_sub.add_parser(
        "student", help="write the student version of an assignment notebook",
        description="Replace the solutions (cells tagged 'solution', blocks between "
        "'# BEGIN SOLUTION' and '# END SOLUTION') by stubs, keep the checks (cells tagged "
        "'check'), clear all outputs.")
    stu.add_argument("source", type=Path, help="the solution notebook (.ipynb)")
    stu.add_argument("target", type=Path, help="where to write the student notebook")
    stu.add_argument("--overwrite", action="store_true", help="replace TARGET if it exists")
    stu.set_defaults(func=_cmd_assignment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    from bayesattn.assignments import AssignmentError
    from bayesattn.experiments import ExperimentError

    try:
        return int(args.func(args))
    except (ExperimentError, AssignmentError) as exc:
        message = " ".join(str(exc).split())
        print(f"bayesattn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        notes = " ".join(getattr(exc, "__notes__", []))
        print(f"bayesattn: interrupted. {notes}".rstrip(), file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
