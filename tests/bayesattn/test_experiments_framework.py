"""The experiment machinery: registry, runner, run folder, resume, overwrite, errors.

A toy experiment (numpy + torch random draws, an ArviZ artifact, a figure) stands in
for the scientific experiments; it is registered per test and unregistered after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn import plots

NAME = "toy-framework"


def make_toy(name: str = NAME, calls: Counter | None = None, fail: set | None = None):
    """Three stages: simulate (numpy), fit (torch), summarise (reads artifacts)."""
    calls = Counter() if calls is None else calls
    fail = set() if fail is None else fail

    def simulate(ctx):
        import arviz as az

        calls["simulate"] += 1
        rng = np.random.default_rng(ctx.seed_for("simulate"))
        n = ctx.params["n"]
        idata = az.from_dict(posterior={"mu": rng.normal(size=(2, 5))})
        frame = pd.DataFrame({"i": np.arange(n), "x": rng.normal(size=n)})
        return ex.StageOutput(frame, {"draws": idata, "grid": np.arange(3.0),
                                      "meta": {"n": n}, "extra": frame.head(2)})

    def fit(ctx):
        import torch

        calls["fit"] += 1
        if "fit" in fail:
            fail.discard("fit")
            raise RuntimeError("simulated interruption")
        g = torch.Generator().manual_seed(ctx.seed_for("fit"))
        w = torch.randn(3, generator=g, dtype=torch.float64)
        net = torch.nn.Linear(2, 1)
        x = ctx.results["simulate"]["x"].to_numpy()
        frame = pd.DataFrame({"metric": ["x_mean", "w0"], "value": [x.mean(), float(w[0])]})
        return ex.StageOutput(frame, {"weights": {"w": w}, "net": net})

    def summarise(ctx):
        calls["summarise"] += 1
        w = ctx.artifact("fit", "weights")["w"]
        draws = ctx.artifacts["simulate"]["draws"]
        assert set(ctx.artifacts["fit"]["net"]) == {"weight", "bias"}
        assert ctx.artifact("simulate", "meta") == {"n": ctx.params["n"]}
        assert ctx.artifact("simulate", "grid").tolist() == [0.0, 1.0, 2.0]
        assert len(ctx.artifact("simulate", "extra")) == 2
        return pd.DataFrame({"metric": ["w_norm", "mu_mean"],
                             "value": [float(w.norm()), float(draws.posterior["mu"].mean())]})

    def verdicts(results, params):
        norm = float(results.loc[results["metric"] == "w_norm", "value"].iloc[0])
        return [ex.Verdict("P0", "The toy norm is positive.", "positive",
                           f"norm {norm:.3f} with n = {params['n']}",
                           "supported" if norm > 0 else "not supported", {"norm": norm})]

    def figures(ctx, results):
        fig, ax = plots.subplots(figsize=(3, 2))
        ax.plot(results["value"].dropna().to_numpy(), marker="o")
        return plots.save_figure(fig, ctx.figures_dir, "toy")

    def headline(results):
        return results[results["stage"] == "summarise"][["metric", "value"]]

    return ex.Experiment(
        name=name, title="Toy experiment", claims=("P0",), description="A toy for tests.",
        presets={"smoke": {"n": 5}, "quick": {"n": 7}, "full": {"n": 100}},
        stages=(ex.Stage("simulate", simulate), ex.Stage("fit", fit),
                ex.Stage("summarise", summarise)),
        verdicts=verdicts, figures=figures, headline=headline,
    )


@pytest.fixture
def toy():
    calls, fail = Counter(), set()
    exp = ex.register(make_toy(calls=calls, fail=fail))
    yield exp, calls, fail
    ex.unregister(NAME)


def _run(out, **kw):
    kw.setdefault("preset", "smoke")
    return ex.run(NAME, out=out, device="cpu", progress=False, **kw)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ run folder
def test_run_writes_every_file(toy, tmp_path):
    out = tmp_path / "run"
    res = _run(out, seed=3)
    for rel in ("config.json", "results.csv", "headline.csv", "verdicts.json", "manifest.json",
                "report.md", "figures/toy.png", "figures/toy.svg",
                "posteriors/simulate-draws.nc", "models/fit-weights.pt", "models/fit-net.pt",
                "arrays/simulate-grid.npy", "artifacts/simulate-meta.json",
                "tables/simulate-extra.csv", *(f"stages/{s}.{e}" for s in
                                               ("simulate", "fit", "summarise")
                                               for e in ("csv", "json"))):
        assert (out / rel).is_file(), rel
    assert res.out == out and res.report == out / "report.md"
    assert res.figures == [out / "figures/toy.png", out / "figures/toy.svg"]
    assert list(res.results.columns[:1]) == ["stage"]
    assert res.results["stage"].value_counts().to_dict() == {"simulate": 5, "fit": 2,
                                                             "summarise": 2}
    assert res.headline["metric"].tolist() == ["w_norm", "mu_mean"]
    # smoke: a plumbing check; the rule's outcome is kept apart from the verdict
    assert [v.verdict for v in res.verdicts] == [ex.NOT_ASSESSED]
    assert [v.smoke_rule_outcome for v in res.verdicts] == ["supported"]
    cfg = ex.load_run(out)[0]
    assert (cfg["experiment"], cfg["preset"], cfg["params"], cfg["seed"], cfg["device"]) == (
        NAME, "smoke", {"n": 5}, 3, "cpu")
    assert {"bayesattn", "torch", "pyro-ppl", "numpyro", "jax", "numpy", "pandas", "arviz",
            "seaborn"} <= set(cfg["versions"])
    assert cfg["python"] and cfg["platform"] and "git" in cfg and cfg["created"]
    assert not list(tmp_path.glob(".*")), "no temporary files left beside the run"
    assert [p.name for p in out.rglob(".*")] == [".bayesattn-run"], "only the run marker"
    _, results, verdicts = ex.load_run(out)
    assert results.equals(res.results) and verdicts == res.verdicts


def test_default_out_folder(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = ex.run(NAME, preset="smoke", seed=2, device="cpu", progress=False)
    assert res.out == tmp_path / "runs" / f"{NAME}-smoke-seed2"
    assert (res.out / "results.csv").is_file()


def test_same_seed_same_bytes_different_seed_different(toy, tmp_path):
    a = _run(tmp_path / "a", seed=1).out / "results.csv"
    b = _run(tmp_path / "b", seed=1).out / "results.csv"
    c = _run(tmp_path / "c", seed=2).out / "results.csv"
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    verdicts = [(tmp_path / f"{d}/verdicts.json").read_bytes() for d in "ab"]
    assert verdicts[0] == verdicts[1]
    # saved networks, tensors and arrays too (the temp file's name is not in the archive)
    # (the toy's fit-net is an unseeded nn.Linear: its weights differ by design)
    for rel in ("models/fit-weights.pt", "arrays/simulate-grid.npy"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_seed_for_is_stable_and_per_stage(toy):
    ctx = ex.RunContext(experiment=toy[0], seed=5)
    text = "\x1f".join(["5", "fit"]).encode()
    expected = int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & 0x7FFF_FFFF
    assert ctx.seed_for("fit") == expected
    assert ctx.seed_for("fit") != ctx.seed_for("simulate")
    assert ctx.seed_for("fit", 8) != ctx.seed_for("fit", 16)
    assert ex.RunContext(experiment=toy[0], seed=6).seed_for("fit") != expected
    assert 0 <= expected < 2**31


# ------------------------------------------------------------------ resume / overwrite
def test_resume_recomputes_only_unfinished_stages(toy, tmp_path):
    _, calls, fail = toy
    fail.add("fit")
    with pytest.raises(RuntimeError, match="simulated interruption") as info:
        _run(tmp_path / "run")
    assert any("--resume" in note for note in info.value.__notes__)
    assert calls == Counter(simulate=1, fit=1)
    assert (tmp_path / "run/stages/simulate.json").is_file()
    assert not (tmp_path / "run/stages/fit.json").exists()
    with pytest.raises(ex.OutputExistsError, match="unfinished run"):
        _run(tmp_path / "run")
    res = _run(tmp_path / "run", resume=True)
    assert calls == Counter(simulate=1, fit=2, summarise=1)
    manifest = ex.load_run(res.out)[0]
    assert len(manifest["resumed"]) == 1
    fresh = _run(tmp_path / "fresh")
    assert (res.out / "results.csv").read_bytes() == (fresh.out / "results.csv").read_bytes()
    # resuming a finished run recomputes nothing and reproduces the same files
    before = (res.out / "results.csv").read_bytes()
    _run(tmp_path / "run", resume=True)
    assert calls == Counter(simulate=2, fit=3, summarise=2)  # only the `fresh` run added calls
    assert (res.out / "results.csv").read_bytes() == before


def test_resume_refuses_other_settings(toy, tmp_path):
    _run(tmp_path / "run", seed=1)
    before = _snapshot(tmp_path / "run")
    with pytest.raises(ex.ResumeMismatchError, match=r"n=5 \(asked: 9\)"):
        _run(tmp_path / "run", seed=1, resume=True, overrides={"n": 9})
    with pytest.raises(ex.ResumeMismatchError, match="seed"):
        _run(tmp_path / "run", seed=2, resume=True)
    with pytest.raises(ex.ResumeMismatchError, match="preset"):
        _run(tmp_path / "run", seed=1, preset="quick", resume=True)
    assert _snapshot(tmp_path / "run") == before


def test_overwrite_keeps_old_folder_when_new_run_fails(toy, tmp_path):
    _, calls, fail = toy
    out = tmp_path / "run"
    _run(out, seed=1)
    before = _snapshot(out)
    fail.add("fit")
    with pytest.raises(RuntimeError, match="simulated interruption") as info:
        _run(out, seed=2, overwrite=True)
    assert any("untouched" in note for note in info.value.__notes__)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "temporary folder removed"
    res = _run(out, seed=2, overwrite=True)
    assert res.out == out and res.figures[0] == out / "figures/toy.png"
    assert ex.load_run(out)[0]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (out / "results.csv").read_bytes() != before["results.csv"]


def test_existing_folder_without_flags_is_refused_untouched(toy, tmp_path):
    out = tmp_path / "run"
    _run(out)
    before = _snapshot(out)
    with pytest.raises(ex.OutputExistsError, match="--resume.*--overwrite"):
        _run(out)
    assert _snapshot(out) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for flags in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(ex.OutputExistsError, match="no bayesattn run"):
            _run(other, **flags)
    assert (other / "notes.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(ex.OutputExistsError, match="is a file"):
        _run(tmp_path / "file", overwrite=True)
    with pytest.raises(ex.ExperimentError, match="exclude each other"):
        _run(out, resume=True, overwrite=True)


def test_empty_existing_folder_is_used(toy, tmp_path):
    (tmp_path / "run").mkdir()
    assert (_run(tmp_path / "run").out / "report.md").is_file()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions do not bind root")
def test_unwritable_folder_errors_before_any_computation(toy, tmp_path):
    _, calls, _ = toy
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(ex.OutputNotWritableError, match="cannot write"):
            _run(parent / "run")
    finally:
        parent.chmod(0o700)
    assert calls == Counter()


def test_permission_error_errors_before_any_computation(toy, tmp_path, monkeypatch):
    """The same check as above, for root: the probe write is refused."""
    _, calls, _ = toy
    real = Path.write_bytes

    def refuse(self, data):
        if self.name.startswith(".write-probe"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(ex.OutputNotWritableError, match="Permission denied"):
        _run(tmp_path / "run")
    assert calls == Counter() and not (tmp_path / "run").exists()


def test_folder_below_a_file_errors_before_any_computation(toy, tmp_path):
    _, calls, _ = toy
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ex.OutputNotWritableError, match="cannot write"):
        _run(tmp_path / "plain" / "run")
    assert calls == Counter()


# ------------------------------------------------------------------ bad input
def test_unknown_experiment_suggests_close_names(toy):
    with pytest.raises(ex.UnknownExperimentError, match=f"did you mean '{NAME}'"):
        ex.get("toy-framwork")
    with pytest.raises(ex.UnknownExperimentError, match="bayesattn list"):
        ex.run("zzz-nothing-like-it", out="/nonexistent", progress=False)
    assert issubclass(ex.UnknownExperimentError, ValueError)


def test_unknown_preset_lists_known_ones(toy, tmp_path):
    with pytest.raises(ex.UnknownPresetError, match="smoke, quick, full"):
        _run(tmp_path / "run", preset="huge")
    assert not (tmp_path / "run").exists()


def test_overrides_are_checked(toy, tmp_path):
    with pytest.raises(ex.InvalidParameterError, match="no parameter 'm'.*n"):
        _run(tmp_path / "a", overrides={"m": 1})
    with pytest.raises(ex.InvalidParameterError, match="'n' expects an int like 5; got 'many'"):
        _run(tmp_path / "b", overrides={"n": "many"})
    res = _run(tmp_path / "c", overrides={"n": 3.0})
    cfg = ex.load_run(res.out)[0]
    assert cfg["params"] == {"n": 3} and cfg["overrides"] == {"n": 3}
    assert (res.results["stage"] == "simulate").sum() == 3
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(("word", "expected"), [
    ("int", "an int"), ("float", "a float"), ("list", "a list"), ("ndarray", "an ndarray"),
    ("Exponential", "an Exponential"), ("Uniform", "a Uniform"), ("Independent", "an Independent"),
    ("OneHotCategorical", "a OneHotCategorical"), ("str", "a str"), ("object", "an object"),
])
def test_messages_use_the_right_article(word, expected):
    from bayesattn._text import a_or_an

    assert a_or_an(word) == expected


def test_bad_seed_and_device(toy, tmp_path):
    import torch

    with pytest.raises(ex.ExperimentError, match="seed must be an integer >= 0"):
        _run(tmp_path / "a", seed=-1)
    with pytest.raises(ex.DeviceUnavailableError, match="'auto', 'cpu'"):
        ex.run(NAME, preset="smoke", out=tmp_path / "b", device="gpu", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ex.DeviceUnavailableError, match="--device cpu"):
            ex.run(NAME, preset="smoke", out=tmp_path / "c", device="cuda", progress=False)
    assert not list(tmp_path.iterdir())


def test_stage_output_is_checked(tmp_path):
    def no_frame(ctx):
        return [1, 2]

    def reserved(ctx):
        return pd.DataFrame({"stage": [1]})

    for fn, err, match in ((no_frame, TypeError, "DataFrame or StageOutput"),
                           (reserved, ValueError, "reserves")):
        exp = ex.Experiment(name="bad-stage", title="t", claims=("P0",), description="d",
                            presets={"smoke": {}, "quick": {}, "full": {}},
                            stages=(ex.Stage("one", fn),), verdicts=lambda r, p: [])
        with pytest.raises(err, match=match):
            ex.run(exp, preset="smoke", out=tmp_path / fn.__name__, device="cpu",
                   progress=False)


def test_named_index_is_kept_and_empty_frames_work(tmp_path):
    def indexed(ctx):
        return pd.DataFrame({"value": [1.0, 2.0]}, index=pd.Index([8, 16], name="L"))

    def empty(ctx):
        return pd.DataFrame()

    exp = ex.Experiment(name="index-check", title="t", claims=("P0",), description="d",
                        presets={"smoke": {}, "quick": {}, "full": {}},
                        stages=(ex.Stage("indexed", indexed), ex.Stage("empty", empty)),
                        verdicts=lambda r, p: [])
    res = ex.run(exp, preset="smoke", out=tmp_path / "run", device="cpu", progress=False)
    assert res.results.columns.tolist() == ["stage", "L", "value"]
    assert res.results["L"].tolist() == [8, 16] and res.verdicts == [] and res.headline is None


# ------------------------------------------------------------------ types and registry
def test_verdict_validation_and_roundtrip():
    with pytest.raises(ValueError, match="supported"):
        ex.Verdict("P4", "s", "e", "m", "probably")
    with pytest.raises(ValueError, match="claim"):
        ex.Verdict("", "s", "e", "m", "supported")
    with pytest.raises(TypeError, match="numbers"):
        ex.Verdict("P4", "s", "e", "m", "supported", {"x": "abc"})
    v = ex.Verdict("P4", "s", "e", "m", "inconclusive", {"a": 1, "b": float("nan"),
                                                         "c": float("-inf")})
    d = v.to_dict()
    assert d["numbers"] == {"a": 1.0, "b": "nan", "c": "-inf"}
    back = ex.Verdict.from_dict(d)
    assert back.numbers["a"] == 1.0 and math.isnan(back.numbers["b"])
    assert back.numbers["c"] == -math.inf and back.claim == "P4"
    assert "smoke_rule_outcome" not in d and back.smoke_rule_outcome is None
    smoke = ex.Verdict("P4", "s", "e", "m", ex.NOT_ASSESSED, smoke_rule_outcome="supported")
    assert smoke.to_dict()["smoke_rule_outcome"] == "supported"
    assert ex.Verdict.from_dict(smoke.to_dict()) == smoke
    with pytest.raises(ValueError, match="smoke_rule_outcome"):
        ex.Verdict("P4", "s", "e", "m", "supported", smoke_rule_outcome="supported")
    with pytest.raises(ValueError, match="smoke_rule_outcome"):
        ex.Verdict("P4", "s", "e", "m", ex.NOT_ASSESSED, smoke_rule_outcome=ex.NOT_ASSESSED)


@pytest.mark.parametrize(("preset", "overrides", "plumbing"), [
    ("smoke", None, True),
    ("smoke", {"n": 7}, True),    # overrides do not make a smoke run evidence
    ("quick", None, False),
    ("quick", {"n": 5}, True),    # quick with the smoke preset's settings
    ("full", {"n": 6}, False),
])
def test_only_runs_beyond_the_smoke_settings_assess_claims(toy, tmp_path, preset, overrides,
                                                          plumbing):
    res = _run(tmp_path / "r", preset=preset, overrides=overrides)
    (v,) = res.verdicts
    config = ex.load_run(res.out)[0]
    assert config["plumbing_check"] is plumbing
    report = (res.out / "report.md").read_text()
    if plumbing:
        assert (v.verdict, v.smoke_rule_outcome) == (ex.NOT_ASSESSED, "supported")
        assert "Plumbing check, not evidence" in report.split("## Verdicts")[0]
        assert f"| **{ex.NOT_ASSESSED}** |" in report and "**supported**" not in report
    else:
        assert (v.verdict, v.smoke_rule_outcome) == ("supported", None)
        assert "Plumbing check" not in report and "| **supported** |" in report
        assert "smoke_rule_outcome" not in (res.out / "verdicts.json").read_text()


def test_verdicts_may_not_claim_to_be_unassessed(tmp_path):
    exp = ex.Experiment(name="toy-unassessed", title="t", claims=("P0",), description="d",
                        presets={"smoke": {}, "quick": {}, "full": {}},
                        stages=(ex.Stage("one", lambda ctx: pd.DataFrame({"x": [1]})),),
                        verdicts=lambda r, p: [ex.Verdict("P0", "s", "e", "m", ex.NOT_ASSESSED)])
    with pytest.raises(TypeError, match="verdict in"):
        ex.run(exp, preset="quick", out=tmp_path / "r", device="cpu", progress=False)


def test_experiment_validation():
    base = dict(name="ok-name", title="t", claims=("P1",), description="d",
                presets={"smoke": {}, "quick": {}, "full": {}},
                stages=(ex.Stage("one", lambda ctx: pd.DataFrame()),),
                verdicts=lambda r, p: [])
    exp = ex.Experiment(**base)
    assert exp.claims == ("P1",) and exp.stage_names == ("one",)
    with pytest.raises(TypeError):
        exp.presets["smoke"]["n"] = 1  # presets are read-only
    for change, err in (({"name": "Not_Kebab"}, ValueError),
                        ({"presets": {"smoke": {}, "quick": {}}}, ValueError),
                        ({"presets": {"smoke": {"f": object()}, "quick": {}, "full": {}}},
                         TypeError),
                        ({"claims": ()}, ValueError),
                        ({"stages": (ex.Stage("a", print), ex.Stage("a", print))}, ValueError),
                        ({"verdicts": None}, TypeError)):
        with pytest.raises(err):
            ex.Experiment(**{**base, **change})
    with pytest.raises(ValueError, match="Stage name"):
        ex.Stage("Bad Name", print)


def test_register_plain_decorator_duplicates_and_unregister():
    @ex.register
    def made():
        return make_toy(name="toy-decorated")

    try:
        assert isinstance(made, ex.Experiment) and ex.get("toy-decorated") is made
        assert "toy-decorated" in ex.names()
        assert ex.register(made) is made  # registering the same object again is harmless
        with pytest.raises(ValueError, match="already registered"):
            ex.register(make_toy(name="toy-decorated"))
    finally:
        assert ex.unregister("toy-decorated") is made
    assert "toy-decorated" not in ex.names()
    with pytest.raises(ex.UnknownExperimentError):
        ex.unregister("toy-decorated")


def test_builtin_modules_are_imported_on_first_use(tmp_path, monkeypatch):
    from bayesattn.runner import _registry

    (tmp_path / "toy_builtin_module.py").write_text(
        "from bayesattn import experiments as ex\n"
        "import pandas as pd\n"
        "ex.register(ex.Experiment(name='toy-builtin', title='t', claims=('P0',),\n"
        "    description='d', presets={'smoke': {}, 'quick': {}, 'full': {}},\n"
        "    stages=(ex.Stage('one', lambda ctx: pd.DataFrame()),), verdicts=lambda r, p: []))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "BUILTIN_MODULES",
                        (*_registry.BUILTIN_MODULES, "toy_builtin_module"))
    monkeypatch.setattr(_registry, "_builtins_loaded", False)
    try:
        assert "toy-builtin" in ex.names()
        assert ex.get("toy-builtin").title == "t"
    finally:
        ex.unregister("toy-builtin")


def test_experiments_is_a_registry_like_models():
    from bayesattn._registry import Registry
    from bayesattn.runner import EXPERIMENTS

    assert isinstance(ex.EXPERIMENTS, Registry) and ex.EXPERIMENTS is EXPERIMENTS
    assert EXPERIMENTS.names() == ex.names() and "gap-vs-length" in EXPERIMENTS
    assert EXPERIMENTS.get("gap-vs-length") is ex.get("gap-vs-length")
    with pytest.raises(ex.UnknownExperimentError) as info:
        EXPERIMENTS.get("gap-vs-lenght")
    text = str(info.value)
    assert "did you mean 'gap-vs-length'" in text and "bayesattn list" in text
    with pytest.raises(ValueError, match="already registered"):  # a taken name
        ex.register(make_toy(name="gap-vs-length"))
    assert ex.get("gap-vs-length").name == "gap-vs-length"
    with pytest.raises(TypeError, match="expects an Experiment"):
        EXPERIMENTS.register("not-one", object())


def test_run_result_repr_is_one_short_line(tmp_path):
    out = tmp_path / ("a-long-run-folder-name-" * 6)
    results = pd.DataFrame({"stage": ["fit"] * 500, "value": np.arange(500.0)})
    verdicts = [ex.Verdict(c, "A claim.", "up", "measured", v) for c, v in
                (("P4", "supported"), ("P12", "inconclusive"), ("P13", "not supported"),
                 ("P14", ex.NOT_ASSESSED))]
    res = ex.RunResult(out=out, results=results, verdicts=verdicts, headline=results.head(40),
                       figures=[out / "figures/a.png", out / "figures/a.svg"],
                       report=out / "report.md", convergence=results)
    text = repr(res)
    assert "\n" not in text and len(text) < 200, text
    assert text.startswith("RunResult(out='...") and str(out) not in text  # the tail only
    assert str(out)[-40:] in text and "results=500 rows" in text and "figures=2" in text
    assert ("verdicts=[P4=supported, P12=inconclusive, P13=not supported, "
            "P14=not assessed]") in text
    assert [f.name for f in dataclasses.fields(res)] == [
        "out", "results", "verdicts", "headline", "figures", "report", "convergence"]


def test_from_parts_wires_a_package_of_parts_by_name(tmp_path, monkeypatch):
    """A package with presets, stages and claims (no figures, headline or convergence)
    becomes an experiment whose stages are the functions named like them."""
    pkg = tmp_path / "toy_parts"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Toy.\n\nIt counts to n."""\n')
    (pkg / "presets.py").write_text(
        "PRESETS = {'smoke': {'n': 2}, 'quick': {'n': 3}, 'full': {'n': 4}}\n")
    (pkg / "stages.py").write_text(
        "import pandas as pd\n"
        "def count_up(ctx):\n"
        "    return pd.DataFrame({'metric': 'i', 'value': range(ctx.params['n'])})\n")
    (pkg / "claims.py").write_text("def verdicts(results, params):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_parts
    from toy_parts import stages

    made = ex.Experiment.from_parts("toy_parts", name="toy-parts", title="t", claims=("P0",),
                                    stages=("count-up",))
    assert made.stage_names == ("count-up",) and made.stages[0].fn is stages.count_up
    assert made.description == "It counts to n." and toy_parts.__doc__.startswith("Toy.")
    assert made.figures is made.headline is made.convergence is made.work is None
    result = ex.run(made, preset="quick", out=tmp_path / "run", progress=False, threads=1)
    assert list(result.results["value"]) == [0, 1, 2]
    with pytest.raises(AttributeError, match="no_such_stage"):
        ex.Experiment.from_parts("toy_parts", name="toy-parts", title="t", claims=("P0",),
                                 stages=("no-such-stage",))
