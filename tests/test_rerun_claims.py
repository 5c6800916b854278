"""scripts/rerun_claims.sh: re-answer claims from a clean clone, each result committed with its command.

A stand-in for ``labbench`` (it records its calls and writes what pilot and reproduce would write) keeps this a unit
test of the script's own job: the clone reset to main and the earlier version's results removed, one pilot per setting
before the reproduction, two commits whose messages carry the commands, the ``done-NAME`` branch, and a stop (no
report commit, no branch, the step named) when a step fails. One test reads the real ``labbench list --json``, the
script's only dependence on labbench's output."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, cli

pytestmark = pytest.mark.unit

STAND_IN = r'''#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$1" in
  list) echo '[{"name": "claim-x", "settings": ["small", "deep"]}, {"name": "plain", "settings": []}]' ;;
  pilot)
    dir=$(echo "$*" | sed 's/.*--report-dir \([^ ]*\).*/\1/'); mkdir -p "$dir"; echo pilot > "$dir/pilot.md"
    where=$(echo "$*" | sed -n 's/.*--setting \([^ ]*\).*/\1/p')
    echo "# budget for ${where:-the claim}" >> "experiments/$2.yaml" ;;
  reproduce)
    [ -n "${FAIL_REPRODUCE:-}" ] && exit 3
    [ -n "${NO_REPORT:-}" ] && exit 0
    dir=$(echo "$*" | sed 's/.*--report-dir \([^ ]*\).*/\1/'); mkdir -p "$dir"; echo '{}' > "$dir/verdict.json" ;;
esac
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A repository with the script, two specs and an earlier version's results on main."""
    src = tmp_path / "src"
    (src / "scripts").mkdir(parents=True)
    (src / "experiments").mkdir()
    shutil.copy(REPO / "scripts" / "rerun_claims.sh", src / "scripts")
    (src / "experiments" / "claim-x.yaml").write_text("name: claim-x\n")
    (src / "experiments" / "plain.yaml").write_text("name: plain\n")
    old = src / "docs" / "results" / "claim-x" / "quick-map"
    old.mkdir(parents=True)
    (old / "map.json").write_text("{}")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "specs")
    stand_in = tmp_path / "labbench"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    return src


def rerun(source: Path, tmp_path: Path, *names: str, clone: str | None = None, store: str | None = None,
          cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "LABBENCH": str(tmp_path / "labbench"), "CALLS": str(tmp_path / "calls"),
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **env}
    return subprocess.run(["bash", str(source / "scripts" / "rerun_claims.sh"), clone or str(tmp_path / "clone"),
                           store or str(tmp_path / "store"), *names], capture_output=True, text=True, env=environ, timeout=120, cwd=cwd)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_each_setting_is_piloted_then_the_claim_reproduced_and_both_committed_with_their_commands(source, tmp_path):
    done = rerun(source, tmp_path, "claim-x")
    assert done.returncode == 0, done.stdout + done.stderr
    made = calls(tmp_path)
    assert [c.split()[0] for c in made] == ["list", "pilot", "pilot", "reproduce"]
    assert made[1].startswith("pilot claim-x --setting small --out ") and "--write-profile" in made[1]
    assert made[2].startswith("pilot claim-x --setting deep ")
    assert made[3].startswith("reproduce claim-x --profile quick --jobs 2 --out ") and "--report-dir docs/results/claim-x/quick" in made[3]
    clone = tmp_path / "clone"
    spec_commit = git(source, "rev-parse", "--short", "main")
    log = git(clone, "log", "--format=%s", "done-claim-x").splitlines()
    assert log[0].startswith("claim-x quick report: labbench reproduce claim-x --profile quick")
    assert log[0].endswith(f"from a clean clone at {git(clone, 'rev-parse', '--short', 'done-claim-x~1')}")
    assert log[1].startswith("claim-x pilots, each setting's budget") and "--setting S" in log[1]
    assert log[1].endswith(f"from a clean clone at {spec_commit}")
    assert log[2:] == ["specs"]
    assert git(clone, "show", "done-claim-x:experiments/claim-x.yaml").splitlines()[1:] == ["# budget for small", "# budget for deep"]
    assert git(clone, "show", "done-claim-x:docs/results/claim-x/quick/verdict.json") == "{}"
    files = git(clone, "ls-tree", "-r", "--name-only", "done-claim-x", "docs/results/claim-x").splitlines()
    assert "docs/results/claim-x/quick-map/map.json" not in files  # the earlier version's results went with it
    assert git(clone, "status", "--short") == ""


def test_a_queue_of_two_with_relative_paths_answers_both_and_a_claim_without_settings_pilots_once(source, tmp_path):
    done = rerun(source, tmp_path, "claim-x", "plain", clone="clone", store="store", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    clone = tmp_path / "clone"
    assert {"done-claim-x", "done-plain"} <= {b.strip(" *") for b in git(clone, "branch").splitlines()}
    plain = [c for c in calls(tmp_path) if c.split()[1:2] == ["plain"]]
    assert plain[0].startswith("pilot plain --out ") and "--setting" not in plain[0] and "--report-dir docs/results/plain/pilot " in plain[0]
    assert f"--out {tmp_path / 'store'} " in plain[0]  # the store made absolute before the script moved into the clone
    assert git(clone, "log", "-1", "--format=%s", "done-plain~1").startswith("plain pilots, its budget from the spec's pilot arm alone: labbench pilot plain --out")
    assert git(clone, "show", "done-plain:experiments/plain.yaml").splitlines()[1:] == ["# budget for the claim"]
    assert git(clone, "show", "done-plain:docs/results/plain/quick/verdict.json") == "{}"


def test_a_failed_step_stops_the_queue_and_a_failed_rerun_leaves_no_earlier_done_branch(source, tmp_path):
    assert rerun(source, tmp_path, "claim-x").returncode == 0
    done = rerun(source, tmp_path, "claim-x", "plain", FAIL_REPRODUCE="1")
    assert done.returncode == 1 and "reproduce claim-x failed" in done.stdout
    clone = tmp_path / "clone"
    assert "done-claim-x" not in git(clone, "branch")  # the first run's result cannot be merged by mistake
    assert git(clone, "log", "-1", "--format=%s").startswith("claim-x pilots")  # the pilots landed, the report did not
    assert not any(c.startswith("pilot plain") for c in calls(tmp_path))  # the queue stopped


def test_a_step_that_changes_nothing_says_so_and_stops(source, tmp_path):
    done = rerun(source, tmp_path, "claim-x", NO_REPORT="1")
    assert done.returncode == 1 and "claim-x: report changed nothing against main: not committed" in done.stdout
    assert "done-claim-x" not in git(tmp_path / "clone", "branch")


def test_an_unknown_claim_is_refused_by_name(source, tmp_path):
    done = rerun(source, tmp_path, "no-such-claim")
    assert done.returncode == 1 and "no-such-claim: not a spec in experiments/" in done.stdout


def test_the_real_listing_gives_what_the_script_reads(tmp_path):
    """The script reads `labbench list --json`: a list of specs, each with its name and its settings' names."""
    listed = cli("labbench", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    specs = {s["name"]: s for s in json.loads(listed.stdout)}
    assert specs["prenorm-vs-postnorm"]["settings"] == ["6-layer", "12-layer"]
    assert all(isinstance(s.get("settings") or [], list) for s in specs.values())
