"""report.md from a run folder, and the generic figure helpers of bayesattn.plots."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn import plots, report

NAME = "toy-report"


def _toy() -> ex.Experiment:
    def draws(ctx):
        rng = np.random.default_rng(ctx.seed_for("draws"))
        n = ctx.params["n"]
        return pd.DataFrame({"L": [2**k for k in range(n)], "value": rng.exponential(size=n)})

    def figures(ctx, results):
        paths = []
        for name in ("b-second", "a-first"):
            fig, ax = plots.subplots(figsize=(3, 2))
            ax.loglog(results["L"], results["value"], marker="o")
            paths += plots.save_figure(fig, ctx.figures_dir, name)
        return paths

    return ex.Experiment(
        name=NAME, title="Report | toy", claims=("P4", "P13"),
        description="Exponential draws against a doubling L.",
        presets={"smoke": {"n": 3}, "quick": {"n": 4}, "full": {"n": 10}},
        stages=(ex.Stage("draws", draws),),
        verdicts=lambda results, params: [
            ex.Verdict("P4", "Error falls in L.", "decreasing", "slope -0.5 [-0.7, -0.3]",
                       "supported", {"slope": -0.5}),
            ex.Verdict("P13", "Extrapolation | beyond training.", "falls beyond 64",
                       "slope +0.1 [-0.2, 0.4]", "inconclusive", {"slope": 0.1}),
        ],
        figures=figures,
        headline=lambda results: results[["L", "value"]].assign(label="x|y"),
    )


@pytest.fixture(params=["quick"])
def run_folder(request, tmp_path):
    """A finished run of the toy (``quick``; parametrize indirectly for another preset)."""
    ex.register(_toy())
    try:
        res = ex.run(NAME, preset=request.param, seed=3, out=tmp_path / "run", device="cpu",
                     progress=False, overrides={"n": 4})
        yield res
    finally:
        ex.unregister(NAME)


def test_report_contents(run_folder):
    text = (run_folder.out / "report.md").read_text()
    assert text.startswith("# Report | toy\n\nExperiment `toy-report`")
    assert "claims P4, P13" in text and "preset `quick`" in text and "seed 3" in text
    assert "Plumbing check" not in text
    assert "| claim | expected | measured | verdict |" in text
    assert "| **P4** Error falls in L. | decreasing | slope -0.5 [-0.7, -0.3] | **supported** |" \
        in text
    assert "Extrapolation \\| beyond training." in text  # pipes escaped inside cells
    assert "## Headline" in text and "| L | value | label |" in text and "x\\|y" in text
    # figures in the order figures() returned them, PNG embedded, SVG not
    assert text.index("![b-second](figures/b-second.png)") < text.index(
        "![a-first](figures/a-first.png)")
    assert ".svg" not in text
    assert "bayesattn run toy-report --preset quick --seed 3 --set n=4" in text
    assert "| torch |" in text and "| arviz |" in text
    assert f"`bayesattn report {shlex.quote(str(run_folder.out))}`" in text


@pytest.mark.parametrize("run_folder", ["smoke"], indirect=True)
def test_smoke_report_is_a_plumbing_check(run_folder):
    text = (run_folder.out / "report.md").read_text()
    title, note = text.split("\n\n")[:2]
    assert title == "# Report | toy"
    assert note.startswith("> **Plumbing check, not evidence.** This run used the `smoke` "
                           "preset") and ex.NOT_ASSESSED in note
    rows = [line for line in text.splitlines() if line.startswith("| **P")]
    assert len(rows) == 2 and all(r.endswith(f"| **{ex.NOT_ASSESSED}** |") for r in rows)
    assert "**supported**" not in text and "**inconclusive**" not in text
    # measured text stays: it shows the plumbing carried the numbers through
    assert "slope -0.5 [-0.7, -0.3]" in rows[0]


def test_old_smoke_folders_are_reported_as_plumbing_checks(run_folder):
    """A run folder written before ``plumbing_check`` was recorded: its smoke preset
    decides, whatever its verdicts.json says."""
    config = json.loads((run_folder.out / "config.json").read_text())
    del config["plumbing_check"]
    config["preset"] = "smoke"
    (run_folder.out / "config.json").write_text(json.dumps(config))
    text = report.render_report(run_folder.out)
    assert "Plumbing check, not evidence" in text and "**supported**" not in text


@pytest.mark.parametrize("run_folder", ["quick", "smoke"], indirect=True)
def test_the_regenerate_hint_works_verbatim(run_folder, tmp_path):
    """The command that report.md gives to regenerate it runs as written, from any
    folder, through a shell, and writes the same report."""
    path = run_folder.out / "report.md"
    original = path.read_text()
    hint = re.search(r"Regenerate this report from the saved files with `([^`]+)`", original)
    assert hint, "no regenerate hint"
    path.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bindir = os.path.dirname(sys.executable)  # where pip put the `bayesattn` script
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(hint.group(1), shell=True, cwd=elsewhere, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert path.read_text() == original == done.stdout


def test_report_is_regenerated_identically(run_folder):
    path = run_folder.out / "report.md"
    original = path.read_bytes()
    path.unlink()
    assert report.write_report(run_folder.out) == path
    assert path.read_bytes() == original
    assert report.render_report(run_folder.out) == original.decode()


def test_not_a_run_folder(tmp_path):
    with pytest.raises(ex.NotARunFolderError, match="not a bayesattn run folder"):
        report.write_report(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "x", "preset": "quick",
                                                      "seed": 0}))
    with pytest.raises(ex.NotARunFolderError, match="unfinished.*--resume"):
        report.write_report(tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_markdown_helpers():
    table = report.markdown_table(["a", "b"], [(1, 0.123456789), ("x|y", float("nan"))])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.1235 |",
                                  "| x\\|y | nan |"]
    frame = pd.DataFrame({"L": np.array([8, 16]), "kl": [0.5, 0.25]})
    assert report.frame_to_markdown(frame).splitlines()[2] == "| 8 | 0.5 |"
    v = ex.Verdict("P4", "statement", "expected", "measured", "not supported")
    text = report.format_verdicts([v])
    assert "P4" in text and "NOT SUPPORTED" in text and "measured: measured" in text


# ------------------------------------------------------------------ plots
def test_save_figure_writes_png_and_deterministic_svg(tmp_path):
    import matplotlib as mpl

    before = dict(mpl.rcParams)
    with plots.set_style(context="paper"):
        fig, ax = plots.subplots(figsize=(3, 2))
        ax.plot([1, 2, 3], [1, 4, 9])
        png, svg = plots.save_figure(fig, tmp_path / "figs", "demo", close=False)
        first = svg.read_bytes()
        plots.save_figure(fig, tmp_path / "figs", "demo")
    assert dict(mpl.rcParams) == before, "set_style must not leak into global rcParams"
    assert png == tmp_path / "figs/demo.png" and svg == tmp_path / "figs/demo.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["demo.png", "demo.svg"]
    with pytest.raises(ValueError, match="without extension"):
        plots.save_figure(fig, tmp_path, "demo.png")
    with pytest.raises(TypeError, match="Figure"):
        plots.save_figure(object(), tmp_path, "x")
    # an Axes (or a seaborn grid) is accepted through its .figure
    assert plots.save_figure(ax, tmp_path, "from-axes")[0].is_file()


def test_importing_plots_and_report_is_light(tmp_path):
    code = ("import sys, bayesattn.plots, bayesattn.report, bayesattn.experiments;"
            "print(sorted(m for m in ('matplotlib', 'seaborn', 'torch', 'jax', 'arviz')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
