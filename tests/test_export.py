"""Results out (issue 27, item 9): every run as a table, and two reports side by side."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import cli
from test_ablation import write_spec


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_export_gives_every_run_with_its_seed_and_value_as_the_statistics_read_them(tmp_path):
    tuning = {"param": "optimizer.lr", "grid": [0.001, 0.01], "metric": "val/loss", "direction": "lower"}
    path = write_spec(tmp_path, "pair", tuning=tuning, metrics=["test/acc"], profiles={"smoke": {"seeds": 3}})
    out = tmp_path / "store"
    done = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--no-wandb", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    exported = cli("labbench", "export", str(path), "--profile", "smoke", "--out", str(out), cwd=tmp_path)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["stage"] for r in rows] == ["tune"] * 4 + ["final"] * 6
    assert {r["tuned"] for r in rows if r["stage"] == "tune"} == {"optimizer.lr=0.001", "optimizer.lr=0.01"}
    assert set(rows[0]) >= {"arm", "seed", "tuned", "status", "run_id", "val/loss", "test/acc"}
    verdict = json.loads((out / "pair" / "smoke" / "verdict.json").read_text())
    for arm in ("a", "b"):
        finals = [r for r in rows if r["stage"] == "final" and r["arm"] == arm]
        assert [int(r["seed"]) for r in finals] == verdict["arms"][arm]["seeds"]  # which seed each value belongs to
        assert [float(r["test/acc"]) for r in finals] == pytest.approx(verdict["arms"][arm]["metrics"]["test/acc"]["values"])
    as_json = cli("labbench", "export", str(path), "--profile", "smoke", "--out", str(out), "--format", "json",
                  "--file", str(tmp_path / "runs.json"), cwd=tmp_path)
    assert as_json.returncode == 0 and len(json.loads((tmp_path / "runs.json").read_text())) == 10

    # the same report against itself: nothing changed; against an edited copy: the change is named
    same = json.loads(cli("labbench", "compare", str(out / "pair" / "smoke"), str(out / "pair" / "smoke"), "--json", cwd=tmp_path).stdout)
    assert same["notes"] == [] and not any(r["verdict_changed"] for r in same["rows"])
    other = tmp_path / "other" / "verdict.json"
    other.parent.mkdir()
    edited = {**verdict, "spec_hash": "0" * 12, "hypotheses": [{**h, "verdict": "supported" if h["verdict"] != "supported" else "contradicted"}
                                                               for h in verdict["hypotheses"]]}
    other.write_text(json.dumps(edited))
    diff = json.loads(cli("labbench", "compare", str(out / "pair" / "smoke"), str(other), "--json", cwd=tmp_path).stdout)
    assert all(r["verdict_changed"] for r in diff["rows"]) and "different spec versions" in diff["notes"][0]
    shown = cli("labbench", "compare", str(out / "pair" / "smoke"), str(other), cwd=tmp_path)
    assert shown.returncode == 0 and "(changed)" in shown.stdout
    missing = cli("labbench", "compare", str(tmp_path / "nowhere"), str(other), cwd=tmp_path)
    assert missing.returncode == 2 and "no verdict.json there" in missing.stdout


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_labbench_new_writes_a_spec_that_validates_and_never_overwrites(tmp_path):
    """Issue 27, item 6: a first spec from a commented template, not by deleting a shipped one's notes."""
    made = cli("labbench", "new", "my-claim", "--dir", "specs", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    path = tmp_path / "specs" / "my-claim.yaml"
    text = path.read_text()
    assert "name: my-claim " in text and "labbench validate specs/my-claim.yaml" in text
    checked = cli("labbench", "validate", "specs/my-claim.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "my-claim/digits" in checked.stdout and "my-claim/mnist1d" in checked.stdout and "the primary 83%" in checked.stdout
    again = cli("labbench", "new", "my-claim", "--dir", "specs", cwd=tmp_path)
    assert again.returncode == 2 and "exists already" in again.stdout and path.read_text() == text
    bad = cli("labbench", "new", "My Claim", cwd=tmp_path)
    assert bad.returncode == 2 and "lower-case letters" in bad.stdout


@pytest.mark.integration
def test_from_labbench_new_to_a_smoke_reproduction_with_every_printed_command_run_as_printed(tmp_path):
    """Issue 27, done when: a spec outside experiments/ goes from `labbench new` to a validated smoke reproduction, and the
    follow-up commands it prints (new's, the reports') run as printed."""
    import re
    import shlex

    made = cli("labbench", "new", "tpl", "--dir", "specs", cwd=tmp_path)
    assert made.returncode == 0
    validate_line = next(line.split("next:")[-1].strip() for line in made.stdout.splitlines() if "labbench validate" in line)
    assert validate_line == "labbench validate specs/tpl.yaml"
    assert cli(*shlex.split(validate_line), cwd=tmp_path).returncode == 0
    done = cli("labbench", "reproduce", "specs/tpl.yaml", "--profile", "smoke", "--no-wandb", "--out", "store", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    combined = json.loads((tmp_path / "store" / "tpl" / "smoke" / "verdict.json").read_text())
    assert [s["name"] for s in combined["settings"]] == ["digits", "mnist1d"] and combined["answer"]["answer"]
    # each setting's report prints how to reproduce it: run as printed (plus where the store is), it trains nothing
    report = (tmp_path / "store" / "tpl" / "digits" / "smoke" / "report.md").read_text()
    command = re.search(r"## Reproduce\s*```bash\n(.+?)\n```", report).group(1)
    assert command == "labbench reproduce specs/tpl.yaml --profile smoke --setting digits"
    again = cli(*shlex.split(command), "--no-wandb", "--out", "store", cwd=tmp_path)
    assert again.returncode == 0 and "nothing to train" in again.stdout
    claim = (tmp_path / "store" / "tpl" / "smoke" / "report.md").read_text()
    assert "`labbench reproduce specs/tpl.yaml --profile smoke`" in claim


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_reproduce_says_what_it_measured_and_writes_it_into_the_spec_when_asked(tmp_path):
    """Issue 27, item 5: an estimate is the spec's guess until measured; --update-estimate writes the measurement."""
    import yaml

    from labbench.ablation import spec as specs

    path = write_spec(tmp_path, "pair", profiles={"smoke": {"seeds": 3, "estimated_minutes": 99}})
    done = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--no-wandb", "--out", "store", "--update-estimate", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    said = " ".join(done.stdout.split())
    assert "(the spec's estimate)" in said and "measured:" in said and "for 6 runs trained here" in said and "the spec estimated 99 min" in said
    written = yaml.safe_load(path.read_text())["profiles"]["smoke"]
    assert 0 < written["estimated_minutes"] < 5 and written["seeds"] == 3
    assert "measured by labbench reproduce --update-estimate" in path.read_text()
    assert specs.load(str(path)).profile("smoke").estimated_minutes == written["estimated_minutes"]
    again = cli("labbench", "reproduce", str(path), "--profile", "smoke", "--no-wandb", "--out", "store", cwd=tmp_path)
    assert again.returncode == 0 and "measured:" not in again.stdout  # nothing trained, nothing measured


def test_labbench_new_writes_the_arms_factors_and_metrics_given_and_the_spec_validates(tmp_path, monkeypatch):
    """Issue 27: `labbench new NAME --arm ... --metric ...` starts from the user's own arms, not the example's."""
    from labbench.ablation import spec as specs
    from labbench.ablation.validation import validate
    from labbench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["new", "opt-claim", "--arm", "sgd:optimizer=sgd", "--arm", "adam:optimizer=adam optimizer.lr=0.001",
                 "--metric", "test/acc", "--metric", "test/nll"]) == 0
    spec = specs.load(str(tmp_path / "opt-claim.yaml"))
    assert [a.name for a in spec.arms] == ["sgd", "adam"] and list(spec.factors) == ["optimizer", "optimizer.lr"]
    primary, secondary = spec.hypotheses
    assert (primary.role, primary.metric, primary.better, primary.worse, primary.direction) == ("primary", "test/acc", "adam", "sgd", "higher")
    assert (secondary.metric, secondary.direction) == ("test/nll", "lower")  # each metric's own direction
    assert spec.pilot.arm == "sgd" and "# the only config keys" in (tmp_path / "opt-claim.yaml").read_text()  # comments kept
    validate(spec, "smoke")
    assert main(["new", "one-arm", "--arm", "sgd:optimizer=sgd"]) == 2
    assert main(["new", "no-colon", "--arm", "sgd optimizer=sgd", "--arm", "b:optimizer=adam"]) == 2
