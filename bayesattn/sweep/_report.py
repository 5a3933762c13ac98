"""A sweep's aggregate report (``report.md``) and its figure (each claim's verdict per seed)."""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bayesattn.runner import NOT_ASSESSED, markdown_table

from ._aggregate import VERDICT_ORDER

#: Colours of the verdict grid (seaborn "colorblind" hues; grey for what ran no claim).
COLOURS = {"supported": "#029e73", "not supported": "#d55e00", "inconclusive": "#ece133",
           NOT_ASSESSED: "#cfcfcf", "no run": "#ffffff"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def draw_verdict_grid(seed_rows: Sequence[dict[str, Any]], seeds: Sequence[int],
                      folder: Path) -> list[Path]:
    """Claims (rows) x seeds (columns), coloured by verdict, annotated with the key number;
    a seed whose run did not finish is a white "no run" cell."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from bayesattn import plots

    frame = pd.DataFrame(list(seed_rows))
    frame["row"] = (frame["entry"] + ": " + frame["experiment"] + " / " + frame["preset"]
                    + frame["variant"].map(lambda v: "" if v == "default" else f" [{v}]"))
    rows = list(dict.fromkeys(frame["row"]))
    seeds = sorted(set(seeds))
    names = [*VERDICT_ORDER, "no run"]
    verdict = frame.pivot_table(index="row", columns="seed", values="verdict",
                                aggfunc="first").reindex(index=rows, columns=seeds)
    keys = frame.pivot_table(index="row", columns="seed", values="key_value",
                             aggfunc="first").reindex(index=rows, columns=seeds)
    codes = verdict.apply(lambda col: col.map(
        lambda v: names.index(v) if isinstance(v, str) else names.index("no run")))
    labels = keys.apply(lambda col: col.map(lambda v: "" if pd.isna(v) else f"{v:.2g}"))
    label_width = max(len(r) for r in rows)
    size = (2.8 + 0.075 * label_width + 0.7 * len(seeds), 1.5 + 0.4 * len(rows))
    with plots.set_style("white"):
        fig, ax = plots.subplots(figsize=size)
        sns.heatmap(codes.astype(float), ax=ax, cbar=False, annot=labels, fmt="",
                    cmap=ListedColormap([COLOURS[n] for n in names]), vmin=-0.5,
                    vmax=len(names) - 0.5, annot_kws={"fontsize": 8, "color": "black"},
                    linewidths=1, linecolor="#bbbbbb")
        ax.tick_params(axis="y", rotation=0)
        ax.set_xlabel("run seed")
        ax.set_ylabel("claim: experiment / preset [overrides]")
        ax.set_title("Verdict per claim and seed\n(cell text: the verdict's key number)",
                     fontsize=11)
        present = [n for n in names if (codes == names.index(n)).any().any()]
        ax.legend(handles=[Patch(facecolor=COLOURS[n], edgecolor="#bbbbbb", label=n)
                           for n in present], loc="upper left", bbox_to_anchor=(1.02, 1),
                  frameon=False, title="verdict")
        return plots.save_figure(fig, folder, "verdicts-by-seed")


def render(
    *, out: Path, aggregate: Sequence[dict[str, Any]], outcomes: Sequence[dict[str, Any]],
    command: Sequence[str], figures: Sequence[Path],
    pooled: Sequence[dict[str, Any]] = (),
) -> str:
    """The text of ``report.md``."""
    done = sum(o["status"] in ("done", "reused") for o in outcomes)
    failed = [o for o in outcomes if o["status"] not in ("done", "reused", "pending")]
    pending = [o for o in outcomes if o["status"] == "pending"]
    lines = ["# Sweep report", "",
             f"{len(outcomes)} jobs: {done} finished, {len(failed)} failed, "
             f"{len(pending)} not run. Rerun or continue with:", "",
             "```", shlex.join(command), "```", ""]
    if aggregate:
        lines += [
            "## Verdicts across seeds", "",
            "Agreement: the fraction of seeds whose verdict is the most common one "
            "(`split` when two verdicts tie). Key number: the number the claim's rule "
            "names, else the first one the verdict reports, as median [min, max] over "
            "seeds, and its mean with a Student-t 95% interval over seeds (training "
            "randomness included).", "",
            markdown_table(
                ["claim", "experiment", "preset", "overrides", "rule", "seeds", "majority",
                 "agreement", "verdicts", "key number", "median [min, max]",
                 "mean [t 95% CI]"],
                [[a["entry"], a["experiment"], a["preset"], a["variant"],
                  a["rule"] + (" (sanity)" if a["kind"] == "sanity" else ""), a["seeds"],
                  a["majority"], f"{a['agreement']:.0%}",
                  ", ".join(f"{a[v]} {v}" for v in VERDICT_ORDER if a[v]),
                  a["key"] or "n/a",
                  f"{_fmt(a['key_median'])} [{_fmt(a['key_min'])}, {_fmt(a['key_max'])}]",
                  f"{_fmt(a['key_mean'])} [{_fmt(a['key_ci_low'])}, {_fmt(a['key_ci_high'])}]"]
                 for a in aggregate]),
            "",
        ]
    if pooled:
        lines += [
            "## Verdicts from all seeds together", "",
            "Decided from every finished seed at once, under today's rule: by the rule "
            "itself where it is code (each cell's mean over seeds with a Student-t 95% "
            "interval, Holm where the rule says so), else by the experiment's "
            "`pooled_verdicts`. Stale when a run applied another version of the rule; "
            "provisional when a run's rules were not committed first. The last column is "
            "each cell's minimum detectable effect (distance from the rule's threshold "
            "found with 80% power at this number of seeds).", "",
            markdown_table(["claim", "experiment", "preset", "overrides", "seeds", "rule",
                            "verdict", "measured", "detectable effect"],
                           [[p["entry"], p["experiment"], p["preset"], p["variant"],
                             p["seeds"],
                             "" if p["rule_version"] is None else
                             f"v{p['rule_version']} ({p['rule_kind']})",
                             p["verdict"] + ("" if p["status"] in ("current", "no rules")
                                             else f" ({p['status']})"),
                             p["measured"], _detectable(p["numbers"])] for p in pooled]),
            "",
        ]
    for fig in figures:
        if fig.suffix == ".png":
            lines += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
    if failed or pending:
        lines += ["## Jobs that did not finish", "",
                  markdown_table(["job", "status", "exit status", "log", "last line"],
                                 [[o["folder"], o["status"], _fmt(o["returncode"]), o["log"],
                                   o["message"]] for o in [*failed, *pending]]), ""]
    lines += ["Files: `sweep.json` (the grid), `jobs.csv` (each job's status), "
              "`verdicts.csv` (claim x seed), `aggregate.csv` (the first table), "
              + ("`pooled.csv` (verdicts from all seeds), " if pooled else "") + "`runs/` (one "
              "run folder per job, as `bayesattn run` writes it), `logs/`.", ""]
    return "\n".join(lines)


def _detectable(numbers: str, most: int = 4) -> str:
    """``cell: MDE`` for the first ``most`` cells of a pooled verdict's numbers."""
    import json

    found = [(k[:-len("_mde")], v) for k, v in json.loads(numbers or "{}").items()
             if k.endswith("_mde")]
    text = "; ".join(f"{k}: {_fmt(v)}" for k, v in found[:most])
    return text + (f"; ... ({len(found)} cells)" if len(found) > most else "") or "n/a"

