"""Decision rules as data: versions and hashes recorded by every run, stale and provisional
verdicts in the report, docs/rules.md in step with the code."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bayesattn import experiments as ex
from bayesattn.cli import main
from bayesattn.runner import Rule, rule_status, rules_markdown

ROOT = Path(__file__).resolve().parents[2]

RULE = Rule(claim="P3", version=1, kind="test", measures="the mean of two draws",
            decision="supported when it is positive")


def _toy(rule: Rule | None = RULE, rules_file: str | None = None) -> ex.Experiment:
    return ex.Experiment(
        name="toy-rules", title="toy", claims=("P3",), description="d",
        presets={"smoke": {"n": 2}, "quick": {"n": 3}, "full": {"n": 4}},
        stages=(ex.Stage("s", lambda ctx: pd.DataFrame({"value": [1.0, 2.0]})),),
        verdicts=lambda r, p: [ex.Verdict("P3", "Mean is positive.", "positive", "mean 1.5",
                                          "supported", {"mean": 1.5})],
        rules=(rule,) if rule else (), rules_file=rules_file)


@pytest.fixture
def registered():
    made = []

    def register(experiment):
        if "toy-rules" in ex.EXPERIMENTS:
            ex.unregister("toy-rules")
        made.append(ex.register(experiment))
        return experiment

    yield register
    if "toy-rules" in ex.EXPERIMENTS:
        ex.unregister("toy-rules")


def test_a_rule_is_checked_and_its_hash_follows_its_content_not_its_layout():
    assert RULE.sha256 == dataclasses.replace(RULE, measures="the   mean of\ntwo draws").sha256
    for field, value in [("decision", "supported when it is negative"), ("version", 2),
                         ("kind", "sanity"), ("replication", "5 seeds")]:
        assert dataclasses.replace(RULE, **{field: value}).sha256 != RULE.sha256, field
    with pytest.raises(ValueError, match="kind"):
        dataclasses.replace(RULE, kind="guess")
    with pytest.raises(ValueError, match="version"):
        dataclasses.replace(RULE, version=0)
    with pytest.raises(ValueError, match="decision"):
        dataclasses.replace(RULE, decision=" ")
    # naming the key number is part of the rule; a rule without one keeps its old hash
    keyed = dataclasses.replace(RULE, key="mean")
    assert keyed.sha256 != RULE.sha256 and keyed.record()["key"] == "mean"
    assert "key" not in RULE.record()
    assert RULE.sha256 == "1a2bcd209291f7e72dc4595a91b16afaf699669f689caefffe790a05cbcdbf97"


def test_an_experiment_refuses_rules_for_other_claims_or_twice_the_same_version():
    with pytest.raises(ValueError, match="does not test"):
        _toy(dataclasses.replace(RULE, claim="P9"))
    with pytest.raises(ValueError, match="two rules for P3 version 1"):
        ex.Experiment(**{**{f.name: getattr(_toy(), f.name)
                            for f in dataclasses.fields(ex.Experiment)},
                         "rules": (RULE, dataclasses.replace(RULE, decision="other"))})


def test_a_run_records_its_rules_and_the_report_holds_the_verdict_to_them(registered, tmp_path):
    registered(_toy())
    result = ex.run("toy-rules", preset="quick", out=tmp_path / "run", progress=False)
    config = json.loads((result.out / "config.json").read_text())
    assert config["rules"] == {"P3": RULE.record()} and config["rules_committed"] is None
    saved = json.loads((result.out / "verdicts.json").read_text())[0]
    assert saved["rule"] == RULE.record() and result.verdicts[0].rule == RULE.record()
    report = result.report.read_text()
    assert "**supported**" in report and "| current |" in report
    # the rule changes after the run: the report no longer calls the verdict
    registered(_toy(dataclasses.replace(RULE, decision="supported when it exceeds 1")))
    assert main(["report", str(result.out)]) == 0
    report = (result.out / "report.md").read_text()
    assert "stale: decided (supported) by a rule that has changed since the run" in report
    assert "**supported**" not in report and "| stale |" in report
    # a run from before the experiment stated rules is stale too
    registered(_toy(rule=None))
    assert rule_status(None, None, None) == ""
    assert rule_status(None, RULE, True) == "stale"


def test_rules_not_committed_before_the_run_make_its_verdicts_provisional(registered, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    rules_file = repo / "claims.py"
    rules_file.write_text("RULES = ()\n")

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                       check=True, capture_output=True)

    git("init", "-q")
    git("add", "claims.py")
    git("commit", "-qm", "rules")
    registered(_toy(rules_file=str(rules_file)))
    run = ex.run("toy-rules", preset="quick", out=tmp_path / "committed", progress=False)
    assert json.loads((run.out / "config.json").read_text())["rules_committed"] is True
    assert "**supported**" in run.report.read_text()
    rules_file.write_text("RULES = ('edited',)\n")  # changed, not committed
    run = ex.run("toy-rules", preset="quick", out=tmp_path / "dirty", progress=False)
    assert json.loads((run.out / "config.json").read_text())["rules_committed"] is False
    report = run.report.read_text()
    assert "provisional: its rules were not committed before the run" in report
    assert "were NOT committed to git" in report


def test_every_builtin_claim_has_a_rule_and_docs_rules_md_is_the_printed_rules(capsys):
    for name in ex.names():
        e = ex.get(name)
        assert {r.claim for r in e.rules} == set(e.claims), name
        assert e.rules_file and Path(e.rules_file).name == "claims.py"
    assert main(["rules"]) == 0
    printed = capsys.readouterr().out
    assert printed == rules_markdown(ex.get(n) for n in ex.names())
    assert (ROOT / "docs" / "rules.md").read_text() == printed, (
        "docs/rules.md is out of date: bayesattn rules > docs/rules.md")
