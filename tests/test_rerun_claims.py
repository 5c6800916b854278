"""scripts/rerun_claims.sh: re-answer claims from a clean clone, each result committed with its command.

A stand-in for ``labbench`` (it records its calls and writes what pilot and reproduce would write) keeps this a unit
test of the script's own job: the clone reset to main, one pilot per setting before the reproduction, two commits
whose messages carry the commands, the ``done-NAME`` branch, and a stop (no commit, no branch) when a step fails."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit

STAND_IN = r'''#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$1" in
  list) echo '[{"name": "claim-x", "settings": ["small", "deep"]}, {"name": "other", "settings": []}]' ;;
  pilot)
    dir=$(echo "$*" | sed 's/.*--report-dir \([^ ]*\).*/\1/'); mkdir -p "$dir"; echo pilot > "$dir/pilot.md"
    echo "# budget for $4" >> experiments/claim-x.yaml ;;
  reproduce)
    [ -n "$FAIL_REPRODUCE" ] && exit 3
    dir=$(echo "$*" | sed 's/.*--report-dir \([^ ]*\).*/\1/'); mkdir -p "$dir"; echo '{}' > "$dir/verdict.json" ;;
esac
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A repository with the script and one spec on main."""
    src = tmp_path / "src"
    (src / "scripts").mkdir(parents=True)
    (src / "experiments").mkdir()
    shutil.copy(REPO / "scripts" / "rerun_claims.sh", src / "scripts")
    (src / "experiments" / "claim-x.yaml").write_text("name: claim-x\n")
    git(src, "init", "-q", "-b", "main")
    git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "root")
    git(src, "add", "-A")
    git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "spec")
    stand_in = tmp_path / "labbench"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    return src


def rerun(source: Path, tmp_path: Path, *names: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "LABBENCH": str(tmp_path / "labbench"), "CALLS": str(tmp_path / "calls"),
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **env}
    return subprocess.run(["bash", str(source / "scripts" / "rerun_claims.sh"), str(tmp_path / "clone"), str(tmp_path / "store"), *names],
                          capture_output=True, text=True, env=environ, timeout=120)


def test_each_setting_is_piloted_then_the_claim_reproduced_and_both_committed_with_their_commands(source, tmp_path):
    done = rerun(source, tmp_path, "claim-x")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["list", "pilot", "pilot", "reproduce"]
    assert calls[1].startswith("pilot claim-x --setting small --out ") and "--write-profile" in calls[1]
    assert calls[2].startswith("pilot claim-x --setting deep ")
    assert calls[3].startswith("reproduce claim-x --profile quick --jobs 2 --out ") and "--report-dir docs/results/claim-x/quick" in calls[3]
    clone = tmp_path / "clone"
    spec_commit = git(source, "rev-parse", "--short", "main")
    log = git(clone, "log", "--format=%s", "done-claim-x").splitlines()
    assert log[0].startswith("claim-x quick report: labbench reproduce claim-x --profile quick")
    assert log[1].startswith("claim-x pilots, each setting's budget") and log[1].endswith(f"from a clean clone at {spec_commit}")
    assert log[0].endswith(f"from a clean clone at {git(clone, 'rev-parse', '--short', 'done-claim-x~1')}")
    assert log[2] == "spec"
    assert git(clone, "show", "done-claim-x:experiments/claim-x.yaml").splitlines()[1:] == ["# budget for small", "# budget for deep"]
    assert git(clone, "show", "done-claim-x:docs/results/claim-x/quick/verdict.json") == "{}"
    assert git(clone, "status", "--short") == ""


def test_a_failed_step_stops_the_queue_without_a_report_commit_or_a_done_branch(source, tmp_path):
    done = rerun(source, tmp_path, "claim-x", "other", FAIL_REPRODUCE="1")
    assert done.returncode == 1 and "reproduce claim-x failed" in done.stdout
    clone = tmp_path / "clone"
    assert "done-claim-x" not in git(clone, "branch")
    assert git(clone, "log", "-1", "--format=%s").startswith("claim-x pilots")  # the pilots landed, the report did not
    assert not any(c.startswith("pilot other") for c in (tmp_path / "calls").read_text().splitlines())  # the queue stopped


def test_an_unknown_claim_is_refused_by_name(source, tmp_path):
    done = rerun(source, tmp_path, "no-such-claim")
    assert done.returncode == 1 and "no-such-claim: not a spec in experiments/" in done.stdout
